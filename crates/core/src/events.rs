//! The job event stream: what a job's run looks like from outside, live.
//!
//! # Contract
//! - One Redis Stream per job: `{namespace}:events:{job_id}`.
//! - Each entry has two fields: `event` (the name below) and `data` (a JSON object, always with
//!   `job_id`).
//! - Entries are added with `XADD … MAXLEN ~ 1000`, so a job with a long run of chunks keeps its
//!   last thousand or so entries; the stream gets `EXPIRE 3600` (one hour) when its terminal
//!   event is written.
//! - Names and data:
//!   - `step_started` `{job_id, step_id, type}`
//!   - `step_completed` `{job_id, step_id, type, status, duration_ms, cost_usd}`
//!   - `step_failed` `{job_id, step_id, type, error, duration_ms, cost_usd}`
//!   - `chunk` `{job_id, step_id, attempt, seq, offset, text}`: streamed LLM text, batched by
//!     time (about 100 ms) and size (about 1 KB); `seq` counts 0, 1, 2 … within the step's
//!     attempt and `offset` is where `text` starts in the step's text, in Unicode characters (the
//!     `workflow.chunk` webhook's `data` is the same object)
//!   - `job_completed` `{job_id, status, result}`, `job_failed` `{job_id, status, error}`,
//!     `job_cancelled` `{job_id, status}`: the last entry of a job's stream.
//! - The stream id (`1700000000000-0`) is the SSE event id: a client that reconnects with
//!   `Last-Event-ID` gets every entry after it (`XREAD … STREAMS key <id>`), so nothing is lost
//!   while the stream is kept.
//! - Events are a live view, not the record: PostgreSQL is. Publishing is best effort, and a
//!   failed publish never fails a job. When the job's `webhook_events` asks for
//!   `workflow.progress` (step started and finished) or `workflow.chunk`, the worker also creates
//!   webhook deliveries for them.
//! - Cancellation requests are broadcast on the pub/sub channel `{namespace}:cancel` (payload:
//!   the job id), so a worker running the job drops its in-flight call at once rather than at
//!   its next heartbeat.

use std::time::Duration;

use redis::aio::ConnectionLike;
use serde_json::Value;
use uuid::Uuid;

use crate::queue::QueueError;

/// Approximate length each stream is trimmed to.
pub const STREAM_MAX_LEN: usize = 1000;

/// How long a stream is kept after its job ended.
pub const EXPIRE_AFTER_END: Duration = Duration::from_secs(3600);

/// The webhook event types a caller may ask for on top of the final one.
pub const WEBHOOK_PROGRESS: &str = "workflow.progress";
pub const WEBHOOK_CHUNK: &str = "workflow.chunk";

/// The kinds of entries in a job's stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    StepStarted,
    StepCompleted,
    StepFailed,
    Chunk,
    JobCompleted,
    JobFailed,
    JobCancelled,
}

impl EventKind {
    pub const ALL: [EventKind; 7] = [
        EventKind::StepStarted,
        EventKind::StepCompleted,
        EventKind::StepFailed,
        EventKind::Chunk,
        EventKind::JobCompleted,
        EventKind::JobFailed,
        EventKind::JobCancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::StepStarted => "step_started",
            EventKind::StepCompleted => "step_completed",
            EventKind::StepFailed => "step_failed",
            EventKind::Chunk => "chunk",
            EventKind::JobCompleted => "job_completed",
            EventKind::JobFailed => "job_failed",
            EventKind::JobCancelled => "job_cancelled",
        }
    }

    pub fn parse(name: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// The last event of a job.
    pub fn is_terminal(self) -> bool {
        match self {
            EventKind::JobCompleted | EventKind::JobFailed | EventKind::JobCancelled => true,
            EventKind::StepStarted
            | EventKind::StepCompleted
            | EventKind::StepFailed
            | EventKind::Chunk => false,
        }
    }
}

/// The stream of one job.
pub fn stream_key(namespace: &str, job_id: Uuid) -> String {
    format!("{namespace}:events:{job_id}")
}

/// The pub/sub channel cancellation requests are announced on.
pub fn cancel_channel(namespace: &str) -> String {
    format!("{namespace}:cancel")
}

/// One event for a job's stream.
#[derive(Clone, Debug)]
pub struct Event {
    pub job_id: Uuid,
    pub kind: EventKind,
    pub data: Value,
}

/// Appends events to their jobs' streams, in order, in one round trip (one pipeline); a
/// terminal event also sets its stream's expiry.
pub async fn publish<C: ConnectionLike + Send>(
    conn: &mut C,
    namespace: &str,
    events: &[Event],
) -> Result<(), QueueError> {
    let mut pipe = redis::pipe();
    for event in events {
        let key = stream_key(namespace, event.job_id);
        pipe.cmd("XADD")
            .arg(&key)
            .arg("MAXLEN")
            .arg("~")
            .arg(STREAM_MAX_LEN)
            .arg("*")
            .arg("event")
            .arg(event.kind.as_str())
            .arg("data")
            .arg(event.data.to_string())
            .ignore();
        if event.kind.is_terminal() {
            pipe.cmd("EXPIRE")
                .arg(&key)
                .arg(EXPIRE_AFTER_END.as_secs())
                .ignore();
        }
    }
    pipe.query_async::<()>(conn).await?;
    Ok(())
}

/// One entry read back from a stream.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredEvent {
    /// The stream id, used as the SSE event id.
    pub id: String,
    /// The event name (kept as text, so that names added later pass through).
    pub event: String,
    pub data: Value,
}

impl StoredEvent {
    /// Whether this is a job's last event.
    pub fn is_terminal(&self) -> bool {
        EventKind::parse(&self.event).is_some_and(EventKind::is_terminal)
    }
}

/// Reads entries after `after` (a stream id; `0` for the beginning), waiting up to `block` for
/// the first one when none is there yet. Entries whose fields are malformed are skipped.
pub async fn read_after<C: ConnectionLike + Send>(
    conn: &mut C,
    namespace: &str,
    job_id: Uuid,
    after: &str,
    block: Option<Duration>,
    count: usize,
) -> Result<Vec<StoredEvent>, QueueError> {
    let key = stream_key(namespace, job_id);
    let mut cmd = redis::cmd("XREAD");
    cmd.arg("COUNT").arg(count.max(1));
    if let Some(block) = block {
        cmd.arg("BLOCK").arg(block.as_millis() as u64);
    }
    cmd.arg("STREAMS").arg(&key).arg(after);
    type Reply = Option<Vec<(String, Vec<(String, Vec<(String, String)>)>)>>;
    let reply: Reply = cmd.query_async(conn).await?;
    let mut events = Vec::new();
    for (_key, entries) in reply.unwrap_or_default() {
        for (id, fields) in entries {
            let mut event = None;
            let mut data = None;
            for (field, value) in fields {
                match field.as_str() {
                    "event" => event = Some(value),
                    "data" => data = serde_json::from_str::<Value>(&value).ok(),
                    _ => {}
                }
            }
            if let (Some(event), Some(data)) = (event, data) {
                events.push(StoredEvent { id, event, data });
            }
        }
    }
    Ok(events)
}

/// Whether `id` has the shape of a stream id (`<ms>-<seq>` or `<ms>`), so a client's
/// `Last-Event-ID` can be passed to Redis without it raising an error.
pub fn is_stream_id(id: &str) -> bool {
    let mut parts = id.splitn(2, '-');
    let ms = parts.next().unwrap_or_default();
    let seq_ok = parts
        .next()
        .is_none_or(|seq| !seq.is_empty() && seq.bytes().all(|b| b.is_ascii_digit()));
    !ms.is_empty() && ms.len() <= 20 && ms.bytes().all(|b| b.is_ascii_digit()) && seq_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_terminal_ones_are_the_job_events() {
        for kind in EventKind::ALL {
            assert_eq!(EventKind::parse(kind.as_str()), Some(kind));
        }
        let terminal: Vec<_> = EventKind::ALL
            .into_iter()
            .filter(|k| k.is_terminal())
            .map(EventKind::as_str)
            .collect();
        assert_eq!(terminal, ["job_completed", "job_failed", "job_cancelled"]);
    }

    #[test]
    fn stream_ids_are_recognised() {
        assert!(is_stream_id("1700000000000-0"));
        assert!(is_stream_id("0"));
        assert!(!is_stream_id("abc"));
        assert!(!is_stream_id("1-"));
        assert!(!is_stream_id(""));
        assert!(!is_stream_id("1-2-3"));
    }
}
