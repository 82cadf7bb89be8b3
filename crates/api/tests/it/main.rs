//! End-to-end tests of llmflow against the real PostgreSQL and Redis, with the emulator as the
//! LLM provider and a receiving HTTP server as the app.

mod pipeline;
mod providers;
mod recovery;
mod schema;
mod submit;
mod support;
mod webhooks;
mod workflows;
