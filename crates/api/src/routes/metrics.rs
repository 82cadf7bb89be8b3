//! `GET /metrics`: this process's metrics in the Prometheus text format (see
//! `docs/metrics.md`), with the queue depth per priority band (Redis) and the live workers and
//! webhook senders (the worker registry) read at scrape time.

use std::sync::Arc;

use actix_web::{web, HttpResponse};

use llmflow_core::db::workers::{self, ProcessKind};
use llmflow_core::metrics::{self, names};

use crate::AppState;

/// Prometheus text format; the depth gauges keep their last value when Redis does not answer.
pub async fn metrics(state: web::Data<Arc<AppState>>) -> HttpResponse {
    let mut conn = state.redis.clone();
    let depth = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        state.queues.waiting_per_band(&mut conn),
    )
    .await;
    if let Ok(Ok(bands)) = depth {
        for (band, waiting) in bands {
            ::metrics::gauge!(names::QUEUE_DEPTH, "band" => band.as_str()).set(waiting as f64);
        }
    }
    let lost_after = state.config.worker_lost_after();
    let live = tokio::time::timeout(std::time::Duration::from_secs(2), async {
        let mut conn = state.pool.get().await.ok()?;
        let workers = workers::count_live(&mut conn, ProcessKind::Worker, lost_after)
            .await
            .ok()?;
        let senders = workers::count_live(&mut conn, ProcessKind::Webhook, lost_after)
            .await
            .ok()?;
        Some([
            (ProcessKind::Worker, workers),
            (ProcessKind::Webhook, senders),
        ])
    })
    .await;
    if let Ok(Some(live)) = live {
        for (kind, n) in live {
            ::metrics::gauge!(names::WORKERS_LIVE, "kind" => kind.as_str()).set(n as f64);
        }
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(metrics::render())
}
