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

#[cfg(test)]
mod tests {
    use actix_web::body::MessageBody;
    use serde_json::{json, Value};

    use super::*;

    /// The variant's name; the match makes a new variant fail to compile until it is named
    /// here, and so until it has a case in the snapshot below.
    fn variant(error: &ApiError) -> &'static str {
        match error {
            ApiError::BadRequest(_) => "BadRequest",
            ApiError::Unauthorized => "Unauthorized",
            ApiError::Forbidden(_) => "Forbidden",
            ApiError::NotFound(_) => "NotFound",
            ApiError::MethodNotAllowed => "MethodNotAllowed",
            ApiError::Conflict(_) => "Conflict",
            ApiError::PayloadTooLarge => "PayloadTooLarge",
            ApiError::UnsupportedMediaType(_) => "UnsupportedMediaType",
            ApiError::Validation { .. } => "Validation",
            ApiError::RateLimited { .. } => "RateLimited",
            ApiError::Unavailable(_) => "Unavailable",
            ApiError::Internal(_) => "Internal",
        }
    }

    /// What a caller receives for `error`: status, `Retry-After` when set, and the body.
    fn received(error: ApiError) -> Value {
        let name = variant(&error);
        let response = error.error_response();
        let mut answer = json!({"error": name, "status": response.status().as_u16()});
        if let Some(retry) = response.headers().get("retry-after") {
            answer["retry_after"] = json!(retry.to_str().expect("ascii"));
        }
        let bytes = response
            .into_body()
            .try_into_bytes()
            .unwrap_or_else(|_| panic!("{name}: the body is not complete"));
        answer["body"] = serde_json::from_slice(&bytes).expect("a JSON body");
        answer
    }

    #[test]
    fn every_error_answers_with_the_envelope() {
        let errors = [
            ApiError::BadRequest("X-User-Id must be a UUID".to_owned()),
            ApiError::Unauthorized,
            ApiError::Forbidden("this route needs the admin key".to_owned()),
            ApiError::NotFound("unknown workflow `nope`".to_owned()),
            ApiError::MethodNotAllowed,
            ApiError::Conflict(
                "this Idempotency-Key was used with a different request body".to_owned(),
            ),
            ApiError::PayloadTooLarge,
            ApiError::UnsupportedMediaType("Content-Type must be application/json".to_owned()),
            ApiError::validation(vec![
                FieldError::new("priority", "must be an integer from 0 to 10"),
                FieldError::new("input_data.text", "is required"),
            ]),
            ApiError::RateLimited {
                retry_after_secs: 7,
            },
            ApiError::Unavailable("database unavailable".to_owned()),
            ApiError::internal(anyhow::anyhow!("connection reset: password=hunter2")),
        ];
        let received: Vec<Value> = errors.into_iter().map(received).collect();
        insta::assert_json_snapshot!(received, {"[].body.request_id" => "[request id]"});
    }

    #[test]
    fn a_database_that_cannot_be_reached_is_unavailable_and_a_failed_query_internal() {
        use llmflow_core::db::DbError;
        let down = DbError::Connect(diesel::ConnectionError::BadConnection("refused".to_owned()));
        assert_eq!(variant(&ApiError::from(down)), "Unavailable");
        let failed = DbError::Query(diesel::result::Error::NotFound);
        assert_eq!(variant(&ApiError::from(failed)), "Internal");
    }
}
