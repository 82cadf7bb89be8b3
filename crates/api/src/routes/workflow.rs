//! `POST /api/v1/workflow`: record the job, push its id, answer 202.

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use llmflow_core::db::{self, models::JobRow, models::NewJob};
use llmflow_core::{events, queue};
use llmflow_core::{JobId, JobStatus};

use crate::error::{ApiError, FieldError};
use crate::{ratelimit, scope, AppState};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/workflow", web::post().to(submit));
}

/// Default priority when the caller gives none (0 lowest, 10 highest).
pub const DEFAULT_PRIORITY: i16 = 5;

/// A submission, checked field by field so that every problem is reported at once.
#[derive(Debug)]
pub struct Submission {
    pub workflow_name: String,
    pub user_id: Option<Uuid>,
    pub input_data: Value,
    pub webhook_url: Option<String>,
    pub webhook_secret: Option<String>,
    pub priority: i16,
    /// Budget: the worker stops before a call that would take the job past it.
    pub max_cost_usd: Option<Decimal>,
    /// Extra webhook events (`workflow.progress`, `workflow.chunk`).
    pub webhook_events: Vec<String>,
}

const FIELDS: [&str; 8] = [
    "workflow_name",
    "user_id",
    "input_data",
    "webhook_url",
    "webhook_secret",
    "priority",
    "max_cost_usd",
    "webhook_events",
];

/// Extra webhook events a caller may ask for.
pub const WEBHOOK_EVENTS: [&str; 2] = [events::WEBHOOK_PROGRESS, events::WEBHOOK_CHUNK];

impl Submission {
    pub fn parse(body: &Value) -> Result<Submission, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut error = |field: &str, message: &str| {
            errors.push(FieldError {
                field: field.to_owned(),
                message: message.to_owned(),
            })
        };
        let Some(map) = body.as_object() else {
            error("body", "must be a JSON object");
            return Err(errors);
        };
        for key in map.keys().filter(|k| !FIELDS.contains(&k.as_str())) {
            error(key, "unknown field");
        }
        let workflow_name = match map.get("workflow_name") {
            Some(Value::String(name)) if !name.trim().is_empty() => name.clone(),
            Some(Value::String(_)) => {
                error("workflow_name", "must not be empty");
                String::new()
            }
            Some(_) => {
                error("workflow_name", "must be a string");
                String::new()
            }
            None => {
                error("workflow_name", "is required");
                String::new()
            }
        };
        let input_data = match map.get("input_data") {
            Some(v @ Value::Object(_)) => v.clone(),
            Some(_) => {
                error("input_data", "must be a JSON object");
                Value::Object(Map::new())
            }
            None => {
                error("input_data", "is required");
                Value::Object(Map::new())
            }
        };
        let user_id = match map.get("user_id") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => match Uuid::parse_str(s) {
                Ok(id) => Some(id),
                Err(_) => {
                    error("user_id", "must be a UUID");
                    None
                }
            },
            Some(_) => {
                error("user_id", "must be a UUID string");
                None
            }
        };
        let webhook_url = match map.get("webhook_url") {
            None | Some(Value::Null) => None,
            Some(Value::String(url)) => match reqwest::Url::parse(url) {
                Ok(parsed)
                    if matches!(parsed.scheme(), "http" | "https") && parsed.host().is_some() =>
                {
                    Some(url.clone())
                }
                Ok(_) => {
                    error("webhook_url", "must be an http or https URL");
                    None
                }
                Err(e) => {
                    error("webhook_url", &format!("invalid URL: {e}"));
                    None
                }
            },
            Some(_) => {
                error("webhook_url", "must be a string");
                None
            }
        };
        let webhook_secret = match map.get("webhook_secret") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(_) => {
                error("webhook_secret", "must be a non-empty string");
                None
            }
        };
        let priority = match map.get("priority") {
            None | Some(Value::Null) => DEFAULT_PRIORITY,
            Some(Value::Number(n)) => match n.as_i64() {
                Some(p @ 0..=10) => p as i16,
                _ => {
                    error("priority", "must be an integer from 0 to 10");
                    DEFAULT_PRIORITY
                }
            },
            Some(_) => {
                error("priority", "must be an integer from 0 to 10");
                DEFAULT_PRIORITY
            }
        };
        let max_cost_usd = match map.get("max_cost_usd") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => match Decimal::from_str_exact(&n.to_string())
                .or_else(|_| Decimal::from_scientific(&n.to_string()))
            {
                Ok(d) if d >= Decimal::new(1, 6) && d < Decimal::from(1_000_000) => Some(d),
                _ => {
                    error("max_cost_usd", "must be a number from 0.000001 to 999999");
                    None
                }
            },
            Some(_) => {
                error("max_cost_usd", "must be a number (USD)");
                None
            }
        };
        let webhook_events = match map.get("webhook_events") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => {
                let mut events = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    match item.as_str() {
                        Some(name) if WEBHOOK_EVENTS.contains(&name) => {
                            if !events.iter().any(|e| e == name) {
                                events.push(name.to_owned());
                            }
                        }
                        _ => error(
                            &format!("webhook_events[{i}]"),
                            "must be `workflow.progress` or `workflow.chunk`",
                        ),
                    }
                }
                events
            }
            Some(_) => {
                error("webhook_events", "must be an array of event names");
                Vec::new()
            }
        };
        if !webhook_events.is_empty() && webhook_url.is_none() && !map.contains_key("webhook_url") {
            error("webhook_events", "needs a webhook_url");
        }
        if errors.is_empty() {
            Ok(Submission {
                workflow_name,
                user_id,
                input_data,
                webhook_url,
                webhook_secret,
                priority,
                max_cost_usd,
                webhook_events,
            })
        } else {
            Err(errors)
        }
    }
}

/// The answer to an accepted submission (and to its replays under the same `Idempotency-Key`).
#[derive(Serialize, utoipa::ToSchema)]
pub struct Accepted {
    #[schema(value_type = uuid::Uuid)]
    job_id: JobId,
    queue_task_id: Option<String>,
    #[schema(value_type = String, example = "queued")]
    status: JobStatus,
    estimated_wait_seconds: u64,
    status_url: String,
}

/// Jobs drained per second assumed by `estimated_wait_seconds` (a rough figure for display).
const ASSUMED_DRAIN_PER_SECOND: u64 = 200;

/// How long an `Idempotency-Key` keeps answering with the job it first created.
pub const IDEMPOTENCY_WINDOW: chrono::Duration = chrono::Duration::hours(24);

/// The header a caller may send to make a submission safe to retry.
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";

/// Deepest nesting accepted in a request body (serde_json itself stops at 128).
pub const MAX_JSON_DEPTH: usize = 32;

/// The nesting depth of a JSON value (a scalar is 0).
pub fn json_depth(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(json_depth).max().unwrap_or(0),
        Value::Object(map) => 1 + map.values().map(json_depth).max().unwrap_or(0),
        Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) => 0,
    }
}

/// Refuses bodies nested deeper than [`MAX_JSON_DEPTH`].
pub fn check_depth(body: &Value) -> Result<(), ApiError> {
    if json_depth(body) > MAX_JSON_DEPTH {
        return Err(ApiError::validation(vec![FieldError {
            field: "body".to_owned(),
            message: format!("nested deeper than {MAX_JSON_DEPTH} levels"),
        }]));
    }
    Ok(())
}

fn idempotency_key(req: &HttpRequest) -> Result<Option<String>, ApiError> {
    let Some(value) = req.headers().get(IDEMPOTENCY_HEADER) else {
        return Ok(None);
    };
    match value.to_str().map(str::trim) {
        Ok(key) if !key.is_empty() && key.len() <= 255 => Ok(Some(key.to_owned())),
        _ => Err(ApiError::BadRequest(
            "Idempotency-Key must be 1 to 255 visible ASCII characters".to_owned(),
        )),
    }
}

fn body_hash(body: &Value) -> String {
    // serde_json writes object keys sorted, so equal bodies hash equally.
    let digest = Sha256::digest(body.to_string().as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A replay of the answer a key's first request got: the same body (the wait estimate is the
/// one stored with the job).
async fn replay(job: &JobRow, hash: &str) -> Result<HttpResponse, ApiError> {
    if job.idempotency_hash.as_deref() != Some(hash) {
        return Err(ApiError::Conflict(
            "this Idempotency-Key was used with a different request body".to_owned(),
        ));
    }
    let job_id = JobId(job.id);
    let pushed = job.queued_at.is_some();
    Ok(HttpResponse::Accepted()
        .insert_header(("Idempotent-Replayed", "true"))
        .json(Accepted {
            job_id,
            queue_task_id: pushed.then(|| job_id.to_string()),
            status: if pushed {
                JobStatus::Queued
            } else {
                JobStatus::Pending
            },
            estimated_wait_seconds: job
                .estimated_wait_seconds
                .and_then(|w| u64::try_from(w).ok())
                .unwrap_or(0),
            status_url: format!("/api/v1/status/{job_id}"),
        }))
}

fn is_unique_violation(e: &db::DbError) -> bool {
    matches!(
        e,
        db::DbError::Query(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            _
        ))
    )
}

/// Submit a job: it is recorded, queued and answered at once (202).
#[utoipa::path(
    post,
    path = "/api/v1/workflow",
    tag = "jobs",
    request_body = crate::openapi::SubmitRequest,
    params(
        ("Idempotency-Key" = Option<String>, Header, description = "Same key and body within 24 h: the same job (202); same key, other body: 409"),
        ("X-User-Id" = Option<uuid::Uuid>, Header, description = "The user the job is for (fills `user_id`; must match it when both are given)"),
        ("X-User-Tier" = Option<String>, Header, description = "Rate limit tier of the user"),
    ),
    responses(
        (status = 202, description = "Accepted", body = Accepted),
        (status = 401, description = "Missing or invalid API key", body = crate::openapi::ErrorBody),
        (status = 404, description = "Unknown workflow", body = crate::openapi::ErrorBody),
        (status = 409, description = "Idempotency-Key reused with another body", body = crate::openapi::ErrorBody),
        (status = 413, description = "Body too large", body = crate::openapi::ErrorBody),
        (status = 415, description = "Not JSON", body = crate::openapi::ErrorBody),
        (status = 422, description = "Invalid fields", body = crate::openapi::ErrorBody),
        (status = 429, description = "Rate limited (see Retry-After)", body = crate::openapi::ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn submit(
    req: HttpRequest,
    state: web::Data<Arc<AppState>>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    state.require_client(&req)?;
    let scoped_user = scope::header_user(&req)?;
    let key = idempotency_key(&req)?;
    check_depth(&body)?;
    let mut submission = Submission::parse(&body).map_err(ApiError::validation)?;
    match (scoped_user, submission.user_id) {
        (Some(header), Some(body_user)) if header != body_user => {
            return Err(ApiError::validation(vec![FieldError {
                field: "user_id".to_owned(),
                message: "differs from the X-User-Id header".to_owned(),
            }]))
        }
        (Some(header), None) => submission.user_id = Some(header),
        _ => {}
    }
    if let Some(url) = &submission.webhook_url {
        let blocked = reqwest::Url::parse(url)
            .map_err(|e| e.to_string())
            .and_then(|u| {
                llmflow_webhook::ssrf::check_url(&state.webhook_policy, &u)
                    .map_err(|e| e.to_string())
            });
        if let Err(message) = blocked {
            return Err(ApiError::validation(vec![FieldError {
                field: "webhook_url".to_owned(),
                message: format!("not allowed: {message}"),
            }]));
        }
    }
    let limited_user = submission
        .user_id
        .map(|u| u.to_string())
        .unwrap_or_else(|| "anonymous".to_owned());
    ratelimit::check(&state, &req, &limited_user).await?;
    let loaded = state
        .catalog
        .get(&submission.workflow_name)
        .ok_or_else(|| {
            ApiError::NotFound(format!("unknown workflow `{}`", submission.workflow_name))
        })?;
    let problems = loaded.workflow.check_input(&submission.input_data);
    if !problems.is_empty() {
        return Err(ApiError::validation(
            problems.into_iter().map(FieldError::from).collect(),
        ));
    }

    let hash = key.as_ref().map(|_| body_hash(&body));
    let mut conn = state.pool.get().await.map_err(db::DbError::from)?;
    if let (Some(key), Some(hash)) = (&key, &hash) {
        if let Some(job) = db::jobs::find_by_idempotency_key(&mut conn, key).await? {
            drop(conn);
            return replay(&job, hash).await;
        }
        db::jobs::release_expired_idempotency_key(&mut conn, key).await?;
    }

    let job_id = JobId::new();
    let task_id = job_id.to_string();
    let band = queue::Band::of(submission.priority);
    let estimated_wait = waiting_jobs(&state).await / ASSUMED_DRAIN_PER_SECOND;
    let new_job = NewJob {
        id: job_id.0,
        user_id: submission.user_id,
        workflow_name: loaded.workflow.name.clone(),
        workflow_version: loaded.workflow.version.clone(),
        workflow_hash: loaded.hash.clone(),
        // Recorded as queued, then pushed: one write. No worker can see the id before the
        // insert commits, and a failed push turns it back to `pending` below.
        status: JobStatus::Queued.as_str().to_owned(),
        queue_task_id: Some(task_id.clone()),
        queued_at: Some(chrono::Utc::now()),
        priority: submission.priority,
        input_data: submission.input_data,
        webhook_url: submission.webhook_url,
        webhook_secret: submission.webhook_secret,
        steps_planned: i32::try_from(loaded.workflow.planned_steps()).unwrap_or(i32::MAX),
        idempotency_key: key.clone(),
        webhook_events: (!submission.webhook_events.is_empty())
            .then(|| Value::from(submission.webhook_events.clone())),
        max_cost_usd: submission.max_cost_usd,
        idempotency_hash: hash.clone(),
        idempotency_expires_at: key
            .as_ref()
            .map(|_| chrono::Utc::now() + IDEMPOTENCY_WINDOW),
        estimated_wait_seconds: Some(i32::try_from(estimated_wait).unwrap_or(i32::MAX)),
    };
    if let Err(e) = db::jobs::insert_job(&mut conn, &new_job).await {
        // Two requests with one key at the same moment: the second finds the first's job.
        if let (true, Some(key), Some(hash)) = (is_unique_violation(&e), &key, &hash) {
            if let Some(job) = db::jobs::find_by_idempotency_key(&mut conn, key).await? {
                drop(conn);
                return replay(&job, hash).await;
            }
        }
        return Err(e.into());
    }

    // The row is the record: if Redis refuses the push, the job becomes `pending` and the
    // reconciler pushes it later. The caller still gets its job id.
    let mut jobs = state.queues.band_storage(state.redis.clone(), band, 1);
    let (status, queue_task_id) = match queue::push_job(&mut jobs, job_id, &task_id).await {
        Ok(()) => (JobStatus::Queued, Some(task_id)),
        Err(e) => {
            tracing::warn!(%job_id, error = %e, "push failed; the reconciler will retry");
            // Should this write fail too, the reconciler still finds the job: it re-pushes
            // `queued` jobs that have not moved for a while as well.
            if let Err(e) = db::jobs::mark_pending(&mut conn, job_id.0).await {
                tracing::warn!(%job_id, error = %e, "cannot mark the job pending");
            }
            (JobStatus::Pending, None)
        }
    };
    drop(conn);
    tracing::info!(%job_id, workflow = %loaded.workflow.name, band = band.as_str(), "job accepted");
    Ok(HttpResponse::Accepted().json(Accepted {
        job_id,
        queue_task_id,
        status,
        estimated_wait_seconds: estimated_wait,
        status_url: format!("/api/v1/status/{job_id}"),
    }))
}

/// Jobs waiting in Redis, for the wait estimate; 0 when Redis does not answer.
async fn waiting_jobs(state: &AppState) -> u64 {
    let mut redis = state.redis.clone();
    state
        .queues
        .waiting_per_band(&mut redis)
        .await
        .map(|counts| counts.iter().map(|(_, n)| n).sum())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(body: Value) -> Vec<String> {
        Submission::parse(&body)
            .err()
            .unwrap_or_default()
            .into_iter()
            .map(|e| e.field)
            .collect()
    }

    #[test]
    fn accepts_a_minimal_body() {
        let s = Submission::parse(&json!({"workflow_name": "x", "input_data": {}})).expect("valid");
        assert_eq!(s.priority, DEFAULT_PRIORITY);
    }

    #[test]
    fn reports_every_bad_field() {
        assert_eq!(
            fields(
                json!({"workflow_name": 3, "input_data": [1], "priority": 11, "user_id": "nope",
                          "webhook_url": "ftp://x/", "extra": 1})
            ),
            [
                "extra",
                "workflow_name",
                "input_data",
                "user_id",
                "webhook_url",
                "priority"
            ]
        );
        assert_eq!(fields(json!({"workflow_name": "x"})), ["input_data"]);
        assert_eq!(fields(json!([1])), ["body"]);
        assert_eq!(
            fields(json!({"workflow_name": "x", "input_data": {}, "priority": 2.5})),
            ["priority"]
        );
    }
}
