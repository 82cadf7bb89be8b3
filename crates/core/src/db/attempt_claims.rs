//! Group commit of the webhook sender's claims: the attempts of many deliveries, claimed by one
//! statement (see `group` for the writer that gathers them).
//!
//! Each claim is [`deliveries::claim_attempt`]'s conditional update, made for many deliveries
//! at once: a delivery claims when the previous attempt is the last one recorded and it is
//! waiting, or when an earlier claim of the same attempt was abandoned for longer than the claim
//! timeout. Each claim brings its own token; a delivery asked for twice in one group is claimed
//! once, and the other request answers `None`, as if the attempt had been made already.
//!
//! A statement PostgreSQL refuses is tried again claim by claim, so only a bad one gets the
//! error; a failure that may have reached the server is not retried.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use diesel::pg::Pg;
use diesel::result::Error as DieselError;
use diesel::sql_types::{Array, Int4, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel::QueryableByName;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::deliveries::{self, Claim};
use super::group;
use super::models::DeliveryRow;
use super::prepared::Prepared;
use super::DbError;

/// One attempt to claim: `DeliveryMessage { delivery_id, attempt }`.
#[derive(Debug, Clone, Copy)]
pub struct ClaimRequest {
    pub delivery_id: Uuid,
    pub attempt: i32,
}

/// The claim, or `None` when the attempt is not (or no longer) this sender's to make. The error
/// is shared by the requests that failed together.
pub type ClaimResult = Result<Option<Claim>, Arc<DbError>>;

/// Claims every requested attempt for `sender`, as one statement when PostgreSQL accepts it.
/// Returns one answer per request, in order.
pub async fn claim_attempts(
    conn: &mut AsyncPgConnection,
    requests: &[ClaimRequest],
    claim_timeout: Duration,
    sender: &str,
) -> Vec<ClaimResult> {
    let tokens: Vec<Uuid> = requests.iter().map(|_| Uuid::now_v7()).collect();
    match claim_once(conn, requests, &tokens, claim_timeout, sender).await {
        Ok(mut claimed) => tokens
            .iter()
            .map(|token| Ok(claimed.remove(token)))
            .collect(),
        Err(e) => match group::failed_together(e, requests.len()) {
            Some(answers) => answers,
            None => {
                let mut answers = Vec::with_capacity(requests.len());
                for request in requests {
                    let answer = deliveries::claim_attempt(
                        conn,
                        request.delivery_id,
                        request.attempt,
                        claim_timeout,
                        sender,
                    )
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
struct Claimed {
    #[diesel(embed)]
    delivery: DeliveryRow,
    #[diesel(sql_type = SqlUuid)]
    token: Uuid,
    #[diesel(sql_type = Text)]
    next_trigger: String,
    #[diesel(sql_type = Nullable<Text>)]
    job_secret: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    traceparent: Option<String>,
}

/// $1–$3 each request's delivery, attempt number and new token; $4 the sender; $5 the time
/// before which a claim of the same attempt counts as abandoned. The job's secret and trace
/// context come back with the claim, so the sender needs no second query.
const CLAIM_ATTEMPTS: &str = r#"
WITH c AS (
    SELECT * FROM unnest($1::uuid[], $2::int4[], $3::uuid[]) AS c(id, attempt, token)
)
UPDATE llm_webhook_deliveries AS d SET
    status = 'delivering',
    attempts = c.attempt,
    claim_token = c.token,
    claimed_by = $4,
    updated_at = now()
FROM c
WHERE d.id = c.id
  AND ((d.attempts = c.attempt - 1 AND d.status IN ('pending', 'failed'))
       OR (d.attempts = c.attempt AND d.status = 'delivering' AND d.updated_at < $5))
RETURNING d.id, d.job_id, d.url, d.webhook_id, d.event_type, d.payload, d.status, d.attempts,
    d.next_attempt_at, d.last_status_code, d.last_error, d.dead_lettered_at, d.delivered_at,
    d.created_at, d.updated_at, d.job_run, c.token, d.next_trigger,
    (SELECT j.webhook_secret FROM llm_workflow_jobs j WHERE j.id = d.job_id) AS job_secret,
    (SELECT j.traceparent FROM llm_workflow_jobs j WHERE j.id = d.job_id) AS traceparent
"#;

/// Claims by one statement; answers the claims made, by token.
async fn claim_once(
    conn: &mut AsyncPgConnection,
    requests: &[ClaimRequest],
    tokens: &[Uuid],
    claim_timeout: Duration,
    sender: &str,
) -> Result<HashMap<Uuid, Claim>, DieselError> {
    let abandoned_before = Utc::now() - claim_timeout;
    let ids: Vec<Uuid> = requests.iter().map(|r| r.delivery_id).collect();
    let attempts: Vec<i32> = requests.iter().map(|r| r.attempt).collect();
    let query = diesel::sql_query(CLAIM_ATTEMPTS)
        .into_boxed::<Pg>()
        .bind::<Array<SqlUuid>, _>(ids)
        .bind::<Array<Int4>, _>(attempts)
        .bind::<Array<SqlUuid>, _>(tokens)
        .bind::<Text, _>(sender)
        .bind::<Timestamptz, _>(abandoned_before);
    let claimed: Vec<Claimed> = Prepared(query).load(conn).await?;
    Ok(claimed
        .into_iter()
        .map(|c| {
            let claim = Claim {
                delivery: c.delivery,
                trigger: c.next_trigger,
                token: c.token,
                job_secret: c.job_secret,
                traceparent: c.traceparent,
            };
            (c.token, claim)
        })
        .collect())
}
