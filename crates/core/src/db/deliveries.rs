//! Webhook delivery queries. The delivery row is the record: status, attempts so far and the
//! time of the next attempt. Sending attempt N first claims it with a conditional UPDATE, so a
//! delivery pushed twice is sent once per attempt number.

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::dsl::now;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde_json::Value;
use uuid::Uuid;

use super::models::{AttemptRow, DeliveryRow};
use super::prepared::Prepared;
use super::schema::{llm_webhook_attempts as attempts, llm_webhook_deliveries as deliveries};
use super::DbError;
use crate::DeliveryId;

/// Delivery states as stored.
pub mod state {
    pub const PENDING: &str = "pending";
    pub const DELIVERING: &str = "delivering";
    pub const DELIVERED: &str = "delivered";
    /// Failed at least once; another attempt is scheduled at `next_attempt_at`.
    pub const FAILED: &str = "failed";
    /// No attempts left (or the receiver said 410 Gone, or the URL is blocked).
    pub const DEAD: &str = "dead";
}

/// What starts an attempt, as stored in `next_trigger` and in each attempt row.
pub mod trigger {
    /// The first attempt and the retries of the schedule.
    pub const SCHEDULED: &str = "scheduled";
    /// An admin replay of a dead-lettered delivery.
    pub const MANUAL: &str = "manual";
}

/// The terminal events: one delivery per (job, URL, run) each; any other event type may repeat.
pub const TERMINAL_EVENTS: [&str; 3] = [
    "workflow.completed",
    "workflow.failed",
    "workflow.cancelled",
];

/// Records a webhook event owed to `url` for a job and returns its delivery id. The row is due
/// at once (`pending`, attempt 1 next); the caller pushes `DeliveryMessage { delivery_id,
/// attempt: 1 }` after its transaction commits, and the reconciler pushes it otherwise.
///
/// Any event type is accepted (`workflow.progress`, `workflow.chunk`, ...): each call makes a new
/// delivery with its own `webhook-id`. A terminal event (`workflow.completed` /
/// `workflow.failed` / `workflow.cancelled`) is idempotent per (job, URL) for the job's first
/// run: a second call returns the first delivery's id.
/// A payload object without `type` gets `type: event_type`.
pub async fn enqueue_event(
    conn: &mut AsyncPgConnection,
    job_id: Uuid,
    url: &str,
    event_type: &str,
    payload: Value,
) -> Result<DeliveryId, DbError> {
    let row = new_delivery(job_id, url, event_type, payload);
    let inserted: Option<Uuid> = diesel::insert_into(deliveries::table)
        .values(&row)
        .on_conflict_do_nothing()
        .returning(deliveries::id)
        .get_result(conn)
        .await
        .optional()?;
    if let Some(id) = inserted {
        return Ok(DeliveryId(id));
    }
    // Only the terminal events' unique index can refuse the row: return the existing delivery.
    Ok(DeliveryId(
        deliveries::table
            .filter(deliveries::job_id.eq(job_id))
            .filter(deliveries::url.eq(url))
            .filter(deliveries::event_type.eq(event_type))
            .filter(deliveries::job_run.eq(0))
            .select(deliveries::id)
            .first(conn)
            .await?,
    ))
}

/// A new pending delivery row, due now, with a fresh `msg_…` webhook id.
pub fn new_delivery(job_id: Uuid, url: &str, event_type: &str, mut payload: Value) -> DeliveryRow {
    if let Some(object) = payload.as_object_mut() {
        object
            .entry("type")
            .or_insert_with(|| Value::String(event_type.to_owned()));
    }
    let at = Utc::now();
    let id = Uuid::now_v7();
    DeliveryRow {
        id,
        job_id,
        url: url.to_owned(),
        webhook_id: format!("msg_{}", id.simple()),
        event_type: event_type.to_owned(),
        payload,
        status: state::PENDING.to_owned(),
        attempts: 0,
        next_attempt_at: Some(at),
        last_status_code: None,
        last_error: None,
        dead_lettered_at: None,
        delivered_at: None,
        created_at: at,
        updated_at: at,
        job_run: 0,
    }
}

pub async fn find(conn: &mut AsyncPgConnection, id: Uuid) -> Result<Option<DeliveryRow>, DbError> {
    Ok(deliveries::table
        .find(id)
        .select(DeliveryRow::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// A claimed attempt: the delivery, what started the attempt, and the token that alone may
/// record its result.
#[derive(Debug, Clone)]
pub struct Claim {
    pub delivery: DeliveryRow,
    /// [`trigger::SCHEDULED`] or [`trigger::MANUAL`].
    pub trigger: String,
    pub token: Uuid,
    /// The job's own `webhook_secret`, if it gave one (read with the claim).
    pub job_secret: Option<String>,
    /// The job's trace context (`traceparent`), when its submit was traced (read with the claim).
    pub traceparent: Option<String>,
}

/// Claims attempt number `attempt` of a delivery: allowed when the previous attempt is the last
/// one recorded and the delivery is waiting (`pending` or `failed`; a replayed delivery is
/// `pending` with `next_trigger = manual`), or when an earlier claim of this same attempt was
/// abandoned (its sender died between sending and recording) for longer than `claim_timeout`.
/// Each claim gets a new token; [`record_attempt`] only accepts the latest one. `sender` is the
/// claiming process's name in the worker registry: when its heartbeat lapses, the reconciler
/// gives the attempt back at once ([`release_lost_claims`]).
pub async fn claim_attempt(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    attempt: i32,
    claim_timeout: Duration,
    sender: &str,
) -> Result<Option<Claim>, DbError> {
    let abandoned_before: DateTime<Utc> = Utc::now() - claim_timeout;
    let token = Uuid::now_v7();
    // The job's secret comes back with the claim, so the sender needs no second query.
    let job_secret = diesel::dsl::sql::<diesel::sql_types::Nullable<diesel::sql_types::Text>>(
        "(SELECT j.webhook_secret FROM llm_workflow_jobs j \
          WHERE j.id = llm_webhook_deliveries.job_id)",
    );
    let traceparent = diesel::dsl::sql::<diesel::sql_types::Nullable<diesel::sql_types::Text>>(
        "(SELECT j.traceparent FROM llm_workflow_jobs j \
          WHERE j.id = llm_webhook_deliveries.job_id)",
    );
    let claimed: Option<(DeliveryRow, String, Option<String>, Option<String>)> = Prepared(
        diesel::update(deliveries::table.find(id))
            .filter(
                deliveries::attempts
                    .eq(attempt - 1)
                    .and(deliveries::status.eq_any([state::PENDING, state::FAILED]))
                    .or(deliveries::attempts
                        .eq(attempt)
                        .and(deliveries::status.eq(state::DELIVERING))
                        .and(deliveries::updated_at.lt(abandoned_before))),
            )
            .set((
                deliveries::status.eq(state::DELIVERING),
                deliveries::attempts.eq(attempt),
                deliveries::claim_token.eq(Some(token)),
                deliveries::claimed_by.eq(Some(sender)),
                deliveries::updated_at.eq(now),
            ))
            .returning((
                DeliveryRow::as_returning(),
                deliveries::next_trigger,
                job_secret,
                traceparent,
            )),
    )
    .get_result(conn)
    .await
    .optional()?;
    Ok(
        claimed.map(|(delivery, trigger, job_secret, traceparent)| Claim {
            delivery,
            trigger,
            token,
            job_secret,
            traceparent,
        }),
    )
}

/// Gives back an attempt a stopping sender claimed and did not finish: the delivery waits for
/// that same attempt again (`pending`, the attempt count as before the claim), for any sender to
/// claim at once. Only while `token` still holds the claim; whether it did.
pub async fn release_attempt(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    token: Uuid,
) -> Result<bool, DbError> {
    let updated = diesel::update(deliveries::table.find(id))
        .filter(deliveries::status.eq(state::DELIVERING))
        .filter(deliveries::claim_token.eq(token))
        .set((
            deliveries::status.eq(state::PENDING),
            deliveries::attempts.eq(deliveries::attempts - 1),
            deliveries::claim_token.eq(None::<Uuid>),
            deliveries::claimed_by.eq(None::<String>),
            deliveries::updated_at.eq(now),
        ))
        .execute(conn)
        .await?;
    Ok(updated == 1)
}

/// An attempt given back because its sender was lost: the delivery is `pending` again, and the
/// message to push is `DeliveryMessage { delivery_id: id, attempt }` (the same attempt number).
#[derive(Clone, Debug, PartialEq, Eq, QueryableByName)]
pub struct ReleasedAttempt {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub id: Uuid,
    #[diesel(sql_type = diesel::sql_types::Integer)]
    pub attempt: i32,
}

/// Gives back every attempt claimed by a webhook sender without a registry heartbeat within
/// `lost_after` (killed, cut off, or gone from `llm_workers`), as [`release_attempt`] does for a
/// stopping sender: the delivery waits for that same attempt again, for any sender to claim at
/// once. A claim younger than `lost_after` is left alone (its sender may have claimed before its
/// first heartbeat was written). Claims without a recorded sender wait for the claim timeout.
/// Should the lost sender still be running, its `record_attempt` finds the token changed and
/// writes nothing; the receiver may see the attempt twice, with the same `webhook-id`.
pub async fn release_lost_claims(
    conn: &mut AsyncPgConnection,
    lost_after: Duration,
) -> Result<Vec<ReleasedAttempt>, DbError> {
    let millis = i64::try_from(lost_after.as_millis()).unwrap_or(i64::MAX);
    // `next_attempt_at` stays set while an attempt is claimed, so the condition on it lets the
    // scan use the small partial index of undelivered rows.
    Ok(diesel::sql_query(
        "UPDATE llm_webhook_deliveries d \
            SET status = 'pending', attempts = d.attempts - 1, claim_token = NULL, \
                claimed_by = NULL, updated_at = now() \
          WHERE d.status = 'delivering' \
            AND d.next_attempt_at <= now() \
            AND d.claimed_by IS NOT NULL \
            AND d.updated_at < now() - make_interval(secs => $1::float8 / 1000) \
            AND NOT EXISTS ( \
                SELECT 1 FROM llm_workers w \
                 WHERE w.name = d.claimed_by \
                   AND w.last_heartbeat >= now() - make_interval(secs => $1::float8 / 1000)) \
         RETURNING d.id, d.attempts + 1 AS attempt",
    )
    .bind::<diesel::sql_types::BigInt, _>(millis)
    .load(conn)
    .await?)
}

/// What an attempt leads to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttemptOutcome {
    Delivered,
    /// Try again at this time.
    RetryAt(DateTime<Utc>),
    /// No further attempts: dead-lettered.
    Dead,
}

/// Records one attempt and moves the delivery accordingly, in one transaction — only while
/// `token` still holds the claim. Returns false (and writes nothing) when the claim was taken
/// over meanwhile (this sender was presumed dead and the attempt was made again).
pub async fn record_attempt(
    conn: &mut AsyncPgConnection,
    attempt: &AttemptRow,
    outcome: AttemptOutcome,
    token: Uuid,
) -> Result<bool, DbError> {
    conn.transaction(async |conn| {
        let target = deliveries::table
            .find(attempt.delivery_id)
            .filter(deliveries::status.eq(state::DELIVERING))
            .filter(deliveries::claim_token.eq(token));
        let common = (
            deliveries::last_status_code.eq(attempt.status_code),
            deliveries::last_error.eq(&attempt.error_message),
            deliveries::claim_token.eq(None::<Uuid>),
            deliveries::claimed_by.eq(None::<String>),
            deliveries::next_trigger.eq(trigger::SCHEDULED),
            deliveries::updated_at.eq(now),
        );
        let updated = match outcome {
            AttemptOutcome::Delivered => {
                Prepared(diesel::update(target).set((
                    deliveries::status.eq(state::DELIVERED),
                    deliveries::delivered_at.eq(now),
                    deliveries::next_attempt_at.eq(None::<DateTime<Utc>>),
                    common,
                )))
                .execute(conn)
                .await?
            }
            AttemptOutcome::RetryAt(at) => {
                Prepared(diesel::update(target).set((
                    deliveries::status.eq(state::FAILED),
                    deliveries::next_attempt_at.eq(Some(at)),
                    common,
                )))
                .execute(conn)
                .await?
            }
            AttemptOutcome::Dead => {
                Prepared(diesel::update(target).set((
                    deliveries::status.eq(state::DEAD),
                    deliveries::dead_lettered_at.eq(now),
                    deliveries::next_attempt_at.eq(None::<DateTime<Utc>>),
                    common,
                )))
                .execute(conn)
                .await?
            }
        };
        if updated == 0 {
            return Ok(false);
        }
        Prepared(
            diesel::insert_into(attempts::table)
                .values(attempt)
                .on_conflict_do_nothing(),
        )
        .execute(conn)
        .await?;
        Ok::<_, diesel::result::Error>(true)
    })
    .await
    .map_err(DbError::from)
}

/// What an admin replay did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replay {
    /// The delivery is pending again with a manual attempt of this number due now.
    Queued {
        attempt: i32,
    },
    NotFound,
    /// Only dead deliveries can be replayed; this one is in another state.
    NotDead {
        status: String,
    },
}

/// Turns a dead delivery back into a pending one whose next attempt is manual and due now
/// (`dead_lettered_at` is cleared; the attempt rows keep the history). The caller pushes
/// `DeliveryMessage { delivery_id, attempt }`; the reconciler pushes it otherwise.
pub async fn replay(conn: &mut AsyncPgConnection, id: Uuid) -> Result<Replay, DbError> {
    let attempts_so_far: Option<i32> = diesel::update(deliveries::table.find(id))
        .filter(deliveries::status.eq(state::DEAD))
        .set((
            deliveries::status.eq(state::PENDING),
            deliveries::next_trigger.eq(trigger::MANUAL),
            deliveries::next_attempt_at.eq(now),
            deliveries::dead_lettered_at.eq(None::<DateTime<Utc>>),
            deliveries::claim_token.eq(None::<Uuid>),
            deliveries::claimed_by.eq(None::<String>),
            deliveries::updated_at.eq(now),
        ))
        .returning(deliveries::attempts)
        .get_result(conn)
        .await
        .optional()?;
    if let Some(attempts) = attempts_so_far {
        return Ok(Replay::Queued {
            attempt: attempts + 1,
        });
    }
    Ok(match find(conn, id).await? {
        None => Replay::NotFound,
        Some(row) => Replay::NotDead { status: row.status },
    })
}

/// A dead-lettered delivery as the admin list shows it.
#[derive(Debug, Clone, Queryable, serde::Serialize)]
pub struct DeadLetter {
    pub id: Uuid,
    pub job_id: Uuid,
    pub url: String,
    pub event_type: String,
    pub webhook_id: String,
    pub attempts: i32,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    pub dead_lettered_at: Option<DateTime<Utc>>,
}

/// Dead deliveries, most recently dead first, and how many there are in all.
pub async fn dead_letters(
    conn: &mut AsyncPgConnection,
    limit: i64,
    offset: i64,
) -> Result<(Vec<DeadLetter>, i64), DbError> {
    // Dead deliveries are the ones with `dead_lettered_at` set: the predicate of
    // `idx_llm_webhook_deliveries_dead`, so neither query reads the delivered ones.
    let total: i64 = deliveries::table
        .filter(deliveries::dead_lettered_at.is_not_null())
        .filter(deliveries::status.eq(state::DEAD))
        .count()
        .get_result(conn)
        .await?;
    let page = deliveries::table
        .filter(deliveries::dead_lettered_at.is_not_null())
        .filter(deliveries::status.eq(state::DEAD))
        .order((deliveries::dead_lettered_at.desc(), deliveries::id.desc()))
        .limit(limit)
        .offset(offset)
        .select((
            deliveries::id,
            deliveries::job_id,
            deliveries::url,
            deliveries::event_type,
            deliveries::webhook_id,
            deliveries::attempts,
            deliveries::last_status_code,
            deliveries::last_error,
            deliveries::dead_lettered_at,
        ))
        .load(conn)
        .await?;
    Ok((page, total))
}

/// The delivery of a job's terminal event (`workflow.completed` / `failed` / `cancelled`) of
/// its latest run, first URL.
pub async fn terminal_of_job(
    conn: &mut AsyncPgConnection,
    job_id: Uuid,
) -> Result<Option<DeliveryRow>, DbError> {
    Ok(deliveries::table
        .filter(deliveries::job_id.eq(job_id))
        .filter(deliveries::event_type.eq_any(TERMINAL_EVENTS))
        .order((deliveries::job_run.desc(), deliveries::created_at.asc()))
        .select(DeliveryRow::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// Deliveries of one job.
pub async fn of_job(
    conn: &mut AsyncPgConnection,
    job_id: Uuid,
) -> Result<Vec<DeliveryRow>, DbError> {
    Ok(deliveries::table
        .filter(deliveries::job_id.eq(job_id))
        .order(deliveries::created_at.asc())
        .select(DeliveryRow::as_select())
        .load(conn)
        .await?)
}

/// A delivery the reconciler should (re-)push: `(id, next attempt number)`.
#[derive(Debug, Queryable)]
pub struct DueDelivery {
    pub id: Uuid,
    pub status: String,
    pub attempts: i32,
}

impl DueDelivery {
    /// The attempt number the next push should carry.
    pub fn next_attempt(&self) -> i32 {
        if self.status == state::DELIVERING {
            self.attempts
        } else {
            self.attempts + 1
        }
    }
}

/// Deliveries that are due (waiting past their time by `grace`) or whose sender vanished
/// mid-attempt more than `claim_timeout` ago. Paged by id.
pub async fn due(
    conn: &mut AsyncPgConnection,
    grace: Duration,
    claim_timeout: Duration,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<DueDelivery>, DbError> {
    let due_before: DateTime<Utc> = Utc::now() - grace;
    let abandoned_before: DateTime<Utc> = Utc::now() - claim_timeout;
    Ok(deliveries::table
        // Every delivery still owed an attempt has a next attempt time (delivered and dead ones
        // have none): the predicate of `idx_llm_webhook_deliveries_owed`, so a pass walks only
        // those, however many were delivered.
        .filter(deliveries::next_attempt_at.is_not_null())
        .filter(deliveries::id.gt(after.unwrap_or(Uuid::nil())))
        .filter(
            deliveries::status
                .eq_any([state::PENDING, state::FAILED])
                .and(deliveries::next_attempt_at.lt(due_before))
                .or(deliveries::status
                    .eq(state::DELIVERING)
                    .and(deliveries::updated_at.lt(abandoned_before))),
        )
        .order(deliveries::id.asc())
        .limit(limit)
        .select((deliveries::id, deliveries::status, deliveries::attempts))
        .load(conn)
        .await?)
}

/// Every attempt at every delivery of one job, oldest first.
pub async fn attempts_of_job(
    conn: &mut AsyncPgConnection,
    job_id: Uuid,
) -> Result<Vec<super::models::AttemptRow>, DbError> {
    use super::schema::llm_webhook_attempts as attempts;
    Ok(attempts::table
        .filter(attempts::job_id.eq(job_id))
        .order((attempts::attempted_at.asc(), attempts::attempt_number.asc()))
        .select(super::models::AttemptRow::as_select())
        .load(conn)
        .await?)
}
