//! A dry run: a workflow's problems for an input, its execution plan (both branches of every
//! conditional, every parallel branch) and its cost estimate, without calling anything. One
//! function for `POST /api/v1/workflow/validate` and `llmflow dry-run`, so both give the same
//! numbers.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::{Serialize, Serializer};
use serde_json::{json, Value};

use crate::estimate::{self, CHARS_PER_TOKEN, DEFAULT_MAX_TOKENS};
use crate::pricing::{usd_json, PriceTable};
use crate::workflow::{OnError, Problem, Step, StepKind, Workflow};

/// One step of the plan; conditionals carry both branches.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PlanStep {
    pub step_id: String,
    #[serde(rename = "type")]
    pub step_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// Attempts at most (retry policy).
    pub max_attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(no_recursion))]
    pub then: Option<Vec<PlanStep>>,
    #[serde(rename = "else", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(no_recursion))]
    pub otherwise: Option<Vec<PlanStep>>,
    /// Parallel steps: each branch's plan, by branch name (all branches run).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(no_recursion))]
    pub branches: Option<BTreeMap<String, Vec<PlanStep>>>,
    /// External API steps: the service called (`google_places` or `http:<host>`); not priced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
}

/// The estimate of one LLM step.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StepEstimate {
    pub step_id: String,
    pub model: String,
    pub input_tokens: u64,
    pub max_output_tokens: u64,
    #[serde(serialize_with = "usd")]
    #[cfg_attr(feature = "openapi", schema(value_type = f64))]
    pub min_usd: Decimal,
    #[serde(serialize_with = "usd")]
    #[cfg_attr(feature = "openapi", schema(value_type = f64))]
    pub expected_usd: Decimal,
    /// Includes every retry attempt.
    #[serde(serialize_with = "usd")]
    #[cfg_attr(feature = "openapi", schema(value_type = f64))]
    pub max_usd: Decimal,
    /// False when the prompt needs outputs of earlier steps: its template text was counted.
    pub prompt_rendered: bool,
}

/// USD over the cheapest path (min), the average of branches (expected) and the most
/// expensive path with every retry (max).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CostEstimate {
    pub currency: &'static str,
    #[serde(serialize_with = "usd")]
    #[cfg_attr(feature = "openapi", schema(value_type = f64))]
    pub min_usd: Decimal,
    #[serde(serialize_with = "usd")]
    #[cfg_attr(feature = "openapi", schema(value_type = f64))]
    pub expected_usd: Decimal,
    #[serde(serialize_with = "usd")]
    #[cfg_attr(feature = "openapi", schema(value_type = f64))]
    pub max_usd: Decimal,
    pub llm_steps: Vec<StepEstimate>,
    pub assumptions: Vec<String>,
}

/// A dry run's answer: the verdict, every problem with its path, the plan and the estimate.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = Validation))]
pub struct DryRun {
    pub valid: bool,
    pub workflow_name: Option<String>,
    pub workflow_version: Option<String>,
    pub problems: Vec<Problem>,
    pub plan: Vec<PlanStep>,
    pub cost_estimate: Option<CostEstimate>,
}

impl DryRun {
    /// The answer for a definition that does not validate: its problems, no plan.
    pub fn invalid(problems: Vec<Problem>) -> DryRun {
        DryRun {
            valid: false,
            workflow_name: None,
            workflow_version: None,
            problems,
            plan: Vec::new(),
            cost_estimate: None,
        }
    }
}

fn usd<S: Serializer>(value: &Decimal, serializer: S) -> Result<S::Ok, S::Error> {
    usd_json(*value).serialize(serializer)
}

/// Dry-runs `workflow` for `input` (none: prompts rendered with an empty input): the input's
/// problems against the schema, the plan, and the cost estimate from the pricing table. LLM
/// steps without a provider are planned on `default_provider`.
pub fn dry_run(
    workflow: &Workflow,
    input: Option<&Value>,
    pricing: &PriceTable,
    default_provider: &str,
) -> DryRun {
    let problems = input.map_or_else(Vec::new, |input| workflow.check_input(input));
    let mut estimator = Estimator {
        pricing,
        default_provider,
        scope: json!({"input": input.cloned().unwrap_or_else(|| json!({})), "steps": {}}),
        steps: Vec::new(),
    };
    let (plan, range) = estimator.walk(&workflow.steps);
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
    DryRun {
        valid: problems.is_empty(),
        workflow_name: Some(workflow.name.clone()),
        workflow_version: Some(workflow.version.clone()),
        problems,
        plan,
        cost_estimate: Some(CostEstimate {
            currency: "USD",
            min_usd: range.min,
            expected_usd: range.expected,
            max_usd: range.max,
            llm_steps: estimator.steps,
            assumptions,
        }),
    }
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
    pricing: &'a PriceTable,
    default_provider: &'a str,
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
                            .unwrap_or_else(|| self.default_provider.to_owned()),
                    );
                    entry.model = Some(llm.model.clone());
                    if let Some(e) = estimate::estimate_call(self.pricing, llm, &self.scope) {
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
                            min_usd: e.min_usd,
                            expected_usd: e.expected_usd,
                            max_usd: max,
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
                    let mut plans = BTreeMap::new();
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;
    use crate::estimate::estimate_call;
    use crate::workflow::LoadedWorkflow;

    fn llm(id: &str, max_tokens: u32) -> Value {
        json!({"id": id, "type": "llm", "model": "openai/gpt-4o-mini",
               "prompt": format!("Step {id} about {{{{ input.text }}}}"), "max_tokens": max_tokens})
    }

    #[test]
    fn branches_take_the_cheapest_the_average_and_the_dearest_path() {
        let pricing = PriceTable::built_in().unwrap();
        let mut first = llm("a", 100);
        first["on_error"] = json!({"mode": "retry", "attempts": 3, "backoff_ms": 10});
        let definition = json!({
            "name": "costs", "version": "1",
            "input_schema": {"type": "object", "required": ["text"]},
            "steps": [
                first,
                {"id": "route", "type": "conditional", "condition": "size(input.text) > 3",
                 "then": [llm("b", 50)],
                 "else": [{"id": "t", "type": "transform", "operation": "template", "template": "x"}]},
                {"id": "both", "type": "parallel", "branches": {"y": [llm("d", 30)], "x": [llm("c", 20)]}}
            ]
        });
        let loaded = LoadedWorkflow::from_definition(definition, &pricing).unwrap();
        let input = json!({"text": "hello"});
        let report = dry_run(&loaded.workflow, Some(&input), &pricing, "openai");
        assert!(report.valid);
        assert_eq!(report.workflow_name.as_deref(), Some("costs"));

        let scope = json!({"input": input, "steps": {}});
        let call = |id: &str| {
            let step = loaded.workflow.find_step(id).unwrap();
            let StepKind::Llm(llm) = &step.kind else {
                panic!("{id} is not an llm step")
            };
            estimate_call(&pricing, llm, &scope).unwrap()
        };
        let (a, b, c, d) = (call("a"), call("b"), call("c"), call("d"));
        let cost = report.cost_estimate.unwrap();
        assert_eq!(cost.min_usd, a.min_usd + c.min_usd + d.min_usd);
        assert_eq!(
            cost.expected_usd,
            a.expected_usd + b.expected_usd / Decimal::from(2) + c.expected_usd + d.expected_usd
        );
        assert_eq!(
            cost.max_usd,
            a.max_usd * Decimal::from(3) + b.max_usd + c.max_usd + d.max_usd
        );
        let ids: Vec<&str> = cost.llm_steps.iter().map(|s| s.step_id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "c", "d"]);

        // The plan: both branches of the conditional, the parallel branches by name.
        assert_eq!(report.plan[0].max_attempts, 3);
        assert_eq!(report.plan[0].provider.as_deref(), Some("openai"));
        assert_eq!(report.plan[1].then.as_ref().unwrap()[0].step_id, "b");
        assert_eq!(report.plan[1].otherwise.as_ref().unwrap()[0].step_id, "t");
        let branches = report.plan[2].branches.as_ref().unwrap();
        assert_eq!(branches.keys().collect::<Vec<_>>(), ["x", "y"]);

        // An input that fails the schema: invalid, its problem at its path, still a plan.
        let report = dry_run(&loaded.workflow, Some(&json!({})), &pricing, "openai");
        assert!(!report.valid);
        assert_eq!(report.problems[0].field, "input_data.text");
        assert_eq!(report.plan.len(), 3);
    }
}
