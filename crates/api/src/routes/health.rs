//! `GET /api/v1/health`: PostgreSQL, Redis and live workers. 503 when PostgreSQL or Redis does
//! not answer; with no live worker the service still accepts jobs, so it answers 200 with
//! `"status": "degraded"`. Live workers are the worker processes of the registry
//! (`llm_workers`) whose heartbeat is within `WORKER_LOST_SECS`: one that stopped cleanly
//! deregistered, one that died is lost and not counted.

use std::sync::Arc;
use std::time::Duration;

use llmflow_core::db::workers::{self, ProcessKind};

use actix_web::{web, HttpResponse};
use diesel_async::RunQueryDsl;
use serde::Serialize;

use crate::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/health", web::get().to(health));
}

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
    let lost_after = state.config.worker_lost_after();
    let database = tokio::time::timeout(CHECK_TIMEOUT, async {
        let mut conn = state.pool.get().await.ok()?;
        diesel::sql_query("SELECT 1")
            .execute(&mut conn)
            .await
            .ok()?;
        workers::count_live(&mut conn, ProcessKind::Worker, lost_after)
            .await
            .ok()
    })
    .await
    .ok()
    .flatten();
    let redis = tokio::time::timeout(CHECK_TIMEOUT, redis_figures(&state))
        .await
        .ok()
        .flatten();
    let queued = redis.unwrap_or(0);
    let workers = database.map_or(0, |n| u64::try_from(n).unwrap_or(0));
    let healthy = database.is_some() && redis.is_some();
    let body = Health {
        status: match (healthy, workers) {
            (false, _) => "unhealthy",
            (true, 0) => "degraded",
            (true, _) => "healthy",
        },
        database: if database.is_some() {
            "ok"
        } else {
            "unreachable"
        },
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

/// Jobs waiting in every band.
async fn redis_figures(state: &AppState) -> Option<u64> {
    let mut conn = state.redis.clone();
    let waiting = state.queues.waiting_per_band(&mut conn).await.ok()?;
    Some(waiting.iter().map(|(_, n)| n).sum())
}
