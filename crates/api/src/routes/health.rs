//! `GET /api/v1/health`: PostgreSQL, Redis and live workers. 503 when PostgreSQL or Redis does
//! not answer; with no live worker the service still accepts jobs, so it answers 200 with
//! `"status": "degraded"`.

use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, HttpResponse};
use diesel_async::RunQueryDsl;
use serde::Serialize;

use crate::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/health", web::get().to(health));
}

/// A worker whose last heartbeat is older than this is not counted as live.
const LIVE_WORKER_WINDOW: Duration = Duration::from_secs(30);
const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    status: &'static str,
    database: &'static str,
    redis: &'static str,
    workers: u64,
    queued: u64,
}

/// PostgreSQL, Redis and live workers (no key needed).
#[utoipa::path(
    get,
    path = "/api/v1/health",
    tag = "health",
    responses(
        (status = 200, description = "Healthy or degraded (no live worker)", body = Health),
        (status = 503, description = "PostgreSQL or Redis unreachable", body = Health),
    )
)]
pub async fn health(state: web::Data<Arc<AppState>>) -> HttpResponse {
    let database = tokio::time::timeout(CHECK_TIMEOUT, async {
        let mut conn = state.pool.get().await.ok()?;
        diesel::sql_query("SELECT 1").execute(&mut conn).await.ok()
    })
    .await
    .ok()
    .flatten()
    .is_some();
    let redis = tokio::time::timeout(CHECK_TIMEOUT, redis_figures(&state))
        .await
        .ok()
        .flatten();
    let (workers, queued) = redis.unwrap_or((0, 0));
    let healthy = database && redis.is_some();
    let body = Health {
        status: match (healthy, workers) {
            (false, _) => "unhealthy",
            (true, 0) => "degraded",
            (true, _) => "healthy",
        },
        database: if database { "ok" } else { "unreachable" },
        redis: if redis.is_some() { "ok" } else { "unreachable" },
        workers,
        queued,
    };
    if healthy {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// Live workers (heartbeat within the window) and jobs waiting in every band.
async fn redis_figures(state: &AppState) -> Option<(u64, u64)> {
    let mut conn = state.redis.clone();
    let workers = state
        .queues
        .live_consumers(&mut conn, LIVE_WORKER_WINDOW)
        .await
        .ok()?;
    let waiting = state.queues.waiting_per_band(&mut conn).await.ok()?;
    Some((workers, waiting.iter().map(|(_, n)| n).sum()))
}
