//! `POST /api/v1/workflow/{job_id}/retry`: a `failed` job runs again from its first unfinished
//! step. Its completed steps are reused (never called or paid for again); the failures that
//! stopped it are kept in `retry_history`, and `retry_count` grows. Any other state is a 409.
//! The failed run's live events are cleared, so `GET …/events` follows the new run.

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use uuid::Uuid;

use llmflow_core::db::models::JobRow;
use llmflow_core::db::{self, retry::RetryOutcome};
use llmflow_core::workflow::{Checks, LoadedWorkflow};
use llmflow_core::{events, queue};
use llmflow_core::{JobId, JobStatus};

use crate::error::{ApiError, ErrorBody};
use crate::{scope, AppState};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/workflow/{job_id}/retry", web::post().to(retry));
}

/// A retried job, queued again.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Retried {
    job_id: Uuid,
    /// `queued` (or `pending` when the queue could not take it yet: it is pushed later).
    status: String,
    /// How many times the job has been retried, this one included.
    retry_count: i32,
    status_url: String,
}

/// Retry a failed job from its failed step.
#[utoipa::path(
    post,
    path = "/api/v1/workflow/{job_id}/retry",
    tag = "jobs",
    params(
        ("job_id" = Uuid, Path, description = "The job"),
        ("X-User-Id" = Option<Uuid>, Header, description = "Restrict to this user's jobs"),
    ),
    responses(
        (status = 202, description = "Queued again; it resumes at its first unfinished step", body = Retried),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 404, description = "No such job (or not this user's)", body = ErrorBody),
        (status = 409, description = "The job is not failed", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn retry(
    req: HttpRequest,
    state: web::Data<Arc<AppState>>,
    job_id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    state.require_client(&req)?;
    let job_id = job_id.into_inner();
    let mut conn = state.pool.get().await.map_err(db::DbError::from)?;
    let job = scope::find_job(&req, &mut conn, job_id).await?;
    drop(conn);
    Ok(HttpResponse::Accepted().json(apply(&state, &job).await?))
}

/// Sends a failed job back to run from its first unfinished step (409 when it is not failed
/// or its definition is gone), then pushes it to its band.
pub(crate) async fn apply(state: &AppState, job: &JobRow) -> Result<Retried, ApiError> {
    let job_id = job.id;
    let mut conn = state.pool.get().await.map_err(db::DbError::from)?;
    if job.status != JobStatus::Failed.as_str() {
        return Err(not_failed(job_id, &job.status));
    }
    // The definition the job was pinned to says which failures stopped it.
    let definition = db::jobs::load_definition(&mut conn, &job.workflow_hash)
        .await?
        .ok_or_else(|| {
            ApiError::Conflict(format!(
                "job {job_id} cannot be retried: its workflow definition is no longer stored"
            ))
        })?;
    let checks = Checks::new(&state.pricing).with_env(state.config.workflow_env_names());
    let loaded = LoadedWorkflow::from_definition_checked(definition, checks).map_err(|_| {
        ApiError::Conflict(format!(
            "job {job_id} cannot be retried: its workflow definition no longer validates"
        ))
    })?;
    let task_id = queue::repush_task_id(JobId(job_id));
    let retry_count = match db::retry::retry(&mut conn, job, &loaded.workflow, &task_id).await? {
        RetryOutcome::Queued { retry_count, .. } => retry_count,
        RetryOutcome::NotFailed(status) => return Err(not_failed(job_id, &status)),
    };
    // The earlier run's events end with `job_failed`: a client following the new run must not
    // stop there. The record of that run stays in PostgreSQL.
    let mut redis = state.redis.clone();
    let key = events::stream_key(&state.config.redis_namespace, job_id);
    if let Err(e) = redis::cmd("DEL")
        .arg(&key)
        .query_async::<i64>(&mut redis)
        .await
    {
        tracing::warn!(%job_id, error = %e, "cannot clear the failed run's events");
    }
    let band = queue::Band::of(job.priority);
    let mut jobs = state.queues.band_storage(state.redis.clone(), band, 1);
    let status = match queue::push_job(&mut jobs, JobId(job_id), &task_id).await {
        Ok(()) => JobStatus::Queued,
        Err(e) => {
            tracing::warn!(%job_id, error = %e, "push of a retried job failed; the reconciler will retry");
            if let Err(e) = db::jobs::mark_pending(&mut conn, job_id).await {
                tracing::warn!(%job_id, error = %e, "cannot mark the job pending");
            }
            JobStatus::Pending
        }
    };
    tracing::info!(%job_id, retry_count, "failed job retried");
    Ok(Retried {
        job_id,
        status: status.as_str().to_owned(),
        retry_count,
        status_url: format!("/api/v1/status/{job_id}"),
    })
}

impl Retried {
    pub(crate) fn retry_count(&self) -> i32 {
        self.retry_count
    }
}

fn not_failed(job_id: Uuid, status: &str) -> ApiError {
    ApiError::Conflict(format!(
        "job {job_id} is {status}: only a failed job can be retried"
    ))
}
