//! Integration tests of llmflow-core against the real Redis on the machine.

mod queue;
