//! Job queries. Every state change is a conditional UPDATE from an allowed set of states, so two
//! workers racing for one job, or a late writer, change nothing: exactly one claim wins.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::dsl::now;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use rust_decimal::Decimal;
use serde_json::Value;
use uuid::Uuid;

use super::models::{DeliveryRow, JobRow, NewJob, StepRow, UsageRow};
use super::prepared::Prepared;
use super::schema::{
    llm_job_steps, llm_provider_usage, llm_workflow_definitions, llm_workflow_jobs as jobs,
};
use super::DbError;
use crate::JobStatus;

pub use super::ending::{
    cancel, mark_stale, stale_reason, CancelOutcome, StaleCleanup, StaleCounts,
};

/// Stores a workflow definition under its hash, once.
pub async fn store_definition(
    conn: &mut AsyncPgConnection,
    hash: &str,
    name: &str,
    version: &str,
    definition: &Value,
) -> Result<(), DbError> {
    diesel::insert_into(llm_workflow_definitions::table)
        .values((
            llm_workflow_definitions::hash.eq(hash),
            llm_workflow_definitions::name.eq(name),
            llm_workflow_definitions::version.eq(version),
            llm_workflow_definitions::definition.eq(definition),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    Ok(())
}

/// The definition a job was pinned to.
pub async fn load_definition(
    conn: &mut AsyncPgConnection,
    hash: &str,
) -> Result<Option<Value>, DbError> {
    Ok(llm_workflow_definitions::table
        .find(hash)
        .select(llm_workflow_definitions::definition)
        .first(conn)
        .await
        .optional()?)
}

pub async fn insert_job(conn: &mut AsyncPgConnection, job: &NewJob) -> Result<(), DbError> {
    Prepared(diesel::insert_into(jobs::table).values(job))
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn find_job(conn: &mut AsyncPgConnection, id: Uuid) -> Result<Option<JobRow>, DbError> {
    Ok(jobs::table
        .find(id)
        .select(JobRow::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// Steps recorded for a job, in execution order.
pub async fn job_steps(conn: &mut AsyncPgConnection, id: Uuid) -> Result<Vec<StepRow>, DbError> {
    Ok(llm_job_steps::table
        .filter(llm_job_steps::job_id.eq(id))
        .order((
            llm_job_steps::position.asc(),
            llm_job_steps::completed_at.asc(),
        ))
        .select(StepRow::as_select())
        .load(conn)
        .await?)
}

/// The recorded row of one step of a job, if it has finished (or failed).
pub async fn job_step(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    step_id: &str,
) -> Result<Option<StepRow>, DbError> {
    Ok(llm_job_steps::table
        .filter(llm_job_steps::job_id.eq(id))
        .filter(llm_job_steps::step_id.eq(step_id))
        .select(StepRow::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// LLM calls recorded for a job, oldest first.
pub async fn job_usage(conn: &mut AsyncPgConnection, id: Uuid) -> Result<Vec<UsageRow>, DbError> {
    Ok(llm_provider_usage::table
        .filter(llm_provider_usage::job_id.eq(id))
        .order(llm_provider_usage::created_at.asc())
        .select(UsageRow::as_select())
        .load(conn)
        .await?)
}

/// Records that the job's id was pushed to the queue as `task_id`. A job the worker already
/// claimed stays as it is.
pub async fn mark_queued(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    task_id: &str,
) -> Result<bool, DbError> {
    let updated = diesel::update(jobs::table.find(id))
        .filter(jobs::status.eq_any([JobStatus::Pending.as_str(), JobStatus::Queued.as_str()]))
        .set((
            jobs::status.eq(JobStatus::Queued.as_str()),
            jobs::queue_task_id.eq(task_id),
            jobs::queued_at.eq(now),
            jobs::updated_at.eq(now),
        ))
        .execute(conn)
        .await?;
    Ok(updated == 1)
}

/// Undoes the `queued` of a job inserted as queued whose push to Redis failed: it is `pending`
/// again, for the reconciler to push. A job already claimed stays as it is.
pub async fn mark_pending(conn: &mut AsyncPgConnection, id: Uuid) -> Result<bool, DbError> {
    let updated = diesel::update(jobs::table.find(id))
        .filter(jobs::status.eq(JobStatus::Queued.as_str()))
        .set((
            jobs::status.eq(JobStatus::Pending.as_str()),
            jobs::queue_task_id.eq(None::<String>),
            jobs::queued_at.eq(None::<DateTime<Utc>>),
            jobs::updated_at.eq(now),
        ))
        .execute(conn)
        .await?;
    Ok(updated == 1)
}

/// Records the task id of a re-push of a job that is still running elsewhere or abandoned.
pub async fn set_task_id(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    task_id: &str,
) -> Result<(), DbError> {
    diesel::update(jobs::table.find(id))
        .set((jobs::queue_task_id.eq(task_id), jobs::updated_at.eq(now)))
        .execute(conn)
        .await?;
    Ok(())
}

/// What a claim attempt found.
#[derive(Debug)]
pub enum Claim {
    /// This worker now owns the job.
    Claimed(Box<JobRow>),
    /// The job was cancelled before it started; it is now `cancelled`.
    Cancelled,
    /// Someone else owns it, or it is finished: nothing to do.
    NotClaimable,
}

/// Claims a job for `worker`: a queued or pending job, or a processing one whose owner stopped
/// sending heartbeats more than `claim_timeout` ago. A job cancelled while queued becomes
/// `cancelled` here (its `workflow.cancelled` delivery recorded with it) and never runs.
pub async fn claim(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    worker: &str,
    claim_timeout: Duration,
) -> Result<Claim, DbError> {
    let mut claims = claim_many(conn, &[id], worker, claim_timeout).await?;
    Ok(claims.pop().map_or(Claim::NotClaimable, |(_, claim)| claim))
}

/// Claims several jobs at once, as `claim` does one: one conditional UPDATE for the batch (and
/// a second only when some were not claimable, to turn cancelled ones `cancelled`). Returns a
/// claim for each id, in order; an id given twice is claimed once.
pub async fn claim_many(
    conn: &mut AsyncPgConnection,
    ids: &[Uuid],
    worker: &str,
    claim_timeout: Duration,
) -> Result<Vec<(Uuid, Claim)>, DbError> {
    let abandoned_before = Utc::now() - claim_timeout;
    let claimable = jobs::status
        .eq_any([JobStatus::Pending.as_str(), JobStatus::Queued.as_str()])
        .or(jobs::status
            .eq(JobStatus::Processing.as_str())
            .and(jobs::heartbeat_at.lt(abandoned_before)));
    let claimed: Vec<JobRow> = Prepared(
        diesel::update(jobs::table.filter(jobs::id.eq_any(ids)))
            .filter(claimable.clone())
            .filter(jobs::cancel_requested.eq(false))
            .set((
                jobs::status.eq(JobStatus::Processing.as_str()),
                jobs::claimed_by.eq(worker),
                jobs::claimed_at.eq(now),
                jobs::heartbeat_at.eq(now),
                jobs::attempts.eq(jobs::attempts + 1),
                jobs::started_at.eq(diesel::dsl::sql::<
                    diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>,
                >("COALESCE(started_at, now())")),
                jobs::updated_at.eq(now),
            ))
            .returning(JobRow::as_returning()),
    )
    .get_results(conn)
    .await?;
    let mut claimed: HashMap<Uuid, JobRow> = claimed.into_iter().map(|j| (j.id, j)).collect();
    let rest: Vec<Uuid> = ids
        .iter()
        .copied()
        .filter(|id| !claimed.contains_key(id))
        .collect();
    let cancelled: HashSet<Uuid> = if rest.is_empty() {
        HashSet::new()
    } else {
        // With their `workflow.cancelled` deliveries, in one transaction.
        conn.transaction(async |conn| {
            let ids = diesel::update(jobs::table.filter(jobs::id.eq_any(&rest)))
                .filter(claimable)
                .filter(jobs::cancel_requested.eq(true))
                .set((
                    jobs::status.eq(JobStatus::Cancelled.as_str()),
                    jobs::error_message.eq("cancelled before it started"),
                    jobs::completed_at.eq(now),
                    jobs::updated_at.eq(now),
                ))
                .returning(jobs::id)
                .get_results::<Uuid>(conn)
                .await?;
            super::ending::owe_terminal(conn, &ids).await?;
            Ok::<_, DbError>(ids)
        })
        .await?
        .into_iter()
        .collect()
    };
    Ok(ids
        .iter()
        .map(|id| {
            let claim = match claimed.remove(id) {
                Some(job) => Claim::Claimed(Box::new(job)),
                None if cancelled.contains(id) => Claim::Cancelled,
                None => Claim::NotClaimable,
            };
            (*id, claim)
        })
        .collect())
}

/// Keeps a long-running claim alive. Returns whether the job still belongs to `worker`, and
/// whether cancellation was requested.
pub async fn heartbeat(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    worker: &str,
) -> Result<Option<bool>, DbError> {
    Ok(Prepared(
        diesel::update(jobs::table.find(id))
            .filter(owned_status())
            .filter(jobs::claimed_by.eq(worker))
            .set(jobs::heartbeat_at.eq(now))
            .returning(jobs::cancel_requested),
    )
    .get_result(conn)
    .await
    .optional()?)
}

/// Finished steps and the LLM calls they made, written in one transaction.
#[derive(Debug, Default)]
pub struct StepBatch {
    pub steps: Vec<StepRow>,
    pub usage: Vec<UsageRow>,
}

impl StepBatch {
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty() && self.usage.is_empty()
    }

    /// Tokens in, tokens out and cost of the batch's LLM calls.
    pub(crate) fn totals(&self) -> (i64, i64, Decimal) {
        self.usage
            .iter()
            .fold((0, 0, Decimal::ZERO), |(i, o, c), u| {
                (
                    i + i64::from(u.input_tokens),
                    o + i64::from(u.output_tokens),
                    c + u.cost_usd,
                )
            })
    }
}

/// How a commit of finished work ended.
#[derive(Debug, PartialEq, Eq)]
pub enum CommitOutcome {
    /// Written; the flag says whether cancellation has been requested since.
    Committed { cancel_requested: bool },
    /// The job is no longer ours (claimed by another worker after our heartbeat lapsed, or
    /// finished): nothing was written, and the caller must stop.
    LostClaim,
}

/// The end of a job: its last steps, its terminal state and result, and the webhook deliveries
/// it owes, in one transaction.
#[derive(Debug)]
pub struct Finish {
    pub status: JobStatus,
    pub result: Option<Value>,
    pub error_message: Option<String>,
    pub batch: StepBatch,
    /// Steps added to the path by branches taken since the last commit.
    pub planned_delta: i32,
    pub deliveries: Vec<DeliveryRow>,
}

/// A job the reconciler looks at: unfinished and not touched for a while.
#[derive(Debug, Queryable)]
pub struct DispatchCandidate {
    pub id: Uuid,
    pub status: String,
    pub queue_task_id: Option<String>,
    pub priority: i16,
}

/// Unfinished jobs that may have fallen out of Redis: `pending`/`queued` ones not updated for
/// `min_age`, and `processing` ones whose heartbeat is older than `claim_timeout`. Paged by id
/// (`after`), so a long backlog is walked through whole rather than its oldest page forever.
pub async fn dispatch_candidates(
    conn: &mut AsyncPgConnection,
    min_age: Duration,
    claim_timeout: Duration,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<DispatchCandidate>, DbError> {
    let waiting_since: DateTime<Utc> = Utc::now() - min_age;
    let abandoned_before: DateTime<Utc> = Utc::now() - claim_timeout;
    Ok(jobs::table
        .filter(unfinished())
        .filter(jobs::id.gt(after.unwrap_or(Uuid::nil())))
        .filter(
            jobs::status
                .eq_any([JobStatus::Pending.as_str(), JobStatus::Queued.as_str()])
                .and(jobs::updated_at.lt(waiting_since))
                .or(jobs::status
                    .eq(JobStatus::Processing.as_str())
                    .and(jobs::heartbeat_at.lt(abandoned_before))),
        )
        .order(jobs::id.asc())
        .limit(limit)
        .select((jobs::id, jobs::status, jobs::queue_task_id, jobs::priority))
        .load(conn)
        .await?)
}

/// The status test of the statements that address a running job by id (heartbeat, commits,
/// finish): `status IS NOT DISTINCT FROM 'processing'`, which no index can serve, so the primary
/// key is the only index such a statement can use. With `status = $n` a generic plan made
/// before the table's first `ANALYZE` may pick `(status, created_at, id)` instead, and then walk
/// every running job's entries, dead ones included, for each update; that plan stays on the
/// connection as long as the statement does. (`status` is never NULL, so the two tests agree.)
fn owned_status() -> diesel::dsl::IsNotDistinctFrom<jobs::status, &'static str> {
    jobs::status.is_not_distinct_from(JobStatus::Processing.as_str())
}

/// The predicate of the partial index `idx_llm_workflow_jobs_unfinished`, written out as SQL
/// text: a status list given as a bound array (`status = ANY($1)`) cannot prove it in a generic
/// plan (one prepared statement keeps for every call), so the index would not be used. With it,
/// a scan walks the unfinished jobs in id order, however many finished ones the table holds.
pub fn unfinished() -> diesel::expression::SqlLiteral<diesel::sql_types::Bool> {
    diesel::dsl::sql::<diesel::sql_types::Bool>(
        "llm_workflow_jobs.status IN ('pending', 'queued', 'processing')",
    )
}

/// The job recorded under an idempotency key whose window is still open.
pub async fn find_by_idempotency_key(
    conn: &mut AsyncPgConnection,
    key: &str,
) -> Result<Option<JobRow>, DbError> {
    Ok(jobs::table
        .filter(jobs::idempotency_key.eq(key))
        .filter(jobs::idempotency_expires_at.gt(now))
        .select(JobRow::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// Frees a key whose window has closed, so a new job may take it (the column is unique).
pub async fn release_expired_idempotency_key(
    conn: &mut AsyncPgConnection,
    key: &str,
) -> Result<(), DbError> {
    diesel::update(jobs::table)
        .filter(jobs::idempotency_key.eq(key))
        .filter(jobs::idempotency_expires_at.le(now))
        .set(jobs::idempotency_key.eq(None::<String>))
        .execute(conn)
        .await?;
    Ok(())
}
