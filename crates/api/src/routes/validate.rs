//! `POST /api/v1/workflow/validate`: a dry run. Validates a workflow (by name or an inline
//! definition) and an `input_data`, and returns every problem with its JSON path, the execution
//! plan, and a cost estimate. Nothing is stored and no provider is called.

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::de::Deserializer;
use serde::Deserialize;
use serde_json::Value;

use llmflow_core::dry_run::{dry_run, DryRun};
use llmflow_core::workflow::{LoadedWorkflow, Problem};

use crate::body::{self, Fields};
use crate::error::{ApiError, ErrorBody, FieldError};
use crate::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/workflow/validate", web::post().to(validate));
}

/// A dry run: `workflow_name` or `definition`, and optionally `input_data`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidateRequest {
    #[serde(default, deserialize_with = "workflow_name")]
    workflow_name: Option<String>,
    /// A whole workflow definition, as in `workflows/*.json`.
    #[serde(default, deserialize_with = "definition")]
    #[schema(value_type = Option<Object>)]
    definition: Option<Value>,
    #[serde(default, deserialize_with = "input_data")]
    #[schema(value_type = Option<Object>)]
    input_data: Option<Value>,
}

/// The workflow a dry run checks.
enum Source {
    Named(String),
    Inline(Value),
}

impl ValidateRequest {
    /// Parses and checks a dry-run body, reporting every problem at once: what to validate,
    /// and the input to validate it with.
    fn parse(body: &Value) -> Result<(Source, Option<Value>), Vec<FieldError>> {
        let mut fields = Fields::<ValidateRequest>::parse(body)?;
        match (fields.sent("workflow_name"), fields.sent("definition")) {
            (true, true) => {
                fields.error("body", "give either workflow_name or definition, not both");
            }
            (false, false) => fields.error("body", "give workflow_name or definition"),
            // The one given may not have parsed: its own error says so.
            (true, false) | (false, true) => {}
        }
        let request = fields.finish()?;
        match (request.workflow_name, request.definition) {
            (Some(name), None) => Ok((Source::Named(name), request.input_data)),
            (None, Some(definition)) => Ok((Source::Inline(definition), request.input_data)),
            // Both or neither: refused above.
            (Some(_), Some(_)) | (None, None) => Err(vec![FieldError::new(
                "body",
                "give workflow_name or definition",
            )]),
        }
    }
}

fn workflow_name<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    body::expect(d, "must be a string").map(Some)
}

fn definition<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    body::object(d).map(Some)
}

fn input_data<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    body::optional_object(d)
}

/// The problems of an inline definition, at their paths under `definition`.
fn prefixed(list: Vec<Problem>, prefix: &str) -> Vec<Problem> {
    list.into_iter()
        .map(|p| Problem {
            field: match (prefix.is_empty(), p.field.is_empty()) {
                (true, _) => p.field,
                (false, true) => prefix.to_owned(),
                (false, false) => format!("{prefix}.{}", p.field.trim_start_matches('.')),
            },
            message: p.message,
        })
        .collect()
}

/// Validate a workflow and input without running anything.
#[utoipa::path(
    post,
    path = "/api/v1/workflow/validate",
    tag = "jobs",
    request_body = ValidateRequest,
    responses(
        (status = 200, description = "The verdict, problems, plan and cost estimate", body = DryRun),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 404, description = "Unknown workflow name", body = ErrorBody),
        (status = 422, description = "The request itself is malformed", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn validate(
    req: HttpRequest,
    state: web::Data<Arc<AppState>>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    state.require_client(&req)?;
    body::check_depth(&body)?;
    let (source, input) = ValidateRequest::parse(&body).map_err(ApiError::validation)?;
    let inline;
    let loaded: Result<&LoadedWorkflow, Vec<Problem>> = match source {
        Source::Named(name) => match state.catalog.get(&name) {
            Some(found) => Ok(found.as_ref()),
            None => return Err(ApiError::NotFound(format!("unknown workflow `{name}`"))),
        },
        Source::Inline(definition) => {
            match LoadedWorkflow::from_source(
                &definition,
                &state.config.prompts_dir,
                &state.pricing,
            ) {
                Ok(w) => {
                    inline = w;
                    Ok(&inline)
                }
                Err(list) => Err(prefixed(list, "definition")),
            }
        }
    };
    let answer = match loaded {
        Ok(loaded) => dry_run(
            &loaded.workflow,
            input.as_ref(),
            &state.pricing,
            &state.config.default_provider,
        ),
        Err(problems) => DryRun::invalid(problems),
    };
    Ok(HttpResponse::Ok().json(answer))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn every_message_a_dry_run_request_can_get() {
        let bodies = [
            json!("text"),
            json!({}),
            json!({"input_data": {}}),
            json!({"workflow_name": "x", "definition": {}}),
            json!({"workflow_name": 3}),
            json!({"workflow_name": null}),
            json!({"definition": []}),
            json!({"workflow_name": "x", "input_data": 5, "extra": true}),
        ];
        insta::assert_json_snapshot!(body::errors_of(bodies, ValidateRequest::parse));
    }

    #[test]
    fn a_name_or_a_definition_with_an_optional_input() {
        let parsed = ValidateRequest::parse(&json!({"workflow_name": "x", "input_data": null}));
        assert!(matches!(parsed, Ok((Source::Named(name), None)) if name == "x"));
        let parsed = ValidateRequest::parse(&json!({"definition": {"a": 1}, "input_data": {}}));
        assert!(
            matches!(parsed, Ok((Source::Inline(definition), Some(input))) if definition == json!({"a": 1}) && input == json!({}))
        );
    }
}
