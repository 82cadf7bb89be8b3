//! End-to-end tests of llmflow against the real PostgreSQL and Redis, with the emulator as the
//! LLM provider and a receiving HTTP server as the app.

mod cancel;
mod errors;
mod events;
mod limits;
mod pipeline;
mod priority;
mod providers;
mod recovery;
mod schema;
mod submit;
mod support;
mod validate;
mod webhooks;
mod workflows;
