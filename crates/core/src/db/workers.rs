//! The registry of running llmflow processes (table `llm_workers`): every worker and webhook
//! sender registers at start (name, host, pid, version, started_at, concurrency), refreshes its
//! heartbeat and in-flight count while it runs, and deletes its row when it stops cleanly. A
//! process that died leaves its row behind: once its heartbeat is older than the lost timeout
//! (`WORKER_LOST_SECS`) it is reported as lost, and a day later the row is removed.
//!
//! Readers: the health check counts live workers ([`count_live`]); the dashboard lists every
//! registered process with its state ([`list`]).
//!
//! The registry is also the workers' liveness: the reconciler releases at once every claim held
//! by a worker that is lost or gone ([`release_lost_claims`]), so a killed worker's jobs run again
//! within seconds rather than after `CLAIM_TIMEOUT_SECS` (which stays the backstop for a live
//! worker that is stuck). A stopping worker hands its unfinished jobs back itself
//! ([`release_claims_of`]).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::dsl::now;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Int2, Text, Uuid as SqlUuid};
use diesel::upsert::excluded;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::schema::llm_workers as workers;
use super::{DbError, PgPool};

/// Rows lost for longer than this are deleted by the heartbeat of any live process.
pub const FORGET_LOST_AFTER: Duration = Duration::from_secs(24 * 3600);

/// What kind of llmflow process a registry row describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProcessKind {
    /// `llmflow-worker`: runs jobs.
    Worker,
    /// `llmflow-webhook`: sends webhook deliveries.
    Webhook,
}

impl ProcessKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProcessKind::Worker => "worker",
            ProcessKind::Webhook => "webhook",
        }
    }
}

/// What a process tells the registry about itself when it starts.
#[derive(Clone, Debug)]
pub struct Registration {
    /// Unique per process start (the name its queue consumers and claims use).
    pub name: String,
    pub kind: ProcessKind,
    pub host: String,
    pub pid: u32,
    pub version: String,
    /// Jobs (or deliveries) it runs at once at most.
    pub concurrency: usize,
}

impl Registration {
    /// This process: its host name, pid and the llmflow version it was built from.
    pub fn this_process(name: String, kind: ProcessKind, concurrency: usize) -> Registration {
        Registration {
            name,
            kind,
            host: host_name(),
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            concurrency,
        }
    }
}

/// The machine's host name (the container's, under Docker), or `unknown`.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// One registered process, as [`list`] reports it.
#[derive(Clone, Debug, Serialize, Queryable, Selectable)]
#[diesel(table_name = workers)]
pub struct WorkerRow {
    pub name: String,
    pub kind: String,
    pub host: String,
    pub pid: i32,
    pub version: String,
    pub started_at: DateTime<Utc>,
    pub concurrency: i32,
    pub in_flight: i32,
    pub last_heartbeat: DateTime<Utc>,
}

/// A registered process and whether it is live or lost.
#[derive(Clone, Debug, Serialize)]
pub struct WorkerStatus {
    #[serde(flatten)]
    pub row: WorkerRow,
    /// No heartbeat within the lost timeout: the process died or cannot reach PostgreSQL.
    pub lost: bool,
}

/// The instant `ago` before now.
fn cutoff(ago: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(ago)
        .ok()
        .and_then(|d| Utc::now().checked_sub_signed(d))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// Registers (or re-registers, after a lost heartbeat) a process; `started_at` is kept on a
/// re-registration.
pub async fn register(conn: &mut AsyncPgConnection, me: &Registration) -> Result<(), DbError> {
    diesel::insert_into(workers::table)
        .values((
            workers::name.eq(&me.name),
            workers::kind.eq(me.kind.as_str()),
            workers::host.eq(&me.host),
            workers::pid.eq(i32::try_from(me.pid).unwrap_or(i32::MAX)),
            workers::version.eq(&me.version),
            workers::concurrency.eq(i32::try_from(me.concurrency).unwrap_or(i32::MAX)),
            workers::in_flight.eq(0),
        ))
        .on_conflict(workers::name)
        .do_update()
        .set((
            workers::last_heartbeat.eq(now),
            workers::concurrency.eq(excluded(workers::concurrency)),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// Refreshes a process's heartbeat and in-flight count; `false` when its row is gone (then it
/// registers again).
pub async fn heartbeat(
    conn: &mut AsyncPgConnection,
    name: &str,
    in_flight: usize,
) -> Result<bool, DbError> {
    let updated = diesel::update(workers::table.find(name))
        .set((
            workers::last_heartbeat.eq(now),
            workers::in_flight.eq(i32::try_from(in_flight).unwrap_or(i32::MAX)),
        ))
        .execute(conn)
        .await?;
    Ok(updated == 1)
}

/// Removes a process's row (a clean stop).
pub async fn deregister(conn: &mut AsyncPgConnection, name: &str) -> Result<(), DbError> {
    diesel::delete(workers::table.find(name))
        .execute(conn)
        .await?;
    Ok(())
}

/// Every registered process, live ones first (workers before webhook senders, oldest first),
/// each marked lost when its last heartbeat is older than `lost_after`.
pub async fn list(
    conn: &mut AsyncPgConnection,
    lost_after: Duration,
) -> Result<Vec<WorkerStatus>, DbError> {
    let since = cutoff(lost_after);
    let rows: Vec<(WorkerRow, bool)> = workers::table
        .select((WorkerRow::as_select(), workers::last_heartbeat.lt(since)))
        .order((
            workers::last_heartbeat.lt(since),
            workers::kind.desc(),
            workers::started_at,
            workers::name,
        ))
        .load(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(row, lost)| WorkerStatus { row, lost })
        .collect())
}

/// How many processes of `kind` sent a heartbeat within `lost_after`.
pub async fn count_live(
    conn: &mut AsyncPgConnection,
    kind: ProcessKind,
    lost_after: Duration,
) -> Result<i64, DbError> {
    Ok(workers::table
        .filter(workers::kind.eq(kind.as_str()))
        .filter(workers::last_heartbeat.ge(cutoff(lost_after)))
        .count()
        .get_result(conn)
        .await?)
}

/// Deletes rows whose heartbeat is older than `older_than`; answers how many.
pub async fn forget_lost(
    conn: &mut AsyncPgConnection,
    older_than: Duration,
) -> Result<usize, DbError> {
    Ok(
        diesel::delete(workers::table.filter(workers::last_heartbeat.lt(cutoff(older_than))))
            .execute(conn)
            .await?,
    )
}

/// Keeps a process registered until `shutdown`: registers, then every `every` refreshes the
/// heartbeat with `in_flight` (registering again if the row went missing), and deregisters on
/// shutdown. Database errors are logged and retried on the next beat; they never stop the
/// process. Aborting the task (a crash) leaves the row, which then turns lost.
pub async fn keep_registered(
    pool: PgPool,
    me: Registration,
    in_flight: Arc<AtomicUsize>,
    every: Duration,
    shutdown: CancellationToken,
) {
    let mut registered = false;
    let mut ticker = tokio::time::interval(every.max(Duration::from_millis(100)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let result = async {
            let mut conn = pool.get().await?;
            if registered
                && heartbeat(
                    &mut conn,
                    &me.name,
                    AtomicUsize::load(&in_flight, Ordering::Relaxed),
                )
                .await?
            {
                return Ok::<_, DbError>(());
            }
            register(&mut conn, &me).await?;
            registered = true;
            forget_lost(&mut conn, FORGET_LOST_AFTER).await?;
            Ok(())
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(worker = %me.name, error = %e, "worker registry heartbeat failed");
        }
    }
    match pool.get().await {
        Ok(mut conn) => {
            if let Err(e) = deregister(&mut conn, &me.name).await {
                tracing::warn!(worker = %me.name, error = %e, "worker registry: deregister failed");
            }
        }
        Err(e) => {
            tracing::warn!(worker = %me.name, error = %e, "worker registry: deregister failed");
        }
    }
}

/// A job whose claim was released: `queued` again under a fresh task id, to be pushed to the
/// queue of its band under that id.
#[derive(Clone, Debug, PartialEq, Eq, QueryableByName)]
pub struct Released {
    #[diesel(sql_type = SqlUuid)]
    pub id: Uuid,
    #[diesel(sql_type = Int2)]
    pub priority: i16,
    #[diesel(sql_type = Text)]
    pub task_id: String,
}

/// What a release sets: the job waits in the queue again, without an owner, under a fresh task
/// id (`{job_id}:{32 hex digits}`, as `queue::repush_task_id` makes them; apalis ignores an id
/// it still holds).
const RELEASE_SET: &str = "UPDATE llm_workflow_jobs j \
    SET status = 'queued', claimed_by = NULL, \
        queue_task_id = j.id::text || ':' || replace(gen_random_uuid()::text, '-', ''), \
        queued_at = now(), updated_at = now() \
  WHERE j.status = 'processing' ";

/// Hands back every job `worker` still holds (it is stopping and its grace period is over, and
/// its jobs have stopped): one conditional update on this worker's ownership. The next claim
/// takes each at once and resumes after its committed steps.
pub async fn release_claims_of(
    conn: &mut AsyncPgConnection,
    worker: &str,
) -> Result<Vec<Released>, DbError> {
    Ok(diesel::sql_query(format!(
        "{RELEASE_SET} AND j.claimed_by = $1 \
         RETURNING j.id, j.priority, j.queue_task_id AS task_id"
    ))
    .bind::<Text, _>(worker)
    .load(conn)
    .await?)
}

/// Hands back one job `worker` holds whose run was interrupted (its database went away
/// mid-run, say): `None` when the job is not, or no longer, this worker's.
pub async fn release_claim(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    worker: &str,
) -> Result<Option<Released>, DbError> {
    Ok(diesel::sql_query(format!(
        "{RELEASE_SET} AND j.id = $1 AND j.claimed_by = $2 \
         RETURNING j.id, j.priority, j.queue_task_id AS task_id"
    ))
    .bind::<SqlUuid, _>(id)
    .bind::<Text, _>(worker)
    .get_result(conn)
    .await
    .optional()?)
}

/// Releases every claim held by a worker without a heartbeat within `lost_after` (killed, cut
/// off, or stopped without handing its jobs back). A claim younger than `lost_after` is left
/// alone: its worker may have claimed before its first heartbeat was written.
pub async fn release_lost_claims(
    conn: &mut AsyncPgConnection,
    lost_after: Duration,
) -> Result<Vec<Released>, DbError> {
    let millis = i64::try_from(lost_after.as_millis()).unwrap_or(i64::MAX);
    Ok(diesel::sql_query(format!(
        "{RELEASE_SET} AND j.claimed_by IS NOT NULL \
            AND j.claimed_at < now() - make_interval(secs => $1::float8 / 1000) \
            AND NOT EXISTS ( \
                SELECT 1 FROM llm_workers w \
                 WHERE w.name = j.claimed_by \
                   AND w.last_heartbeat >= now() - make_interval(secs => $1::float8 / 1000)) \
         RETURNING j.id, j.priority, j.queue_task_id AS task_id"
    ))
    .bind::<BigInt, _>(millis)
    .load(conn)
    .await?)
}
