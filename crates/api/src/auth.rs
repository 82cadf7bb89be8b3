//! API keys, compared in constant time.

use actix_web::HttpRequest;
use subtle::ConstantTimeEq;

use crate::error::ApiError;

/// The header clients and admins send their key in.
pub const API_KEY_HEADER: &str = "x-api-key";

fn presented(req: &HttpRequest) -> Option<&[u8]> {
    req.headers().get(API_KEY_HEADER).map(|v| v.as_bytes())
}

fn equal(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// A client route: the client key (or the admin key) must be presented.
pub fn require_client(
    req: &HttpRequest,
    client_key: &str,
    admin_key: Option<&str>,
) -> Result<(), ApiError> {
    let key = presented(req).ok_or(ApiError::Unauthorized)?;
    if equal(key, client_key.as_bytes())
        || admin_key.is_some_and(|admin| equal(key, admin.as_bytes()))
    {
        Ok(())
    } else {
        Err(ApiError::Unauthorized)
    }
}

/// An admin route: 401 without a valid key, 403 with the client key.
pub fn require_admin(
    req: &HttpRequest,
    client_key: &str,
    admin_key: Option<&str>,
) -> Result<(), ApiError> {
    let key = presented(req).ok_or(ApiError::Unauthorized)?;
    match admin_key {
        Some(admin) if equal(key, admin.as_bytes()) => Ok(()),
        _ if equal(key, client_key.as_bytes()) => Err(ApiError::Forbidden(
            "this route needs the admin key".to_owned(),
        )),
        _ => Err(ApiError::Unauthorized),
    }
}

/// Who performed an admin action, as the audit records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    /// The admin key in `X-API-Key`.
    ApiKey,
    /// A signed-in dashboard session.
    Dashboard,
}

impl Actor {
    pub fn as_str(self) -> &'static str {
        match self {
            Actor::ApiKey => "api-key",
            Actor::Dashboard => "dashboard",
        }
    }
}

/// An admin route that the dashboard also calls: the admin key in the header, or else a valid
/// dashboard session cookie. A cookie-authenticated write must come from this origin (the
/// cookie is `SameSite=Strict` as well).
pub fn require_admin_or_session(
    req: &HttpRequest,
    client_key: &str,
    admin_key: Option<&str>,
) -> Result<Actor, ApiError> {
    if presented(req).is_some() {
        return require_admin(req, client_key, admin_key).map(|()| Actor::ApiKey);
    }
    let admin = admin_key.ok_or(ApiError::Unauthorized)?;
    let cookie = req
        .cookie(crate::session::COOKIE)
        .ok_or(ApiError::Unauthorized)?;
    if !crate::session::verify(admin, cookie.value(), chrono::Utc::now()) {
        return Err(ApiError::Unauthorized);
    }
    if req.method() != actix_web::http::Method::GET && !same_origin(req) {
        return Err(ApiError::Forbidden(
            "a dashboard action must come from the dashboard's own pages".to_owned(),
        ));
    }
    Ok(Actor::Dashboard)
}

/// The request's `Origin`, when sent, names this host.
fn same_origin(req: &HttpRequest) -> bool {
    let Some(origin) = req.headers().get("origin").and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = req.connection_info().host().to_owned();
    origin
        .split_once("://")
        .is_some_and(|(_, rest)| rest.trim_end_matches('/') == host)
}
