//! Rows as diesel reads and writes them.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use rust_decimal::Decimal;
use serde_json::Value;
use uuid::Uuid;

use super::schema::*;

#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = llm_workflow_jobs)]
#[diesel(check_for_backend(diesel::pg::Pg))]
pub struct JobRow {
    pub id: Uuid,
    pub user_id: Option<Uuid>,
    pub workflow_name: String,
    pub workflow_version: String,
    pub workflow_hash: String,
    pub status: String,
    pub priority: i16,
    pub input_data: Value,
    pub result: Option<Value>,
    pub error_message: Option<String>,
    pub webhook_url: Option<String>,
    pub webhook_secret: Option<String>,
    pub queue_task_id: Option<String>,
    pub current_step: Option<String>,
    pub steps_completed: i32,
    pub steps_planned: i32,
    pub cancel_requested: bool,
    pub idempotency_key: Option<String>,
    pub attempts: i32,
    pub claimed_by: Option<String>,
    pub claimed_at: Option<DateTime<Utc>>,
    pub heartbeat_at: Option<DateTime<Utc>>,
    pub total_input_tokens: i64,
    pub total_output_tokens: i64,
    pub total_cost_usd: Decimal,
    pub is_stale: bool,
    pub stale_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub queued_at: Option<DateTime<Utc>>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    /// Extra webhook events the caller asked for (`workflow.progress`, `workflow.chunk`).
    pub webhook_events: Option<Value>,
    /// Budget: the worker stops before a call that would take the job past it.
    pub max_cost_usd: Option<Decimal>,
    pub idempotency_hash: Option<String>,
    pub idempotency_expires_at: Option<DateTime<Utc>>,
    /// The wait estimate of the 202 answer (replayed as it was for an Idempotency-Key).
    pub estimated_wait_seconds: Option<i32>,
    /// Times a failed job was sent back to run from its failed step.
    pub retry_count: i32,
    /// What each failed run ended with, oldest first (one entry per retry).
    pub retry_history: Value,
    /// The W3C trace context of the submit, when spans are exported (see `otel`).
    pub traceparent: Option<String>,
}

#[derive(Clone, Debug, Insertable)]
#[diesel(table_name = llm_workflow_jobs)]
pub struct NewJob {
    pub id: Uuid,
    pub user_id: Option<Uuid>,
    pub workflow_name: String,
    pub workflow_version: String,
    pub workflow_hash: String,
    pub status: String,
    /// Set when the row is inserted as `queued` (its id is pushed right after the insert).
    pub queue_task_id: Option<String>,
    pub queued_at: Option<DateTime<Utc>>,
    pub priority: i16,
    pub input_data: Value,
    pub webhook_url: Option<String>,
    pub webhook_secret: Option<String>,
    pub steps_planned: i32,
    pub idempotency_key: Option<String>,
    pub webhook_events: Option<Value>,
    pub max_cost_usd: Option<Decimal>,
    pub idempotency_hash: Option<String>,
    pub idempotency_expires_at: Option<DateTime<Utc>>,
    /// The wait estimate of the 202 answer (replayed as it was for an Idempotency-Key).
    pub estimated_wait_seconds: Option<i32>,
    /// The W3C trace context of the submit, when spans are exported (see `otel`).
    pub traceparent: Option<String>,
}

#[derive(Clone, Debug, Queryable, Selectable, Insertable, serde::Serialize)]
#[diesel(table_name = llm_job_steps)]
#[diesel(check_for_backend(diesel::pg::Pg))]
pub struct StepRow {
    pub id: Uuid,
    pub job_id: Uuid,
    pub step_id: String,
    pub step_type: String,
    pub position: i32,
    pub status: String,
    pub input: Option<Value>,
    pub output: Option<Value>,
    pub error_kind: Option<String>,
    pub error_message: Option<String>,
    pub attempts: i32,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost_usd: Decimal,
    pub started_at: DateTime<Utc>,
    pub completed_at: DateTime<Utc>,
    pub duration_ms: i32,
}

#[derive(Clone, Debug, Queryable, Selectable, Insertable, serde::Serialize)]
#[diesel(table_name = llm_provider_usage)]
#[diesel(check_for_backend(diesel::pg::Pg))]
pub struct UsageRow {
    pub id: Uuid,
    pub job_id: Option<Uuid>,
    pub step_id: Option<String>,
    pub user_id: Option<Uuid>,
    pub provider: String,
    pub model: String,
    pub input_tokens: i32,
    pub output_tokens: i32,
    pub total_tokens: i32,
    pub cached_input_tokens: i32,
    pub cost_usd: Decimal,
    pub table_cost_usd: Decimal,
    pub provider_cost_usd: Option<Decimal>,
    pub usage_estimated: bool,
    pub provider_request_id: Option<String>,
    pub duration_ms: i32,
    pub created_at: DateTime<Utc>,
}

#[derive(Clone, Debug, Queryable, QueryableByName, Selectable, Insertable, serde::Serialize)]
#[diesel(table_name = llm_webhook_deliveries)]
#[diesel(check_for_backend(diesel::pg::Pg))]
pub struct DeliveryRow {
    pub id: Uuid,
    pub job_id: Uuid,
    pub url: String,
    pub webhook_id: String,
    pub event_type: String,
    pub payload: Value,
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    pub dead_lettered_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The job's run this event belongs to (0, then the job's `retry_count` after a retry): a
    /// run owes one terminal event per URL.
    pub job_run: i32,
}

#[derive(Clone, Debug, Queryable, Selectable, Insertable, serde::Serialize)]
#[diesel(table_name = llm_webhook_attempts)]
#[diesel(check_for_backend(diesel::pg::Pg))]
pub struct AttemptRow {
    pub id: Uuid,
    pub delivery_id: Uuid,
    pub job_id: Uuid,
    pub webhook_url: String,
    pub attempt_number: i32,
    pub trigger: String,
    pub status_code: Option<i32>,
    pub success: bool,
    pub error_class: Option<String>,
    pub error_message: Option<String>,
    pub response_body: Option<String>,
    pub remote_addr: Option<String>,
    pub duration_ms: i32,
    pub next_retry_at: Option<DateTime<Utc>>,
    pub attempted_at: DateTime<Utc>,
}
