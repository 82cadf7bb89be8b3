//! llmflow-core: the domain shared by every llmflow process — ids and job states, workflow
//! definitions and their validation, step transforms, the LLM provider abstraction and pricing,
//! configuration, the PostgreSQL schema and queries, and the queue message types.

pub mod config;
pub mod db;
pub mod estimate;
pub mod events;
pub mod ids;
pub mod llm;
pub mod pricing;
pub mod queue;
pub mod signal;
pub mod status;
pub mod telemetry;
pub mod template;
pub mod transform;
pub mod workflow;

pub use ids::{DeliveryId, JobId};
pub use status::JobStatus;
