//! The envelope around responses actix makes itself (405 from a route with other methods, 404 of a
//! scope, 413/400 from extractors without a handler): any error response that is not JSON yet
//! is rewritten to `{"detail": …}` with the same status and `Allow` header.

use actix_web::body::EitherBody;
use actix_web::dev::ServiceResponse;
use actix_web::http::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use actix_web::http::StatusCode;
use actix_web::middleware::{ErrorHandlerResponse, ErrorHandlers};
use actix_web::HttpResponse;

use crate::error::ErrorBody;

/// The middleware; wrap the whole app in it.
pub fn envelope<B: 'static>() -> ErrorHandlers<B> {
    ErrorHandlers::new().default_handler(rewrite)
}

fn is_json(value: Option<&HeaderValue>) -> bool {
    value
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

/// What the envelope says for a status actix answered on its own.
fn detail(status: StatusCode) -> String {
    match status {
        StatusCode::METHOD_NOT_ALLOWED => "method not allowed for this route".to_owned(),
        StatusCode::NOT_FOUND => "no such route".to_owned(),
        StatusCode::PAYLOAD_TOO_LARGE => "request body is too large".to_owned(),
        s if s.is_server_error() => "internal error".to_owned(),
        s => s
            .canonical_reason()
            .unwrap_or("request failed")
            .to_lowercase(),
    }
}

/// The dashboard's own HTML pages (a refused sign-in re-shows its form) are kept as they are.
fn is_html(value: Option<&HeaderValue>) -> bool {
    value
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"))
}

fn rewrite<B>(res: ServiceResponse<B>) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let content_type = res.headers().get(CONTENT_TYPE);
    if is_json(content_type) || is_html(content_type) {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let status = res.status();
    let allow = res.headers().get(ALLOW).cloned();
    let (req, _old) = res.into_parts();
    let mut response = HttpResponse::build(status).json(ErrorBody::detail(detail(status)));
    if let Some(allow) = allow {
        response.headers_mut().insert(ALLOW, allow);
    }
    let res: ServiceResponse<EitherBody<B>> =
        ServiceResponse::new(req, response).map_into_right_body();
    Ok(ErrorHandlerResponse::Response(res))
}

#[cfg(test)]
mod tests {
    use actix_web::{test, web, App};
    use serde_json::{json, Value};

    use super::*;

    #[actix_web::test]
    async fn actix_own_error_responses_get_the_envelope_and_json_ones_are_kept() {
        let app = test::init_service(
            App::new()
                .wrap(envelope())
                .route(
                    "/method",
                    web::get().to(|| async {
                        HttpResponse::MethodNotAllowed()
                            .insert_header((ALLOW, "POST"))
                            .finish()
                    }),
                )
                .route(
                    "/plain",
                    web::get().to(|| async { HttpResponse::PayloadTooLarge().body("too big") }),
                )
                .route(
                    "/broken",
                    web::get().to(|| async { HttpResponse::BadGateway().body("upstream said no") }),
                )
                .route(
                    "/json",
                    web::get().to(|| async {
                        HttpResponse::Conflict().json(ErrorBody::detail("kept as it was"))
                    }),
                ),
        )
        .await;
        let mut received = Vec::new();
        for path in ["/method", "/plain", "/broken", "/json", "/nowhere"] {
            let response =
                test::call_service(&app, test::TestRequest::get().uri(path).to_request()).await;
            let status = response.status().as_u16();
            let allow = response
                .headers()
                .get(ALLOW)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body: Value = test::read_body_json(response).await;
            received.push(json!({"path": path, "status": status, "allow": allow, "body": body}));
        }
        insta::assert_json_snapshot!(received);
    }
}
