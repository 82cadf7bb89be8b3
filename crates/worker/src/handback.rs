//! Handing jobs back when a worker stops (SIGTERM on a deploy, SIGINT). The worker stops
//! fetching, lets the jobs it runs finish within `SHUTDOWN_GRACE_SECS`, then gives the rest back
//! at once instead of leaving them to `CLAIM_TIMEOUT_SECS`:
//! - a job fetched but not started (waiting for a run slot) is pushed again under a fresh task id;
//! - a running job stops at its next step boundary (a call in flight is dropped); then the claims
//!   of all of them are released in one conditional update on this worker's ownership, and
//!   their ids pushed again.
//!
//! Another worker's claim then takes it at once and resumes after its committed steps: a
//! finished step is never run again (DESIGN.md). Buffered rows of pure steps are simply
//! recomputed.

use std::time::Duration;

use futures::StreamExt;

use llmflow_core::backoff;

use llmflow_core::db::{self, workers};
use llmflow_core::queue::{self, Band};
use llmflow_core::telemetry::Chain;
use llmflow_core::JobId;

use crate::{RunError, WorkerState};

/// A job fetched from `band`'s queue that this stopping worker will not start: pushed again for
/// another worker. Errors are logged: the row stays `queued`, and the reconciler pushes a job
/// whose task is gone.
pub(crate) async fn unstarted(state: &WorkerState, job_id: JobId, band: Band) {
    let task_id = queue::repush_task_id(job_id);
    let mut storage = state.queues.band_storage(state.redis.clone(), band, 1);
    if let Err(e) = queue::push_job(&mut storage, job_id, &task_id).await {
        tracing::warn!(%job_id, error = %Chain(&e), "stopping: could not hand back a job not started");
        return;
    }
    let recorded = async {
        let mut conn = state.pool.get().await.map_err(db::DbError::from)?;
        db::jobs::mark_queued(&mut conn, job_id.0, &task_id).await
    }
    .await;
    match recorded {
        Ok(_) => tracing::debug!(%job_id, "stopping: handed back a job not started"),
        Err(e) => {
            tracing::warn!(%job_id, error = %Chain(&e), "stopping: task id of a handed-back job not recorded")
        }
    }
}

/// Releases every job this stopping worker still holds (they have stopped at a step boundary)
/// in one conditional update, and pushes their ids again. Answers how many.
pub(crate) async fn release_all(state: &WorkerState) -> Result<usize, RunError> {
    let released = {
        let mut conn = state.pool.get().await?;
        workers::release_claims_of(&mut conn, &state.worker_name).await?
    };
    metrics::counter!(llmflow_core::metrics::names::JOBS_HANDED_BACK)
        .increment(released.len() as u64);
    push_released(state, &released).await;
    Ok(released.len())
}

/// A job whose run was interrupted (the database or Redis went away mid-run) is handed back
/// as soon as the database answers again, instead of waiting out `CLAIM_TIMEOUT_SECS`: its
/// claim released, its id pushed again. Tried for about half a minute (a restarting database);
/// after that the claim timeout is the backstop. A stopping worker leaves it to `release_all`.
pub(crate) async fn interrupted(state: &WorkerState, job_id: JobId) {
    for attempt in 0..INTERRUPTED_TRIES {
        // A pause first, even when the database answers at once: a job whose runs keep being
        // interrupted (a query failing every time) comes round again no faster than this.
        let wait = backoff::exponential(INTERRUPTED_BASE, INTERRUPTED_CAP, attempt, 1.0);
        tokio::select! {
            _ = state.draining.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        let released = async {
            let mut conn = state.pool.get().await.map_err(db::DbError::from)?;
            workers::release_claim(&mut conn, job_id.0, &state.worker_name).await
        }
        .await;
        match released {
            Ok(Some(job)) => {
                tracing::info!(%job_id, "interrupted job handed back");
                push_released(state, &[job]).await;
                return;
            }
            Ok(None) => return,
            Err(e) => {
                tracing::debug!(%job_id, error = %Chain(&e), "interrupted job not handed back yet");
            }
        }
    }
    tracing::warn!(%job_id, "interrupted job not handed back; its claim will time out");
}

/// Tries at handing back an interrupted job, 0.5 s apart at first, then up to 4 s: about 30 s.
const INTERRUPTED_TRIES: u32 = 10;
const INTERRUPTED_BASE: Duration = Duration::from_millis(500);
const INTERRUPTED_CAP: Duration = Duration::from_secs(4);

/// Pushes released jobs under their new task ids. A failed push is logged: the job is `queued`
/// and its task missing from Redis, which the reconciler repairs.
pub(crate) async fn push_released(state: &WorkerState, released: &[workers::Released]) {
    // Concurrently: the Redis connection is multiplexed, and a stopping worker has little time.
    futures::stream::iter(released)
        .for_each_concurrent(PUSHES_AT_ONCE, |job| async move {
            let job_id = JobId(job.id);
            let mut storage =
                state
                    .queues
                    .band_storage(state.redis.clone(), Band::of(job.priority), 1);
            match queue::push_job(&mut storage, job_id, &job.task_id).await {
                Ok(()) => tracing::debug!(%job_id, "released job pushed again"),
                Err(e) => {
                    tracing::warn!(%job_id, error = %Chain(&e), "released job not pushed; the reconciler will")
                }
            }
        })
        .await;
}

/// Pushes of released jobs in flight at once.
const PUSHES_AT_ONCE: usize = 64;
