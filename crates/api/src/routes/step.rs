//! `GET /api/v1/status/{job_id}/steps/{step_id}`: one step's recorded output, tokens, cost,
//! attempts and error. A step's row is committed as it finishes, so an app can show an earlier
//! step's output while the job still runs, and after it failed.

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{json, Value};
use uuid::Uuid;

use llmflow_core::db;
use llmflow_core::pricing::usd_json;

use crate::error::{ApiError, ErrorBody};
use crate::{scope, AppState};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/status/{job_id}/steps/{step_id}", web::get().to(step));
}

/// One recorded step.
#[derive(Serialize, utoipa::ToSchema)]
pub struct StepDetail {
    job_id: Uuid,
    step_id: String,
    #[serde(rename = "type")]
    step_type: String,
    /// `completed`, or `failed` (with `error`).
    status: String,
    /// What the step produced (`null` for a failure that stopped the job).
    #[schema(value_type = Object)]
    output: Option<Value>,
    input_tokens: i64,
    output_tokens: i64,
    total_tokens: i64,
    cost_usd: Value,
    /// Attempts made under the step's retry policy.
    attempts: i32,
    error: Option<String>,
    error_kind: Option<String>,
    /// Each LLM call the step made (failed attempts included: they were paid for).
    #[schema(value_type = Vec<Object>)]
    calls: Vec<Value>,
    started_at: DateTime<Utc>,
    completed_at: DateTime<Utc>,
    duration_ms: i32,
}

/// One step's output, tokens, cost, attempts and error.
#[utoipa::path(
    get,
    path = "/api/v1/status/{job_id}/steps/{step_id}",
    tag = "jobs",
    params(
        ("job_id" = Uuid, Path, description = "The job"),
        ("step_id" = String, Path, description = "The step's id in the workflow"),
        ("X-User-Id" = Option<Uuid>, Header, description = "Restrict to this user's jobs"),
    ),
    responses(
        (status = 200, description = "The step as recorded", body = StepDetail),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 404, description = "No such job (or not this user's), or the step has not finished", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn step(
    req: HttpRequest,
    state: web::Data<Arc<AppState>>,
    path: web::Path<(Uuid, String)>,
) -> Result<HttpResponse, ApiError> {
    state.require_client(&req)?;
    let (job_id, step_id) = path.into_inner();
    let mut conn = state.pool.get().await.map_err(db::DbError::from)?;
    let job = scope::find_job(&req, &mut conn, job_id).await?;
    let row = db::jobs::job_step(&mut conn, job_id, &step_id)
        .await?
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "step `{step_id}` of job {job_id} has no recorded output (not run yet, still \
                 running, or not on the path taken); the job is {}",
                job.status
            ))
        })?;
    let calls: Vec<Value> = db::jobs::job_usage(&mut conn, job_id)
        .await?
        .into_iter()
        .filter(|u| u.step_id.as_deref() == Some(step_id.as_str()))
        .map(|u| {
            json!({
                "provider": u.provider,
                "model": u.model,
                "input_tokens": u.input_tokens,
                "output_tokens": u.output_tokens,
                "cost_usd": usd_json(u.cost_usd),
                "duration_ms": u.duration_ms,
                "created_at": u.created_at,
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(StepDetail {
        job_id,
        step_id: row.step_id,
        step_type: row.step_type,
        status: row.status,
        output: row.output,
        input_tokens: row.input_tokens,
        output_tokens: row.output_tokens,
        total_tokens: row.input_tokens + row.output_tokens,
        cost_usd: usd_json(row.cost_usd),
        attempts: row.attempts,
        error: row.error_message,
        error_kind: row.error_kind,
        calls,
        started_at: row.started_at,
        completed_at: row.completed_at,
        duration_ms: row.duration_ms,
    }))
}
