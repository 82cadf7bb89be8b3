//! Routes, one module per resource.

pub(crate) mod admin;
pub(crate) mod bulk;
pub(crate) mod cancel;
pub(crate) mod events;
pub(crate) mod filter;
pub(crate) mod health;
pub(crate) mod metrics;
pub(crate) mod operator;
pub(crate) mod retry;
pub(crate) mod status;
pub(crate) mod step;
pub mod stream_token;
pub(crate) mod validate;
pub(crate) mod webhooks;
pub(crate) mod workflow;
pub(crate) mod workflows;

use actix_web::error::{JsonPayloadError, PathError};
use actix_web::web;

use crate::error::{ApiError, FieldError};
use crate::BODY_LIMIT;

pub fn configure(cfg: &mut web::ServiceConfig) {
    validate::configure(cfg);
    workflow::configure(cfg);
    workflows::configure(cfg);
    cancel::configure(cfg);
    retry::configure(cfg);
    events::configure(cfg);
    status::configure(cfg);
    step::configure(cfg);
    stream_token::configure(cfg);
    health::configure(cfg);
    admin::configure(cfg);
    webhooks::configure(cfg);
    bulk::configure(cfg);
    operator::configure(cfg);
}

/// JSON bodies: size limit, and actix's own parse errors in the one envelope.
pub fn json_config() -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(BODY_LIMIT)
        .error_handler(|err, _req| {
            let api_error = match &err {
                JsonPayloadError::OverflowKnownLength { .. }
                | JsonPayloadError::Overflow { .. } => ApiError::PayloadTooLarge,
                JsonPayloadError::ContentType => ApiError::UnsupportedMediaType(
                    "Content-Type must be application/json".to_owned(),
                ),
                JsonPayloadError::Deserialize(e) => ApiError::validation(vec![FieldError {
                    field: "body".to_owned(),
                    message: format!("invalid JSON: {e}"),
                }]),
                other => ApiError::BadRequest(format!("cannot read the request body: {other}")),
            };
            api_error.into()
        })
}

/// Path parameters that do not parse (a job id that is not a UUID) are 404s: no such job.
pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|err: PathError, _req| {
        ApiError::NotFound(format!("not found: {err}")).into()
    })
}
