//! llmflow's whole-system tests: every process (API, worker, webhook sender, worker processes)
//! against the real PostgreSQL and Redis, with the emulator as the LLM provider and receiving
//! HTTP servers as the app. The tests live in `tests/it`; this library is empty.
