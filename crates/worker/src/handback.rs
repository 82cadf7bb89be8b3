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

use futures::StreamExt;

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
