//! Queue messages and their Redis (apalis) plumbing. Messages carry ids only: the payloads live in
//! PostgreSQL, and Redis may lose everything at any time — the reconciler re-pushes by id.
//!
//! apalis's Redis key layout (`{q}:active`, `{q}:workers`, `{q}:meta:{id}`, …) is known here
//! alone; other crates ask the questions it answers (jobs waiting per band, live consumers,
//! trimming finished history).

use std::path::PathBuf;
use std::time::Duration;

use apalis::prelude::{TaskBuilder, TaskId, TaskSink};
use apalis_redis::{Config as QueueConfig, ConnectionManager, RedisStorage};
use redis::aio::ConnectionManagerConfig;
use serde::{Deserialize, Serialize};

use crate::{DeliveryId, JobId};

/// Run this job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobMessage {
    pub job_id: JobId,
}

/// Send attempt `attempt` (1-based) of this webhook delivery.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryMessage {
    pub delivery_id: DeliveryId,
    pub attempt: i32,
}

pub type JobStorage = RedisStorage<JobMessage>;
pub type DeliveryStorage = RedisStorage<DeliveryMessage>;

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("cannot connect to Redis")]
    Connect(#[source] redis::RedisError),
    #[error("Redis command failed")]
    Redis(#[from] redis::RedisError),
    #[error("cannot encode the queue message")]
    Encode(#[source] serde_json::Error),
    #[error("cannot push to the queue")]
    Push(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
    #[error("cannot connect to Redis over TLS: {cause}")]
    Tls {
        cause: &'static str,
        #[source]
        source: redis::RedisError,
    },
    #[error("cannot read REDIS_CA_CERT {path}")]
    CaCert {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Where Redis is: `REDIS_URL` (`rediss://` for TLS) and, for TLS, the CA file that signs the
/// server's certificate (`REDIS_CA_CERT`; without it, the webpki roots).
#[derive(Clone)]
pub struct RedisTarget {
    pub url: String,
    pub ca_cert: Option<PathBuf>,
}

impl RedisTarget {
    /// A plain URL, trusting the webpki roots for `rediss://`.
    pub fn url(url: impl Into<String>) -> RedisTarget {
        RedisTarget {
            url: url.into(),
            ca_cert: None,
        }
    }

    /// A client for this Redis; every connection it opens uses TLS when the URL is `rediss://`.
    pub fn client(&self) -> Result<redis::Client, QueueError> {
        let Some(path) = &self.ca_cert else {
            return redis::Client::open(self.url.as_str()).map_err(QueueError::Connect);
        };
        let pem = std::fs::read(path).map_err(|source| QueueError::CaCert {
            path: path.clone(),
            source,
        })?;
        let certificates = redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(pem),
        };
        redis::Client::build_with_tls(self.url.as_str(), certificates).map_err(QueueError::Connect)
    }
}

/// Queue names under one namespace (`REDIS_NAMESPACE`), so deployments and tests can share a Redis.
#[derive(Clone, Debug)]
pub struct Queues {
    namespace: String,
}

impl Queues {
    pub fn new(namespace: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
        }
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The queue of job ids.
    pub fn jobs(&self) -> String {
        format!("{}:jobs", self.namespace)
    }

    /// The queue of webhook deliveries.
    pub fn webhooks(&self) -> String {
        format!("{}:webhooks", self.namespace)
    }

    /// apalis settings of one queue. Workers heartbeat every 5 s and are taken as dead after
    /// 6 missed beats, so a crashed worker's prefetched tasks return within about 30 s (the
    /// reconciler usually re-pushes them sooner).
    pub fn config(&self, queue: &str, batch_size: usize) -> QueueConfig {
        QueueConfig::default()
            .queue(queue)
            .batch_size(batch_size.max(1))
            .heartbeat_interval(Duration::from_secs(5))
            .missed_heartbeats(6)
    }

    pub fn job_storage(&self, conn: ConnectionManager, batch_size: usize) -> JobStorage {
        RedisStorage::new(conn).with_config(self.config(&self.jobs(), batch_size))
    }

    /// The queue of one priority band. The normal band is the plain job queue, so tools that
    /// look at `{namespace}:jobs` keep working.
    pub fn band(&self, band: Band) -> String {
        match band {
            Band::High => format!("{}:jobs:high", self.namespace),
            Band::Normal => self.jobs(),
            Band::Low => format!("{}:jobs:low", self.namespace),
        }
    }

    /// Storage of one priority band (push with it, or consume from it).
    pub fn band_storage(
        &self,
        conn: ConnectionManager,
        band: Band,
        batch_size: usize,
    ) -> JobStorage {
        RedisStorage::new(conn).with_config(self.config(&self.band(band), batch_size))
    }

    pub fn delivery_storage(&self, conn: ConnectionManager, batch_size: usize) -> DeliveryStorage {
        RedisStorage::new(conn).with_config(self.config(&self.webhooks(), batch_size))
    }
}

/// Priority bands. apalis-redis keeps one FIFO list per queue and ignores task priorities, so
/// priority 0–10 maps to three queues (7–10 high, 4–6 normal, 0–3 low); workers take a free
/// slot for the highest band with work waiting (see the worker's `PriorityGate`). Three bands
/// rather than eleven queues keep the number of Redis polls per worker small.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Band {
    High,
    Normal,
    Low,
}

impl Band {
    /// Highest first: the order workers prefer.
    pub const ALL: [Band; 3] = [Band::High, Band::Normal, Band::Low];

    /// The band of a job priority (0 lowest, 10 highest).
    pub fn of(priority: i16) -> Band {
        match priority {
            7.. => Band::High,
            4..=6 => Band::Normal,
            _ => Band::Low,
        }
    }

    /// 0 for the highest band.
    pub fn rank(self) -> usize {
        match self {
            Band::High => 0,
            Band::Normal => 1,
            Band::Low => 2,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Band::High => "high",
            Band::Normal => "normal",
            Band::Low => "low",
        }
    }
}

/// A Redis connection that reconnects by itself, with timeouts suited to a server under load
/// (apalis's own `connect` gives up after 500 ms).
pub async fn connect(url: &str) -> Result<ConnectionManager, QueueError> {
    connect_to(&RedisTarget::url(url)).await
}

/// As [`connect`], to a [`RedisTarget`] (TLS with its CA file).
pub async fn connect_to(target: &RedisTarget) -> Result<ConnectionManager, QueueError> {
    let client = target.client()?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(5)))
        .set_response_timeout(Some(Duration::from_secs(10)))
        .set_number_of_retries(2);
    let mut conn = ConnectionManager::new_with_config(client, config)
        .await
        .map_err(connect_error)?;
    redis::cmd("PING")
        .query_async::<String>(&mut conn)
        .await
        .map_err(connect_error)?;
    Ok(conn)
}

/// A connection error, with the cause named when the TLS handshake refused the certificate.
fn connect_error(error: redis::RedisError) -> QueueError {
    let text = format!("{error:?} {error}");
    let cause = if text.contains("UnknownIssuer") || text.contains("BadSignature") {
        "certificate not trusted: the server's certificate is not signed by a CA of the webpki \
         roots or of REDIS_CA_CERT"
    } else if text.contains("NotValidForName") || text.contains("not valid for name") {
        "host name mismatch: the server's certificate is not issued for the host in REDIS_URL"
    } else if text.contains("Expired") {
        "certificate expired"
    } else {
        return QueueError::Connect(error);
    };
    QueueError::Tls {
        cause,
        source: error,
    }
}

/// Pushes a job id as task `task_id` (the job id itself on first push). A task id already in
/// Redis is ignored by apalis, so pushing twice is harmless.
pub async fn push_job(
    storage: &mut JobStorage,
    job_id: JobId,
    task_id: &str,
) -> Result<(), QueueError> {
    push_now(storage, &JobMessage { job_id }, task_id).await
}

/// apalis-redis 1.0 stores every push, even one due now, in the `{q}:scheduled` sorted set, and
/// a worker's fetch promotes *all* due entries with one `rpush(unpack(ids))`: with about 8,000
/// or more due at once (a backlog submitted while the workers were down) Lua's stack overflows
/// ("too many results to unpack") and every worker on the queue fails on every poll. A task due
/// now therefore goes straight onto the `{q}:active` list, in the storage format of apalis's own
/// `batch_push.lua` (its `schedule_time <= 0` branch), where fetches take `batch_size` at a time
/// however long the list grows. Delayed tasks still go through apalis (`{q}:scheduled`).
const PUSH_NOW_SCRIPT: &str = r#"
-- KEYS: data hash, active list, signal list, meta prefix. ARGV: task id, task data.
local set = redis.call("hsetnx", KEYS[1], ARGV[1], ARGV[2])
if set == 1 then
    redis.call("hmset", KEYS[4] .. ":" .. ARGV[1], "attempts", 0, "max_attempts", 25,
        "status", "Pending", "idempotency_key", "")
    redis.call("rpush", KEYS[2], ARGV[1])
    redis.call("del", KEYS[3])
    redis.call("lpush", KEYS[3], 1)
end
return set
"#;

/// Pushes `message` as task `task_id`, due now, onto the queue's active list (see
/// [`PUSH_NOW_SCRIPT`]). A task id apalis already holds is ignored, as with apalis's own push.
async fn push_now<T: Serialize>(
    storage: &mut RedisStorage<T>,
    message: &T,
    task_id: &str,
) -> Result<(), QueueError> {
    static SCRIPT: std::sync::LazyLock<redis::Script> =
        std::sync::LazyLock::new(|| redis::Script::new(PUSH_NOW_SCRIPT));
    let data = serde_json::to_vec(message).map_err(QueueError::Encode)?;
    let config = storage.get_config().clone();
    let _: i64 = SCRIPT
        .key(config.job_data_hash())
        .key(config.active_jobs_list())
        .key(config.signal_list())
        .key(config.job_meta_hash())
        .arg(task_id)
        .arg(data)
        .invoke_async(storage.get_connection())
        .await?;
    Ok(())
}

/// Pushes a delivery attempt, to run after `delay` (1-second resolution).
pub async fn push_delivery(
    storage: &mut DeliveryStorage,
    message: DeliveryMessage,
    delay: Duration,
) -> Result<(), QueueError> {
    let task_id = delivery_task_id(message.delivery_id, message.attempt);
    if delay.is_zero() {
        return push_now(storage, &message, &task_id).await;
    }
    let task = TaskBuilder::new(message)
        .task_id(TaskId::from_string(task_id))
        .run_after(delay)
        .build();
    storage
        .push_task(task)
        .await
        .map_err(|e| QueueError::Push(Box::new(e)))
}

/// Pushes the first attempt of deliveries just recorded (due now). A failed push is logged and
/// left to the reconciler: the rows are due, so it pushes them.
pub async fn push_new_deliveries(storage: &mut DeliveryStorage, ids: &[uuid::Uuid]) {
    for id in ids {
        let message = DeliveryMessage {
            delivery_id: DeliveryId(*id),
            attempt: 1,
        };
        if let Err(e) = push_delivery(storage, message, Duration::ZERO).await {
            tracing::warn!(delivery_id = %id, error = %e, "push of a webhook delivery failed");
        }
    }
}

/// Pushes a delivery attempt due now under an explicit task id (re-pushes by the reconciler).
pub async fn push_delivery_as(
    storage: &mut DeliveryStorage,
    message: DeliveryMessage,
    task_id: &str,
) -> Result<(), QueueError> {
    push_now(storage, &message, task_id).await
}

/// One task per (delivery, attempt): a second push of the same attempt is ignored by apalis.
pub fn delivery_task_id(delivery_id: DeliveryId, attempt: i32) -> String {
    format!("{delivery_id}:{attempt}")
}

/// A re-push of a job under a fresh task id: used when the earlier task is gone from Redis or
/// stuck in a dead worker's in-flight set (apalis would ignore the old id).
pub fn repush_task_id(job_id: JobId) -> String {
    format!("{job_id}:{}", uuid::Uuid::now_v7().simple())
}

/// Whether apalis still holds `task_id` on `queue` waiting or running (not finished, not lost).
pub async fn task_alive(
    conn: &mut ConnectionManager,
    queue: &str,
    task_ids: &[String],
) -> Result<Vec<bool>, QueueError> {
    if task_ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = redis::pipe();
    for task_id in task_ids {
        pipe.cmd("HGET")
            .arg(format!("{queue}:meta:{task_id}"))
            .arg("status");
    }
    let statuses: Vec<Option<String>> = pipe.query_async(conn).await?;
    Ok(statuses
        .into_iter()
        .map(|status| {
            matches!(
                status.as_deref(),
                Some("Pending" | "Queued" | "Running" | "Failed")
            )
        })
        .collect())
}

/// Removes done and dead entries finished before the cutoff, with their data and metadata
/// (apalis never trims them). apalis records `done_at` in seconds (milliseconds in some paths,
/// taken as such when implausibly large). KEYS: done set, dead set, data hash, meta prefix.
/// ARGV: cutoff (seconds), maximum removed per call.
const TRIM_SCRIPT: &str = r#"
local removed = 0
local limit = tonumber(ARGV[2])
for _, set in ipairs({KEYS[1], KEYS[2]}) do
  local cursor = "0"
  repeat
    local page = redis.call('SSCAN', set, cursor, 'COUNT', 500)
    cursor = page[1]
    for _, id in ipairs(page[2]) do
      local meta = KEYS[4] .. ':' .. id
      local done_at = tonumber(redis.call('HGET', meta, 'done_at') or '0') or 0
      if done_at > 1000000000000 then done_at = done_at / 1000 end
      if done_at < tonumber(ARGV[1]) then
        redis.call('SREM', set, id)
        redis.call('HDEL', KEYS[3], id)
        redis.call('DEL', meta)
        removed = removed + 1
        if removed >= limit then return removed end
      end
    end
  until cursor == "0"
end
return removed
"#;

/// Entries one trim call removes at most (the script runs again while it removes this many).
const TRIM_BATCH: u64 = 10_000;

impl Queues {
    /// Every job and delivery queue: the three priority bands, then the webhooks.
    fn all_queues(&self) -> Vec<String> {
        let mut queues: Vec<String> = Band::ALL.iter().map(|b| self.band(*b)).collect();
        queues.push(self.webhooks());
        queues
    }

    /// Jobs waiting in Redis for a consumer, per priority band, highest band first.
    pub async fn waiting_per_band(
        &self,
        conn: &mut ConnectionManager,
    ) -> Result<[(Band, u64); 3], QueueError> {
        let mut pipe = redis::pipe();
        for band in Band::ALL {
            pipe.cmd("LLEN").arg(format!("{}:active", self.band(band)));
        }
        let counts: Vec<u64> = pipe.query_async(conn).await?;
        Ok(Band::ALL.map(|band| (band, counts.get(band.rank()).copied().unwrap_or(0))))
    }

    /// Job consumers whose last heartbeat is within `window`. Every worker process serves
    /// every band, so the normal band's consumers count the workers.
    pub async fn live_consumers(
        &self,
        conn: &mut ConnectionManager,
        window: Duration,
    ) -> Result<u64, QueueError> {
        let since =
            chrono::Utc::now().timestamp() - i64::try_from(window.as_secs()).unwrap_or(i64::MAX);
        Ok(redis::cmd("ZCOUNT")
            .arg(format!("{}:workers", self.band(Band::Normal)))
            .arg(since)
            .arg("+inf")
            .query_async(conn)
            .await?)
    }

    /// Removes from every queue the finished (done and dead) entries older than `keep`, which
    /// apalis keeps forever; returns how many were removed.
    pub async fn trim_history(
        &self,
        conn: &mut ConnectionManager,
        keep: Duration,
    ) -> Result<u64, QueueError> {
        static TRIM: std::sync::LazyLock<redis::Script> =
            std::sync::LazyLock::new(|| redis::Script::new(TRIM_SCRIPT));
        let cutoff =
            chrono::Utc::now().timestamp() - i64::try_from(keep.as_secs()).unwrap_or(i64::MAX);
        let mut total = 0u64;
        for queue in self.all_queues() {
            loop {
                let removed: u64 = TRIM
                    .key(format!("{queue}:done"))
                    .key(format!("{queue}:dead"))
                    .key(format!("{queue}:data"))
                    .key(format!("{queue}:meta"))
                    .arg(cutoff)
                    .arg(TRIM_BATCH)
                    .invoke_async(conn)
                    .await?;
                total += removed;
                if removed < TRIM_BATCH {
                    break;
                }
            }
        }
        Ok(total)
    }
}

/// Runs a queue consumer forever, rebuilding it whenever it stops: apalis ends a worker's `run`
/// on any Redis error (a restart, a failover, a FLUSHALL), and a fresh worker under a new name
/// reconnects. Waits between rebuilds grow from 250 ms to 10 s while failures repeat. Returns
/// when `shutdown` resolves and the running consumer (which must stop on `shutdown` too, as
/// apalis's `run_until` does) has finished the tasks it started.
pub async fn supervise<F, Fut>(
    what: &str,
    shutdown: tokio_util::sync::CancellationToken,
    mut run: F,
) where
    F: FnMut(u32) -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let mut generation = 0u32;
    let mut failures = 0u32;
    loop {
        let started = std::time::Instant::now();
        let consumer = run(generation);
        tokio::pin!(consumer);
        let outcome = tokio::select! {
            // The consumer watches `shutdown` itself: it stops fetching and returns once the
            // tasks it started are done. Dropping it here would drop them mid-run.
            _ = shutdown.cancelled() => {
                let _ = consumer.await;
                return;
            }
            outcome = &mut consumer => outcome,
        };
        if shutdown.is_cancelled() {
            return;
        }
        match outcome {
            Ok(()) => tracing::warn!(
                consumer = what,
                generation,
                "queue consumer stopped; restarting"
            ),
            Err(e) => {
                tracing::error!(consumer = what, generation, error = %e, "queue consumer failed; restarting")
            }
        }
        failures = if started.elapsed() > Duration::from_secs(30) {
            1
        } else {
            failures + 1
        };
        let backoff = crate::backoff::exponential(
            Duration::from_millis(250),
            Duration::from_secs(10),
            failures,
            1.0,
        );
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        generation += 1;
    }
}
