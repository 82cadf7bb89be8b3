//! How jobs end outside a worker's run, and the terminal webhooks every ending owes.
//!
//! A job ends `completed` or `failed` in its worker (`writes::write_group`), `cancelled` there or at
//! once when it had not started (`cancel`), or `failed` when stale cleanup marks it
//! (`mark_stale`). Each of these records its terminal webhook (`workflow.completed`,
//! `workflow.failed`, `workflow.cancelled`) in the same transaction as the ending itself, so
//! the app is never left waiting for a job that ended without a word. The payloads are built
//! here, for all of them alike, and carry the job's `user_id`.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::dsl::now;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use rust_decimal::Decimal;
use serde_json::{json, Value};
use uuid::Uuid;

use super::models::{DeliveryRow, JobRow, UsageRow};
use super::schema::{llm_provider_usage, llm_webhook_deliveries, llm_workflow_jobs as jobs};
use super::{deliveries, DbError};
use crate::pricing::usd_json;
use crate::JobStatus;

/// The terminal webhook event of a job state; `None` for a state that is not an ending.
pub fn terminal_event(status: JobStatus) -> Option<&'static str> {
    match status {
        JobStatus::Completed => Some("workflow.completed"),
        JobStatus::Failed => Some("workflow.failed"),
        JobStatus::Cancelled => Some("workflow.cancelled"),
        JobStatus::Pending | JobStatus::Queued | JobStatus::Processing => None,
    }
}

/// How a job ended, as its terminal webhook tells it.
#[derive(Debug)]
pub struct Ending<'a> {
    pub status: JobStatus,
    pub result: Option<&'a Value>,
    pub error_message: Option<&'a str>,
    pub cost_data: &'a Value,
    /// How long the run took, when known.
    pub duration_ms: Option<u64>,
}

/// The body of a terminal webhook: `{type, job_id, user_id, workflow_name, status, result,
/// error_message, is_stale, stale_reason, retry_count, cost_data, duration_ms, timestamp}`.
pub fn terminal_payload(job: &JobRow, event: &str, ending: &Ending<'_>) -> Value {
    json!({
        "type": event,
        "job_id": job.id,
        "user_id": job.user_id,
        "workflow_name": job.workflow_name,
        "status": ending.status,
        "result": ending.result,
        "error_message": ending.error_message,
        "is_stale": job.is_stale,
        "stale_reason": job.stale_reason,
        "retry_count": job.retry_count,
        "cost_data": ending.cost_data,
        "duration_ms": ending.duration_ms,
        "timestamp": Utc::now().to_rfc3339(),
    })
}

/// The terminal delivery a job owes for `ending` (none without a webhook URL), for the job's
/// current run.
pub fn terminal_delivery(job: &JobRow, ending: &Ending<'_>) -> Option<DeliveryRow> {
    let url = job.webhook_url.as_deref()?;
    let event = terminal_event(ending.status)?;
    let payload = terminal_payload(job, event, ending);
    let mut row = deliveries::new_delivery(job.id, url, event, payload);
    row.job_run = job.retry_count;
    Some(row)
}

/// Records the terminal deliveries owed by jobs that have just ended (read back from their
/// rows; call it in the transaction that ended them). A delivery already recorded for the run
/// is kept. Returns the ids of the new deliveries, for the caller to push after the commit.
pub async fn owe_terminal(
    conn: &mut AsyncPgConnection,
    ids: &[Uuid],
) -> Result<Vec<Uuid>, DbError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let ended: Vec<JobRow> = jobs::table
        .filter(jobs::id.eq_any(ids))
        .filter(jobs::webhook_url.is_not_null())
        .select(JobRow::as_select())
        .load(conn)
        .await?;
    if ended.is_empty() {
        return Ok(Vec::new());
    }
    let ended_ids: Vec<Uuid> = ended.iter().map(|j| j.id).collect();
    let mut usage: HashMap<Uuid, Vec<UsageRow>> = HashMap::new();
    let calls: Vec<UsageRow> = llm_provider_usage::table
        .filter(llm_provider_usage::job_id.eq_any(&ended_ids))
        .order(llm_provider_usage::created_at.asc())
        .select(UsageRow::as_select())
        .load(conn)
        .await?;
    for call in calls {
        if let Some(job_id) = call.job_id {
            usage.entry(job_id).or_default().push(call);
        }
    }
    let mut rows = Vec::new();
    for job in &ended {
        let Ok(status) = job.status.parse::<JobStatus>() else {
            continue;
        };
        let cost_data = cost_data(usage.get(&job.id).map_or(&[], Vec::as_slice));
        let duration_ms = job
            .completed_at
            .map(|end| run_duration_ms(job.started_at.unwrap_or(job.created_at), end));
        let ending = Ending {
            status,
            result: job.result.as_ref(),
            error_message: job.error_message.as_deref(),
            cost_data: &cost_data,
            duration_ms,
        };
        rows.extend(terminal_delivery(job, &ending));
    }
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    Ok(diesel::insert_into(llm_webhook_deliveries::table)
        .values(&rows)
        .on_conflict_do_nothing()
        .returning(llm_webhook_deliveries::id)
        .get_results(conn)
        .await?)
}

fn run_duration_ms(start: DateTime<Utc>, end: DateTime<Utc>) -> u64 {
    u64::try_from((end - start).num_milliseconds()).unwrap_or(0)
}

/// `{provider, model, input_tokens, output_tokens, total_tokens, cost_usd, steps: […]}`.
/// `provider` and `model` name the one used, or every distinct one joined by commas.
pub fn cost_data(usage: &[UsageRow]) -> Value {
    let distinct = |pick: fn(&UsageRow) -> &str| {
        let mut seen: Vec<&str> = Vec::new();
        for name in usage.iter().map(pick) {
            if !seen.contains(&name) {
                seen.push(name);
            }
        }
        seen.join(",")
    };
    let input: i64 = usage.iter().map(|u| i64::from(u.input_tokens)).sum();
    let output: i64 = usage.iter().map(|u| i64::from(u.output_tokens)).sum();
    let cost: Decimal = usage.iter().map(|u| u.cost_usd).sum();
    let steps: Vec<Value> = usage
        .iter()
        .map(|u| {
            json!({
                "step_id": u.step_id,
                "provider": u.provider,
                "model": u.model,
                "input_tokens": u.input_tokens,
                "output_tokens": u.output_tokens,
                "total_tokens": u.total_tokens,
                "cost_usd": usd_json(u.cost_usd),
                "usage_estimated": u.usage_estimated,
            })
        })
        .collect();
    json!({
        "provider": distinct(|u| &u.provider),
        "model": distinct(|u| &u.model),
        "input_tokens": input,
        "output_tokens": output,
        "total_tokens": input + output,
        "cost_usd": usd_json(cost),
        "steps": steps,
    })
}

/// What a cancellation request did.
#[derive(Debug, PartialEq, Eq)]
pub enum CancelOutcome {
    /// The job had not started: it is now `cancelled` and never runs. The ids are the
    /// `workflow.cancelled` deliveries recorded with it, to push.
    Cancelled(Vec<Uuid>),
    /// The job is running: `cancel_requested` is set and the worker stops at its next step
    /// boundary (dropping an in-flight LLM call), then sends `workflow.cancelled` itself.
    Requested,
    /// The job had already ended in this state.
    Finished(String),
    NotFound,
}

/// Cancels a job: a waiting one at once (with its `workflow.cancelled` delivery, in one
/// transaction), a running one by request. Both are conditional updates, so a worker's claim
/// and a cancellation never both win.
pub async fn cancel(conn: &mut AsyncPgConnection, id: Uuid) -> Result<CancelOutcome, DbError> {
    let cancelled = conn
        .transaction(async |conn| {
            let cancelled = diesel::update(jobs::table.find(id))
                .filter(
                    jobs::status.eq_any([JobStatus::Pending.as_str(), JobStatus::Queued.as_str()]),
                )
                .set((
                    jobs::status.eq(JobStatus::Cancelled.as_str()),
                    jobs::cancel_requested.eq(true),
                    jobs::error_message.eq("cancelled before it started"),
                    jobs::completed_at.eq(now),
                    jobs::updated_at.eq(now),
                ))
                .execute(conn)
                .await?;
            if cancelled == 0 {
                return Ok::<_, DbError>(None);
            }
            Ok(Some(owe_terminal(conn, &[id]).await?))
        })
        .await?;
    if let Some(deliveries) = cancelled {
        return Ok(CancelOutcome::Cancelled(deliveries));
    }
    let requested = diesel::update(jobs::table.find(id))
        .filter(jobs::status.eq(JobStatus::Processing.as_str()))
        .set((jobs::cancel_requested.eq(true), jobs::updated_at.eq(now)))
        .execute(conn)
        .await?;
    if requested == 1 {
        return Ok(CancelOutcome::Requested);
    }
    let status: Option<String> = jobs::table
        .find(id)
        .select(jobs::status)
        .first(conn)
        .await
        .optional()?;
    Ok(match status {
        Some(status) => CancelOutcome::Finished(status),
        None => CancelOutcome::NotFound,
    })
}

/// How many jobs of each former state a stale cleanup marked.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StaleCounts {
    pub pending: i64,
    pub queued: i64,
    pub processing: i64,
    pub total: i64,
}

/// What a stale cleanup did: the counts, and the `workflow.failed` deliveries it recorded (to
/// push after the commit).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StaleCleanup {
    pub counts: StaleCounts,
    pub deliveries: Vec<Uuid>,
}

#[derive(QueryableByName)]
struct StaleRow {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    id: Uuid,
    #[diesel(sql_type = diesel::sql_types::Text)]
    previous: String,
}

/// Marks jobs in a non-terminal state not updated for `older_than` as stale and failed, with
/// `reason`, and records the `workflow.failed` webhook each owes, in one transaction. Rows are
/// locked (`SKIP LOCKED`), so a worker committing a step at that moment keeps its job.
pub async fn mark_stale(
    conn: &mut AsyncPgConnection,
    older_than: Duration,
    reason: &str,
) -> Result<StaleCleanup, DbError> {
    let before: DateTime<Utc> = Utc::now() - older_than;
    let reason = reason.to_owned();
    conn.transaction(async |conn| {
        let rows: Vec<StaleRow> = diesel::sql_query(
            "WITH stale AS ( \
               SELECT id, status FROM llm_workflow_jobs \
               WHERE status IN ('pending', 'queued', 'processing') AND updated_at < $1 \
               FOR UPDATE SKIP LOCKED) \
             UPDATE llm_workflow_jobs j SET status = 'failed', is_stale = true, stale_reason = $2, \
               error_message = $2, completed_at = now(), updated_at = now() \
             FROM stale WHERE j.id = stale.id RETURNING j.id AS id, stale.status AS previous",
        )
        .bind::<diesel::sql_types::Timestamptz, _>(before)
        .bind::<diesel::sql_types::Text, _>(&reason)
        .load(conn)
        .await?;
        let mut counts = StaleCounts::default();
        for row in &rows {
            match row.previous.as_str() {
                "pending" => counts.pending += 1,
                "queued" => counts.queued += 1,
                _ => counts.processing += 1,
            }
            counts.total += 1;
        }
        let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
        let deliveries = owe_terminal(conn, &ids).await?;
        Ok(StaleCleanup { counts, deliveries })
    })
    .await
}

/// The reason recorded on jobs a stale cleanup marks (by the admin route or the schedule).
pub fn stale_reason(hours: u64) -> String {
    format!("stale: no progress for more than {hours} h; marked failed by cleanup")
}
