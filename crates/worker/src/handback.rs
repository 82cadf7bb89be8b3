//! Handing jobs back when a worker stops (SIGTERM on a deploy, SIGINT). The worker stops
//! fetching, lets the jobs it runs finish within `SHUTDOWN_GRACE_SECS`, then gives the rest back
//! at once instead of leaving them to `CLAIM_TIMEOUT_SECS`:
//! - a job fetched but not started (waiting for a run slot) is pushed again under a fresh task id;
//! - a running job stops at its next step boundary (a call in flight is dropped), its claim is
//!   released by a conditional update on this worker's ownership, and its id is pushed again.
//!
//! Another worker's claim then takes it at once and resumes after its committed steps: a
//! finished step is never run again (DESIGN.md). Buffered rows of pure steps are simply
//! recomputed.

use llmflow_core::db::{self, models::JobRow, workers};
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

/// A job this stopping worker claimed and did not finish: its claim released and its id pushed
/// again. A claim another worker took meanwhile is left alone.
pub(crate) async fn release(state: &WorkerState, job: &JobRow) -> Result<(), RunError> {
    let job_id = JobId(job.id);
    let task_id = queue::repush_task_id(job_id);
    let released = {
        let mut conn = state.pool.get().await?;
        workers::release_claim(&mut conn, job.id, &state.worker_name, &task_id).await?
    };
    if !released {
        tracing::info!("stopping: the job's claim was already taken over");
        return Ok(());
    }
    metrics::counter!(llmflow_core::metrics::names::JOBS_HANDED_BACK).increment(1);
    let mut storage = state
        .queues
        .band_storage(state.redis.clone(), Band::of(job.priority), 1);
    match queue::push_job(&mut storage, job_id, &task_id).await {
        Ok(()) => tracing::info!("stopping: job handed back"),
        // Released but not pushed: the reconciler pushes a queued job whose task is gone.
        Err(e) => tracing::warn!(error = %Chain(&e), "stopping: job released, but its push failed"),
    }
    Ok(())
}
