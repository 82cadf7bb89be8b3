//! `POST /api/v1/workflow`: record the job, push its id, answer 202.

mod request;

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use llmflow_core::db::{self, models::JobRow, models::NewJob};
use llmflow_core::queue;
use llmflow_core::workflow::LoadedWorkflow;
use llmflow_core::{JobId, JobStatus};

pub use request::SubmitRequest;

use crate::body;
use crate::error::{ApiError, ErrorBody, FieldError};
use crate::{ratelimit, scope, AppState};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/workflow", web::post().to(submit));
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

impl Accepted {
    /// The answer for a job that is `queued` when its id reached Redis, else `pending`.
    fn new(job_id: JobId, pushed: bool, estimated_wait_seconds: u64) -> Accepted {
        Accepted {
            job_id,
            queue_task_id: pushed.then(|| job_id.to_string()),
            status: if pushed {
                JobStatus::Queued
            } else {
                JobStatus::Pending
            },
            estimated_wait_seconds,
            status_url: format!("/api/v1/status/{job_id}"),
        }
    }
}

/// Jobs drained per second assumed by `estimated_wait_seconds` (a rough figure for display).
const ASSUMED_DRAIN_PER_SECOND: u64 = 200;

/// How long an `Idempotency-Key` keeps answering with the job it first created.
pub const IDEMPOTENCY_WINDOW: chrono::Duration = chrono::Duration::hours(24);

/// The header a caller may send to make a submission safe to retry.
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";

/// Submit a job: it is recorded, queued and answered at once (202).
#[utoipa::path(
    post,
    path = "/api/v1/workflow",
    tag = "jobs",
    request_body = SubmitRequest,
    params(
        ("Idempotency-Key" = Option<String>, Header, description = "Same key and body within 24 h: the same job (202); same key, other body: 409"),
        ("X-User-Id" = Option<uuid::Uuid>, Header, description = "The user the job is for (fills `user_id`; must match it when both are given)"),
        ("X-User-Tier" = Option<String>, Header, description = "Rate limit tier of the user"),
    ),
    responses(
        (status = 202, description = "Accepted", body = Accepted),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 404, description = "Unknown workflow", body = ErrorBody),
        (status = 409, description = "Idempotency-Key reused with another body", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "Invalid fields", body = ErrorBody),
        (status = 429, description = "Rate limited (see Retry-After)", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
#[tracing::instrument(
    name = "submit",
    skip_all,
    fields(otel.kind = "server", workflow = tracing::field::Empty, job_id = tracing::field::Empty)
)]
pub async fn submit(
    req: HttpRequest,
    state: web::Data<Arc<AppState>>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    // A caller that traces its own request (`traceparent` header) gets the job in its trace.
    let caller_trace = req
        .headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok());
    llmflow_core::otel::continue_trace(&tracing::Span::current(), caller_trace);
    let header_user = authorize(&state, &req)?;
    let key = idempotency_key(&req)?;
    body::check_depth(&body)?;
    let mut request = SubmitRequest::parse(&body).map_err(ApiError::validation)?;
    scope_to_user(&mut request, header_user)?;
    check_webhook_url(&state, &request)?;
    rate_limit(&state, &req, &request).await?;
    let loaded = checked_workflow(&state, &request)?;
    let idempotency = key.map(|key| Idempotency {
        key,
        hash: body_hash(&body),
    });
    let mut conn = state.pool.get().await.map_err(db::DbError::from)?;
    if let Some(idempotency) = &idempotency {
        if let Some(answer) = idempotency.earlier_answer(&mut conn).await? {
            return Ok(answer);
        }
    }
    insert_and_push(&state, conn, &loaded, request, idempotency).await
}

/// Auth and scope: the client key, and the user the request is scoped to (`X-User-Id`), if any.
fn authorize(state: &AppState, req: &HttpRequest) -> Result<Option<Uuid>, ApiError> {
    state.require_client(req)?;
    scope::header_user(req)
}

/// A request scoped to a user submits for that user: the body's `user_id` must be that user's
/// or absent (then it is filled in).
fn scope_to_user(request: &mut SubmitRequest, header_user: Option<Uuid>) -> Result<(), ApiError> {
    match (header_user, request.user_id) {
        (Some(header), Some(body_user)) if header != body_user => {
            Err(ApiError::validation(vec![FieldError::new(
                "user_id",
                "differs from the X-User-Id header",
            )]))
        }
        (Some(header), None) => {
            request.user_id = Some(header);
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Webhook URLs naming a blocked literal address are refused here; delivery checks every
/// resolved address again.
fn check_webhook_url(state: &AppState, request: &SubmitRequest) -> Result<(), ApiError> {
    let Some(url) = &request.webhook_url else {
        return Ok(());
    };
    let blocked = reqwest::Url::parse(url)
        .map_err(|e| e.to_string())
        .and_then(|u| {
            llmflow_netguard::check_url(&state.webhook_policy, &u).map_err(|e| e.to_string())
        });
    blocked.map_err(|message| {
        ApiError::validation(vec![FieldError::new(
            "webhook_url",
            format!("not allowed: {message}"),
        )])
    })
}

/// The per-user submit limit of the caller's tier.
async fn rate_limit(
    state: &AppState,
    req: &HttpRequest,
    request: &SubmitRequest,
) -> Result<(), ApiError> {
    let limited_user = request
        .user_id
        .map(|u| u.to_string())
        .unwrap_or_else(|| "anonymous".to_owned());
    ratelimit::check(state, req, &limited_user).await
}

/// The named workflow, with the input checked against its input schema.
fn checked_workflow(
    state: &AppState,
    request: &SubmitRequest,
) -> Result<Arc<LoadedWorkflow>, ApiError> {
    let loaded = state.catalog.get(&request.workflow_name).ok_or_else(|| {
        ApiError::NotFound(format!("unknown workflow `{}`", request.workflow_name))
    })?;
    let problems = loaded.workflow.check_input(&request.input_data);
    if !problems.is_empty() {
        return Err(ApiError::validation(
            problems.into_iter().map(FieldError::from).collect(),
        ));
    }
    Ok(Arc::clone(loaded))
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

/// An `Idempotency-Key` and the hash of the body it came with.
struct Idempotency {
    key: String,
    hash: String,
}

impl Idempotency {
    /// The answer an earlier request with this key got, while the key holds; a key past its
    /// window is released for this request.
    async fn earlier_answer(
        &self,
        conn: &mut diesel_async::AsyncPgConnection,
    ) -> Result<Option<HttpResponse>, ApiError> {
        if let Some(job) = db::jobs::find_by_idempotency_key(conn, &self.key).await? {
            return self.replay(&job).map(Some);
        }
        db::jobs::release_expired_idempotency_key(conn, &self.key).await?;
        Ok(None)
    }

    /// A replay of the answer the key's first request got: the same body (the wait estimate is
    /// the one stored with the job).
    fn replay(&self, job: &JobRow) -> Result<HttpResponse, ApiError> {
        if job.idempotency_hash.as_deref() != Some(self.hash.as_str()) {
            return Err(ApiError::Conflict(
                "this Idempotency-Key was used with a different request body".to_owned(),
            ));
        }
        let wait = job
            .estimated_wait_seconds
            .and_then(|w| u64::try_from(w).ok())
            .unwrap_or(0);
        Ok(HttpResponse::Accepted()
            .insert_header(("Idempotent-Replayed", "true"))
            .json(Accepted::new(JobId(job.id), job.queued_at.is_some(), wait)))
    }
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

/// Insert and push: records the job as `queued`, pushes its id and answers 202. A request that
/// lost the race for its `Idempotency-Key` gets the winner's answer.
async fn insert_and_push(
    state: &AppState,
    mut conn: db::PooledConn,
    loaded: &LoadedWorkflow,
    request: SubmitRequest,
    idempotency: Option<Idempotency>,
) -> Result<HttpResponse, ApiError> {
    let job_id = JobId::new();
    let span = tracing::Span::current();
    span.record("workflow", loaded.workflow.name.as_str());
    span.record("job_id", tracing::field::display(job_id));
    let band = queue::Band::of(request.priority());
    let estimated_wait = waiting_jobs(state).await / ASSUMED_DRAIN_PER_SECOND;
    let job = new_job(
        job_id,
        loaded,
        request,
        idempotency.as_ref(),
        estimated_wait,
    );
    if let Err(e) = db::jobs::insert_job(&mut conn, &job).await {
        // Two requests with one key at the same moment: the second finds the first's job.
        if let (true, Some(idempotency)) = (is_unique_violation(&e), &idempotency) {
            if let Some(job) =
                db::jobs::find_by_idempotency_key(&mut conn, &idempotency.key).await?
            {
                return idempotency.replay(&job);
            }
        }
        return Err(e.into());
    }

    // The row is the record: if Redis refuses the push, the job becomes `pending` and the
    // reconciler pushes it later. The caller still gets its job id.
    let mut jobs = state.queues.band_storage(state.redis.clone(), band, 1);
    let task_id = job_id.to_string();
    let pushed = match queue::push_job(&mut jobs, job_id, &task_id).await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(%job_id, error = %e, "push failed; the reconciler will retry");
            // Should this write fail too, the reconciler still finds the job: it re-pushes
            // `queued` jobs that have not moved for a while as well.
            if let Err(e) = db::jobs::mark_pending(&mut conn, job_id.0).await {
                tracing::warn!(%job_id, error = %e, "cannot mark the job pending");
            }
            false
        }
    };
    drop(conn);
    metrics::counter!(
        llmflow_core::metrics::names::JOBS_SUBMITTED,
        "workflow" => loaded.workflow.name.clone(),
    )
    .increment(1);
    tracing::info!(%job_id, workflow = %loaded.workflow.name, band = band.as_str(), "job accepted");
    Ok(HttpResponse::Accepted().json(Accepted::new(job_id, pushed, estimated_wait)))
}

/// The row of an accepted submission.
fn new_job(
    job_id: JobId,
    loaded: &LoadedWorkflow,
    request: SubmitRequest,
    idempotency: Option<&Idempotency>,
    estimated_wait: u64,
) -> NewJob {
    let events = request.webhook_events();
    NewJob {
        id: job_id.0,
        user_id: request.user_id,
        workflow_name: loaded.workflow.name.clone(),
        workflow_version: loaded.workflow.version.clone(),
        workflow_hash: loaded.hash.clone(),
        // Recorded as queued, then pushed: one write. No worker can see the id before the
        // insert commits, and a failed push turns it back to `pending`.
        status: JobStatus::Queued.as_str().to_owned(),
        queue_task_id: Some(job_id.to_string()),
        queued_at: Some(chrono::Utc::now()),
        priority: request.priority(),
        input_data: request.input_data,
        webhook_url: request.webhook_url,
        webhook_secret: request.webhook_secret,
        steps_planned: i32::try_from(loaded.workflow.planned_steps()).unwrap_or(i32::MAX),
        idempotency_key: idempotency.map(|i| i.key.clone()),
        webhook_events: (!events.is_empty())
            .then(|| events.iter().map(|e| e.as_str()).collect::<Vec<_>>().into()),
        max_cost_usd: request.max_cost_usd,
        idempotency_hash: idempotency.map(|i| i.hash.clone()),
        idempotency_expires_at: idempotency.map(|_| chrono::Utc::now() + IDEMPOTENCY_WINDOW),
        estimated_wait_seconds: Some(i32::try_from(estimated_wait).unwrap_or(i32::MAX)),
        // The worker and the webhook sender continue the submit's trace from here.
        traceparent: llmflow_core::otel::current_traceparent(),
    }
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
