//! The maintenance job, on a cron schedule (`MAINTENANCE_CRON`, daily at 03:00 UTC by default):
//! marks stale jobs failed (as `POST /api/v1/admin/cleanup/stale` does) and trims the queue
//! library's done and dead sets in Redis, which apalis never trims itself.
//!
//! Every worker replica ticks; `pg_try_advisory_xact_lock` lets exactly one of them do the work
//! at a time, and the others skip that tick.

use std::str::FromStr;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use apalis::prelude::*;
use apalis_cron::{CronScheduler, Tick};
use diesel::sql_types::Bool;
use diesel_async::RunQueryDsl;
use tokio_util::sync::CancellationToken;

use llmflow_core::db::{self, jobs::StaleCounts};
use llmflow_core::queue::Band;

use crate::WorkerState;

/// The advisory lock key of the maintenance job.
pub const LOCK_KEY: i64 = 0x6c6c_6d66_6d6e_7400;

/// What one maintenance pass did; `None` when another process held the lock.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub stale: StaleCounts,
    /// Finished entries removed from the queues' done and dead sets.
    pub trimmed: u64,
}

#[derive(diesel::QueryableByName)]
struct Locked {
    #[diesel(sql_type = Bool)]
    locked: bool,
}

/// Removes done/dead entries finished before the cutoff (ms since the epoch, as apalis records
/// `done_at` in seconds) with their data and metadata. KEYS: done set, dead set, data hash,
/// meta prefix. ARGV: cutoff (seconds), maximum removed per call.
static TRIM: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r#"
local removed = 0
local limit = tonumber(ARGV[2])
for _, set in ipairs({KEYS[1], KEYS[2]}) do
  local cursor = "0"
  repeat
    local page = redis.call('SSCAN', set, cursor, 'COUNT', 500)
    cursor = page[1]
    for _, id in ipairs(page[2]) do
      local meta = KEYS[4] .. ':' .. id
      local done_at = tonumber(redis.call('HGET', meta, 'done_at') or '0') or 0
      if done_at > 1000000000000 then done_at = done_at / 1000 end
      if done_at < tonumber(ARGV[1]) then
        redis.call('SREM', set, id)
        redis.call('HDEL', KEYS[3], id)
        redis.call('DEL', meta)
        removed = removed + 1
        if removed >= limit then return removed end
      end
    end
  until cursor == "0"
end
return removed
"#,
    )
});

/// Trims every job and delivery queue's done and dead sets.
pub async fn trim_queue_history(state: &WorkerState) -> anyhow::Result<u64> {
    let keep = Duration::from_secs(state.config.queue_history_hours.saturating_mul(3600));
    let cutoff = chrono::Utc::now().timestamp() - keep.as_secs() as i64;
    let mut queues: Vec<String> = Band::ALL.iter().map(|b| state.queues.band(*b)).collect();
    queues.push(state.queues.webhooks());
    let mut redis = state.redis.clone();
    let mut total = 0u64;
    for queue in queues {
        loop {
            let removed: u64 = TRIM
                .key(format!("{queue}:done"))
                .key(format!("{queue}:dead"))
                .key(format!("{queue}:data"))
                .key(format!("{queue}:meta"))
                .arg(cutoff)
                .arg(10_000)
                .invoke_async(&mut redis)
                .await?;
            total += removed;
            if removed < 10_000 {
                break;
            }
        }
    }
    Ok(total)
}

/// One maintenance pass, if this process gets the lock (a session lock on one connection,
/// released at the end of the pass, or by PostgreSQL if the process dies).
pub async fn run_once(state: &WorkerState) -> anyhow::Result<Option<Report>> {
    let mut conn = state.pool.get().await?;
    let locked: Locked = diesel::sql_query("SELECT pg_try_advisory_lock($1) AS locked")
        .bind::<diesel::sql_types::BigInt, _>(LOCK_KEY)
        .get_result(&mut conn)
        .await?;
    if !locked.locked {
        return Ok(None);
    }
    let pass = async {
        let reason = db::jobs::stale_reason(state.config.stale_job_hours);
        let stale = db::jobs::mark_stale(&mut conn, state.config.stale_after(), &reason).await?;
        let trimmed = trim_queue_history(state).await?;
        Ok::<_, anyhow::Error>(Report { stale, trimmed })
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
            trimmed = report.trimmed,
            "maintenance pass"
        ),
        Ok(None) => tracing::debug!("maintenance pass skipped: another process holds the lock"),
        Err(e) => tracing::warn!(error = format!("{e:#}"), "maintenance pass failed"),
    }
    Ok(())
}

/// Runs the schedule until `shutdown`; does nothing when `MAINTENANCE_CRON` is empty.
pub async fn schedule(state: Arc<WorkerState>, shutdown: CancellationToken) {
    let expression = state.config.maintenance_cron.trim().to_owned();
    if expression.is_empty() {
        return;
    }
    let schedule = match cron::Schedule::from_str(&expression) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(expression, error = %e, "MAINTENANCE_CRON is not a valid cron expression; maintenance disabled");
            return;
        }
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
