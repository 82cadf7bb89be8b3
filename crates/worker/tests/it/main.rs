//! Tests of the worker alone against the real PostgreSQL and Redis, with the emulator as the LLM
//! provider: jobs written and pushed as the API does, and no API or webhook sender running.

mod cancel;
mod claims;
mod config;
mod run;
mod shutdown;
mod support;
mod writes;
