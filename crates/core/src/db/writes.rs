//! Group commit: the step commits and finishes of many jobs written by one statement.
//!
//! A worker's jobs hand their writes to one writer (`llmflow-worker`'s `writer`), which sends
//! the writes waiting at that moment here together. [`write_group`] writes them as one
//! statement, so one round trip and one PostgreSQL transaction carry many jobs:
//!
//! 1. `UPDATE llm_workflow_jobs … FROM unnest(…)` moves each job's progress and totals (or ends
//!    it), only where the job is still `processing`, claimed by this worker, and none of the
//!    steps it brings is recorded already. It returns the jobs it updated.
//! 2. `INSERT … SELECT … FROM unnest(…)` inserts the steps, LLM usage and webhook deliveries of
//!    the returned jobs only. A job left out (claim lost, step recorded before) gets
//!    [`CommitOutcome::LostClaim`] and none of its rows is written; the others commit.
//!
//! A statement PostgreSQL refuses (a row breaking a constraint) wrote nothing, for any job: the
//! group is split in halves and each half written again, down to the one job whose own row is
//! bad, which alone gets the error. A failure that may have reached the server (a connection
//! lost mid-statement) is not retried: those jobs get the error, as one job alone would have.
//!
//! The statement's text is the same for every group, so it stays prepared on a connection like
//! the other hot statements (`Prepared`), and runs unnamed behind a transaction-mode pooler.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use diesel::pg::Pg;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sql_types::{
    Array, Bool, Int4, Int8, Jsonb, Nullable, Numeric, Text, Timestamptz, Uuid as SqlUuid,
};
use diesel::QueryableByName;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use rust_decimal::Decimal;
use serde_json::Value;
use uuid::Uuid;

use super::jobs::{CommitOutcome, Finish, StepBatch};
use super::prepared::Prepared;
use super::DbError;

/// One job's write, as the engine hands it over.
#[derive(Debug)]
pub struct JobWrite {
    pub job_id: Uuid,
    pub change: Change,
}

/// What a job writes: progress (finished steps and their usage) or its end.
#[derive(Debug)]
pub enum Change {
    /// Finished steps and their LLM usage; the job's current step and the steps its branches
    /// added to the path.
    Progress {
        batch: StepBatch,
        current_step: Option<String>,
        planned_delta: i32,
    },
    /// The job's last steps, terminal state, result and deliveries.
    Finish(Finish),
}

impl JobWrite {
    fn batch(&self) -> &StepBatch {
        match &self.change {
            Change::Progress { batch, .. } => batch,
            Change::Finish(finish) => &finish.batch,
        }
    }
}

/// The answer for one job's write. The error is shared by the jobs whose writes failed
/// together (a lost connection); a bad row's error is its job's alone.
pub type WriteResult = Result<CommitOutcome, Arc<DbError>>;

/// Writes every job's write, as few statements as the writes allow (see the module docs).
/// Returns one answer per write, in order. A job given twice is written twice, in order, by
/// consecutive statements (one statement updates a row once).
pub async fn write_group(
    conn: &mut AsyncPgConnection,
    worker: &str,
    writes: &[JobWrite],
) -> Vec<WriteResult> {
    let mut results: Vec<Option<WriteResult>> = writes.iter().map(|_| None).collect();
    // Groups of indexes into `writes`, written in this order; a refused group's halves go first.
    let mut groups: VecDeque<Vec<usize>> = rounds(writes).into();
    while let Some(group) = groups.pop_front() {
        let chosen: Vec<&JobWrite> = group.iter().map(|&i| &writes[i]).collect();
        match write_once(conn, worker, &chosen).await {
            Ok(outcomes) => {
                for (&i, outcome) in group.iter().zip(outcomes) {
                    results[i] = Some(Ok(outcome));
                }
            }
            Err(DieselError::DatabaseError(..)) if group.len() > 1 => {
                // Refused, so nothing of it was written: find the bad row by halves.
                let (first, second) = group.split_at(group.len() / 2);
                groups.push_front(second.to_vec());
                groups.push_front(first.to_vec());
            }
            Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info))
                if info.constraint_name() == Some(STEP_KEY) =>
            {
                // A step recorded by a write that committed after our check: as a step
                // recorded before, the job is someone else's now.
                results[group[0]] = Some(Ok(CommitOutcome::LostClaim));
            }
            Err(e) => {
                let error = Arc::new(DbError::Query(e));
                for &i in &group {
                    results[i] = Some(Err(error.clone()));
                }
            }
        }
    }
    results
        .into_iter()
        .map(|r| r.unwrap_or(Ok(CommitOutcome::LostClaim)))
        .collect()
}

/// The unique key of a job's step.
const STEP_KEY: &str = "llm_job_steps_job_id_step_id_key";

/// Splits the writes into groups in which each job appears once, keeping each job's order.
fn rounds(writes: &[JobWrite]) -> Vec<Vec<usize>> {
    let mut rounds: Vec<Vec<usize>> = Vec::new();
    // The round each job's next write goes to.
    let mut next_round: HashMap<Uuid, usize> = HashMap::new();
    for (i, write) in writes.iter().enumerate() {
        let round = next_round.entry(write.job_id).or_insert(0);
        if *round == rounds.len() {
            rounds.push(Vec::new());
        }
        rounds[*round].push(i);
        *round += 1;
    }
    rounds
}

#[derive(QueryableByName)]
struct Written {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    #[diesel(sql_type = Bool)]
    cancel_requested: bool,
}

/// The group commit. Parameters: $1 the worker; $2–$11 one entry per job; $12–$28 per step;
/// $29–$46 per LLM call (the job it belongs to first); $47–$62 per delivery.
const WRITE_GROUP: &str = r#"
WITH w AS (
    SELECT * FROM unnest($2::uuid[], $3::text[], $4::jsonb[], $5::text[], $6::text[],
        $7::int4[], $8::int4[], $9::int8[], $10::int8[], $11::numeric[])
        AS w(job_id, status, result, error_message, current_step, completed, planned,
             input_tokens, output_tokens, cost_usd)
), s AS (
    -- `recorded`: the step has a row already. A lookup per step by the unique key, whatever
    -- the table's statistics.
    SELECT s.*, (SELECT true FROM llm_job_steps AS done
                 WHERE done.job_id = s.job_id AND done.step_id = s.step_id) AS recorded
    FROM unnest($12::uuid[], $13::uuid[], $14::text[], $15::text[], $16::int4[],
        $17::text[], $18::jsonb[], $19::jsonb[], $20::text[], $21::text[], $22::int4[],
        $23::int8[], $24::int8[], $25::numeric[], $26::timestamptz[], $27::timestamptz[],
        $28::int4[])
        AS s(id, job_id, step_id, step_type, position, status, input, output, error_kind,
             error_message, attempts, input_tokens, output_tokens, cost_usd, started_at,
             completed_at, duration_ms)
), job AS (
    UPDATE llm_workflow_jobs AS j SET
        status = COALESCE(w.status, j.status),
        result = CASE WHEN w.status IS NULL THEN j.result ELSE w.result END,
        error_message = CASE WHEN w.status IS NULL THEN j.error_message ELSE w.error_message END,
        current_step = w.current_step,
        steps_completed = j.steps_completed + w.completed,
        steps_planned = j.steps_planned + w.planned,
        total_input_tokens = j.total_input_tokens + w.input_tokens,
        total_output_tokens = j.total_output_tokens + w.output_tokens,
        total_cost_usd = j.total_cost_usd + w.cost_usd,
        heartbeat_at = CASE WHEN w.status IS NULL THEN now() ELSE j.heartbeat_at END,
        completed_at = CASE WHEN w.status IS NULL THEN j.completed_at ELSE now() END,
        updated_at = now()
    FROM w
    WHERE j.id = w.job_id AND j.status IS NOT DISTINCT FROM 'processing' AND j.claimed_by = $1
      AND NOT EXISTS (SELECT 1 FROM s WHERE s.job_id = j.id AND s.recorded)
    RETURNING j.id, j.cancel_requested
), steps AS (
    INSERT INTO llm_job_steps (id, job_id, step_id, step_type, position, status, input, output,
        error_kind, error_message, attempts, input_tokens, output_tokens, cost_usd, started_at,
        completed_at, duration_ms)
    SELECT s.id, s.job_id, s.step_id, s.step_type, s.position, s.status, s.input, s.output,
        s.error_kind, s.error_message, s.attempts, s.input_tokens, s.output_tokens, s.cost_usd,
        s.started_at, s.completed_at, s.duration_ms
    FROM s JOIN job ON job.id = s.job_id
), usage AS (
    INSERT INTO llm_provider_usage (id, job_id, step_id, user_id, provider, model, input_tokens,
        output_tokens, total_tokens, cached_input_tokens, cost_usd, table_cost_usd,
        provider_cost_usd, usage_estimated, provider_request_id, duration_ms, created_at)
    SELECT u.id, u.job_id, u.step_id, u.user_id, u.provider, u.model, u.input_tokens,
        u.output_tokens, u.total_tokens, u.cached_input_tokens, u.cost_usd, u.table_cost_usd,
        u.provider_cost_usd, u.usage_estimated, u.provider_request_id, u.duration_ms,
        u.created_at
    FROM unnest($29::uuid[], $30::uuid[], $31::uuid[], $32::text[], $33::uuid[], $34::text[],
        $35::text[], $36::int4[], $37::int4[], $38::int4[], $39::int4[], $40::numeric[],
        $41::numeric[], $42::numeric[], $43::bool[], $44::text[], $45::int4[],
        $46::timestamptz[])
        AS u(owner, id, job_id, step_id, user_id, provider, model, input_tokens, output_tokens,
             total_tokens, cached_input_tokens, cost_usd, table_cost_usd, provider_cost_usd,
             usage_estimated, provider_request_id, duration_ms, created_at)
    JOIN job ON job.id = u.owner
), deliveries AS (
    INSERT INTO llm_webhook_deliveries (id, job_id, url, webhook_id, event_type, payload, status,
        attempts, next_attempt_at, last_status_code, last_error, dead_lettered_at, delivered_at,
        created_at, updated_at, job_run)
    SELECT d.id, d.job_id, d.url, d.webhook_id, d.event_type, d.payload, d.status, d.attempts,
        d.next_attempt_at, d.last_status_code, d.last_error, d.dead_lettered_at,
        d.delivered_at, d.created_at, d.updated_at, d.job_run
    FROM unnest($47::uuid[], $48::uuid[], $49::text[], $50::text[], $51::text[], $52::jsonb[],
        $53::text[], $54::int4[], $55::timestamptz[], $56::int4[], $57::text[],
        $58::timestamptz[], $59::timestamptz[], $60::timestamptz[], $61::timestamptz[],
        $62::int4[])
        AS d(id, job_id, url, webhook_id, event_type, payload, status, attempts,
             next_attempt_at, last_status_code, last_error, dead_lettered_at, delivered_at,
             created_at, updated_at, job_run)
    JOIN job ON job.id = d.job_id
    ON CONFLICT DO NOTHING
)
SELECT id, cancel_requested FROM job
"#;

/// Writes one group whose jobs are distinct, by one statement.
async fn write_once(
    conn: &mut AsyncPgConnection,
    worker: &str,
    writes: &[&JobWrite],
) -> Result<Vec<CommitOutcome>, DieselError> {
    let mut jobs = JobColumns::default();
    let mut steps = StepColumns::default();
    let mut usage = UsageColumns::default();
    let mut deliveries = DeliveryColumns::default();
    for write in writes {
        jobs.push(write);
        let batch = write.batch();
        for row in &batch.steps {
            steps.push(row);
        }
        for row in &batch.usage {
            usage.push(write.job_id, row);
        }
        if let Change::Finish(finish) = &write.change {
            for row in &finish.deliveries {
                deliveries.push(row);
            }
        }
    }
    let query = diesel::sql_query(WRITE_GROUP)
        .into_boxed::<Pg>()
        .bind::<Text, _>(worker);
    let query = jobs.bind(query);
    let query = steps.bind(query);
    let query = usage.bind(query);
    let query = deliveries.bind(query);
    let written: Vec<Written> = Prepared(query).load(conn).await?;
    let written: HashMap<Uuid, bool> = written
        .into_iter()
        .map(|w| (w.id, w.cancel_requested))
        .collect();
    Ok(writes
        .iter()
        .map(|write| match (written.get(&write.job_id), &write.change) {
            (None, _) => CommitOutcome::LostClaim,
            (Some(&cancel_requested), Change::Progress { .. }) => {
                CommitOutcome::Committed { cancel_requested }
            }
            (Some(_), Change::Finish(_)) => CommitOutcome::Committed {
                cancel_requested: false,
            },
        })
        .collect())
}

type GroupQuery<'a> = diesel::query_builder::BoxedSqlQuery<'a, Pg, diesel::query_builder::SqlQuery>;

/// The per-job parameters, one entry per write.
#[derive(Default)]
struct JobColumns<'a> {
    id: Vec<Uuid>,
    status: Vec<Option<&'static str>>,
    result: Vec<Option<&'a Value>>,
    error_message: Vec<Option<&'a str>>,
    current_step: Vec<Option<&'a str>>,
    completed: Vec<i32>,
    planned: Vec<i32>,
    input_tokens: Vec<i64>,
    output_tokens: Vec<i64>,
    cost_usd: Vec<Decimal>,
}

impl<'a> JobColumns<'a> {
    fn push(&mut self, write: &'a JobWrite) {
        let batch = write.batch();
        let (input_tokens, output_tokens, cost_usd) = batch.totals();
        self.id.push(write.job_id);
        self.completed
            .push(i32::try_from(batch.steps.len()).unwrap_or(i32::MAX));
        self.input_tokens.push(input_tokens);
        self.output_tokens.push(output_tokens);
        self.cost_usd.push(cost_usd);
        match &write.change {
            Change::Progress {
                current_step,
                planned_delta,
                ..
            } => {
                self.status.push(None);
                self.result.push(None);
                self.error_message.push(None);
                self.current_step.push(current_step.as_deref());
                self.planned.push(*planned_delta);
            }
            Change::Finish(finish) => {
                self.status.push(Some(finish.status.as_str()));
                self.result.push(finish.result.as_ref());
                self.error_message.push(finish.error_message.as_deref());
                self.current_step.push(None);
                self.planned.push(finish.planned_delta);
            }
        }
    }

    fn bind(self, query: GroupQuery<'a>) -> GroupQuery<'a> {
        query
            .bind::<Array<SqlUuid>, _>(self.id)
            .bind::<Array<Nullable<Text>>, _>(self.status)
            .bind::<Array<Nullable<Jsonb>>, _>(self.result)
            .bind::<Array<Nullable<Text>>, _>(self.error_message)
            .bind::<Array<Nullable<Text>>, _>(self.current_step)
            .bind::<Array<Int4>, _>(self.completed)
            .bind::<Array<Int4>, _>(self.planned)
            .bind::<Array<Int8>, _>(self.input_tokens)
            .bind::<Array<Int8>, _>(self.output_tokens)
            .bind::<Array<Numeric>, _>(self.cost_usd)
    }
}

/// The parameters of `llm_job_steps` rows.
#[derive(Default)]
struct StepColumns<'a> {
    id: Vec<Uuid>,
    job_id: Vec<Uuid>,
    step_id: Vec<&'a str>,
    step_type: Vec<&'a str>,
    position: Vec<i32>,
    status: Vec<&'a str>,
    input: Vec<Option<&'a Value>>,
    output: Vec<Option<&'a Value>>,
    error_kind: Vec<Option<&'a str>>,
    error_message: Vec<Option<&'a str>>,
    attempts: Vec<i32>,
    input_tokens: Vec<i64>,
    output_tokens: Vec<i64>,
    cost_usd: Vec<Decimal>,
    started_at: Vec<DateTime<Utc>>,
    completed_at: Vec<DateTime<Utc>>,
    duration_ms: Vec<i32>,
}

impl<'a> StepColumns<'a> {
    fn push(&mut self, row: &'a super::models::StepRow) {
        self.id.push(row.id);
        self.job_id.push(row.job_id);
        self.step_id.push(&row.step_id);
        self.step_type.push(&row.step_type);
        self.position.push(row.position);
        self.status.push(&row.status);
        self.input.push(row.input.as_ref());
        self.output.push(row.output.as_ref());
        self.error_kind.push(row.error_kind.as_deref());
        self.error_message.push(row.error_message.as_deref());
        self.attempts.push(row.attempts);
        self.input_tokens.push(row.input_tokens);
        self.output_tokens.push(row.output_tokens);
        self.cost_usd.push(row.cost_usd);
        self.started_at.push(row.started_at);
        self.completed_at.push(row.completed_at);
        self.duration_ms.push(row.duration_ms);
    }

    fn bind(self, query: GroupQuery<'a>) -> GroupQuery<'a> {
        query
            .bind::<Array<SqlUuid>, _>(self.id)
            .bind::<Array<SqlUuid>, _>(self.job_id)
            .bind::<Array<Text>, _>(self.step_id)
            .bind::<Array<Text>, _>(self.step_type)
            .bind::<Array<Int4>, _>(self.position)
            .bind::<Array<Text>, _>(self.status)
            .bind::<Array<Nullable<Jsonb>>, _>(self.input)
            .bind::<Array<Nullable<Jsonb>>, _>(self.output)
            .bind::<Array<Nullable<Text>>, _>(self.error_kind)
            .bind::<Array<Nullable<Text>>, _>(self.error_message)
            .bind::<Array<Int4>, _>(self.attempts)
            .bind::<Array<Int8>, _>(self.input_tokens)
            .bind::<Array<Int8>, _>(self.output_tokens)
            .bind::<Array<Numeric>, _>(self.cost_usd)
            .bind::<Array<Timestamptz>, _>(self.started_at)
            .bind::<Array<Timestamptz>, _>(self.completed_at)
            .bind::<Array<Int4>, _>(self.duration_ms)
    }
}

/// The parameters of `llm_provider_usage` rows, each with the job whose write brings it.
#[derive(Default)]
struct UsageColumns<'a> {
    owner: Vec<Uuid>,
    id: Vec<Uuid>,
    job_id: Vec<Option<Uuid>>,
    step_id: Vec<Option<&'a str>>,
    user_id: Vec<Option<Uuid>>,
    provider: Vec<&'a str>,
    model: Vec<&'a str>,
    input_tokens: Vec<i32>,
    output_tokens: Vec<i32>,
    total_tokens: Vec<i32>,
    cached_input_tokens: Vec<i32>,
    cost_usd: Vec<Decimal>,
    table_cost_usd: Vec<Decimal>,
    provider_cost_usd: Vec<Option<Decimal>>,
    usage_estimated: Vec<bool>,
    provider_request_id: Vec<Option<&'a str>>,
    duration_ms: Vec<i32>,
    created_at: Vec<DateTime<Utc>>,
}

impl<'a> UsageColumns<'a> {
    fn push(&mut self, owner: Uuid, row: &'a super::models::UsageRow) {
        self.owner.push(owner);
        self.id.push(row.id);
        self.job_id.push(row.job_id);
        self.step_id.push(row.step_id.as_deref());
        self.user_id.push(row.user_id);
        self.provider.push(&row.provider);
        self.model.push(&row.model);
        self.input_tokens.push(row.input_tokens);
        self.output_tokens.push(row.output_tokens);
        self.total_tokens.push(row.total_tokens);
        self.cached_input_tokens.push(row.cached_input_tokens);
        self.cost_usd.push(row.cost_usd);
        self.table_cost_usd.push(row.table_cost_usd);
        self.provider_cost_usd.push(row.provider_cost_usd);
        self.usage_estimated.push(row.usage_estimated);
        self.provider_request_id
            .push(row.provider_request_id.as_deref());
        self.duration_ms.push(row.duration_ms);
        self.created_at.push(row.created_at);
    }

    fn bind(self, query: GroupQuery<'a>) -> GroupQuery<'a> {
        query
            .bind::<Array<SqlUuid>, _>(self.owner)
            .bind::<Array<SqlUuid>, _>(self.id)
            .bind::<Array<Nullable<SqlUuid>>, _>(self.job_id)
            .bind::<Array<Nullable<Text>>, _>(self.step_id)
            .bind::<Array<Nullable<SqlUuid>>, _>(self.user_id)
            .bind::<Array<Text>, _>(self.provider)
            .bind::<Array<Text>, _>(self.model)
            .bind::<Array<Int4>, _>(self.input_tokens)
            .bind::<Array<Int4>, _>(self.output_tokens)
            .bind::<Array<Int4>, _>(self.total_tokens)
            .bind::<Array<Int4>, _>(self.cached_input_tokens)
            .bind::<Array<Numeric>, _>(self.cost_usd)
            .bind::<Array<Numeric>, _>(self.table_cost_usd)
            .bind::<Array<Nullable<Numeric>>, _>(self.provider_cost_usd)
            .bind::<Array<Bool>, _>(self.usage_estimated)
            .bind::<Array<Nullable<Text>>, _>(self.provider_request_id)
            .bind::<Array<Int4>, _>(self.duration_ms)
            .bind::<Array<Timestamptz>, _>(self.created_at)
    }
}

/// The parameters of `llm_webhook_deliveries` rows.
#[derive(Default)]
struct DeliveryColumns<'a> {
    id: Vec<Uuid>,
    job_id: Vec<Uuid>,
    url: Vec<&'a str>,
    webhook_id: Vec<&'a str>,
    event_type: Vec<&'a str>,
    payload: Vec<&'a Value>,
    status: Vec<&'a str>,
    attempts: Vec<i32>,
    next_attempt_at: Vec<Option<DateTime<Utc>>>,
    last_status_code: Vec<Option<i32>>,
    last_error: Vec<Option<&'a str>>,
    dead_lettered_at: Vec<Option<DateTime<Utc>>>,
    delivered_at: Vec<Option<DateTime<Utc>>>,
    created_at: Vec<DateTime<Utc>>,
    updated_at: Vec<DateTime<Utc>>,
    job_run: Vec<i32>,
}

impl<'a> DeliveryColumns<'a> {
    fn push(&mut self, row: &'a super::models::DeliveryRow) {
        self.id.push(row.id);
        self.job_id.push(row.job_id);
        self.url.push(&row.url);
        self.webhook_id.push(&row.webhook_id);
        self.event_type.push(&row.event_type);
        self.payload.push(&row.payload);
        self.status.push(&row.status);
        self.attempts.push(row.attempts);
        self.next_attempt_at.push(row.next_attempt_at);
        self.last_status_code.push(row.last_status_code);
        self.last_error.push(row.last_error.as_deref());
        self.dead_lettered_at.push(row.dead_lettered_at);
        self.delivered_at.push(row.delivered_at);
        self.created_at.push(row.created_at);
        self.updated_at.push(row.updated_at);
        self.job_run.push(row.job_run);
    }

    fn bind(self, query: GroupQuery<'a>) -> GroupQuery<'a> {
        query
            .bind::<Array<SqlUuid>, _>(self.id)
            .bind::<Array<SqlUuid>, _>(self.job_id)
            .bind::<Array<Text>, _>(self.url)
            .bind::<Array<Text>, _>(self.webhook_id)
            .bind::<Array<Text>, _>(self.event_type)
            .bind::<Array<Jsonb>, _>(self.payload)
            .bind::<Array<Text>, _>(self.status)
            .bind::<Array<Int4>, _>(self.attempts)
            .bind::<Array<Nullable<Timestamptz>>, _>(self.next_attempt_at)
            .bind::<Array<Nullable<Int4>>, _>(self.last_status_code)
            .bind::<Array<Nullable<Text>>, _>(self.last_error)
            .bind::<Array<Nullable<Timestamptz>>, _>(self.dead_lettered_at)
            .bind::<Array<Nullable<Timestamptz>>, _>(self.delivered_at)
            .bind::<Array<Timestamptz>, _>(self.created_at)
            .bind::<Array<Timestamptz>, _>(self.updated_at)
            .bind::<Array<Int4>, _>(self.job_run)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progress(job_id: Uuid) -> JobWrite {
        JobWrite {
            job_id,
            change: Change::Progress {
                batch: StepBatch::default(),
                current_step: None,
                planned_delta: 0,
            },
        }
    }

    #[test]
    fn a_job_given_twice_is_written_in_consecutive_rounds() {
        let (a, b, c) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let writes = [
            progress(a),
            progress(b),
            progress(a),
            progress(c),
            progress(a),
        ];
        assert_eq!(rounds(&writes), vec![vec![0, 1, 3], vec![2], vec![4]]);
    }
}
