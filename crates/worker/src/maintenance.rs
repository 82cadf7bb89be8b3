//! The maintenance job, on a cron schedule (`MAINTENANCE_CRON`, daily at 03:00 UTC by default):
//! marks stale jobs failed and sends their `workflow.failed` webhooks (as
//! `POST /api/v1/admin/cleanup/stale` does), deletes finished jobs older than
//! `JOB_RETENTION_DAYS` and expired external-API cache entries (`db::retention`), and trims the
//! queue library's done and dead sets in Redis, which apalis never trims itself.
//!
//! Every worker replica ticks; `pg_try_advisory_xact_lock` lets exactly one of them do the work
//! at a time, and the others skip that tick.

use std::sync::Arc;
use std::time::Duration;

use apalis::prelude::*;
use apalis_cron::{CronScheduler, Tick};
use diesel::sql_types::Bool;
use diesel_async::RunQueryDsl;
use tokio_util::sync::CancellationToken;

use llmflow_core::db::{self, jobs::StaleCounts, retention::Swept, DbError};
use llmflow_core::queue;
use llmflow_core::telemetry::Chain;

use crate::{RunError, WorkerState};

/// The advisory lock key of the maintenance job.
pub const LOCK_KEY: i64 = 0x6c6c_6d66_6d6e_7400;

/// What one maintenance pass did; `None` when another process held the lock.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub stale: StaleCounts,
    /// Finished jobs past their retention and expired cache entries deleted.
    pub swept: Swept,
    /// Finished entries removed from the queues' done and dead sets.
    pub trimmed: u64,
}

#[derive(diesel::QueryableByName)]
struct Locked {
    #[diesel(sql_type = Bool)]
    locked: bool,
}

/// Trims every job and delivery queue's finished history older than `QUEUE_HISTORY_HOURS`.
async fn trim_queue_history(state: &WorkerState) -> Result<u64, RunError> {
    let keep = Duration::from_secs(state.engine.config.queue_history_hours.saturating_mul(3600));
    let mut redis = state.redis.clone();
    Ok(state.queues.trim_history(&mut redis, keep).await?)
}

/// One maintenance pass, if this process gets the lock (a session lock on one connection,
/// released at the end of the pass, or by PostgreSQL if the process dies).
pub async fn run_once(state: &WorkerState) -> Result<Option<Report>, RunError> {
    let mut conn = state.pool.get().await?;
    let locked: Locked = diesel::sql_query("SELECT pg_try_advisory_lock($1) AS locked")
        .bind::<diesel::sql_types::BigInt, _>(LOCK_KEY)
        .get_result(&mut conn)
        .await
        .map_err(DbError::from)?;
    if !locked.locked {
        return Ok(None);
    }
    let pass = async {
        let reason = db::jobs::stale_reason(state.engine.config.stale_job_hours);
        let cleanup =
            db::jobs::mark_stale(&mut conn, state.engine.config.stale_after(), &reason).await?;
        let mut storage = state.delivery_storage();
        queue::push_new_deliveries(&mut storage, &cleanup.deliveries).await;
        let stale = cleanup.counts;
        let swept = db::retention::sweep(&mut conn, state.engine.config.job_retention()).await?;
        let trimmed = trim_queue_history(state).await?;
        Ok::<_, RunError>(Report {
            stale,
            swept,
            trimmed,
        })
    }
    .await;
    let unlocked = diesel::sql_query("SELECT pg_advisory_unlock($1) AS locked")
        .bind::<diesel::sql_types::BigInt, _>(LOCK_KEY)
        .get_result::<Locked>(&mut conn)
        .await;
    if unlocked.is_err() {
        // Do not hand a connection that may still hold the lock back to the pool.
        let _ = deadpool_drop(conn);
    }
    pass.map(Some)
}

/// Takes a connection out of the pool for good (it is closed when dropped).
fn deadpool_drop(conn: db::PooledConn) -> Result<(), ()> {
    drop(db::PooledConn::take(conn));
    Ok(())
}

async fn tick(_tick: Tick, state: Data<Arc<WorkerState>>) -> Result<(), BoxDynError> {
    match run_once(&state).await {
        Ok(Some(report)) => tracing::info!(
            stale = report.stale.total,
            deleted_jobs = report.swept.jobs,
            expired_cache_entries = report.swept.cache_entries,
            trimmed = report.trimmed,
            "maintenance pass"
        ),
        Ok(None) => tracing::debug!("maintenance pass skipped: another process holds the lock"),
        Err(e) => tracing::warn!(error = %Chain(&e), "maintenance pass failed"),
    }
    Ok(())
}

/// Runs the schedule until `shutdown`; does nothing when `MAINTENANCE_CRON` is empty.
pub async fn schedule(state: Arc<WorkerState>, shutdown: CancellationToken) {
    let Some(schedule) = state.engine.config.maintenance_cron.clone() else {
        return;
    };
    let worker = WorkerBuilder::new(format!("{}-maintenance", state.worker_name))
        .backend(CronScheduler::new(schedule))
        .data(state.clone())
        .build(tick);
    let outcome = worker
        .run_until(async move {
            shutdown.cancelled().await;
            Ok::<(), WorkerError>(())
        })
        .await;
    if let Err(e) = outcome {
        tracing::warn!(error = %e, "maintenance schedule stopped");
    }
}
