//! Webhook delivery queries. The delivery row is the record: status, attempts so far and the
//! time of the next attempt. Sending attempt N first claims it with a conditional UPDATE, so a
//! delivery pushed twice is sent once per attempt number.

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::dsl::now;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::models::{AttemptRow, DeliveryRow};
use super::schema::{llm_webhook_attempts as attempts, llm_webhook_deliveries as deliveries};
use super::DbError;

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

pub async fn find(conn: &mut AsyncPgConnection, id: Uuid) -> Result<Option<DeliveryRow>, DbError> {
    Ok(deliveries::table
        .find(id)
        .select(DeliveryRow::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// Claims attempt number `attempt` of a delivery: allowed when the previous attempt is the last
/// one recorded and the delivery is waiting, or when an earlier claim of this same attempt was
/// abandoned (its sender died between sending and recording) for longer than `claim_timeout`.
pub async fn claim_attempt(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    attempt: i32,
    claim_timeout: Duration,
) -> Result<Option<DeliveryRow>, DbError> {
    let abandoned_before: DateTime<Utc> = Utc::now() - claim_timeout;
    Ok(diesel::update(deliveries::table.find(id))
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
            deliveries::updated_at.eq(now),
        ))
        .returning(DeliveryRow::as_returning())
        .get_result(conn)
        .await
        .optional()?)
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

/// Records one attempt and moves the delivery accordingly, in one transaction.
pub async fn record_attempt(
    conn: &mut AsyncPgConnection,
    attempt: &AttemptRow,
    outcome: AttemptOutcome,
) -> Result<(), DbError> {
    conn.transaction(async |conn| {
        diesel::insert_into(attempts::table)
            .values(attempt)
            .on_conflict_do_nothing()
            .execute(conn)
            .await?;
        let target = deliveries::table.find(attempt.delivery_id);
        let common = (
            deliveries::last_status_code.eq(attempt.status_code),
            deliveries::last_error.eq(&attempt.error_message),
            deliveries::updated_at.eq(now),
        );
        match outcome {
            AttemptOutcome::Delivered => {
                diesel::update(target)
                    .set((
                        deliveries::status.eq(state::DELIVERED),
                        deliveries::delivered_at.eq(now),
                        deliveries::next_attempt_at.eq(None::<DateTime<Utc>>),
                        common,
                    ))
                    .execute(conn)
                    .await?
            }
            AttemptOutcome::RetryAt(at) => {
                diesel::update(target)
                    .set((
                        deliveries::status.eq(state::FAILED),
                        deliveries::next_attempt_at.eq(Some(at)),
                        common,
                    ))
                    .execute(conn)
                    .await?
            }
            AttemptOutcome::Dead => {
                diesel::update(target)
                    .set((
                        deliveries::status.eq(state::DEAD),
                        deliveries::dead_lettered_at.eq(now),
                        deliveries::next_attempt_at.eq(None::<DateTime<Utc>>),
                        common,
                    ))
                    .execute(conn)
                    .await?
            }
        };
        Ok::<_, diesel::result::Error>(())
    })
    .await?;
    Ok(())
}

/// Attempts recorded for a delivery, oldest first.
pub async fn attempts_of(
    conn: &mut AsyncPgConnection,
    delivery_id: Uuid,
) -> Result<Vec<AttemptRow>, DbError> {
    Ok(attempts::table
        .filter(attempts::delivery_id.eq(delivery_id))
        .order(attempts::attempted_at.asc())
        .select(AttemptRow::as_select())
        .load(conn)
        .await?)
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

/// Records one extra webhook event for a job (progress, chunk…) as a delivery due now, and
/// returns its id for the caller to push. Each event is its own delivery with its own
/// `webhook-id`, signed and retried like the final one.
pub async fn enqueue_event(
    conn: &mut AsyncPgConnection,
    job_id: Uuid,
    url: &str,
    event_type: &str,
    payload: serde_json::Value,
) -> Result<Uuid, DbError> {
    let id = Uuid::now_v7();
    let now_ts = Utc::now();
    let row = DeliveryRow {
        id,
        job_id,
        url: url.to_owned(),
        webhook_id: format!("msg_{}", id.simple()),
        event_type: event_type.to_owned(),
        payload,
        status: state::PENDING.to_owned(),
        attempts: 0,
        next_attempt_at: Some(now_ts),
        last_status_code: None,
        last_error: None,
        dead_lettered_at: None,
        delivered_at: None,
        created_at: now_ts,
        updated_at: now_ts,
    };
    diesel::insert_into(deliveries::table)
        .values(&row)
        .execute(conn)
        .await?;
    Ok(id)
}
