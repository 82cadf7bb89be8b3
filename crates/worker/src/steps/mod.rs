//! Step executors, one file per step kind. An executor runs one step once; the engine owns
//! ordering, retries, timeouts, cancellation and persistence.

pub mod external_api;
pub mod llm;
pub mod parallel;
pub mod transform;

use llmflow_core::db::models::UsageRow;
use serde_json::Value;

/// What one execution of a step produced.
#[derive(Debug)]
pub struct StepOutput {
    pub output: Value,
    /// LLM calls made (and paid for), whether or not the step then succeeded.
    pub usage: Vec<UsageRow>,
}

/// Why one execution of a step failed; `usage` keeps the calls that were paid for anyway.
#[derive(Debug)]
pub struct StepFailure {
    pub kind: &'static str,
    pub message: String,
    pub retryable: bool,
    pub usage: Vec<UsageRow>,
}

impl StepFailure {
    pub fn new(kind: &'static str, message: impl Into<String>, retryable: bool) -> Self {
        Self {
            kind,
            message: message.into(),
            retryable,
            usage: Vec::new(),
        }
    }
}
