//! `GET /api/v1/status/{job_id}/events`: Server-Sent Events for one job.
//!
//! The stream opens with `connected` (the status document), then relays the job's Redis Stream
//! (see `llmflow_core::events`): each entry as `id: <stream id>`, `event: <name>`,
//! `data: <JSON>`. A comment line (`: keep-alive`) goes out after `SSE_KEEPALIVE_SECS` (15) without
//! events. A client
//! that reconnects with `Last-Event-ID` gets every entry after that id. The response ends after
//! the job's terminal event (`job_completed`, `job_failed`, `job_cancelled`); for a job that
//! ended so long ago that its stream expired, one terminal event is built from the record.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use actix_web::web::Bytes;
use actix_web::{web, HttpRequest, HttpResponse};
use redis::aio::MultiplexedConnection;
use serde_json::{json, Value};
use uuid::Uuid;

use llmflow_core::db::{self, models::JobRow};
use llmflow_core::events::{self, EventKind, StoredEvent};
use llmflow_core::JobStatus;

use super::status::load_view;
use crate::error::{ApiError, ErrorBody};
use crate::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/status/{job_id}/events", web::get().to(stream));
}

/// Entries read per round trip.
const BATCH: usize = 200;

fn frame(event: &StoredEvent) -> Bytes {
    Bytes::from(format!(
        "id: {}\nevent: {}\ndata: {}\n\n",
        event.id, event.event, event.data
    ))
}

fn named(event: &str, data: &Value) -> Bytes {
    Bytes::from(format!("event: {event}\ndata: {data}\n\n"))
}

/// The terminal event of a finished job, built from its row.
fn terminal_from_row(job: &JobRow) -> Option<Bytes> {
    let status: JobStatus = job.status.parse().ok()?;
    let kind = match status {
        JobStatus::Completed => EventKind::JobCompleted,
        JobStatus::Failed => EventKind::JobFailed,
        JobStatus::Cancelled => EventKind::JobCancelled,
        JobStatus::Pending | JobStatus::Queued | JobStatus::Processing => return None,
    };
    let data = json!({
        "job_id": job.id,
        "status": job.status,
        "result": job.result,
        "error": job.error_message,
    });
    Some(named(kind.as_str(), &data))
}

struct Relay {
    state: Arc<AppState>,
    job_id: Uuid,
    conn: Option<MultiplexedConnection>,
    last_id: String,
    queue: VecDeque<Bytes>,
    finished: bool,
    /// How long a read waits for new entries: none for a job already over at connect (all
    /// its entries are there already).
    block: Option<Duration>,
}

impl Relay {
    /// Next chunk of the response, or `None` when it ends.
    async fn next(&mut self) -> Option<Result<Bytes, actix_web::Error>> {
        loop {
            if let Some(bytes) = self.queue.pop_front() {
                return Some(Ok(bytes));
            }
            if self.finished {
                return None;
            }
            self.fill().await;
        }
    }

    /// Reads the next entries (blocking up to the keep-alive time), or ends the stream when the
    /// job is over and its stream has nothing more.
    async fn fill(&mut self) {
        let namespace = self.state.config.redis_namespace.clone();
        let conn = match self.conn.as_mut() {
            Some(conn) => conn,
            None => {
                self.finished = true;
                return;
            }
        };
        let read = events::read_after(
            conn,
            &namespace,
            self.job_id,
            &self.last_id,
            self.block,
            BATCH,
        )
        .await;
        match read {
            Ok(entries) if !entries.is_empty() => {
                for entry in entries {
                    self.last_id = entry.id.clone();
                    self.queue.push_back(frame(&entry));
                    if entry.is_terminal() {
                        self.finished = true;
                        break;
                    }
                }
            }
            Ok(_) => {
                // Quiet: a keep-alive, unless the job has ended without a terminal entry left
                // in its stream (expired, or Redis lost it).
                match self.ended_job().await {
                    Some(terminal) => {
                        self.queue.push_back(terminal);
                        self.finished = true;
                    }
                    None => self
                        .queue
                        .push_back(Bytes::from_static(b": keep-alive\n\n")),
                }
            }
            Err(e) => {
                tracing::warn!(job_id = %self.job_id, error = %e, "event stream read failed");
                self.queue
                    .push_back(Bytes::from_static(b": events unavailable; reconnect\n\n"));
                self.finished = true;
            }
        }
    }

    async fn ended_job(&self) -> Option<Bytes> {
        let mut conn = self.state.pool.get().await.ok()?;
        let job = db::jobs::find_job(&mut conn, self.job_id).await.ok()??;
        terminal_from_row(&job)
    }
}

/// Live events of one job (Server-Sent Events).
#[utoipa::path(
    get,
    path = "/api/v1/status/{job_id}/events",
    tag = "jobs",
    params(
        ("job_id" = Uuid, Path, description = "The job"),
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event id"),
        ("token" = Option<String>, Query, description = "A stream token of this job, instead of the API key (for browsers)"),
        ("X-User-Id" = Option<Uuid>, Header, description = "Restrict to this user's jobs"),
    ),
    responses(
        (status = 200, description = "text/event-stream: connected, step_started, step_completed, step_failed, chunk, job_completed, job_failed, job_cancelled", content_type = "text/event-stream", body = String),
        (status = 401, description = "Missing or invalid API key, or a stream token not of this job, expired or altered", body = ErrorBody),
        (status = 404, description = "No such job (or not this user's)", body = ErrorBody),
    ),
    security(("api_key" = []), ())
)]
pub async fn stream(
    req: HttpRequest,
    state: web::Data<Arc<AppState>>,
    job_id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let job_id = job_id.into_inner();
    super::stream_token::require_reader(&req, &state, job_id)?;
    let view = load_view(&req, &state, job_id).await?;
    let last_id = req
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|id| events::is_stream_id(id))
        .unwrap_or("0")
        .to_owned();
    let keep_alive = Duration::from_secs(state.config.sse_keepalive_secs.max(1));
    let config = redis::AsyncConnectionConfig::new()
        .set_response_timeout(Some(keep_alive + Duration::from_secs(10)))
        .set_connection_timeout(Some(Duration::from_secs(5)));
    let redis = state
        .redis_client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "cannot open a Redis connection for events");
            ApiError::Unavailable("event stream unavailable".to_owned())
        })?;
    let ended = view.is_terminal();
    let snapshot = serde_json::to_value(view).unwrap_or(Value::Null);
    let mut queue = VecDeque::new();
    queue.push_back(Bytes::from_static(b"retry: 2000\n\n"));
    queue.push_back(named("connected", &snapshot));
    let relay = Relay {
        state: Arc::clone(&state),
        job_id,
        conn: Some(redis),
        last_id,
        queue,
        finished: false,
        block: (!ended).then_some(keep_alive),
    };
    let body = futures::stream::unfold(relay, |mut relay| async move {
        relay.next().await.map(|item| (item, relay))
    });
    Ok(HttpResponse::Ok()
        .insert_header(("Content-Type", "text/event-stream"))
        .insert_header(("Cache-Control", "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body))
}
