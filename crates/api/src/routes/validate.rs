//! `POST /api/v1/workflow/validate`: a dry run. Validates a workflow (by name or an inline
//! definition) and an `input_data`, and returns every problem with its JSON path, the execution
//! plan, and a cost estimate. Nothing is stored and no provider is called.

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::{json, Value};

use llmflow_core::estimate::{self, CHARS_PER_TOKEN, DEFAULT_MAX_TOKENS};
use llmflow_core::workflow::{LoadedWorkflow, OnError, Problem, Step, StepKind};

use super::status::usd;
use super::workflow::check_depth;
use crate::error::{ApiError, ErrorBody, FieldError};
use crate::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/workflow/validate", web::post().to(validate));
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
    request_body = crate::openapi::ValidateRequest,
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
    check_depth(&body)?;
    let Some(map) = body.as_object() else {
        return Err(ApiError::validation(vec![FieldError {
            field: "body".to_owned(),
            message: "must be a JSON object".to_owned(),
        }]));
    };
    let mut request_errors = Vec::new();
    for key in map.keys() {
        if !matches!(key.as_str(), "workflow_name" | "definition" | "input_data") {
            request_errors.push(FieldError {
                field: key.clone(),
                message: "unknown field".to_owned(),
            });
        }
    }
    let input = match map.get("input_data") {
        None | Some(Value::Null) => None,
        Some(v @ Value::Object(_)) => Some(v.clone()),
        Some(_) => {
            request_errors.push(FieldError {
                field: "input_data".to_owned(),
                message: "must be a JSON object".to_owned(),
            });
            None
        }
    };
    let source = match (map.get("workflow_name"), map.get("definition")) {
        (Some(Value::String(name)), None) => Some(Err(name.clone())),
        (None, Some(def @ Value::Object(_))) => Some(Ok(def.clone())),
        (Some(_), Some(_)) => {
            request_errors.push(FieldError {
                field: "body".to_owned(),
                message: "give either workflow_name or definition, not both".to_owned(),
            });
            None
        }
        (None, None) => {
            request_errors.push(FieldError {
                field: "body".to_owned(),
                message: "give workflow_name or definition".to_owned(),
            });
            None
        }
        (Some(_), None) => {
            request_errors.push(FieldError {
                field: "workflow_name".to_owned(),
                message: "must be a string".to_owned(),
            });
            None
        }
        (None, Some(_)) => {
            request_errors.push(FieldError {
                field: "definition".to_owned(),
                message: "must be a JSON object".to_owned(),
            });
            None
        }
    };
    let Some(source) = source.filter(|_| request_errors.is_empty()) else {
        return Err(ApiError::validation(request_errors));
    };
    let inline;
    let loaded: Result<&LoadedWorkflow, Vec<FieldError>> = match source {
        Err(name) => match state.catalog.get(&name) {
            Some(found) => Ok(found.as_ref()),
            None => return Err(ApiError::NotFound(format!("unknown workflow `{name}`"))),
        },
        Ok(definition) => {
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
