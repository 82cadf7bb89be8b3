//! Admin routes for webhook dead letters: list them (paged) and replay one.
//!
//! `GET /api/v1/admin/webhooks/dead?limit=50&offset=0` and
//! `POST /api/v1/admin/webhooks/{delivery_id}/replay`, both with the admin key in `X-API-Key`.
//! Only a dead delivery can be replayed (409 otherwise): a delivered one was accepted by its
//! receiver, and a pending or failing one still has attempts coming.

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use llmflow_core::db::{self, deliveries};
use llmflow_core::queue::{self, DeliveryMessage};
use llmflow_core::DeliveryId;

use crate::error::{ApiError, ErrorBody, FieldError};
use crate::AppState;

/// Page size when `limit` is not given.
pub const DEFAULT_LIMIT: i64 = 50;
/// Largest page.
pub const MAX_LIMIT: i64 = 500;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin/webhooks/dead", web::get().to(dead))
        .route("/admin/webhooks/dead/replay", web::post().to(replay_all))
        .route("/admin/webhooks/{delivery_id}", web::get().to(inspect))
        .route(
            "/admin/webhooks/{delivery_id}/replay",
            web::post().to(replay),
        );
}

/// Query parameters as given: parsed by hand so that a bad value is a 422 in the one envelope.
#[derive(Deserialize)]
struct RawPage {
    limit: Option<String>,
    offset: Option<String>,
}

#[derive(Serialize)]
struct DeadPage {
    items: Vec<deliveries::DeadLetter>,
    total: i64,
    limit: i64,
    offset: i64,
}

fn parse_page(req: &HttpRequest) -> Result<(i64, i64), ApiError> {
    let raw: RawPage = web::Query::<RawPage>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .map_err(|e| ApiError::BadRequest(format!("invalid query string: {e}")))?;
    let mut errors = Vec::new();
    let mut number = |field: &str, value: Option<String>, default: i64, max: i64| match value {
        None => default,
        Some(text) => match text.trim().parse::<i64>() {
            Ok(n) if (0..=max).contains(&n) && !(field == "limit" && n == 0) => n,
            _ => {
                errors.push(FieldError {
                    field: field.to_owned(),
                    message: if field == "limit" {
                        format!("must be a whole number from 1 to {max}")
                    } else {
                        "must be a whole number, 0 or more".to_owned()
                    },
                });
                default
            }
        },
    };
    let limit = number("limit", raw.limit, DEFAULT_LIMIT, MAX_LIMIT);
    let offset = number("offset", raw.offset, 0, i64::MAX);
    if errors.is_empty() {
        Ok((limit, offset))
    } else {
        Err(ApiError::validation(errors))
    }
}

/// Dead-lettered webhook deliveries, newest first (admin key).
#[utoipa::path(
    get,
    path = "/api/v1/admin/webhooks/dead",
    tag = "admin",
    params(
        ("limit" = Option<i64>, Query, description = "1 to 500, default 50"),
        ("offset" = Option<i64>, Query, description = "default 0"),
    ),
    responses(
        (status = 200, description = "`{items, total, limit, offset}`", body = serde_json::Value),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 403, description = "The client key, not the admin key", body = ErrorBody),
        (status = 422, description = "Bad limit or offset", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn dead(
    req: HttpRequest,
    state: web::Data<Arc<AppState>>,
) -> Result<HttpResponse, ApiError> {
    state.require_operator(&req)?;
    let (limit, offset) = parse_page(&req)?;
    let mut conn = state.pool.get().await.map_err(db::DbError::from)?;
    let (items, total) = deliveries::dead_letters(&mut conn, limit, offset).await?;
    Ok(HttpResponse::Ok().json(DeadPage {
        items,
        total,
        limit,
        offset,
    }))
}

/// Replay a dead webhook delivery: a new manual attempt, same `webhook-id` (admin key).
#[utoipa::path(
    post,
    path = "/api/v1/admin/webhooks/{delivery_id}/replay",
    tag = "admin",
    params(("delivery_id" = Uuid, Path, description = "The delivery")),
    responses(
        (status = 202, description = "`{delivery_id, status, attempt, trigger}`", body = serde_json::Value),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 403, description = "The client key, not the admin key", body = ErrorBody),
        (status = 404, description = "No such delivery", body = ErrorBody),
        (status = 409, description = "Not dead", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn replay(
    req: HttpRequest,
    state: web::Data<Arc<AppState>>,
    delivery_id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let actor = state.require_operator(&req)?;
    let delivery_id = delivery_id.into_inner();
    let attempt = replay_one(&state, delivery_id).await?;
    let detail = json!({"delivery_id": delivery_id});
    super::operator::audit_row(&state, actor, "replay", detail, 1).await?;
    tracing::info!(%delivery_id, attempt, "webhook delivery replay queued");
    Ok(HttpResponse::Accepted().json(json!({
        "delivery_id": delivery_id,
        "status": deliveries::state::PENDING,
        "attempt": attempt,
        "trigger": deliveries::trigger::MANUAL,
    })))
}

/// Replays one dead delivery: the row pending again with a manual attempt due now, pushed to
/// the webhook queue (the reconciler pushes it if the push fails). Answers the attempt number.
pub(crate) async fn replay_one(state: &AppState, delivery_id: Uuid) -> Result<i32, ApiError> {
    let replayed = {
        let mut conn = state.pool.get().await.map_err(db::DbError::from)?;
        deliveries::replay(&mut conn, delivery_id).await?
    };
    let attempt = match replayed {
        deliveries::Replay::Queued { attempt } => attempt,
        deliveries::Replay::NotFound => {
            return Err(ApiError::NotFound(format!(
                "webhook delivery {delivery_id} not found"
            )))
        }
        deliveries::Replay::NotDead { status } => {
            return Err(ApiError::Conflict(format!(
                "webhook delivery {delivery_id} is {status}; only dead deliveries can be replayed"
            )))
        }
    };
    metrics::counter!(llmflow_core::metrics::names::WEBHOOK_REPLAYS).increment(1);
    let mut storage = state.queues.delivery_storage(state.redis.clone(), 1);
    let message = DeliveryMessage {
        delivery_id: DeliveryId(delivery_id),
        attempt,
    };
    if let Err(e) = queue::push_delivery(&mut storage, message, std::time::Duration::ZERO).await {
        // The row is pending and due now: the reconciler pushes it.
        tracing::warn!(%delivery_id, error = %e, "push of the manual attempt failed");
    }
    Ok(attempt)
}

/// One delivery in full: its payload, state, last error, and every attempt.
#[utoipa::path(
    get,
    path = "/api/v1/admin/webhooks/{delivery_id}",
    tag = "admin",
    params(("delivery_id" = Uuid, Path, description = "The delivery")),
    responses(
        (status = 200, description = "`{delivery, attempts}`", body = serde_json::Value),
        (status = 401, description = "No admin key or session", body = ErrorBody),
        (status = 404, description = "No such delivery", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn inspect(
    req: HttpRequest,
    state: web::Data<Arc<AppState>>,
    delivery_id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    state.require_operator(&req)?;
    let delivery_id = delivery_id.into_inner();
    let mut conn = state.pool.get().await.map_err(db::DbError::from)?;
    let delivery = deliveries::find(&mut conn, delivery_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("webhook delivery {delivery_id} not found")))?;
    let attempts: Vec<_> = deliveries::attempts_of_job(&mut conn, delivery.job_id)
        .await?
        .into_iter()
        .filter(|a| a.delivery_id == delivery_id)
        .collect();
    Ok(HttpResponse::Ok().json(json!({"delivery": delivery, "attempts": attempts})))
}

/// Replays every dead delivery (up to 1000 at once); answers how many. Audited.
pub(crate) async fn replay_every(
    state: &AppState,
    actor: crate::auth::Actor,
) -> Result<usize, ApiError> {
    let (dead, _) = {
        let mut conn = state.pool.get().await.map_err(db::DbError::from)?;
        deliveries::dead_letters(&mut conn, 1000, 0).await?
    };
    let mut replayed = 0;
    for letter in &dead {
        match replay_one(state, letter.id).await {
            Ok(_) => replayed += 1,
            // Replayed by someone else meanwhile.
            Err(ApiError::Conflict(_) | ApiError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    super::operator::audit_row(state, actor, "replay_all", json!({}), replayed).await?;
    Ok(replayed)
}

/// Replay every dead delivery (audited).
#[utoipa::path(
    post,
    path = "/api/v1/admin/webhooks/dead/replay",
    tag = "admin",
    responses(
        (status = 202, description = "`{replayed}`", body = serde_json::Value),
        (status = 401, description = "No admin key or session", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn replay_all(
    req: HttpRequest,
    state: web::Data<Arc<AppState>>,
) -> Result<HttpResponse, ApiError> {
    let actor = state.require_operator(&req)?;
    let replayed = replay_every(&state, actor).await?;
    Ok(HttpResponse::Accepted().json(json!({ "replayed": replayed })))
}
