//! What llmflow's integration tests share, so that each crate's tests and the whole-system tests
//! stand on the same ground: the real PostgreSQL (a fresh database per test, copied from a
//! migrated template) and Redis (a namespace per test), the emulator as the LLM provider,
//! receiving HTTP servers playing the app, waiting on conditions with a deadline, and the few
//! queries only tests need. For tests only: nothing here is built into a product binary.

pub mod daemons;
pub mod database;
mod env;
pub mod jobs;
pub mod queries;
mod receiver;
pub mod redis;
mod served;
pub mod tls;
mod wait;

pub use env::{TestEnv, ADMIN_KEY, API_KEY, WEBHOOK_SECRET};
pub use receiver::{local_listener, verifies, Counter, Hit, Received, Receiver, Reply, Scripted};
pub use served::TestApp;
pub use wait::wait_until;
