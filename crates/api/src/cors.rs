//! CORS for the routes a browser may read with a stream token: a job's status and its events
//! (`/api/v1/status/{job_id}` and `/api/v1/status/{job_id}/events`), from the origins in
//! `CORS_ALLOWED_ORIGINS` only. Other routes and other origins get no CORS headers, so a browser
//! refuses their responses; a preflight from them is refused.

use std::sync::Arc;

use actix_cors::Cors;
use actix_web::http::header::HeaderValue;

/// Whether `path` is one of the routes open to browsers.
fn browser_readable(path: &str) -> bool {
    let Some(rest) = path.strip_prefix("/api/v1/status/") else {
        return false;
    };
    let job = rest.strip_suffix("/events").unwrap_or(rest);
    !job.is_empty() && !job.contains('/')
}

/// The middleware for `origins` (empty: no origin is allowed).
pub fn cors(origins: &[String]) -> Cors {
    let origins: Arc<[String]> = origins.into();
    Cors::default()
        .allowed_origin_fn(move |origin: &HeaderValue, head| {
            browser_readable(head.uri.path())
                && origins.iter().any(|o| o.as_bytes() == origin.as_bytes())
        })
        .allowed_methods(["GET"])
        .allowed_headers(["last-event-id", "x-user-id"])
        .max_age(600)
        .block_on_origin_mismatch(false)
}

#[cfg(test)]
mod tests {
    use super::browser_readable;

    #[test]
    fn only_status_and_events_are_readable_from_browsers() {
        assert!(browser_readable("/api/v1/status/abc"));
        assert!(browser_readable("/api/v1/status/abc/events"));
        for path in [
            "/api/v1/status/",
            "/api/v1/status/abc/steps/x",
            "/api/v1/status/abc/stream-token",
            "/api/v1/workflow/x",
            "/openapi.json",
        ] {
            assert!(!browser_readable(path), "{path}");
        }
    }
}
