//! The operator's JSON API (admin key, or a dashboard session): the filtered job list, one
//! job in full, the overview, single cancel and retry, and the audit log. Every action is
//! recorded in `llm_admin_audit`. The dashboard's pages read the same functions.

use std::collections::HashMap;
use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use serde::Serialize;
use serde_json::json;
use uuid::Uuid;

use llmflow_core::db::admin::{self, Cost, JobSummary, RunTime, StatusCount, Throughput};
use llmflow_core::db::models::{AttemptRow, DeliveryRow, JobRow, StepRow, UsageRow};
use llmflow_core::db::workers::{ProcessKind, WorkerStatus};
use llmflow_core::db::{self, deliveries, jobs::CancelOutcome};

use super::filter::{self, ListQuery};
use crate::auth::Actor;
use crate::error::{ApiError, ErrorBody};
use crate::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin/jobs", web::get().to(list))
        .route("/admin/overview", web::get().to(overview))
        .route("/admin/audit", web::get().to(audit))
        .route("/admin/jobs/{job_id}", web::get().to(detail))
        .route("/admin/jobs/{job_id}/cancel", web::post().to(cancel))
        .route("/admin/jobs/{job_id}/retry", web::post().to(retry));
}

pub(crate) fn query_params(req: &HttpRequest) -> Result<HashMap<String, String>, ApiError> {
    web::Query::<HashMap<String, String>>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .map_err(|e| ApiError::BadRequest(format!("invalid query string: {e}")))
}

/// A page of the job list.
#[derive(Serialize)]
pub struct JobPage {
    pub items: Vec<JobSummary>,
    /// Pass as `cursor` for the next page; absent on the last.
    pub next_cursor: Option<String>,
    pub limit: i64,
}

pub(crate) async fn job_page(state: &AppState, query: &ListQuery) -> Result<JobPage, ApiError> {
    let mut conn = state.pool.get().await.map_err(db::DbError::from)?;
    let (items, next) =
        admin::list_jobs(&mut conn, &query.filter, query.cursor, query.limit).await?;
    Ok(JobPage {
        items,
        next_cursor: next.map(|c| c.encode()),
        limit: query.limit,
    })
}

/// Jobs matching a filter, newest first, keyset-paged.
#[utoipa::path(
    get,
    path = "/api/v1/admin/jobs",
    operation_id = "admin_list_jobs",
    tag = "admin",
    params(
        ("status" = Option<String>, Query, description = "pending, queued, processing, completed, failed or cancelled"),
        ("workflow" = Option<String>, Query, description = "Workflow name"),
        ("user_id" = Option<Uuid>, Query, description = "The job's user"),
        ("job_id" = Option<Uuid>, Query, description = "One job"),
        ("from" = Option<String>, Query, description = "Created at or after (RFC 3339)"),
        ("to" = Option<String>, Query, description = "Created before (RFC 3339)"),
        ("q" = Option<String>, Query, description = "Text in the input or the error (case-insensitive)"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
        ("limit" = Option<i64>, Query, description = "1 to 200, default 50"),
    ),
    responses(
        (status = 200, description = "`{items, next_cursor, limit}`", body = serde_json::Value),
        (status = 401, description = "No admin key or session", body = ErrorBody),
        (status = 403, description = "The client key", body = ErrorBody),
        (status = 422, description = "A bad filter value", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn list(
    req: HttpRequest,
    state: web::Data<Arc<AppState>>,
) -> Result<HttpResponse, ApiError> {
    state.require_operator(&req)?;
    let query = filter::parse_list(&query_params(&req)?).map_err(ApiError::validation)?;
    Ok(HttpResponse::Ok().json(job_page(&state, &query).await?))
}

/// One job as the operator sees it.
#[derive(Serialize)]
pub struct JobDetail {
    pub job: JobView,
    pub steps: Vec<StepRow>,
    pub calls: Vec<UsageRow>,
    pub deliveries: Vec<DeliveryRow>,
    pub attempts: Vec<AttemptRow>,
}

/// The job row without its webhook secret.
#[derive(Serialize)]
pub struct JobView {
    pub id: Uuid,
    pub user_id: Option<Uuid>,
    pub workflow_name: String,
    pub workflow_version: String,
    pub status: String,
    pub priority: i16,
    pub input_data: serde_json::Value,
    pub result: Option<serde_json::Value>,
    pub error_message: Option<String>,
    pub webhook_url: Option<String>,
    pub current_step: Option<String>,
    pub steps_completed: i32,
    pub steps_planned: i32,
    pub cancel_requested: bool,
    pub attempts: i32,
    pub claimed_by: Option<String>,
    pub total_input_tokens: i64,
    pub total_output_tokens: i64,
    pub total_cost_usd: rust_decimal::Decimal,
    pub is_stale: bool,
    pub created_at: chrono::DateTime<Utc>,
    pub queued_at: Option<chrono::DateTime<Utc>>,
    pub started_at: Option<chrono::DateTime<Utc>>,
    pub completed_at: Option<chrono::DateTime<Utc>>,
    pub retry_count: i32,
    pub retry_history: serde_json::Value,
}

impl From<JobRow> for JobView {
    fn from(j: JobRow) -> Self {
        JobView {
            id: j.id,
            user_id: j.user_id,
            workflow_name: j.workflow_name,
            workflow_version: j.workflow_version,
            status: j.status,
            priority: j.priority,
            input_data: j.input_data,
            result: j.result,
            error_message: j.error_message,
            webhook_url: j.webhook_url,
            current_step: j.current_step,
            steps_completed: j.steps_completed,
            steps_planned: j.steps_planned,
            cancel_requested: j.cancel_requested,
            attempts: j.attempts,
            claimed_by: j.claimed_by,
            total_input_tokens: j.total_input_tokens,
            total_output_tokens: j.total_output_tokens,
            total_cost_usd: j.total_cost_usd,
            is_stale: j.is_stale,
            created_at: j.created_at,
            queued_at: j.queued_at,
            started_at: j.started_at,
            completed_at: j.completed_at,
            retry_count: j.retry_count,
            retry_history: j.retry_history,
        }
    }
}

pub(crate) async fn job_detail(state: &AppState, job_id: Uuid) -> Result<JobDetail, ApiError> {
    let mut conn = state.pool.get().await.map_err(db::DbError::from)?;
    let job = db::jobs::find_job(&mut conn, job_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("job {job_id} not found")))?;
    let steps = db::jobs::job_steps(&mut conn, job_id).await?;
    let calls = db::jobs::job_usage(&mut conn, job_id).await?;
    let deliveries = deliveries::of_job(&mut conn, job_id).await?;
    let attempts = deliveries::attempts_of_job(&mut conn, job_id).await?;
    Ok(JobDetail {
        job: job.into(),
        steps,
        calls,
        deliveries,
        attempts,
    })
}

/// One job: its steps, LLM calls, webhook deliveries and their attempts.
#[utoipa::path(
    get,
    path = "/api/v1/admin/jobs/{job_id}",
    tag = "admin",
    params(("job_id" = Uuid, Path, description = "The job")),
    responses(
        (status = 200, description = "`{job, steps, calls, deliveries, attempts}`", body = serde_json::Value),
        (status = 401, description = "No admin key or session", body = ErrorBody),
        (status = 404, description = "No such job", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn detail(
    req: HttpRequest,
    state: web::Data<Arc<AppState>>,
    job_id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    state.require_operator(&req)?;
    Ok(HttpResponse::Ok().json(job_detail(&state, job_id.into_inner()).await?))
}

/// What the overview shows.
#[derive(Serialize)]
pub struct Overview {
    pub generated_at: chrono::DateTime<Utc>,
    pub last_hour: Throughput,
    pub last_day: Throughput,
    /// p50/p95 run time per workflow, completed jobs of the last day.
    pub run_times: Vec<RunTime>,
    /// LLM spend since midnight UTC, per workflow and model.
    pub cost_today: Vec<Cost>,
    pub by_status: Vec<StatusCount>,
    /// Jobs waiting in Redis per priority band (absent when Redis did not answer).
    pub queue_depth: Option<HashMap<String, u64>>,
    pub workers: Workers,
    pub dead_letters: i64,
}

/// The registered worker and webhook processes (`llm_workers`).
#[derive(Serialize)]
pub struct Workers {
    /// Live job workers (heartbeat within `WORKER_LOST_SECS`).
    pub live: usize,
    /// Every registered process, live or lost, workers first.
    pub processes: Vec<WorkerStatus>,
}

impl Workers {
    fn from_registry(processes: Vec<WorkerStatus>) -> Workers {
        let live = processes
            .iter()
            .filter(|p| !p.lost && p.row.kind == ProcessKind::Worker.as_str())
            .count();
        Workers { live, processes }
    }
}

pub(crate) async fn overview_data(state: &AppState) -> Result<Overview, ApiError> {
    let now = Utc::now();
    let midnight = now
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .map_or(now, |t| t.and_utc());
    let mut conn = state.pool.get().await.map_err(db::DbError::from)?;
    let last_hour = admin::throughput(&mut conn, now - chrono::Duration::hours(1)).await?;
    let last_day = admin::throughput(&mut conn, now - chrono::Duration::days(1)).await?;
    let run_times = admin::run_times(&mut conn, now - chrono::Duration::days(1)).await?;
    let cost_today = admin::costs(&mut conn, midnight).await?;
    let by_status = admin::status_counts(&mut conn).await?;
    let dead_letters = admin::dead_letter_count(&mut conn).await?;
    let processes = db::workers::list(&mut conn, state.config.worker_lost_after()).await?;
    drop(conn);
    let mut redis = state.redis.clone();
    let queue_depth = state
        .queues
        .waiting_per_band(&mut redis)
        .await
        .ok()
        .map(|bands| {
            bands
                .iter()
                .map(|(band, n)| (band.as_str().to_owned(), *n))
                .collect()
        });
    Ok(Overview {
        generated_at: now,
        last_hour,
        last_day,
        run_times,
        cost_today,
        by_status,
        queue_depth,
        workers: Workers::from_registry(processes),
        dead_letters,
    })
}

/// Throughput, success, run times, cost today, queue depth, workers and dead letters.
#[utoipa::path(
    get,
    path = "/api/v1/admin/overview",
    tag = "admin",
    responses(
        (status = 200, description = "The overview", body = serde_json::Value),
        (status = 401, description = "No admin key or session", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn overview(
    req: HttpRequest,
    state: web::Data<Arc<AppState>>,
) -> Result<HttpResponse, ApiError> {
    state.require_operator(&req)?;
    Ok(HttpResponse::Ok().json(overview_data(&state).await?))
}

pub(crate) async fn audit_row(
    state: &AppState,
    actor: Actor,
    action: &str,
    detail: serde_json::Value,
    affected: usize,
) -> Result<admin::AuditRow, ApiError> {
    let mut conn = state.pool.get().await.map_err(db::DbError::from)?;
    let affected = i32::try_from(affected).unwrap_or(i32::MAX);
    Ok(admin::record(&mut conn, actor.as_str(), action, detail, affected).await?)
}

/// Cancels one job; answers what happened. Audited.
pub(crate) async fn cancel_one(
    state: &AppState,
    actor: Actor,
    job_id: Uuid,
) -> Result<&'static str, ApiError> {
    let status = match super::cancel::apply(state, job_id).await? {
        CancelOutcome::Cancelled(_) => "cancelled",
        CancelOutcome::Requested => "cancel_requested",
        CancelOutcome::Finished(status) => {
            return Err(ApiError::Conflict(format!(
                "job {job_id} already ended ({status})"
            )))
        }
        CancelOutcome::NotFound => {
            return Err(ApiError::NotFound(format!("job {job_id} not found")))
        }
    };
    audit_row(state, actor, "cancel", json!({"job_id": job_id}), 1).await?;
    Ok(status)
}

/// Retries one failed job from its failed step. Audited.
pub(crate) async fn retry_one(
    state: &AppState,
    actor: Actor,
    job_id: Uuid,
) -> Result<i32, ApiError> {
    let job = {
        let mut conn = state.pool.get().await.map_err(db::DbError::from)?;
        db::jobs::find_job(&mut conn, job_id)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("job {job_id} not found")))?
    };
    let retried = super::retry::apply(state, &job).await?;
    audit_row(state, actor, "retry", json!({"job_id": job_id}), 1).await?;
    Ok(retried.retry_count())
}

/// Cancel one job (audited).
#[utoipa::path(
    post,
    path = "/api/v1/admin/jobs/{job_id}/cancel",
    operation_id = "admin_cancel_job",
    tag = "admin",
    params(("job_id" = Uuid, Path, description = "The job")),
    responses(
        (status = 200, description = "`{job_id, status}`: `cancelled` or `cancel_requested`", body = serde_json::Value),
        (status = 404, description = "No such job", body = ErrorBody),
        (status = 409, description = "Already ended", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn cancel(
    req: HttpRequest,
    state: web::Data<Arc<AppState>>,
    job_id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let actor = state.require_operator(&req)?;
    let job_id = job_id.into_inner();
    let status = cancel_one(&state, actor, job_id).await?;
    Ok(HttpResponse::Ok().json(json!({"job_id": job_id, "status": status})))
}

/// Retry one failed job from its failed step (audited).
#[utoipa::path(
    post,
    path = "/api/v1/admin/jobs/{job_id}/retry",
    operation_id = "admin_retry_job",
    tag = "admin",
    params(("job_id" = Uuid, Path, description = "The job")),
    responses(
        (status = 202, description = "`{job_id, retry_count}`", body = serde_json::Value),
        (status = 404, description = "No such job", body = ErrorBody),
        (status = 409, description = "Not failed", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn retry(
    req: HttpRequest,
    state: web::Data<Arc<AppState>>,
    job_id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let actor = state.require_operator(&req)?;
    let job_id = job_id.into_inner();
    let retry_count = retry_one(&state, actor, job_id).await?;
    Ok(HttpResponse::Accepted().json(json!({"job_id": job_id, "retry_count": retry_count})))
}

/// The latest admin actions, newest first (at most 200).
#[utoipa::path(
    get,
    path = "/api/v1/admin/audit",
    tag = "admin",
    responses(
        (status = 200, description = "`{items: [{id, actor, action, detail, affected, created_at}]}`", body = serde_json::Value),
        (status = 401, description = "No admin key or session", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn audit(
    req: HttpRequest,
    state: web::Data<Arc<AppState>>,
) -> Result<HttpResponse, ApiError> {
    state.require_operator(&req)?;
    let mut conn = state.pool.get().await.map_err(db::DbError::from)?;
    let items = admin::audit_log(&mut conn, 200).await?;
    Ok(HttpResponse::Ok().json(json!({ "items": items })))
}
