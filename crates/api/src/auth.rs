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
