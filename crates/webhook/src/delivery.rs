//! Sending one attempt of one delivery: claim the attempt, sign afresh, POST, record the
//! attempt, and schedule the next one (a new delayed queue message, never a sleep).
//! Any event type is sent the same way: the payload stored with the delivery is the body.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use apalis::prelude::{TaskBuilder, TaskId, TaskSink};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use reqwest::header::{CONTENT_TYPE, RETRY_AFTER};
use tracing::Instrument;
use uuid::Uuid;

use llmflow_core::db::attempt_claims::ClaimRequest;
use llmflow_core::db::attempt_records::AttemptRecord;
use llmflow_core::db::deliveries::{self, AttemptOutcome};
use llmflow_core::db::group::WriterStopped;
use llmflow_core::db::models::{AttemptRow, DeliveryRow};
use llmflow_core::db::DbError;
use llmflow_core::metrics::names;
use llmflow_core::queue::{self, DeliveryMessage, DeliveryStorage, QueueError};

use crate::classify::{classify, describe, ErrorClass};
use crate::signing::{SigningKey, WebhookHeaders};
use crate::WebhookState;

/// Response bodies are recorded up to this many bytes.
pub const MAX_RECORDED_BODY: usize = 20 * 1024;

/// How an attempt was started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    Scheduled,
    Manual,
}

impl Trigger {
    /// The stored name (`scheduled` | `manual`).
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Scheduled => deliveries::trigger::SCHEDULED,
            Trigger::Manual => deliveries::trigger::MANUAL,
        }
    }

    /// Reads a stored `next_trigger`; the column's CHECK allows only the two names.
    fn from_stored(name: &str) -> Trigger {
        if name == deliveries::trigger::MANUAL {
            Trigger::Manual
        } else {
            Trigger::Scheduled
        }
    }
}

/// Why a queue message was not handled to the end. The delivery row keeps its state, and the
/// reconciler pushes the attempt again when it is due.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("claiming the attempt")]
    Claim(#[source] Arc<DbError>),
    #[error("recording the attempt")]
    Record(#[source] Arc<DbError>),
    #[error("the sender is stopping: its attempt recorder has stopped")]
    RecorderStopped(#[source] WriterStopped),
}

/// What the receiver (or the network) answered.
struct Response {
    status: Option<u16>,
    class: Option<ErrorClass>,
    message: Option<String>,
    body: Option<String>,
    remote: Option<String>,
    retry_after: Option<Duration>,
}

/// Handles one queue message. Returns `Ok` also when the attempt was already made elsewhere.
pub async fn handle(state: &WebhookState, message: &DeliveryMessage) -> Result<(), DeliveryError> {
    let claimed = state
        .recorders
        .claims
        .write(ClaimRequest {
            delivery_id: message.delivery_id.0,
            attempt: message.attempt,
        })
        .await
        .map_err(DeliveryError::RecorderStopped)?
        .map_err(DeliveryError::Claim)?;
    let Some(claim) = claimed else {
        tracing::debug!(delivery_id = %message.delivery_id, attempt = message.attempt, "attempt already made");
        return Ok(());
    };
    let span = tracing::info_span!(
        "webhook attempt",
        otel.kind = "client",
        otel.status_description = tracing::field::Empty,
        delivery_id = %claim.delivery.id,
        job_id = %claim.delivery.job_id,
        event_type = %claim.delivery.event_type,
        attempt = message.attempt,
        http.request.method = "POST",
        http.response.status_code = tracing::field::Empty,
        error.type = tracing::field::Empty,
    );
    // The attempt joins the trace of the job's submit.
    llmflow_core::otel::continue_trace(&span, claim.traceparent.as_deref());
    attempt(state, message, claim).instrument(span).await
}

/// Sends a claimed attempt, records it, and schedules the next one if it failed.
async fn attempt(
    state: &WebhookState,
    message: &DeliveryMessage,
    claim: deliveries::Claim,
) -> Result<(), DeliveryError> {
    let delivery = &claim.delivery;
    let trigger = Trigger::from_stored(&claim.trigger);
    let keys = signing_keys(state, claim.job_secret.as_deref());
    let attempted_at = Utc::now();
    let started = Instant::now();
    let response = match keys {
        Ok(keys) => {
            tokio::select! {
                response = send(state, delivery, &keys) => response,
                // The sender is stopping and its grace period is over: the request is dropped
                // and the attempt given back for another sender (the receiver may see it twice,
                // with the same `webhook-id`).
                _ = state.hand_back.cancelled() => {
                    return hand_back(state, message, &claim).await;
                }
            }
        }
        Err(message) => Response {
            status: None,
            class: None,
            message: Some(message),
            body: None,
            remote: None,
            retry_after: None,
        },
    };
    let duration = started.elapsed();
    // The next attempt is scheduled from the recorded start and duration, so a row says exactly
    // when its retry was due: `next_retry_at = attempted_at + duration + delay`.
    let finished_at = attempted_at + chrono::Duration::from_std(duration).unwrap_or_default();
    let attempt = message.attempt;
    let outcome = outcome(state, trigger, attempt, &response, finished_at);
    let next_retry_at = match outcome {
        AttemptOutcome::RetryAt(at) => Some(at),
        _ => None,
    };
    let row = AttemptRow {
        id: Uuid::now_v7(),
        delivery_id: delivery.id,
        job_id: delivery.job_id,
        webhook_url: delivery.url.clone(),
        attempt_number: attempt,
        trigger: trigger.as_str().to_owned(),
        status_code: response.status.map(i32::from),
        success: outcome == AttemptOutcome::Delivered,
        error_class: response.class.map(|c| c.as_str().to_owned()),
        error_message: response.message.clone(),
        response_body: response.body.clone(),
        remote_addr: response.remote.clone(),
        duration_ms: i32::try_from(duration.as_millis()).unwrap_or(i32::MAX),
        next_retry_at,
        attempted_at,
    };
    let recorded = state
        .recorders
        .records
        .write(AttemptRecord {
            row,
            outcome,
            token: claim.token,
        })
        .await
        .map_err(DeliveryError::RecorderStopped)?
        .map_err(DeliveryError::Record)?;
    if !recorded {
        // This sender was presumed dead and the attempt was claimed again; that claim records.
        tracing::warn!(delivery_id = %delivery.id, attempt, "claim taken over; attempt not recorded");
        return Ok(());
    }
    observe_attempt(delivery, outcome, &response, finished_at);
    let span = tracing::Span::current();
    if let Some(status) = response.status {
        // Signed: unsigned fields are exported as text.
        span.record("http.response.status_code", i64::from(status));
    }
    if outcome != AttemptOutcome::Delivered {
        if let Some(class) = response.class {
            span.record("error.type", class.as_str());
        }
        let message = response.message.as_deref().unwrap_or("not delivered");
        span.record("otel.status_description", message);
    }
    tracing::info!(
        delivery_id = %delivery.id,
        job_id = %delivery.job_id,
        attempt,
        trigger = trigger.as_str(),
        status = response.status,
        error_class = response.class.map(|c| c.as_str()),
        outcome = ?outcome,
        "webhook attempt"
    );
    if let AttemptOutcome::RetryAt(at) = outcome {
        let mut storage = state.deliveries.clone();
        let next = DeliveryMessage {
            delivery_id: message.delivery_id,
            attempt: attempt + 1,
        };
        if let Err(e) = push_attempt_at(&mut storage, next, at).await {
            // The row says when it is due; the reconciler pushes it.
            tracing::warn!(delivery_id = %delivery.id, error = %e, "push of the next attempt failed");
        }
    }
    Ok(())
}

/// Releases an attempt this stopping sender will not finish and pushes it again.
async fn hand_back(
    state: &WebhookState,
    message: &DeliveryMessage,
    claim: &deliveries::Claim,
) -> Result<(), DeliveryError> {
    let released = {
        let mut conn = state
            .pool
            .get()
            .await
            .map_err(|e| DeliveryError::Record(Arc::new(e.into())))?;
        deliveries::release_attempt(&mut conn, claim.delivery.id, claim.token)
            .await
            .map_err(|e| DeliveryError::Record(Arc::new(e)))?
    };
    if released {
        let mut storage = state.deliveries.clone();
        let task_id = llmflow_core::queue::repush_task_id(llmflow_core::JobId(claim.delivery.id));
        match llmflow_core::queue::push_delivery_as(&mut storage, message.clone(), &task_id).await {
            Ok(()) => {
                tracing::info!(delivery_id = %message.delivery_id, attempt = message.attempt, "stopping: attempt handed back")
            }
            // Released but not pushed: the reconciler pushes a due delivery missing from Redis.
            Err(e) => {
                tracing::warn!(delivery_id = %message.delivery_id, error = %e, "stopping: attempt released, but its push failed")
            }
        }
    }
    Ok(())
}

/// The metrics of a recorded attempt: its outcome and error class; a terminal event's latency
/// from the job's end (the delivery row is written with the job's result) to its 2xx; a dead
/// letter.
fn observe_attempt(
    delivery: &DeliveryRow,
    outcome: AttemptOutcome,
    response: &Response,
    finished_at: chrono::DateTime<Utc>,
) {
    let label = match outcome {
        AttemptOutcome::Delivered => "delivered",
        AttemptOutcome::RetryAt(_) => "retry",
        AttemptOutcome::Dead => "dead",
    };
    let class = response.class.map_or("none", |c| c.as_str());
    metrics::counter!(names::WEBHOOK_ATTEMPTS, "outcome" => label, "error_class" => class)
        .increment(1);
    match outcome {
        AttemptOutcome::Delivered if delivery.event_type.starts_with("workflow.") => {
            let terminal = matches!(
                delivery.event_type.as_str(),
                "workflow.completed" | "workflow.failed" | "workflow.cancelled"
            );
            if terminal {
                let latency = (finished_at - delivery.created_at)
                    .to_std()
                    .unwrap_or_default();
                metrics::histogram!(
                    names::WEBHOOK_DELIVERY_LATENCY,
                    "event_type" => delivery.event_type.clone(),
                )
                .record(latency.as_secs_f64());
            }
        }
        AttemptOutcome::Dead => metrics::counter!(names::WEBHOOK_DEAD_LETTERS).increment(1),
        _ => {}
    }
}

/// Pushes an attempt to run no earlier than `at`. apalis schedules in whole seconds and runs a
/// task once the current second reaches its time, so the time is rounded up, never down.
pub async fn push_attempt_at(
    storage: &mut DeliveryStorage,
    message: DeliveryMessage,
    at: DateTime<Utc>,
) -> Result<(), QueueError> {
    let task_id = queue::delivery_task_id(message.delivery_id, message.attempt);
    let whole_seconds = at.timestamp() + i64::from(at.timestamp_subsec_nanos() > 0);
    let task = TaskBuilder::new(message)
        .task_id(TaskId::from_string(task_id))
        .run_at_timestamp(u64::try_from(whole_seconds).unwrap_or(0))
        .build();
    storage
        .push_task(task)
        .await
        .map_err(|e| QueueError::Push(Box::new(e)))
}

/// The keys a delivery is signed with: the job's own secret, else the service's current (and
/// previous) secret.
fn signing_keys(state: &WebhookState, job_secret: Option<&str>) -> Result<Vec<SigningKey>, String> {
    match job_secret {
        Some(secret) => SigningKey::parse(secret)
            .map(|key| vec![key])
            .map_err(|e| format!("the job's webhook_secret is unusable: {e}")),
        None if state.default_keys.is_empty() => Err(
            "no signing secret: set LLM_WEBHOOK_SECRET or give webhook_secret on submit".to_owned(),
        ),
        None => Ok(state.default_keys.clone()),
    }
}

async fn send(state: &WebhookState, delivery: &DeliveryRow, keys: &[SigningKey]) -> Response {
    let failed = |class: ErrorClass, message: String| Response {
        status: None,
        class: Some(class),
        message: Some(message),
        body: None,
        remote: None,
        retry_after: None,
    };
    let url = match reqwest::Url::parse(&delivery.url) {
        Ok(url) => url,
        Err(e) => return failed(ErrorClass::Blocked, format!("invalid URL: {e}")),
    };
    if let Err(blocked) = llmflow_netguard::check_url(&state.policy, &url) {
        return failed(ErrorClass::Blocked, blocked.to_string());
    }
    let body = match serde_json::to_vec(&delivery.payload) {
        Ok(body) => body,
        Err(e) => {
            return failed(
                ErrorClass::Body,
                format!("cannot serialise the payload: {e}"),
            )
        }
    };
    let headers = WebhookHeaders::now(keys, &delivery.webhook_id, &body);
    let mut request = state
        .client
        .post(url)
        .header(CONTENT_TYPE, "application/json")
        .body(body);
    for (name, value) in headers.iter() {
        request = request.header(name, value);
    }
    let response = match request.send().await {
        Ok(r) => r,
        Err(e) => return failed(classify(&e), describe(&e)),
    };
    let status = response.status();
    let remote = response.remote_addr().map(|a| a.to_string());
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| crate::schedule::parse_retry_after(v, SystemTime::now()));
    let (body, body_error) = read_limited(response).await;
    let class = if status.is_success() && body_error.is_none() {
        None
    } else if status.is_success() {
        Some(ErrorClass::Body)
    } else {
        Some(ErrorClass::Http)
    };
    Response {
        status: Some(status.as_u16()),
        class,
        message: body_error
            .or_else(|| (!status.is_success()).then(|| format!("receiver answered {status}"))),
        body: Some(body),
        remote,
        retry_after,
    }
}

/// Reads at most `MAX_RECORDED_BODY` bytes of the response (lossy UTF-8); the rest is dropped.
async fn read_limited(response: reqwest::Response) -> (String, Option<String>) {
    let mut stream = response.bytes_stream();
    let mut buffer = Vec::new();
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(bytes) => {
                let room = MAX_RECORDED_BODY - buffer.len();
                buffer.extend_from_slice(&bytes[..bytes.len().min(room)]);
                if buffer.len() >= MAX_RECORDED_BODY {
                    break;
                }
            }
            Err(e) => {
                return (
                    String::from_utf8_lossy(&buffer).into_owned(),
                    Some(format!("reading the body: {e}")),
                )
            }
        }
    }
    (String::from_utf8_lossy(&buffer).into_owned(), None)
}

/// 2xx delivers; 410 Gone and blocked URLs stop; anything else retries on the schedule
/// (a longer `Retry-After` wins, up to the cap) until the attempts run out. A manual attempt is
/// a single attempt: if it fails, the delivery is dead again.
fn outcome(
    state: &WebhookState,
    trigger: Trigger,
    attempt: i32,
    response: &Response,
    finished_at: DateTime<Utc>,
) -> AttemptOutcome {
    match (response.status, response.class) {
        (Some(200..=299), None) => AttemptOutcome::Delivered,
        (Some(410), _) | (_, Some(ErrorClass::Blocked)) => AttemptOutcome::Dead,
        (None, None) => AttemptOutcome::Dead,
        _ => match trigger {
            Trigger::Manual => AttemptOutcome::Dead,
            Trigger::Scheduled => {
                let failed = u32::try_from(attempt).unwrap_or(u32::MAX);
                match state.schedule.delay_after(failed, response.retry_after) {
                    Some(delay) => AttemptOutcome::RetryAt(
                        finished_at + chrono::Duration::from_std(delay).unwrap_or_default(),
                    ),
                    None => AttemptOutcome::Dead,
                }
            }
        },
    }
}
