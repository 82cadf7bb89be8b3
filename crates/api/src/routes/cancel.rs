//! `DELETE /api/v1/workflow/{job_id}`: cancel a job. A waiting job becomes `cancelled` at once
//! and never runs; a running one is asked to stop (its worker is told over Redis pub/sub and
//! drops the in-flight LLM call); a finished one answers 409. Either way the job's webhook URL
//! gets `workflow.cancelled` once it has stopped.

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use serde_json::json;
use uuid::Uuid;

use llmflow_core::db::{self, jobs::CancelOutcome};
use llmflow_core::events::{self, EventKind};
use llmflow_core::queue;

use crate::error::{ApiError, ErrorBody};
use crate::{scope, AppState};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/workflow/{job_id}", web::delete().to(cancel));
}

/// What a cancellation did.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Cancelled {
    job_id: Uuid,
    /// `cancelled` (it had not started) or `processing` (it stops at its next step boundary).
    status: String,
    cancel_requested: bool,
}

/// Cancel a job.
#[utoipa::path(
    delete,
    path = "/api/v1/workflow/{job_id}",
    tag = "jobs",
    params(
        ("job_id" = Uuid, Path, description = "The job"),
        ("X-User-Id" = Option<Uuid>, Header, description = "Restrict to this user's jobs"),
    ),
    responses(
        (status = 200, description = "Cancelled before it started", body = Cancelled),
        (status = 202, description = "Running: cancellation requested", body = Cancelled),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 404, description = "No such job (or not this user's)", body = ErrorBody),
        (status = 409, description = "The job already finished", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn cancel(
    req: HttpRequest,
    state: web::Data<Arc<AppState>>,
    job_id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    state.require_client(&req)?;
    let job_id = job_id.into_inner();
    let mut conn = state.pool.get().await.map_err(db::DbError::from)?;
    // 404 unless the job exists and the request may see it.
    scope::find_job(&req, &mut conn, job_id).await?;
    drop(conn);
    match apply(&state, job_id).await? {
        CancelOutcome::Cancelled(_) => Ok(HttpResponse::Ok().json(Cancelled {
            job_id,
            status: "cancelled".to_owned(),
            cancel_requested: true,
        })),
        CancelOutcome::Requested => Ok(HttpResponse::Accepted().json(Cancelled {
            job_id,
            status: "processing".to_owned(),
            cancel_requested: true,
        })),
        CancelOutcome::Finished(status) => Err(ApiError::Conflict(format!(
            "job {job_id} already ended ({status})"
        ))),
        CancelOutcome::NotFound => Err(ApiError::NotFound(format!("job {job_id} not found"))),
    }
}

/// Cancels one job and tells whoever needs to know: a waiting job's `workflow.cancelled`
/// deliveries are pushed and its event published; a running job's worker is told over pub/sub.
pub(crate) async fn apply(state: &AppState, job_id: Uuid) -> Result<CancelOutcome, ApiError> {
    let outcome = {
        let mut conn = state.pool.get().await.map_err(db::DbError::from)?;
        db::jobs::cancel(&mut conn, job_id).await?
    };
    let namespace = &state.config.redis_namespace;
    let mut redis = state.redis.clone();
    match &outcome {
        CancelOutcome::Cancelled(deliveries) => {
            let mut storage = state.queues.delivery_storage(redis.clone(), 1);
            queue::push_new_deliveries(&mut storage, deliveries).await;
            let event = events::Event {
                job_id,
                kind: EventKind::JobCancelled,
                data: json!({"job_id": job_id, "status": "cancelled"}),
            };
            if let Err(e) = events::publish(&mut redis, namespace, &[event]).await {
                tracing::warn!(%job_id, error = %e, "cannot publish the cancellation event");
            }
            tracing::info!(%job_id, "job cancelled before it started");
        }
        CancelOutcome::Requested => {
            // The worker also sees the flag at its next commit or heartbeat; the message only
            // makes it prompt.
            let published: Result<i64, _> = redis::cmd("PUBLISH")
                .arg(events::cancel_channel(namespace))
                .arg(job_id.to_string())
                .query_async(&mut redis)
                .await;
            if let Err(e) = published {
                tracing::warn!(%job_id, error = %e, "cannot announce the cancellation");
            }
            tracing::info!(%job_id, "cancellation requested");
        }
        CancelOutcome::Finished(_) | CancelOutcome::NotFound => {}
    }
    Ok(outcome)
}
