//! Publishing a job's live events (the contract is in `llmflow_core::events`): step started,
//! step finished, streamed text and the job's end go to the job's Redis Stream; when the job
//! asked for `workflow.progress` or `workflow.chunk` webhooks, a delivery is recorded and pushed
//! for each as well. All of it is best effort: a failure is logged and the job goes on.
//! A local run (`crate::local`) gets the same moments in this process instead, as
//! [`RunEvent`]s, with every streamed delta as it arrives.
//!
//! Stream entries are not written by the job itself: they go, in order, to one task per process
//! that writes whatever has gathered as one Redis pipeline. A job never waits for Redis to
//! publish, and under load many events cost one round trip.

use std::time::{Duration, Instant};

use apalis_redis::ConnectionManager;
use chrono::Utc;
use futures::future::BoxFuture;
use serde_json::{json, Value};
use tokio::sync::mpsc::{self, error::TrySendError};

use llmflow_core::db::models::{JobRow, StepRow};
use llmflow_core::events::{self, Event, EventKind, WEBHOOK_CHUNK, WEBHOOK_PROGRESS};
use llmflow_core::pricing::round_usd;
use llmflow_core::workflow::Step;
use llmflow_core::JobStatus;

use crate::local::RunEvent;
use crate::Engine;

/// Streamed text is sent in batches: after this long…
pub const CHUNK_INTERVAL: Duration = Duration::from_millis(100);
/// …or once this many bytes are waiting.
pub const CHUNK_BYTES: usize = 1024;

fn wants(job: &JobRow, event: &str) -> bool {
    job.webhook_url.is_some()
        && job
            .webhook_events
            .as_ref()
            .and_then(Value::as_array)
            .is_some_and(|list| list.iter().any(|e| e == event))
}

/// Events waiting for the writer at most; past this (Redis stalled) new ones are dropped.
const QUEUED_EVENTS: usize = 20_000;
/// Most events written in one pipeline.
const EVENTS_PER_WRITE: usize = 500;

/// Where a run's events go.
pub(crate) enum Events {
    /// The job's Redis Stream (through the process's writer).
    Redis(Publisher),
    /// A local run's watcher.
    Local(mpsc::UnboundedSender<RunEvent>),
}

impl Events {
    /// Hands a local run's watcher its event (made only then). It sees every step, the
    /// conditional and parallel ones too, as the engine logs them.
    pub(crate) fn local(&self, event: impl FnOnce() -> RunEvent) {
        if let Events::Local(watcher) = self {
            // A watcher that went away (the command is stopping) misses nothing it needs.
            let _ = watcher.send(event());
        }
    }
}

/// The writer of this process's stream entries.
pub struct Publisher {
    queue: mpsc::Sender<Event>,
}

impl Publisher {
    /// Starts the writer task; it ends when the publisher is dropped.
    pub fn start(redis: ConnectionManager, namespace: String) -> Publisher {
        let (queue, receiver) = mpsc::channel(QUEUED_EVENTS);
        tokio::spawn(write_events(receiver, redis, namespace));
        Publisher { queue }
    }

    fn send(&self, event: Event) {
        if let Err(e) = self.queue.try_send(event) {
            let event = match &e {
                TrySendError::Full(event) | TrySendError::Closed(event) => event,
            };
            tracing::warn!(job_id = %event.job_id, event = event.kind.as_str(), "job event dropped: the writer is behind");
        }
    }
}

async fn write_events(
    mut receiver: mpsc::Receiver<Event>,
    mut redis: ConnectionManager,
    namespace: String,
) {
    let mut batch = Vec::with_capacity(EVENTS_PER_WRITE);
    while receiver.recv_many(&mut batch, EVENTS_PER_WRITE).await > 0 {
        if let Err(e) = events::publish(&mut redis, &namespace, &batch).await {
            tracing::warn!(events = batch.len(), error = %e, "cannot publish job events");
        }
        batch.clear();
    }
}

fn publish(engine: &Engine, job: &JobRow, kind: EventKind, data: Value) {
    if let Events::Redis(publisher) = &engine.events {
        publisher.send(Event {
            job_id: job.id,
            kind,
            data,
        });
    }
}

/// Records and pushes one extra webhook event. Boxed: its database and queue round trips would
/// otherwise be laid out inline in every step's future, so in every job in flight, though
/// progress webhooks are rare.
fn webhook<'a>(
    state: &'a Engine,
    job: &'a JobRow,
    event_type: &'a str,
    data: Value,
) -> BoxFuture<'a, ()> {
    Box::pin(webhook_inline(state, job, event_type, data))
}

async fn webhook_inline(engine: &Engine, job: &JobRow, event_type: &str, data: Value) {
    let Some(url) = &job.webhook_url else { return };
    let payload = json!({
        "type": event_type,
        "job_id": job.id,
        "user_id": job.user_id,
        "workflow_name": job.workflow_name,
        "data": data,
        "timestamp": Utc::now().to_rfc3339(),
    });
    engine
        .records
        .event_webhook(job.id, url, event_type, payload)
        .await;
}

/// A step is about to run.
pub async fn step_started(state: &Engine, job: &JobRow, step: &Step) {
    let data = json!({"job_id": job.id, "step_id": step.id, "type": step.kind.name()});
    publish(state, job, EventKind::StepStarted, data.clone());
    if wants(job, WEBHOOK_PROGRESS) {
        webhook(
            state,
            job,
            WEBHOOK_PROGRESS,
            json!({"event": "step_started", "step": data}),
        )
        .await;
    }
}

/// A step finished (its row as recorded): `step_completed`, or `step_failed` when it failed
/// (also when `on_error` let the job go on).
pub async fn step_finished(state: &Engine, job: &JobRow, row: Option<&StepRow>) {
    let Some(row) = row else { return };
    let failed = row.status == "failed";
    let kind = if failed {
        EventKind::StepFailed
    } else {
        EventKind::StepCompleted
    };
    let cost = round_usd(row.cost_usd).normalize().to_string();
    let data = json!({
        "job_id": job.id,
        "step_id": row.step_id,
        "type": row.step_type,
        "status": row.status,
        "duration_ms": row.duration_ms,
        "cost_usd": cost.parse::<serde_json::Number>().map(Value::Number).unwrap_or(Value::Null),
        "error": row.error_message,
    });
    publish(state, job, kind, data.clone());
    if wants(job, WEBHOOK_PROGRESS) {
        webhook(
            state,
            job,
            WEBHOOK_PROGRESS,
            json!({"event": kind.as_str(), "step": data}),
        )
        .await;
    }
}

/// The job ended (after its end was committed): the stream's last event.
pub async fn job_ended(
    state: &Engine,
    job: &JobRow,
    status: JobStatus,
    result: Option<&Value>,
    error: Option<&str>,
) {
    let (kind, data) = match status {
        JobStatus::Completed => (
            EventKind::JobCompleted,
            json!({"job_id": job.id, "status": status, "result": result}),
        ),
        JobStatus::Failed => (
            EventKind::JobFailed,
            json!({"job_id": job.id, "status": status, "error": error}),
        ),
        JobStatus::Cancelled => (
            EventKind::JobCancelled,
            json!({"job_id": job.id, "status": status}),
        ),
        JobStatus::Pending | JobStatus::Queued | JobStatus::Processing => return,
    };
    publish(state, job, kind, data);
}

/// Streamed text of one step, batched by time and size before it is published.
///
/// Each published chunk carries `seq` (0, 1, 2 … within the step's attempt), `offset` (where
/// its text starts in the step's streamed text, in Unicode characters) and `attempt` (the
/// step's attempt under its retry policy; a retried step streams again from offset 0). A
/// receiver orders a step's chunks by `(attempt, seq)`, drops one whose `(step_id, attempt,
/// seq)` it already has (or whose `webhook-id` it has seen), and knows it has missed text
/// when a chunk's `offset` is not the previous `offset` plus its text's length.
pub struct ChunkBatcher<'a> {
    state: &'a Engine,
    job: &'a JobRow,
    step_id: String,
    attempt: u32,
    buffer: String,
    since: Instant,
    seq: u64,
    offset: usize,
}

impl<'a> ChunkBatcher<'a> {
    pub fn new(state: &'a Engine, job: &'a JobRow, step_id: &str, attempt: u32) -> Self {
        ChunkBatcher {
            state,
            job,
            step_id: step_id.to_owned(),
            attempt,
            buffer: String::new(),
            since: Instant::now(),
            seq: 0,
            offset: 0,
        }
    }

    /// Adds a text delta; publishes when the batch is old or big enough.
    pub async fn push(&mut self, text: &str) {
        if self.buffer.is_empty() {
            self.since = Instant::now();
        }
        self.buffer.push_str(text);
        if self.buffer.len() >= CHUNK_BYTES || self.since.elapsed() >= CHUNK_INTERVAL {
            self.flush().await;
        }
    }

    /// Publishes the batch if it has waited long enough.
    pub async fn flush_if_due(&mut self) {
        if !self.buffer.is_empty() && self.since.elapsed() >= CHUNK_INTERVAL {
            self.flush().await;
        }
    }

    /// Publishes whatever is waiting.
    pub async fn flush(&mut self) {
        if self.buffer.is_empty() {
            return;
        }
        let text = std::mem::take(&mut self.buffer);
        let data = json!({
            "job_id": self.job.id,
            "step_id": self.step_id,
            "attempt": self.attempt,
            "seq": self.seq,
            "offset": self.offset,
            "text": text,
        });
        self.seq += 1;
        self.offset += text.chars().count();
        publish(self.state, self.job, EventKind::Chunk, data.clone());
        if wants(self.job, WEBHOOK_CHUNK) {
            webhook(self.state, self.job, WEBHOOK_CHUNK, data).await;
        }
    }
}

/// Runs `work` (a streaming LLM step) while forwarding the text deltas it sends to `chunks` as
/// batched `chunk` events; whatever is left is published when the step ends.
pub async fn forward_chunks<T>(
    state: &Engine,
    job: &JobRow,
    step_id: &str,
    attempt: u32,
    mut chunks: tokio::sync::mpsc::UnboundedReceiver<String>,
    work: impl std::future::Future<Output = T>,
) -> T {
    if let Events::Local(watcher) = &state.events {
        return forward_local(watcher, step_id, chunks, work).await;
    }
    let mut batcher = ChunkBatcher::new(state, job, step_id, attempt);
    let mut tick = tokio::time::interval(CHUNK_INTERVAL);
    tokio::pin!(work);
    let result = loop {
        tokio::select! {
            result = &mut work => break result,
            Some(text) = chunks.recv() => batcher.push(&text).await,
            _ = tick.tick() => batcher.flush_if_due().await,
        }
    };
    while let Ok(text) = chunks.try_recv() {
        batcher.buffer.push_str(&text);
    }
    batcher.flush().await;
    result
}

/// A local run's streamed text: each delta goes to the watcher as it arrives, unbatched.
async fn forward_local<T>(
    watcher: &mpsc::UnboundedSender<RunEvent>,
    step_id: &str,
    mut chunks: mpsc::UnboundedReceiver<String>,
    work: impl std::future::Future<Output = T>,
) -> T {
    let send = |text: String| {
        let _ = watcher.send(RunEvent::Text {
            step_id: step_id.to_owned(),
            text,
        });
    };
    tokio::pin!(work);
    let result = loop {
        tokio::select! {
            result = &mut work => break result,
            Some(text) = chunks.recv() => send(text),
        }
    };
    while let Ok(text) = chunks.try_recv() {
        send(text);
    }
    result
}
