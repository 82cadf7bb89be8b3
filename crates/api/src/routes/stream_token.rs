//! `POST /api/v1/status/{job_id}/stream-token`: a short-lived, read-only token for one job, so a
//! browser can follow it (`EventSource` cannot send `X-API-Key`). The web app's server asks for
//! it with the API key and hands it to its page, which opens
//! `GET /api/v1/status/{job_id}/events?token=…` (or reads the status with it).
//!
//! A token is `<job id>.<expiry, unix seconds>.<HMAC-SHA256, base64url>`, signed with a key
//! derived from the client API key: every API process checks it without shared state, and
//! rotating the API key ends every token. It names its one job and reads nothing else.

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use uuid::Uuid;

use llmflow_core::db;

use crate::error::{ApiError, ErrorBody};
use crate::{scope, AppState};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/status/{job_id}/stream-token", web::post().to(issue));
}

type HmacSha256 = Hmac<Sha256>;

/// What the token's signature covers, besides the key.
fn message(job_id: Uuid, expires: i64) -> String {
    format!("llmflow-stream-token:v1:{job_id}:{expires}")
}

fn mac(client_key: &str) -> HmacSha256 {
    // The signing key is derived from, not equal to, the API key.
    let mut derive = HmacSha256::new_from_slice(b"llmflow stream tokens").expect("any key length");
    derive.update(client_key.as_bytes());
    let key = derive.finalize().into_bytes();
    HmacSha256::new_from_slice(&key).expect("any key length")
}

/// The token for `job_id` that expires at `expires` (unix seconds), signed for `client_key`.
pub fn mint(client_key: &str, job_id: Uuid, expires: i64) -> String {
    let mut mac = mac(client_key);
    mac.update(message(job_id, expires).as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{}.{expires}.{signature}", job_id.simple())
}

/// Whether `token` is a valid, unexpired token of `job_id` at `now` (unix seconds).
pub fn verify(client_key: &str, token: &str, job_id: Uuid, now: i64) -> bool {
    let mut parts = token.split('.');
    let (Some(job), Some(expires), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let (Ok(job), Ok(expires), Ok(signature)) = (
        Uuid::try_parse(job),
        expires.parse::<i64>(),
        URL_SAFE_NO_PAD.decode(signature),
    ) else {
        return false;
    };
    let mut mac = mac(client_key);
    mac.update(message(job, expires).as_bytes());
    // The signature is checked first, in constant time; then what it vouches for.
    mac.verify_slice(&signature).is_ok() && job == job_id && now < expires
}

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

/// A read of one job (its status or its events): the API key, or a stream token of that job in
/// `?token=`. A token present but wrong (another job's, expired, altered) is a 401.
pub fn require_reader(req: &HttpRequest, state: &AppState, job_id: Uuid) -> Result<(), ApiError> {
    let query = web::Query::<TokenQuery>::from_query(req.query_string()).ok();
    match query.and_then(|q| q.into_inner().token) {
        None => state.require_client(req),
        Some(token) if verify(&state.client_key, &token, job_id, Utc::now().timestamp()) => Ok(()),
        Some(_) => Err(ApiError::Unauthorized),
    }
}

/// A stream token and when it stops working.
#[derive(Serialize, utoipa::ToSchema)]
pub struct StreamToken {
    /// Pass as `?token=` to the job's `events` or status route.
    token: String,
    expires_at: DateTime<Utc>,
}

/// A short-lived, read-only token for one job's events and status, for a browser.
#[utoipa::path(
    post,
    path = "/api/v1/status/{job_id}/stream-token",
    tag = "jobs",
    params(
        ("job_id" = Uuid, Path, description = "The job"),
        ("X-User-Id" = Option<Uuid>, Header, description = "Restrict to this user's jobs"),
    ),
    responses(
        (status = 200, description = "The token (lifetime `STREAM_TOKEN_TTL_SECS`)", body = StreamToken),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 404, description = "No such job (or not this user's)", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn issue(
    req: HttpRequest,
    state: web::Data<Arc<AppState>>,
    job_id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    state.require_client(&req)?;
    let job_id = job_id.into_inner();
    let mut conn = state.pool.get().await.map_err(db::DbError::from)?;
    scope::find_job(&req, &mut conn, job_id).await?;
    let ttl = i64::try_from(state.config.stream_token_ttl_secs.max(1)).unwrap_or(i64::MAX / 2);
    let expires = Utc::now().timestamp().saturating_add(ttl);
    let expires_at = DateTime::from_timestamp(expires, 0).unwrap_or(DateTime::<Utc>::MAX_UTC);
    Ok(HttpResponse::Ok().json(StreamToken {
        token: mint(&state.client_key, job_id, expires_at.timestamp()),
        expires_at,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_opens_its_job_until_it_expires_and_nothing_else() {
        let job = Uuid::new_v4();
        let token = mint("key", job, 1_000);
        assert!(verify("key", &token, job, 999));
        assert!(!verify("key", &token, job, 1_000), "expired");
        assert!(!verify("key", &token, Uuid::new_v4(), 999), "another job");
        assert!(!verify("other key", &token, job, 999), "another key");
        let later = token.replacen(".1000.", ".9000.", 1);
        assert!(!verify("key", &later, job, 999), "expiry altered");
        for bad in ["", "a.b.c", "x", &format!("{token}.x")] {
            assert!(!verify("key", bad, job, 999), "{bad}");
        }
    }
}
