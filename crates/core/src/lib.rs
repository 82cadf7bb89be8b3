//! llmflow-core: the domain shared by every llmflow process — ids and job states, workflow
//! definitions and their validation, step transforms, the LLM provider abstraction and pricing,
//! configuration, the PostgreSQL schema and queries, the queue message types and their Redis
//! layout, the shared rate limiter (GCRA in Redis) and the one backoff formula.

pub mod backoff;
pub mod config;
pub mod db;
pub mod dry_run;
pub mod estimate;
pub mod events;
pub mod ids;
pub mod llm;
pub mod metrics;
pub mod otel;
pub mod pricing;
pub mod queue;
pub mod ratelimit;
pub mod signal;
pub mod status;
pub mod telemetry;
pub mod template;
pub mod transform;
pub mod workflow;

pub use ids::{DeliveryId, JobId};
pub use status::JobStatus;
