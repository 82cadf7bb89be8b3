//! The worker's errors. A start-up error says which service or file stopped the worker; a run
//! error interrupts one job run or one reconcile or maintenance pass, and leaves the work to be
//! picked up again (the job's claim lapses, the next pass runs). Each keeps its cause.

use std::sync::Arc;

use llmflow_core::db::DbError;
use llmflow_core::pricing::PricingError;
use llmflow_core::queue::QueueError;

/// Why a worker could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot build the LLM HTTP client")]
    LlmClient(#[source] reqwest::Error),
    #[error("cannot build the external API HTTP client")]
    ExternalClient(#[source] reqwest::Error),
    #[error("cannot load the pricing table")]
    Pricing(#[source] PricingError),
    #[error("cannot reach PostgreSQL (DATABASE_URL)")]
    Database(#[source] DbError),
    #[error("cannot reach Redis (REDIS_URL)")]
    Redis(#[source] QueueError),
}

/// Why a job run or a background pass stopped before its end.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("database unavailable")]
    Database(#[from] DbError),
    #[error("Redis unavailable")]
    Queue(#[from] QueueError),
    /// The batched claim of the job failed (every job of the batch shares the cause).
    #[error("claiming the job failed")]
    Claim(#[source] Arc<DbError>),
    #[error("the claim writer has stopped")]
    ClaimWriterStopped,
    /// The group commit carrying the job's write failed (shared by the jobs of the group when
    /// the cause was not one job's own row).
    #[error("writing the job's records failed")]
    Write(#[source] Arc<DbError>),
    #[error("the records writer has stopped")]
    WriterStopped,
    #[error("workflow definition {hash} is missing")]
    MissingDefinition { hash: String },
    #[error("stored workflow definition is invalid: {problems}")]
    InvalidDefinition { problems: String },
}

impl From<diesel_async::pooled_connection::deadpool::PoolError> for RunError {
    fn from(e: diesel_async::pooled_connection::deadpool::PoolError) -> Self {
        RunError::Database(DbError::from(e))
    }
}
