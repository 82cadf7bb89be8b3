//! Group commit of the webhook sender's attempt records: the attempts of many deliveries,
//! recorded by one statement (see `group` for the writer that gathers them).
//!
//! Each record does what [`deliveries::record_attempt`] does alone: it moves its delivery
//! (delivered, failed with the next attempt's time, or dead) and inserts its attempt row, only
//! while its claim token still holds the delivery. A record whose claim was taken over writes
//! nothing and answers `false`; the others commit.
//!
//! A statement PostgreSQL refuses (a row breaking a constraint) wrote nothing, for any record:
//! each record is then written alone, so only the bad one gets the error. A failure that may
//! have reached the server (a connection lost mid-statement) is not retried: those records get
//! the error, and their deliveries stay claimed until the reconciler releases them.

use std::collections::HashSet;
use std::sync::Arc;

use diesel::pg::Pg;
use diesel::result::Error as DieselError;
use diesel::sql_types::{Array, Bool, Int4, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel::QueryableByName;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::deliveries::{self, state, AttemptOutcome};
use super::group;
use super::models::AttemptRow;
use super::prepared::Prepared;
use super::DbError;

/// One attempt to record, with what it leads to and the claim it was made under.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    pub row: AttemptRow,
    pub outcome: AttemptOutcome,
    pub token: Uuid,
}

/// Whether a record was written (`false`: its claim was taken over). The error is shared by
/// the records that failed together.
pub type RecordResult = Result<bool, Arc<DbError>>;

/// Records every attempt, as one statement when PostgreSQL accepts it (see the module docs).
/// Returns one answer per record, in order.
pub async fn record_attempts(
    conn: &mut AsyncPgConnection,
    records: &[AttemptRecord],
) -> Vec<RecordResult> {
    match record_once(conn, records).await {
        Ok(recorded) => records
            .iter()
            .map(|record| Ok(recorded.contains(&record.row.id)))
            .collect(),
        Err(e) => match group::failed_together(e, records.len()) {
            Some(answers) => answers,
            None => {
                // Refused, so nothing of it was written: each alone finds the bad one.
                let mut answers = Vec::with_capacity(records.len());
                for record in records {
                    let answer =
                        deliveries::record_attempt(conn, &record.row, record.outcome, record.token)
                            .await
                            .map_err(Arc::new);
                    answers.push(answer);
                }
                answers
            }
        },
    }
}

#[derive(QueryableByName)]
struct Recorded {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
}

/// $1–$15 the attempt rows' columns; $16 each claim's token; $17 the delivery's new status.
/// The delivery's `next_attempt_at`, `last_status_code` and `last_error` are the attempt's
/// `next_retry_at`, `status_code` and `error_message`.
const RECORD_ATTEMPTS: &str = r#"
WITH a AS (
    SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::int4[], $6::text[],
        $7::int4[], $8::bool[], $9::text[], $10::text[], $11::text[], $12::text[], $13::int4[],
        $14::timestamptz[], $15::timestamptz[], $16::uuid[], $17::text[])
        AS a(id, delivery_id, job_id, webhook_url, attempt_number, trigger, status_code,
             success, error_class, error_message, response_body, remote_addr, duration_ms,
             next_retry_at, attempted_at, token, status)
), moved AS (
    UPDATE llm_webhook_deliveries AS d SET
        status = a.status,
        delivered_at = CASE WHEN a.status = 'delivered' THEN now() ELSE d.delivered_at END,
        dead_lettered_at = CASE WHEN a.status = 'dead' THEN now() ELSE d.dead_lettered_at END,
        next_attempt_at = a.next_retry_at,
        last_status_code = a.status_code,
        last_error = a.error_message,
        claim_token = NULL,
        claimed_by = NULL,
        next_trigger = 'scheduled',
        updated_at = now()
    FROM a
    WHERE d.id = a.delivery_id AND d.status = 'delivering' AND d.claim_token = a.token
    RETURNING a.id
), recorded AS (
    INSERT INTO llm_webhook_attempts (id, delivery_id, job_id, webhook_url, attempt_number,
        trigger, status_code, success, error_class, error_message, response_body, remote_addr,
        duration_ms, next_retry_at, attempted_at)
    SELECT a.id, a.delivery_id, a.job_id, a.webhook_url, a.attempt_number, a.trigger,
        a.status_code, a.success, a.error_class, a.error_message, a.response_body,
        a.remote_addr, a.duration_ms, a.next_retry_at, a.attempted_at
    FROM a JOIN moved ON moved.id = a.id
    ON CONFLICT DO NOTHING
)
SELECT id FROM moved
"#;

/// The new status of the delivery an attempt leads to.
fn status_after(outcome: AttemptOutcome) -> &'static str {
    match outcome {
        AttemptOutcome::Delivered => state::DELIVERED,
        AttemptOutcome::RetryAt(_) => state::FAILED,
        AttemptOutcome::Dead => state::DEAD,
    }
}

/// Writes the records by one statement; answers the attempt ids that were recorded.
async fn record_once(
    conn: &mut AsyncPgConnection,
    records: &[AttemptRecord],
) -> Result<HashSet<Uuid>, DieselError> {
    let n = records.len();
    let mut id = Vec::with_capacity(n);
    let mut delivery_id = Vec::with_capacity(n);
    let mut job_id = Vec::with_capacity(n);
    let mut webhook_url = Vec::with_capacity(n);
    let mut attempt_number = Vec::with_capacity(n);
    let mut trigger = Vec::with_capacity(n);
    let mut status_code = Vec::with_capacity(n);
    let mut success = Vec::with_capacity(n);
    let mut error_class = Vec::with_capacity(n);
    let mut error_message = Vec::with_capacity(n);
    let mut response_body = Vec::with_capacity(n);
    let mut remote_addr = Vec::with_capacity(n);
    let mut duration_ms = Vec::with_capacity(n);
    let mut next_retry_at = Vec::with_capacity(n);
    let mut attempted_at = Vec::with_capacity(n);
    let mut token = Vec::with_capacity(n);
    let mut status = Vec::with_capacity(n);
    for record in records {
        let row = &record.row;
        id.push(row.id);
        delivery_id.push(row.delivery_id);
        job_id.push(row.job_id);
        webhook_url.push(row.webhook_url.as_str());
        attempt_number.push(row.attempt_number);
        trigger.push(row.trigger.as_str());
        status_code.push(row.status_code);
        success.push(row.success);
        error_class.push(row.error_class.as_deref());
        error_message.push(row.error_message.as_deref());
        response_body.push(row.response_body.as_deref());
        remote_addr.push(row.remote_addr.as_deref());
        duration_ms.push(row.duration_ms);
        next_retry_at.push(row.next_retry_at);
        attempted_at.push(row.attempted_at);
        token.push(record.token);
        status.push(status_after(record.outcome));
    }
    let query = diesel::sql_query(RECORD_ATTEMPTS)
        .into_boxed::<Pg>()
        .bind::<Array<SqlUuid>, _>(id)
        .bind::<Array<SqlUuid>, _>(delivery_id)
        .bind::<Array<SqlUuid>, _>(job_id)
        .bind::<Array<Text>, _>(webhook_url)
        .bind::<Array<Int4>, _>(attempt_number)
        .bind::<Array<Text>, _>(trigger)
        .bind::<Array<Nullable<Int4>>, _>(status_code)
        .bind::<Array<Bool>, _>(success)
        .bind::<Array<Nullable<Text>>, _>(error_class)
        .bind::<Array<Nullable<Text>>, _>(error_message)
        .bind::<Array<Nullable<Text>>, _>(response_body)
        .bind::<Array<Nullable<Text>>, _>(remote_addr)
        .bind::<Array<Int4>, _>(duration_ms)
        .bind::<Array<Nullable<Timestamptz>>, _>(next_retry_at)
        .bind::<Array<Timestamptz>, _>(attempted_at)
        .bind::<Array<SqlUuid>, _>(token)
        .bind::<Array<Text>, _>(status);
    let recorded: Vec<Recorded> = Prepared(query).load(conn).await?;
    Ok(recorded.into_iter().map(|r| r.id).collect())
}
