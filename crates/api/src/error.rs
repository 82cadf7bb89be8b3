//! The one error envelope: `{"detail": "...", "errors": [{"field", "message"}]}` (errors only for
//! 422). A 5xx body says nothing internal and carries a request id; the details go to the log.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use uuid::Uuid;

use llmflow_core::workflow::Problem;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl From<Problem> for FieldError {
    fn from(p: Problem) -> Self {
        FieldError {
            field: p.field,
            message: p.message,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("missing or invalid API key")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("method not allowed for this route")]
    MethodNotAllowed,
    #[error("{0}")]
    Conflict(String),
    #[error("request body is too large")]
    PayloadTooLarge,
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{detail}")]
    Validation {
        detail: String,
        errors: Vec<FieldError>,
    },
    /// Too many requests for this user's tier; retry after this many seconds.
    #[error("rate limit exceeded; retry in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    #[error("{0}")]
    Unavailable(String),
    /// Something failed on our side; the cause is logged, never sent.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    pub fn validation(errors: Vec<FieldError>) -> Self {
        ApiError::Validation {
            detail: "validation failed".to_owned(),
            errors,
        }
    }

    pub fn internal(e: impl Into<anyhow::Error>) -> Self {
        ApiError::Internal(e.into())
    }
}

/// The body of every error: `detail`, plus `errors` (422 only) and `request_id` (5xx and 503).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldError>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl ErrorBody {
    /// A body with only a `detail`.
    pub fn detail(detail: impl Into<String>) -> Self {
        ErrorBody {
            detail: detail.into(),
            errors: None,
            request_id: None,
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Validation { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let (detail, errors, request_id) = match self {
            ApiError::Internal(cause) => {
                let request_id = Uuid::now_v7().to_string();
                tracing::error!(request_id, error = ?cause, "request failed");
                ("internal error".to_owned(), None, Some(request_id))
            }
            ApiError::Unavailable(detail) => {
                let request_id = Uuid::now_v7().to_string();
                tracing::warn!(request_id, detail, "service unavailable");
                (detail.clone(), None, Some(request_id))
            }
            ApiError::Validation { detail, errors } => (detail.clone(), Some(errors.clone()), None),
            other => (other.to_string(), None, None),
        };
        let mut builder = HttpResponse::build(status);
        if let ApiError::RateLimited { retry_after_secs } = self {
            builder.insert_header(("Retry-After", retry_after_secs.to_string()));
        }
        builder.json(ErrorBody {
            detail,
            errors,
            request_id,
        })
    }
}

impl From<llmflow_core::db::DbError> for ApiError {
    fn from(e: llmflow_core::db::DbError) -> Self {
        match e {
            llmflow_core::db::DbError::Pool(_) | llmflow_core::db::DbError::Connect(_) => {
                ApiError::Unavailable("database unavailable".to_owned())
            }
            other => ApiError::internal(other),
        }
    }
}
