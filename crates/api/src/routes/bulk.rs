//! Bulk cancel and bulk retry of every job matching a filter, in two steps so that a lost or
//! changed filter cannot touch more than the operator saw:
//! 1. `POST /api/v1/admin/jobs/bulk/preview` `{action, filter}` counts the jobs the action
//!    would touch (created up to now) and answers `{count, as_of, token}`; the token signs the
//!    action, filter, `as_of` and count.
//! 2. `POST /api/v1/admin/jobs/bulk` `{action, filter, as_of, expected_count, token}` checks the
//!    token, counts again (jobs created after `as_of` never count), and acts only when the count
//!    is still the one previewed (409 otherwise: preview again). The action is audited.

use std::collections::HashMap;
use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use subtle::ConstantTimeEq;

use llmflow_core::db;
use llmflow_core::db::admin::{self, JobFilter};

use super::filter;
use super::operator::audit_row;
use crate::auth::Actor;
use crate::error::{ApiError, ErrorBody, FieldError};
use crate::AppState;

/// The most jobs one bulk action touches.
pub const MAX_BULK: i64 = 1000;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin/jobs/bulk/preview", web::post().to(preview))
        .route("/admin/jobs/bulk", web::post().to(confirm));
}

/// What a bulk action does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Cancel,
    Retry,
}

impl Action {
    pub fn parse(text: &str) -> Option<Action> {
        match text {
            "cancel" => Some(Action::Cancel),
            "retry" => Some(Action::Retry),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Cancel => "cancel",
            Action::Retry => "retry",
        }
    }

    /// The states a job can be in for the action to apply.
    fn eligible(self) -> &'static [&'static str] {
        match self {
            Action::Cancel => &["pending", "queued", "processing"],
            Action::Retry => &["failed"],
        }
    }
}

/// What a preview counted, and the token that lets it be confirmed.
#[derive(Debug, Clone, Serialize)]
pub struct Preview {
    pub action: Action,
    pub filter: JobFilter,
    pub count: i64,
    pub as_of: DateTime<Utc>,
    pub token: String,
}

/// What a confirmed bulk action did.
#[derive(Debug, Clone, Serialize)]
pub struct BulkResult {
    pub action: Action,
    pub affected: usize,
    /// Jobs that changed state between the count and the action (finished meanwhile …).
    pub skipped: usize,
    pub audit_id: uuid::Uuid,
}

fn token(
    key: &str,
    action: Action,
    filter: &JobFilter,
    as_of: DateTime<Utc>,
    count: i64,
) -> String {
    let message = json!({
        "action": action.as_str(),
        "filter": filter,
        "as_of": as_of.timestamp_micros(),
        "count": count,
    });
    crate::session::sign(key, message.to_string().as_bytes())
}

fn signing_key(state: &AppState) -> Result<&str, ApiError> {
    state.admin_key().ok_or(ApiError::Unauthorized)
}

pub(crate) async fn make_preview(
    state: &AppState,
    action: Action,
    filter: JobFilter,
) -> Result<Preview, ApiError> {
    // Whole microseconds, as the token and the database keep them.
    let as_of =
        DateTime::from_timestamp_micros(Utc::now().timestamp_micros()).unwrap_or_else(Utc::now);
    let mut conn = state.pool.get().await.map_err(db::DbError::from)?;
    let count = admin::count_eligible(&mut conn, &filter, as_of, action.eligible()).await?;
    let token = token(signing_key(state)?, action, &filter, as_of, count);
    Ok(Preview {
        action,
        filter,
        count,
        as_of,
        token,
    })
}

/// A confirmation as the API or the dashboard's form sends it.
pub(crate) struct Confirm {
    pub action: Action,
    pub filter: JobFilter,
    pub as_of: DateTime<Utc>,
    pub expected_count: i64,
    pub token: String,
}

pub(crate) async fn apply(
    state: &AppState,
    actor: Actor,
    c: Confirm,
) -> Result<BulkResult, ApiError> {
    let expected = token(
        signing_key(state)?,
        c.action,
        &c.filter,
        c.as_of,
        c.expected_count,
    );
    if !bool::from(expected.as_bytes().ct_eq(c.token.as_bytes())) {
        return Err(ApiError::Conflict(
            "the confirmation does not match its preview: preview again".to_owned(),
        ));
    }
    if c.expected_count > MAX_BULK {
        return Err(ApiError::validation(vec![FieldError::new(
            "filter",
            format!(
                "matches {} jobs; one bulk action touches at most {MAX_BULK}: narrow the filter",
                c.expected_count
            ),
        )]));
    }
    let ids = {
        let mut conn = state.pool.get().await.map_err(db::DbError::from)?;
        let eligible = c.action.eligible();
        let now = admin::count_eligible(&mut conn, &c.filter, c.as_of, eligible).await?;
        if now != c.expected_count {
            return Err(ApiError::Conflict(format!(
                "the filter now matches {now} jobs, not the {} previewed: preview again",
                c.expected_count
            )));
        }
        admin::eligible_ids(&mut conn, &c.filter, c.as_of, eligible, c.expected_count).await?
    };
    let (mut affected, mut skipped) = (0usize, 0usize);
    for id in &ids {
        let done = match c.action {
            Action::Cancel => super::cancel::apply(state, *id).await.map(|o| {
                matches!(
                    o,
                    db::jobs::CancelOutcome::Cancelled(_) | db::jobs::CancelOutcome::Requested
                )
            }),
            Action::Retry => {
                let mut conn = state.pool.get().await.map_err(db::DbError::from)?;
                match db::jobs::find_job(&mut conn, *id).await? {
                    None => Ok(false),
                    Some(job) => {
                        drop(conn);
                        super::retry::apply(state, &job).await.map(|_| true)
                    }
                }
            }
        };
        match done {
            Ok(true) => affected += 1,
            Ok(false) | Err(ApiError::Conflict(_) | ApiError::NotFound(_)) => skipped += 1,
            Err(e) => return Err(e),
        }
    }
    let detail = json!({
        "filter": c.filter,
        "as_of": c.as_of,
        "previewed": c.expected_count,
        "skipped": skipped,
    });
    let row = audit_row(
        state,
        actor,
        &format!("bulk_{}", c.action.as_str()),
        detail,
        affected,
    )
    .await?;
    tracing::info!(action = c.action.as_str(), affected, skipped, "bulk action");
    Ok(BulkResult {
        action: c.action,
        affected,
        skipped,
        audit_id: row.id,
    })
}

/// The filter of a JSON body: an object of string values, the same fields as the list's query.
fn body_filter(body: &Value, errors: &mut Vec<FieldError>) -> JobFilter {
    let mut params = HashMap::new();
    match body.get("filter") {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            for (k, v) in map {
                match v {
                    Value::String(s) => {
                        params.insert(k.clone(), s.clone());
                    }
                    Value::Null => {}
                    _ => errors.push(FieldError::new(format!("filter.{k}"), "must be a string")),
                }
            }
        }
        Some(_) => errors.push(FieldError::new("filter", "must be an object")),
    }
    filter::parse_filter(&params).unwrap_or_else(|e| {
        errors.extend(
            e.into_iter()
                .map(|f| FieldError::new(format!("filter.{}", f.field), f.message)),
        );
        JobFilter::default()
    })
}

fn body_action(body: &Value, errors: &mut Vec<FieldError>) -> Action {
    match body
        .get("action")
        .and_then(Value::as_str)
        .and_then(Action::parse)
    {
        Some(a) => a,
        None => {
            errors.push(FieldError::new("action", "must be `cancel` or `retry`"));
            Action::Cancel
        }
    }
}

fn json_body(body: &[u8]) -> Result<Value, ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("malformed JSON: {e}")))?;
    if value.is_object() {
        Ok(value)
    } else {
        Err(ApiError::validation(vec![FieldError::new(
            "body",
            "must be a JSON object",
        )]))
    }
}

/// Count what a bulk cancel or retry would touch.
#[utoipa::path(
    post,
    path = "/api/v1/admin/jobs/bulk/preview",
    tag = "admin",
    request_body(content = serde_json::Value, description = "`{\"action\": \"cancel\"|\"retry\", \"filter\": {status, workflow, user_id, job_id, from, to, q}}`"),
    responses(
        (status = 200, description = "`{action, filter, count, as_of, token}`", body = serde_json::Value),
        (status = 401, description = "No admin key or session", body = ErrorBody),
        (status = 422, description = "Bad action or filter", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn preview(
    req: HttpRequest,
    state: web::Data<Arc<AppState>>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    state.require_operator(&req)?;
    let body = json_body(&body)?;
    let mut errors = Vec::new();
    let action = body_action(&body, &mut errors);
    let filter = body_filter(&body, &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    Ok(HttpResponse::Ok().json(make_preview(&state, action, filter).await?))
}

/// Confirm a previewed bulk cancel or retry (audited).
#[utoipa::path(
    post,
    path = "/api/v1/admin/jobs/bulk",
    tag = "admin",
    request_body(content = serde_json::Value, description = "`{action, filter, as_of, expected_count, token}` as the preview answered"),
    responses(
        (status = 200, description = "`{action, affected, skipped, audit_id}`", body = serde_json::Value),
        (status = 401, description = "No admin key or session", body = ErrorBody),
        (status = 409, description = "Token mismatch or the count changed: preview again", body = ErrorBody),
        (status = 422, description = "Bad fields, or more than 1000 jobs", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn confirm(
    req: HttpRequest,
    state: web::Data<Arc<AppState>>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let actor = state.require_operator(&req)?;
    let body = json_body(&body)?;
    let mut errors = Vec::new();
    let action = body_action(&body, &mut errors);
    let filter = body_filter(&body, &mut errors);
    let as_of = body
        .get("as_of")
        .and_then(Value::as_str)
        .and_then(filter::parse_time);
    if as_of.is_none() {
        errors.push(FieldError::new("as_of", "must be the preview's `as_of`"));
    }
    let expected_count = body.get("expected_count").and_then(Value::as_i64);
    if expected_count.is_none_or(|n| n < 0) {
        errors.push(FieldError::new(
            "expected_count",
            "must be the preview's `count`",
        ));
    }
    let token = body.get("token").and_then(Value::as_str);
    if token.is_none() {
        errors.push(FieldError::new("token", "must be the preview's `token`"));
    }
    let (Some(as_of), Some(expected_count), Some(token), true) =
        (as_of, expected_count, token, errors.is_empty())
    else {
        return Err(ApiError::validation(errors));
    };
    let confirm = Confirm {
        action,
        filter,
        as_of,
        expected_count,
        token: token.to_owned(),
    };
    Ok(HttpResponse::Ok().json(apply(&state, actor, confirm).await?))
}
