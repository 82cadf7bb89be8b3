//! The reconciler: PostgreSQL is the record and Redis may lose anything, so every few seconds
//! each worker looks for unfinished jobs and due webhook deliveries that Redis no longer holds
//! (or whose claim lapsed) and pushes their ids again. Pushing twice is harmless: claims are
//! conditional updates. First it releases the claims of lost workers (the worker registry is
//! their liveness), so a killed worker's jobs run again within seconds; likewise the attempts of
//! a killed webhook sender are given back and pushed again.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use llmflow_core::db::{self, deliveries, workers};
use llmflow_core::metrics::names;
use llmflow_core::queue::{self, Band, DeliveryMessage};
use llmflow_core::telemetry::Chain;
use llmflow_core::{DeliveryId, JobId, JobStatus};

use crate::{RunError, WorkerState};

/// Rows read per page.
const PAGE: i64 = 500;

pub async fn run(state: Arc<WorkerState>, shutdown: CancellationToken) {
    let every = state.engine.config.reconcile_interval();
    // Lost processes' claims are looked for at every heartbeat interval (when that is shorter
    // than the reconcile interval), so they are released soon after their heartbeat lapses.
    let release_every = state.engine.config.worker_heartbeat().min(every);
    let mut next_pass = tokio::time::Instant::now() + every;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(release_every) => {}
        }
        if tokio::time::Instant::now() < next_pass {
            match tokio::time::timeout(PASS_TIMEOUT, release_lost(&state)).await {
                Err(_) => tracing::warn!("releasing lost claims timed out"),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!(error = %Chain(&e), "releasing lost claims failed"),
            }
            continue;
        }
        next_pass = tokio::time::Instant::now() + every;
        match tokio::time::timeout(PASS_TIMEOUT, reconcile_once(&state)).await {
            Err(_) => tracing::warn!("reconcile pass timed out"),
            Ok(Ok(Counts {
                jobs: 0,
                deliveries: 0,
            })) => {}
            Ok(Ok(counts)) => tracing::info!(
                jobs = counts.jobs,
                deliveries = counts.deliveries,
                "re-pushed work missing from Redis"
            ),
            Ok(Err(e)) => tracing::warn!(error = %Chain(&e), "reconcile pass failed"),
        }
    }
}

/// What one pass re-pushed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub jobs: usize,
    pub deliveries: usize,
}

/// One pass over jobs and deliveries.
pub async fn reconcile_once(state: &WorkerState) -> Result<Counts, RunError> {
    let jobs = reconcile_jobs(state).await?;
    metrics::counter!(names::RECONCILER_REPUSHES, "kind" => "job").increment(jobs as u64);
    let deliveries = reconcile_deliveries(state).await?;
    metrics::counter!(names::RECONCILER_REPUSHES, "kind" => "delivery")
        .increment(deliveries as u64);
    Ok(Counts { jobs, deliveries })
}

/// Releases the claims of lost workers (no registry heartbeat within `WORKER_LOST_SECS`: killed,
/// or cut off) and pushes those jobs again, so they resume within seconds instead of waiting out
/// `CLAIM_TIMEOUT_SECS`. A worker that comes back finds its claim gone and writes nothing more.
async fn release_lost_claims(state: &WorkerState) -> Result<usize, RunError> {
    let released = {
        let mut conn = state.pool.get().await?;
        workers::release_lost_claims(&mut conn, state.engine.config.worker_lost_after()).await?
    };
    for job in &released {
        tracing::info!(job_id = %job.id, "released the claim of a lost worker");
    }
    crate::handback::push_released(state, &released).await;
    metrics::counter!(names::LOST_CLAIMS_RELEASED).increment(released.len() as u64);
    Ok(released.len())
}

/// Between full passes: releases the claims of lost workers and webhook senders and pushes them
/// again. Answers how many.
async fn release_lost(state: &WorkerState) -> Result<usize, RunError> {
    let jobs = release_lost_claims(state).await?;
    let mut storage = state.deliveries.clone();
    let deliveries = release_lost_deliveries(state, &mut storage).await?;
    Ok(jobs + deliveries.len())
}

async fn reconcile_jobs(state: &WorkerState) -> Result<usize, RunError> {
    let mut pushed = release_lost_claims(state).await?;
    let min_age = state.engine.config.reconcile_interval();
    let claim_timeout = state.engine.config.claim_timeout();
    let mut redis = state.redis.clone();
    let mut after = None;
    loop {
        let page = {
            let mut conn = state.pool.get().await?;
            db::jobs::dispatch_candidates(&mut conn, min_age, claim_timeout, after, PAGE).await?
        };
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        let full = page.len() as i64 == PAGE;
        // Waiting jobs whose task Redis still holds are fine; the rest are pushed again.
        let waiting: Vec<String> = page
            .iter()
            .map(|c| c.queue_task_id.clone().unwrap_or_else(|| c.id.to_string()))
            .collect();
        // Each job lives in the queue of its priority band.
        let mut alive = vec![false; page.len()];
        for band in Band::ALL {
            let members: Vec<usize> = (0..page.len())
                .filter(|&i| Band::of(page[i].priority) == band)
                .collect();
            let ids: Vec<String> = members.iter().map(|&i| waiting[i].clone()).collect();
            let found = queue::task_alive(&mut redis, &state.queues.band(band), &ids).await?;
            for (i, found) in members.into_iter().zip(found) {
                alive[i] = found;
            }
        }
        for (candidate, alive) in page.iter().zip(alive) {
            let abandoned = candidate.status == JobStatus::Processing.as_str();
            if alive && !abandoned {
                continue;
            }
            let job_id = JobId(candidate.id);
            let task_id = queue::repush_task_id(job_id);
            let mut storage =
                state
                    .queues
                    .band_storage(state.redis.clone(), Band::of(candidate.priority), 1);
            queue::push_job(&mut storage, job_id, &task_id).await?;
            let mut conn = state.pool.get().await?;
            if abandoned {
                db::jobs::set_task_id(&mut conn, candidate.id, &task_id).await?;
            } else {
                db::jobs::mark_queued(&mut conn, candidate.id, &task_id).await?;
            }
            tracing::info!(%job_id, status = %candidate.status, "re-pushed job");
            pushed += 1;
        }
        if !full {
            break;
        }
    }
    Ok(pushed)
}

/// Gives back the attempts of lost webhook senders (no registry heartbeat within
/// `WORKER_LOST_SECS`) and pushes them again, so a killed sender's deliveries go out within
/// seconds instead of after `CLAIM_TIMEOUT_SECS`. Answers the ids pushed.
async fn release_lost_deliveries(
    state: &WorkerState,
    storage: &mut queue::DeliveryStorage,
) -> Result<HashSet<uuid::Uuid>, RunError> {
    let released = {
        let mut conn = state.pool.get().await?;
        deliveries::release_lost_claims(&mut conn, state.engine.config.worker_lost_after()).await?
    };
    let mut pushed = HashSet::with_capacity(released.len());
    for attempt in &released {
        tracing::info!(delivery_id = %attempt.id, attempt = attempt.attempt, "released the attempt of a lost webhook sender");
        let message = DeliveryMessage {
            delivery_id: DeliveryId(attempt.id),
            attempt: attempt.attempt,
        };
        // A fresh task id: apalis ignores an id it still holds for the lost sender.
        queue::push_delivery_as(storage, message, &queue::repush_task_id(JobId(attempt.id)))
            .await?;
        pushed.insert(attempt.id);
    }
    metrics::counter!(names::LOST_DELIVERY_CLAIMS_RELEASED).increment(released.len() as u64);
    Ok(pushed)
}

async fn reconcile_deliveries(state: &WorkerState) -> Result<usize, RunError> {
    let grace = state.engine.config.reconcile_interval();
    let claim_timeout = state.engine.config.claim_timeout();
    let queue_name = state.queues.webhooks();
    let mut redis = state.redis.clone();
    let mut storage = state.deliveries.clone();
    let released = release_lost_deliveries(state, &mut storage).await?;
    let mut after = None;
    let mut pushed = released.len();
    loop {
        let page = {
            let mut conn = state.pool.get().await?;
            deliveries::due(&mut conn, grace, claim_timeout, after, PAGE).await?
        };
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        let full = page.len() as i64 == PAGE;
        let task_ids: Vec<String> = page
            .iter()
            .map(|d| queue::delivery_task_id(DeliveryId(d.id), d.next_attempt()))
            .collect();
        let alive = queue::task_alive(&mut redis, &queue_name, &task_ids).await?;
        for (due, alive) in page.iter().zip(alive) {
            if (alive && due.status != deliveries::state::DELIVERING) || released.contains(&due.id)
            {
                continue;
            }
            let message = DeliveryMessage {
                delivery_id: DeliveryId(due.id),
                attempt: due.next_attempt(),
            };
            // A lost attempt is pushed under a fresh task id: apalis ignores an id it still has.
            queue::push_delivery_as(&mut storage, message, &queue::repush_task_id(JobId(due.id)))
                .await?;
            pushed += 1;
        }
        if !full {
            break;
        }
    }
    Ok(pushed)
}

/// How long a reconcile pass may wait before giving up (keeps a stuck database from piling up passes).
pub const PASS_TIMEOUT: Duration = Duration::from_secs(60);
