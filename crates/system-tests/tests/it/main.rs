//! Whole-system tests of llmflow: the API, workers, webhook senders and worker processes
//! against the real PostgreSQL and Redis, with the emulator as the LLM provider and a
//! receiving HTTP server as the app.

mod apps;
mod cancel;
mod events;
mod health;
mod interrupted;
mod limits;
mod pipeline;
mod plans;
mod pooler;
mod postgres_tls;
mod priority;
mod processes;
mod providers;
mod recovery;
mod redis_tls;
mod retry;
mod shutdown;
mod stream_token;
mod streaming;
mod support;
mod terminal;
mod webhooks;
mod workflows;
