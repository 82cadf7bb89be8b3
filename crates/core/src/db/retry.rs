//! Retry from the failed step: a `failed` job goes back to the queue, and its next run resumes
//! after its committed steps, as any resumed run does. Completed steps (and steps whose failure
//! `on_error` let the job go on) stay recorded, so they are reused and never called or paid
//! for again; the rows of the failures that stopped the run are taken out of the job's steps
//! and kept in its retry history instead, so those steps run again.

use chrono::Utc;
use diesel::dsl::now;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde_json::{json, Value};

use super::models::{JobRow, StepRow};
use super::schema::{llm_job_steps, llm_workflow_jobs as jobs};
use super::DbError;
use crate::workflow::{OnError, Workflow};
use crate::JobStatus;

/// What a retry request did.
#[derive(Debug, PartialEq, Eq)]
pub enum RetryOutcome {
    /// The job is `queued` again under `task_id` (push it); `retry_count` is its new count.
    Queued { task_id: String, retry_count: i32 },
    /// The job is not `failed` (it is in this state): nothing changed.
    NotFailed(String),
}

/// The recorded failures that stopped the run: failed rows of steps whose `on_error` fails the
/// job (a step that continued past its failure, or took its default, counts as finished). A row
/// of a step the definition does not know is cleared too: nothing could reuse it.
pub fn halting_failures<'a>(workflow: &Workflow, steps: &'a [StepRow]) -> Vec<&'a StepRow> {
    steps
        .iter()
        .filter(|row| row.status == "failed")
        .filter(|row| {
            workflow
                .find_step(&row.step_id)
                .is_none_or(|step| matches!(step.on_error, OnError::Fail | OnError::Retry { .. }))
        })
        .collect()
}

/// Sends a `failed` job back to the queue under a fresh task id: the failures that stopped it
/// are cleared (and recorded in `retry_history`), its end is undone, `retry_count` grows. One
/// transaction, conditional on the job still being `failed`, so two retries never both win.
pub async fn retry(
    conn: &mut AsyncPgConnection,
    job: &JobRow,
    workflow: &Workflow,
    task_id: &str,
) -> Result<RetryOutcome, DbError> {
    let id = job.id;
    let task_id = task_id.to_owned();
    let workflow = workflow.clone();
    conn.transaction(async |conn| {
        let steps: Vec<StepRow> = llm_job_steps::table
            .filter(llm_job_steps::job_id.eq(id))
            .select(StepRow::as_select())
            .load(conn)
            .await?;
        let cleared = halting_failures(&workflow, &steps);
        let cleared_ids: Vec<&str> = cleared.iter().map(|r| r.step_id.as_str()).collect();
        let removed = i32::try_from(cleared.len()).unwrap_or(0);
        let retry_count = job.retry_count + 1;
        let entry = json!([{
            "retry": retry_count,
            "failed_at": job.completed_at,
            "error_message": job.error_message,
            "is_stale": job.is_stale,
            "stale_reason": job.stale_reason,
            "failed_steps": cleared.iter().map(|r| json!({
                "step_id": r.step_id,
                "error": r.error_message,
                "attempts": r.attempts,
            })).collect::<Vec<Value>>(),
            "retried_at": Utc::now(),
        }]);
        let updated = diesel::update(jobs::table.find(id))
            .filter(jobs::status.eq(JobStatus::Failed.as_str()))
            .filter(jobs::retry_count.eq(job.retry_count))
            .set((
                jobs::status.eq(JobStatus::Queued.as_str()),
                jobs::queue_task_id.eq(&task_id),
                jobs::queued_at.eq(now),
                jobs::result.eq(None::<Value>),
                jobs::error_message.eq(None::<String>),
                jobs::completed_at.eq(None::<chrono::DateTime<Utc>>),
                jobs::is_stale.eq(false),
                jobs::stale_reason.eq(None::<String>),
                jobs::cancel_requested.eq(false),
                jobs::claimed_by.eq(None::<String>),
                jobs::heartbeat_at.eq(None::<chrono::DateTime<Utc>>),
                jobs::current_step.eq(None::<String>),
                jobs::steps_completed.eq(jobs::steps_completed - removed),
                // The planned path stays: a parallel step's branches were counted with the
                // path it is on (`workflow::certain_steps`), not when it ran, so running it
                // again plans nothing more.
                jobs::retry_count.eq(retry_count),
                jobs::retry_history.eq(jobs::retry_history.concat(entry)),
                jobs::updated_at.eq(now),
            ))
            .execute(conn)
            .await?;
        if updated == 0 {
            let status: Option<String> = jobs::table
                .find(id)
                .select(jobs::status)
                .first(conn)
                .await
                .optional()?;
            return Ok(RetryOutcome::NotFailed(
                status.unwrap_or_else(|| "gone".to_owned()),
            ));
        }
        diesel::delete(
            llm_job_steps::table
                .filter(llm_job_steps::job_id.eq(id))
                .filter(llm_job_steps::status.eq("failed"))
                .filter(llm_job_steps::step_id.eq_any(&cleared_ids)),
        )
        .execute(conn)
        .await?;
        Ok(RetryOutcome::Queued {
            task_id: task_id.clone(),
            retry_count,
        })
    })
    .await
}
