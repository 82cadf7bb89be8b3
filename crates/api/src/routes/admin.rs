//! Admin routes (the admin key; 401 without a key, 403 with the client key).
//! `POST /api/v1/admin/cleanup/stale`: marks jobs stuck in a non-terminal state longer than the
//! threshold (default `STALE_JOB_HOURS`, 72) as stale and failed, and returns the counts. The
//! worker runs the same cleanup on a schedule.

use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use serde_json::Value;

use llmflow_core::db::{self, jobs::StaleCounts};

use crate::error::{ApiError, ErrorBody, FieldError};
use crate::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin/cleanup/stale", web::post().to(cleanup_stale));
}

/// What a cleanup did.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CleanupReport {
    /// Jobs marked stale and failed.
    marked_stale: i64,
    /// By the state they were stuck in.
    #[schema(value_type = Object)]
    by_previous_status: Value,
    older_than_hours: u64,
    reason: String,
}

/// Mark stuck jobs stale and failed.
#[utoipa::path(
    post,
    path = "/api/v1/admin/cleanup/stale",
    tag = "admin",
    request_body(content = Option<crate::openapi::CleanupRequest>, description = "Optional: `{\"older_than_hours\": n}` (default STALE_JOB_HOURS)"),
    responses(
        (status = 200, description = "Counts", body = CleanupReport),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 403, description = "The client key, not the admin key", body = ErrorBody),
        (status = 422, description = "Bad threshold", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn cleanup_stale(
    req: HttpRequest,
    state: web::Data<Arc<AppState>>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    state.require_admin(&req)?;
    let hours = if body.iter().all(u8::is_ascii_whitespace) {
        state.config.stale_job_hours
    } else {
        let value: Value = serde_json::from_slice(&body)
            .map_err(|e| ApiError::BadRequest(format!("malformed JSON: {e}")))?;
        match value.get("older_than_hours") {
            None | Some(Value::Null) => state.config.stale_job_hours,
            Some(v) => v
                .as_u64()
                .filter(|h| (1..=24 * 365).contains(h))
                .ok_or_else(|| {
                    ApiError::validation(vec![FieldError {
                        field: "older_than_hours".to_owned(),
                        message: "must be a whole number of hours from 1 to 8760".to_owned(),
                    }])
                })?,
        }
    };
    let reason = db::jobs::stale_reason(hours);
    let mut conn = state.pool.get().await.map_err(db::DbError::from)?;
    let counts: StaleCounts =
        db::jobs::mark_stale(&mut conn, Duration::from_secs(hours * 3600), &reason).await?;
    tracing::info!(marked = counts.total, hours, "stale cleanup");
    Ok(HttpResponse::Ok().json(CleanupReport {
        marked_stale: counts.total,
        by_previous_status: serde_json::json!({
            "pending": counts.pending,
            "queued": counts.queued,
            "processing": counts.processing,
        }),
        older_than_hours: hours,
        reason,
    }))
}
