//! Integration tests of llmflow-core against the real Redis on the machine: the queue plumbing
//! and the GCRA rate limiter.

mod queue;
mod ratelimit;
