//! `POST /api/v1/workflow/validate`: a dry run. Validates a workflow (by name or an inline
//! definition) and an `input_data`, and returns every problem with its JSON path, the execution
//! plan, and a cost estimate. Nothing is stored and no provider is called.

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use rust_decimal::Decimal;
use serde::de::Deserializer;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use llmflow_core::estimate::{self, CHARS_PER_TOKEN, DEFAULT_MAX_TOKENS};
use llmflow_core::workflow::{LoadedWorkflow, OnError, Problem, Step, StepKind};

use super::status::usd;
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

/// One step of the plan; conditionals carry both branches.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PlanStep {
    step_id: String,
    #[serde(rename = "type")]
    step_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    provider: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    operation: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    condition: Option<String>,
    /// Attempts at most (retry policy).
    max_attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(no_recursion)]
    then: Option<Vec<PlanStep>>,
    #[serde(rename = "else", skip_serializing_if = "Option::is_none")]
    #[schema(no_recursion)]
    otherwise: Option<Vec<PlanStep>>,
    /// Parallel steps: each branch's plan, by branch name (all branches run).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(no_recursion)]
    branches: Option<std::collections::BTreeMap<String, Vec<PlanStep>>>,
    /// External API steps: the service called (`google_places` or `http:<host>`); not priced.
    #[serde(skip_serializing_if = "Option::is_none")]
    service: Option<String>,
}

/// The estimate of one LLM step.
#[derive(Serialize, utoipa::ToSchema)]
pub struct StepEstimate {
    step_id: String,
    model: String,
    input_tokens: u64,
    max_output_tokens: u64,
    #[schema(value_type = f64)]
    min_usd: Value,
    #[schema(value_type = f64)]
    expected_usd: Value,
    /// Includes every retry attempt.
    #[schema(value_type = f64)]
    max_usd: Value,
    /// False when the prompt needs outputs of earlier steps: its template text was counted.
    prompt_rendered: bool,
}

/// USD over the cheapest path (min), the average of branches (expected) and the most
/// expensive path with every retry (max).
#[derive(Serialize, utoipa::ToSchema)]
pub struct CostEstimate {
    currency: &'static str,
    #[schema(value_type = f64)]
    min_usd: Value,
    #[schema(value_type = f64)]
    expected_usd: Value,
    #[schema(value_type = f64)]
    max_usd: Value,
    llm_steps: Vec<StepEstimate>,
    assumptions: Vec<String>,
}

/// The dry run's answer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Validation {
    valid: bool,
    workflow_name: Option<String>,
    workflow_version: Option<String>,
    problems: Vec<FieldError>,
    plan: Vec<PlanStep>,
    cost_estimate: Option<CostEstimate>,
}

/// Cost of a path: (min, expected, max).
#[derive(Clone, Copy, Default)]
struct Range {
    min: Decimal,
    expected: Decimal,
    max: Decimal,
}

impl std::ops::Add for Range {
    type Output = Range;
    fn add(self, o: Range) -> Range {
        Range {
            min: self.min + o.min,
            expected: self.expected + o.expected,
            max: self.max + o.max,
        }
    }
}

struct Estimator<'a> {
    state: &'a AppState,
    scope: Value,
    steps: Vec<StepEstimate>,
}

fn max_attempts(step: &Step) -> u32 {
    match &step.on_error {
        OnError::Retry { attempts, .. } => (*attempts).max(1),
        OnError::Fail | OnError::Continue | OnError::Default { .. } => 1,
    }
}

impl Estimator<'_> {
    /// The plan of `steps` and the cost range of running them.
    fn walk(&mut self, steps: &[Step]) -> (Vec<PlanStep>, Range) {
        let mut plan = Vec::with_capacity(steps.len());
        let mut total = Range::default();
        for step in steps {
            let attempts = max_attempts(step);
            let mut entry = PlanStep {
                step_id: step.id.clone(),
                step_type: step.kind.name(),
                provider: None,
                model: None,
                operation: None,
                condition: None,
                max_attempts: attempts,
                then: None,
                otherwise: None,
                branches: None,
                service: None,
            };
            match &step.kind {
                StepKind::Llm(llm) => {
                    entry.provider = Some(
                        llm.provider
                            .clone()
                            .unwrap_or_else(|| self.state.config.default_provider.clone()),
                    );
                    entry.model = Some(llm.model.clone());
                    if let Some(e) = estimate::estimate_call(&self.state.pricing, llm, &self.scope)
                    {
                        let max = e.max_usd * Decimal::from(attempts);
                        total = total
                            + Range {
                                min: e.min_usd,
                                expected: e.expected_usd,
                                max,
                            };
                        self.steps.push(StepEstimate {
                            step_id: step.id.clone(),
                            model: llm.model.clone(),
                            input_tokens: e.input_tokens,
                            max_output_tokens: e.max_output_tokens,
                            min_usd: usd(e.min_usd),
                            expected_usd: usd(e.expected_usd),
                            max_usd: usd(max),
                            prompt_rendered: e.rendered,
                        });
                    }
                }
                StepKind::Transform { operation, .. } => entry.operation = Some(operation),
                StepKind::Conditional {
                    condition,
                    then,
                    otherwise,
                } => {
                    entry.condition = Some(condition.source().to_owned());
                    let (then_plan, a) = self.walk(then);
                    let (else_plan, b) = self.walk(otherwise);
                    total = total
                        + Range {
                            min: a.min.min(b.min),
                            expected: (a.expected + b.expected) / Decimal::from(2),
                            max: a.max.max(b.max),
                        };
                    entry.then = Some(then_plan);
                    entry.otherwise = Some(else_plan);
                }
                StepKind::Parallel { branches, .. } => {
                    let mut plans = std::collections::BTreeMap::new();
                    for (name, steps) in branches {
                        let (branch_plan, cost) = self.walk(steps);
                        total = total + cost;
                        plans.insert(name.clone(), branch_plan);
                    }
                    entry.branches = Some(plans);
                }
                StepKind::ExternalApi(call) => entry.service = Some(call.service()),
            }
            plan.push(entry);
        }
        (plan, total)
    }
}

fn problems(list: Vec<Problem>, prefix: &str) -> Vec<FieldError> {
    list.into_iter()
        .map(|p| FieldError {
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
        (status = 200, description = "The verdict, problems, plan and cost estimate", body = Validation),
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
    let loaded: Result<&LoadedWorkflow, Vec<FieldError>> = match source {
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
                Err(list) => Err(problems(list, "definition")),
            }
        }
    };
    let loaded = match loaded {
        Ok(loaded) => loaded,
        Err(problems) => {
            return Ok(HttpResponse::Ok().json(Validation {
                valid: false,
                workflow_name: None,
                workflow_version: None,
                problems,
                plan: Vec::new(),
                cost_estimate: None,
            }))
        }
    };
    let mut found = Vec::new();
    if let Some(input) = &input {
        found = problems(loaded.workflow.check_input(input), "");
    }
    let mut estimator = Estimator {
        state: &state,
        scope: json!({"input": input.clone().unwrap_or_else(|| json!({})), "steps": {}}),
        steps: Vec::new(),
    };
    let (plan, range) = estimator.walk(&loaded.workflow.steps);
    let mut assumptions = vec![
        format!("prompt tokens are estimated as characters / {CHARS_PER_TOKEN}"),
        "min: empty answers on the cheapest path; expected: half of max_tokens, branches averaged; max: all of max_tokens on the dearest path, every retry attempt".to_owned(),
        format!("a step without max_tokens is assumed to allow {DEFAULT_MAX_TOKENS}"),
        "prices from the pricing table".to_owned(),
    ];
    if input.is_none() {
        assumptions
            .push("no input_data given: prompts were rendered with an empty input".to_owned());
    }
    Ok(HttpResponse::Ok().json(Validation {
        valid: found.is_empty(),
        workflow_name: Some(loaded.workflow.name.clone()),
        workflow_version: Some(loaded.workflow.version.clone()),
        problems: found,
        plan,
        cost_estimate: Some(CostEstimate {
            currency: "USD",
            min_usd: usd(range.min),
            expected_usd: usd(range.expected),
            max_usd: usd(range.max),
            llm_steps: estimator.steps,
            assumptions,
        }),
    }))
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
