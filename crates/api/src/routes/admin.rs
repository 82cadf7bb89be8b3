//! Admin routes (the admin key; 401 without a key, 403 with the client key).
//! `POST /api/v1/admin/cleanup/stale`: marks jobs stuck in a non-terminal state longer than the
//! threshold (default `STALE_JOB_HOURS`, 72) as stale and failed, sends each its
//! `workflow.failed` webhook (with the stale reason), and returns the counts. The worker runs
//! the same cleanup on a schedule.

use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use llmflow_core::db::{self, jobs::StaleCleanup};
use llmflow_core::queue;

use crate::body::{self, Fields};
use crate::error::{ApiError, ErrorBody};
use crate::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin/cleanup/stale", web::post().to(cleanup_stale));
}

/// Stale cleanup options.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct CleanupRequest {
    /// Default `STALE_JOB_HOURS` (72).
    #[serde(default, deserialize_with = "older_than_hours")]
    #[schema(minimum = 1, maximum = 8760)]
    older_than_hours: Option<u64>,
}

fn older_than_hours<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    const MESSAGE: &str = "must be a whole number of hours from 1 to 8760";
    let hours: Option<u64> = body::expect(d, MESSAGE)?;
    if hours.is_some_and(|h| !(1..=24 * 365).contains(&h)) {
        return Err(de::Error::custom(MESSAGE));
    }
    Ok(hours)
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
    request_body(content = Option<CleanupRequest>, description = "Optional: `{\"older_than_hours\": n}` (default STALE_JOB_HOURS)"),
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
        None
    } else {
        let value: Value = serde_json::from_slice(&body)
            .map_err(|e| ApiError::BadRequest(format!("malformed JSON: {e}")))?;
        Fields::<CleanupRequest>::parse(&value)
            .and_then(Fields::finish)
            .map_err(ApiError::validation)?
            .older_than_hours
    }
    .unwrap_or(state.config.stale_job_hours);
    let reason = db::jobs::stale_reason(hours);
    let mut conn = state.pool.get().await.map_err(db::DbError::from)?;
    let StaleCleanup { counts, deliveries } =
        db::jobs::mark_stale(&mut conn, Duration::from_secs(hours * 3600), &reason).await?;
    drop(conn);
    let mut storage = state.queues.delivery_storage(state.redis.clone(), 1);
    queue::push_new_deliveries(&mut storage, &deliveries).await;
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn every_message_a_cleanup_request_can_get() {
        let bodies = [
            json!([1]),
            json!({"older_than_hours": -3}),
            json!({"older_than_hours": 0}),
            json!({"older_than_hours": 9000}),
            json!({"older_than_hours": "72"}),
            json!({"older_than_hours": 1.5}),
        ];
        insta::assert_json_snapshot!(body::errors_of(bodies, |body| {
            Fields::<CleanupRequest>::parse(body).and_then(Fields::finish)
        }));
    }

    #[test]
    fn hours_are_optional_and_other_fields_ignored() {
        for (body, hours) in [
            (json!({}), None),
            (json!({"older_than_hours": null}), None),
            (json!({"older_than_hours": 24, "note": "x"}), Some(24)),
        ] {
            let request = Fields::<CleanupRequest>::parse(&body)
                .and_then(Fields::finish)
                .expect("valid");
            assert_eq!(request.older_than_hours, hours, "{body}");
        }
    }
}
