//! Retention: what the maintenance pass deletes so that the tables stop growing with history.
//! Finished jobs older than `JOB_RETENTION_DAYS` go with every row of theirs (steps, usage,
//! webhook deliveries and attempts), and expired external-API cache entries go too. Both
//! delete in small batches, each its own short transaction, so a pass never holds many locks
//! or one long transaction while the workers run.

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::sql_types::{Array, BigInt, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::DbError;

/// Rows deleted per transaction.
pub const BATCH: i64 = 1000;

#[derive(diesel::QueryableByName)]
struct Id {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
}

/// Deletes one batch of finished jobs whose `completed_at` is before `before`, with their rows;
/// returns how many jobs went. A job with a webhook delivery still owed (pending, in flight, or
/// waiting for a retry) is kept until the delivery ends. Rows locked by another transaction
/// are skipped, not waited for. (A delivery still owed has a `next_attempt_at`: that is the
/// predicate of the partial index `idx_llm_webhook_deliveries_owed`, so the check reads the
/// few owed deliveries, never the delivered ones.)
pub async fn delete_finished_jobs(
    conn: &mut AsyncPgConnection,
    before: DateTime<Utc>,
    batch: i64,
) -> Result<usize, DbError> {
    conn.transaction(async |conn| {
        let ids: Vec<Id> = diesel::sql_query(
            "SELECT j.id FROM llm_workflow_jobs j \
             WHERE j.completed_at < $1 AND j.status IN ('completed', 'failed', 'cancelled') \
               AND NOT EXISTS (SELECT 1 FROM llm_webhook_deliveries d \
                 WHERE d.job_id = j.id AND d.next_attempt_at IS NOT NULL \
                   AND d.status IN ('pending', 'delivering', 'failed')) \
             ORDER BY j.completed_at LIMIT $2 FOR UPDATE OF j SKIP LOCKED",
        )
        .bind::<Timestamptz, _>(before)
        .bind::<BigInt, _>(batch)
        .load(conn)
        .await?;
        if ids.is_empty() {
            return Ok(0);
        }
        let ids: Vec<Uuid> = ids.into_iter().map(|r| r.id).collect();
        // Usage rows outlive a job deleted by hand (their key is set to NULL); the ones of a
        // job deleted for its age go with it.
        diesel::sql_query("DELETE FROM llm_provider_usage WHERE job_id = ANY($1)")
            .bind::<Array<SqlUuid>, _>(&ids)
            .execute(conn)
            .await?;
        // Steps, deliveries and attempts follow by their foreign keys' ON DELETE CASCADE.
        let deleted = diesel::sql_query("DELETE FROM llm_workflow_jobs WHERE id = ANY($1)")
            .bind::<Array<SqlUuid>, _>(&ids)
            .execute(conn)
            .await?;
        Ok(deleted)
    })
    .await
}

/// Deletes one batch of external-API cache entries that expired; returns how many went.
pub async fn delete_expired_cache(
    conn: &mut AsyncPgConnection,
    batch: i64,
) -> Result<usize, DbError> {
    let deleted = diesel::sql_query(
        "DELETE FROM llm_external_api_cache WHERE request_hash IN ( \
           SELECT request_hash FROM llm_external_api_cache WHERE expires_at < now() \
           ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED)",
    )
    .bind::<BigInt, _>(batch)
    .execute(conn)
    .await?;
    Ok(deleted)
}

/// What a retention sweep deleted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    pub jobs: u64,
    pub cache_entries: u64,
}

/// Runs both deletions batch after batch until nothing is left to delete. `keep_jobs` is
/// `JOB_RETENTION_DAYS` as a duration; `None` keeps every job (the cache is swept anyway).
pub async fn sweep(
    conn: &mut AsyncPgConnection,
    keep_jobs: Option<Duration>,
) -> Result<Swept, DbError> {
    let mut swept = Swept::default();
    // A retention longer than the calendar reaches back to keeps everything.
    let before = keep_jobs
        .and_then(|keep| Utc::now().checked_sub_signed(chrono::Duration::from_std(keep).ok()?));
    if let Some(before) = before {
        loop {
            let n = delete_finished_jobs(conn, before, BATCH).await?;
            swept.jobs += n as u64;
            if (n as i64) < BATCH {
                break;
            }
        }
    }
    loop {
        let n = delete_expired_cache(conn, BATCH).await?;
        swept.cache_entries += n as u64;
        if (n as i64) < BATCH {
            break;
        }
    }
    Ok(swept)
}
