//! Per-user scoping: a request carrying `X-User-Id` sees only that user's jobs; any other job
//! answers 404, exactly like a job that does not exist.

use actix_web::HttpRequest;
use diesel_async::AsyncPgConnection;
use uuid::Uuid;

use llmflow_core::db::{self, models::JobRow};

use crate::error::ApiError;

pub const USER_HEADER: &str = "x-user-id";

/// The user the request is scoped to, if it names one. A value that is not a UUID is a 400.
pub fn header_user(req: &HttpRequest) -> Result<Option<Uuid>, ApiError> {
    match req.headers().get(USER_HEADER) {
        None => Ok(None),
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|v| Uuid::parse_str(v.trim()).ok())
            .map(Some)
            .ok_or_else(|| ApiError::BadRequest("X-User-Id must be a UUID".to_owned())),
    }
}

/// Whether a job owned by `owner` is visible to a request scoped to `scope`.
pub fn visible(owner: Option<Uuid>, scope: Option<Uuid>) -> bool {
    scope.is_none_or(|user| owner == Some(user))
}

/// The job `job_id` as the request may see it: 404 when it does not exist or belongs to another
/// user than the one the request is scoped to.
pub async fn find_job(
    req: &HttpRequest,
    conn: &mut AsyncPgConnection,
    job_id: Uuid,
) -> Result<JobRow, ApiError> {
    let scoped = header_user(req)?;
    db::jobs::find_job(conn, job_id)
        .await?
        .filter(|job| visible(job.user_id, scoped))
        .ok_or_else(|| ApiError::NotFound(format!("job {job_id} not found")))
}
