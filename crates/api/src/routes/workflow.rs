//! `POST /api/v1/workflow`: record the job, push its id, answer 202.

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use llmflow_core::db::{self, models::NewJob};
use llmflow_core::queue;
use llmflow_core::{JobId, JobStatus};

use crate::error::{ApiError, FieldError};
use crate::AppState;

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
}

const FIELDS: [&str; 6] = [
    "workflow_name",
    "user_id",
    "input_data",
    "webhook_url",
    "webhook_secret",
    "priority",
];

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
        if errors.is_empty() {
            Ok(Submission {
                workflow_name,
                user_id,
                input_data,
                webhook_url,
                webhook_secret,
                priority,
            })
        } else {
            Err(errors)
        }
    }
}

#[derive(Serialize)]
struct Accepted {
    job_id: JobId,
    queue_task_id: Option<String>,
    status: JobStatus,
    estimated_wait_seconds: u64,
    status_url: String,
}

/// Jobs drained per second assumed by `estimated_wait_seconds` (a rough figure for display).
const ASSUMED_DRAIN_PER_SECOND: u64 = 200;

async fn submit(
    req: HttpRequest,
    state: web::Data<Arc<AppState>>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    state.require_client(&req)?;
    let submission = Submission::parse(&body).map_err(ApiError::validation)?;
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

    let job_id = JobId::new();
    let new_job = NewJob {
        id: job_id.0,
        user_id: submission.user_id,
        workflow_name: loaded.workflow.name.clone(),
        workflow_version: loaded.workflow.version.clone(),
        workflow_hash: loaded.hash.clone(),
        status: JobStatus::Pending.as_str().to_owned(),
        priority: submission.priority,
        input_data: submission.input_data,
        webhook_url: submission.webhook_url,
        webhook_secret: submission.webhook_secret,
        steps_planned: i32::try_from(loaded.workflow.planned_steps()).unwrap_or(i32::MAX),
        idempotency_key: None,
        webhook_events: None,
        max_cost_usd: None,
        idempotency_hash: None,
        idempotency_expires_at: None,
    };
    let mut conn = state.pool.get().await.map_err(db::DbError::from)?;
    db::jobs::insert_job(&mut conn, &new_job).await?;

    // The row is the record: if Redis refuses the push, the job stays `pending` and the
    // reconciler pushes it later. The caller still gets its job id.
    let task_id = job_id.to_string();
    let mut jobs = state.jobs.clone();
    let (status, queue_task_id) = match queue::push_job(&mut jobs, job_id, &task_id).await {
        Ok(()) => {
            db::jobs::mark_queued(&mut conn, job_id.0, &task_id).await?;
            (JobStatus::Queued, Some(task_id))
        }
        Err(e) => {
            tracing::warn!(%job_id, error = %e, "push failed; the reconciler will retry");
            (JobStatus::Pending, None)
        }
    };
    drop(conn);
    let waiting = waiting_jobs(&state).await;
    tracing::info!(%job_id, workflow = %loaded.workflow.name, "job accepted");
    Ok(HttpResponse::Accepted().json(Accepted {
        job_id,
        queue_task_id,
        status,
        estimated_wait_seconds: waiting / ASSUMED_DRAIN_PER_SECOND,
        status_url: format!("/api/v1/status/{job_id}"),
    }))
}

/// Jobs waiting in Redis, for the wait estimate; 0 when Redis does not answer.
async fn waiting_jobs(state: &AppState) -> u64 {
    let mut redis = state.redis.clone();
    redis::cmd("LLEN")
        .arg(format!("{}:active", state.queues.jobs()))
        .query_async::<u64>(&mut redis)
        .await
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
