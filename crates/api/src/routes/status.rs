//! `GET /api/v1/status/{job_id}`: where a job is, its result, and what it cost.

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use llmflow_core::db::{self, models::DeliveryRow, models::StepRow};
use llmflow_core::JobStatus;

use crate::error::{ApiError, ErrorBody};
use crate::{scope, AppState};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/status/{job_id}", web::get().to(status));
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct StepView {
    step_id: String,
    #[serde(rename = "type")]
    step_type: String,
    status: String,
    attempts: i32,
    duration_ms: i32,
    input_tokens: i64,
    output_tokens: i64,
    cost_usd: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    completed_at: DateTime<Utc>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Totals {
    input_tokens: i64,
    output_tokens: i64,
    total_tokens: i64,
    cost_usd: Value,
}

/// The state of the terminal webhook (`workflow.completed` / `failed` / `cancelled`) of the
/// job's latest run.
#[derive(Serialize, utoipa::ToSchema)]
pub struct WebhookView {
    delivery_id: Uuid,
    event_type: String,
    status: String,
    attempts: i32,
    last_status_code: Option<i32>,
    last_error: Option<String>,
    next_attempt_at: Option<DateTime<Utc>>,
    delivered_at: Option<DateTime<Utc>>,
    dead_lettered_at: Option<DateTime<Utc>>,
}

fn webhook_view(row: DeliveryRow) -> WebhookView {
    WebhookView {
        delivery_id: row.id,
        event_type: row.event_type,
        status: row.status,
        attempts: row.attempts,
        last_status_code: row.last_status_code,
        last_error: row.last_error,
        next_attempt_at: row.next_attempt_at,
        delivered_at: row.delivered_at,
        dead_lettered_at: row.dead_lettered_at,
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct StatusView {
    job_id: Uuid,
    status: String,
    workflow_name: String,
    workflow_version: String,
    user_id: Option<Uuid>,
    priority: i16,
    current_step: Option<String>,
    progress: u8,
    result: Option<Value>,
    error_message: Option<String>,
    /// Running totals (the final breakdown is in `result.cost_data`).
    cost: Totals,
    steps: Vec<StepView>,
    /// Ids of the completed steps, in order: each one's output is readable at
    /// `/status/{job_id}/steps/{step_id}`, while the job still runs and after it failed.
    finished_steps: Vec<String>,
    /// Times a worker claimed the job (a run resumed after a crash or a retry counts again).
    attempts: i32,
    /// Times the job was retried with `POST /workflow/{job_id}/retry`.
    retry_count: i32,
    /// One entry per retry: how the run before it failed (`failed_at`, `error_message`,
    /// `is_stale`, `stale_reason`, `failed_steps`) and when it was retried.
    #[schema(value_type = Vec<Object>)]
    retry_history: Value,
    /// `null` until the job owes a webhook.
    webhook: Option<WebhookView>,
    is_stale: bool,
    stale_reason: Option<String>,
    created_at: DateTime<Utc>,
    queued_at: Option<DateTime<Utc>>,
    started_at: Option<DateTime<Utc>>,
    completed_at: Option<DateTime<Utc>>,
    updated_at: DateTime<Utc>,
}

pub use llmflow_core::pricing::usd_json as usd;

fn step_view(row: StepRow) -> StepView {
    StepView {
        step_id: row.step_id,
        step_type: row.step_type,
        status: row.status,
        attempts: row.attempts,
        duration_ms: row.duration_ms,
        input_tokens: row.input_tokens,
        output_tokens: row.output_tokens,
        cost_usd: usd(row.cost_usd),
        error: row.error_message,
        completed_at: row.completed_at,
    }
}

/// Where a job is, its result and what it cost.
#[utoipa::path(
    get,
    path = "/api/v1/status/{job_id}",
    tag = "jobs",
    params(
        ("job_id" = Uuid, Path, description = "The job"),
        ("X-User-Id" = Option<Uuid>, Header, description = "Restrict to this user's jobs"),
        ("token" = Option<String>, Query, description = "A stream token of this job, instead of the API key (for browsers)"),
    ),
    responses(
        (status = 200, description = "The job", body = StatusView),
        (status = 401, description = "Missing or invalid API key, or a stream token not of this job, expired or altered", body = ErrorBody),
        (status = 404, description = "No such job (or not this user's)", body = ErrorBody),
    ),
    security(("api_key" = []), ())
)]
pub async fn status(
    req: HttpRequest,
    state: web::Data<Arc<AppState>>,
    job_id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let job_id = job_id.into_inner();
    super::stream_token::require_reader(&req, &state, job_id)?;
    let view = load_view(&req, &state, job_id).await?;
    Ok(HttpResponse::Ok().json(view))
}

/// The status document of a job as the request may see it (404 otherwise): the job, its
/// steps and its webhook, read on one connection.
pub async fn load_view(
    req: &HttpRequest,
    state: &AppState,
    job_id: Uuid,
) -> Result<StatusView, ApiError> {
    let mut conn = state.pool.get().await.map_err(db::DbError::from)?;
    let job = scope::find_job(req, &mut conn, job_id).await?;
    let steps = db::jobs::job_steps(&mut conn, job_id).await?;
    let webhook = db::deliveries::terminal_of_job(&mut conn, job_id).await?;
    Ok(view(job, steps, webhook))
}

impl StatusView {
    /// Whether the job has reached a terminal state.
    pub fn is_terminal(&self) -> bool {
        self.status
            .parse::<JobStatus>()
            .is_ok_and(JobStatus::is_terminal)
    }
}

/// The status document of a job (also the SSE `connected` snapshot).
pub fn view(
    job: db::models::JobRow,
    steps: Vec<StepRow>,
    webhook: Option<DeliveryRow>,
) -> StatusView {
    let progress = if job.status == JobStatus::Completed.as_str() {
        100
    } else if job.steps_planned > 0 {
        (i64::from(job.steps_completed) * 100 / i64::from(job.steps_planned)).clamp(0, 99) as u8
    } else {
        0
    };
    StatusView {
        job_id: job.id,
        status: job.status,
        workflow_name: job.workflow_name,
        workflow_version: job.workflow_version,
        user_id: job.user_id,
        priority: job.priority,
        current_step: job.current_step,
        progress,
        result: job.result,
        error_message: job.error_message,
        cost: Totals {
            input_tokens: job.total_input_tokens,
            output_tokens: job.total_output_tokens,
            total_tokens: job.total_input_tokens + job.total_output_tokens,
            cost_usd: usd(job.total_cost_usd),
        },
        finished_steps: steps
            .iter()
            .filter(|s| s.status == "completed")
            .map(|s| s.step_id.clone())
            .collect(),
        steps: steps.into_iter().map(step_view).collect(),
        attempts: job.attempts,
        retry_count: job.retry_count,
        retry_history: job.retry_history,
        webhook: webhook.map(webhook_view),
        is_stale: job.is_stale,
        stale_reason: job.stale_reason,
        created_at: job.created_at,
        queued_at: job.queued_at,
        started_at: job.started_at,
        completed_at: job.completed_at,
        updated_at: job.updated_at,
    }
}
