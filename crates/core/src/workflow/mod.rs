//! Workflows as data: parse (`raw`), then validate into a `Workflow` that reports every problem
//! at once, each with its JSON path (`steps[3].model: not in the pricing table`).

mod catalog;
mod condition;
mod external;
pub mod raw;
mod value;

use std::collections::HashSet;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use regex::Regex;
use serde::Serialize;
use serde_json::Value;

pub use catalog::{
    definition_hash, resolve_prompts, used_prompt_files, Catalog, CatalogError, LoadedWorkflow,
};
pub use condition::{Condition, ConditionError};
pub use external::{
    ExternalApiStep, ExternalCall, HttpCall, LocationBias, PlacesCall, UrlBase,
    DEFAULT_BIAS_RADIUS_M, DEFAULT_PLACES_FIELD_MASK, GOOGLE_PLACES_SERVICE,
};
pub use raw::{
    HttpMethod, OnError, RawFallback, RawLocationBias, RawResponseFormat, RawStep, RawWorkflow,
};
pub use value::ValueTemplate;

use crate::llm::{OutputFormat, PROVIDER_NAMES};
use crate::pricing::PriceTable;
use crate::telemetry::Chain;
use crate::template::Template;
use crate::transform::Transform;

/// Longest a single step may be given.
pub const MAX_TIMEOUT_MS: u64 = 3_600_000;
/// Most attempts `on_error: retry` may ask for.
pub const MAX_RETRY_ATTEMPTS: u32 = 10;
/// Most repair calls an llm step may ask for.
pub const MAX_REPAIR_ATTEMPTS: u32 = 5;
/// Repair calls of an llm step with `response_format: json` that names none.
pub const DEFAULT_REPAIR_ATTEMPTS: u32 = 1;

/// One problem in a definition or an input, with the JSON path where it is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Problem {
    pub field: String,
    pub message: String,
}

impl Problem {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// A validated workflow, ready to run.
#[derive(Clone, Debug)]
pub struct Workflow {
    pub name: String,
    pub version: String,
    pub description: String,
    pub input_schema: Option<Arc<jsonschema::Validator>>,
    pub input_schema_source: Option<Value>,
    pub steps: Vec<Step>,
    pub output: Option<ValueTemplate>,
}

#[derive(Clone, Debug)]
pub struct Step {
    pub id: String,
    pub timeout: Option<Duration>,
    pub on_error: OnError,
    pub kind: StepKind,
}

#[derive(Clone, Debug)]
pub enum StepKind {
    Llm(Box<LlmStep>),
    Transform {
        input: Option<ValueTemplate>,
        operation: &'static str,
        transform: Transform,
    },
    Conditional {
        condition: Condition,
        then: Vec<Step>,
        otherwise: Vec<Step>,
    },
    /// Named branches run concurrently; see `raw::RawParallelStep`.
    Parallel {
        branches: Vec<(String, Vec<Step>)>,
        fail_fast: bool,
    },
    ExternalApi(Box<ExternalApiStep>),
}

impl StepKind {
    pub fn name(&self) -> &'static str {
        match self {
            StepKind::Llm(_) => "llm",
            StepKind::Transform { .. } => "transform",
            StepKind::Conditional { .. } => "conditional",
            StepKind::Parallel { .. } => "parallel",
            StepKind::ExternalApi(_) => "external_api",
        }
    }
}

#[derive(Clone, Debug)]
pub struct LlmStep {
    /// `None` means the configured default provider.
    pub provider: Option<String>,
    pub model: String,
    pub system: Option<Template>,
    pub prompt: Template,
    pub temperature: Option<f32>,
    pub max_tokens: Option<u32>,
    pub format: OutputFormat,
    /// The format's JSON Schema, compiled once here rather than on every answer.
    pub answer_schema: Option<Arc<jsonschema::Validator>>,
    pub stream: bool,
    /// Provider and model pairs tried after the step's own, in order.
    pub fallbacks: Vec<Fallback>,
    /// Repair calls for a JSON answer that fails to parse or to match the schema.
    pub repair_attempts: u32,
}

/// A validated fallback: a known provider and a priced model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fallback {
    pub provider: String,
    pub model: String,
}

/// Step ids are identifiers so that `steps.<id>.output` works in templates and CEL.
static STEP_ID: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
        .unwrap_or_else(|e| unreachable!("static regex: {e}"))
});

/// `env.<NAME>` mentioned in a template, value or condition.
static ENV_REFERENCE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\benv\.([A-Za-z_][A-Za-z0-9_]*)")
        .unwrap_or_else(|e| unreachable!("static regex: {e}"))
});

/// What a definition is checked against besides its own text.
#[derive(Clone, Copy, Debug)]
pub struct Checks<'a> {
    /// Every `llm` step's model must have a price.
    pub pricing: &'a PriceTable,
    /// Names `${env.NAME}` may use (`WORKFLOW_ENV_ALLOWLIST`).
    pub env_allowlist: &'a [String],
}

impl<'a> Checks<'a> {
    /// Checks against the pricing table, with no environment names allowed.
    pub fn new(pricing: &'a PriceTable) -> Self {
        Checks {
            pricing,
            env_allowlist: &[],
        }
    }

    /// The same, allowing `${env.NAME}` for the given names.
    pub fn with_env(self, env_allowlist: &'a [String]) -> Self {
        Checks {
            env_allowlist,
            ..self
        }
    }
}

/// `steps.<id>` mentioned in a template, value or condition.
static STEP_REFERENCE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\bsteps\.([A-Za-z_][A-Za-z0-9_]*)")
        .unwrap_or_else(|e| unreachable!("static regex: {e}"))
});

impl Workflow {
    /// Validates a parsed definition whose prompt files are already inlined (no `${env.…}`
    /// names allowed; see `compile_checked`).
    pub fn compile(raw: &RawWorkflow, pricing: &PriceTable) -> Result<Workflow, Vec<Problem>> {
        Self::compile_checked(raw, Checks::new(pricing))
    }

    /// Validates a parsed definition whose prompt files are already inlined.
    pub fn compile_checked(
        raw: &RawWorkflow,
        checks: Checks<'_>,
    ) -> Result<Workflow, Vec<Problem>> {
        let mut all_ids = HashSet::new();
        collect_ids(&raw.steps, &mut all_ids);
        let mut cx = Checker {
            pricing: checks.pricing,
            env_allowlist: checks.env_allowlist,
            problems: Vec::new(),
            seen_ids: HashSet::new(),
            all_ids,
        };
        if raw.name.trim().is_empty() {
            cx.problem("name", "must not be empty");
        }
        if raw.steps.is_empty() {
            cx.problem("steps", "must have at least one step");
        }
        let input_schema = raw.input_schema.as_ref().and_then(|schema| {
            jsonschema::validator_for(schema)
                .map_err(|e| cx.problem("input_schema", format!("invalid JSON Schema: {e}")))
                .ok()
                .map(Arc::new)
        });
        let mut visible = HashSet::new();
        let steps = cx.steps(&raw.steps, "steps", &mut visible);
        let output = raw.output.as_ref().and_then(|output| {
            let compiled = cx.value(output, "output");
            if let Some(compiled) = &compiled {
                cx.references(compiled_sources(compiled), "output", &visible);
            }
            compiled
        });
        if cx.problems.is_empty() {
            Ok(Workflow {
                name: raw.name.clone(),
                version: raw.version.clone(),
                description: raw.description.clone(),
                input_schema,
                input_schema_source: raw.input_schema.clone(),
                steps,
                output,
            })
        } else {
            Err(cx.problems)
        }
    }

    /// Problems of `input` against the workflow's input schema, each with its path.
    pub fn check_input(&self, input: &Value) -> Vec<Problem> {
        let mut problems = Vec::new();
        if !input.is_object() {
            problems.push(Problem::new("input_data", "must be a JSON object"));
            return problems;
        }
        if let Some(schema) = &self.input_schema {
            for error in schema.iter_errors(input) {
                let pointer = error.instance_path().to_string();
                let mut field = if pointer.is_empty() {
                    "input_data".to_owned()
                } else {
                    format!("input_data{}", pointer.replace('/', "."))
                };
                // A missing property is reported at its own path, not its parent's.
                if let jsonschema::error::ValidationErrorKind::Required { property } = error.kind()
                {
                    if let Some(name) = property.as_str() {
                        field = format!("{field}.{name}");
                    }
                }
                problems.push(Problem::new(field, error.to_string()));
            }
        }
        problems
    }

    /// Steps certain to run before any conditional branch is taken (what progress starts
    /// counting): see [`certain_steps`].
    pub fn planned_steps(&self) -> usize {
        certain_steps(&self.steps)
    }

    /// The step with this id, wherever it stands (in a conditional's paths or a parallel
    /// step's branches too).
    pub fn find_step(&self, id: &str) -> Option<&Step> {
        find_step(&self.steps, id)
    }
}

fn find_step<'a>(steps: &'a [Step], id: &str) -> Option<&'a Step> {
    steps.iter().find_map(|step| {
        if step.id == id {
            return Some(step);
        }
        match &step.kind {
            StepKind::Conditional {
                then, otherwise, ..
            } => find_step(then, id).or_else(|| find_step(otherwise, id)),
            StepKind::Parallel { branches, .. } => branches
                .iter()
                .find_map(|(_, branch)| find_step(branch, id)),
            StepKind::Llm(_) | StepKind::Transform { .. } | StepKind::ExternalApi(_) => None,
        }
    })
}

/// Steps of `steps` that will run whatever the conditions say: each step, and every step of a
/// parallel step's branches (they all run), but not the branches of a conditional (counted when
/// one is taken). Counting a parallel step's branches up front keeps progress from going back
/// when they start.
pub fn certain_steps(steps: &[Step]) -> usize {
    steps
        .iter()
        .map(|step| match &step.kind {
            StepKind::Parallel { branches, .. } => {
                1 + branches
                    .iter()
                    .map(|(_, branch)| certain_steps(branch))
                    .sum::<usize>()
            }
            StepKind::Llm(_)
            | StepKind::Transform { .. }
            | StepKind::Conditional { .. }
            | StepKind::ExternalApi(_) => 1,
        })
        .sum()
}

fn compiled_sources(value: &ValueTemplate) -> Vec<String> {
    let mut out = Vec::new();
    value.sources(&mut out);
    out
}

struct Checker<'a> {
    pricing: &'a PriceTable,
    env_allowlist: &'a [String],
    problems: Vec<Problem>,
    seen_ids: HashSet<String>,
    /// Every id in the definition, to tell a forward reference from an unknown one.
    all_ids: HashSet<String>,
}

fn collect_ids(steps: &[RawStep], out: &mut HashSet<String>) {
    for step in steps {
        out.insert(step.id().to_owned());
        for (_, children) in step.children() {
            collect_ids(children, out);
        }
    }
}

impl Checker<'_> {
    fn problem(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem::new(field, message));
    }

    /// Compiles a list of steps. `visible` holds the ids a step may reference: those that run
    /// before it. Steps inside a conditional's branches become visible after the conditional
    /// (a reference to a step on the branch not taken reads as absent).
    fn steps(&mut self, raw: &[RawStep], path: &str, visible: &mut HashSet<String>) -> Vec<Step> {
        raw.iter()
            .enumerate()
            .filter_map(|(i, step)| {
                let path = format!("{path}[{i}]");
                let compiled = self.step(step, &path, visible);
                visible.insert(step.id().to_owned());
                compiled
            })
            .collect()
    }

    fn step(&mut self, raw: &RawStep, path: &str, visible: &mut HashSet<String>) -> Option<Step> {
        let id = raw.id();
        if !STEP_ID.is_match(id) {
            self.problem(
                format!("{path}.id"),
                format!(
                    "`{id}` is not a valid id (letters, digits and _, starting with a letter or _)"
                ),
            );
        } else if !self.seen_ids.insert(id.to_owned()) {
            self.problem(format!("{path}.id"), format!("duplicate step id `{id}`"));
        }
        let before = self.problems.len();
        let (timeout_ms, on_error) = raw.common();
        let on_error = on_error.cloned();
        if let Some(ms) = timeout_ms {
            if ms == 0 || ms > MAX_TIMEOUT_MS {
                self.problem(
                    format!("{path}.timeout_ms"),
                    format!("must be between 1 and {MAX_TIMEOUT_MS}"),
                );
            }
        }
        let on_error = on_error.unwrap_or_default();
        if let OnError::Retry { attempts, .. } = &on_error {
            if *attempts < 1 || *attempts > MAX_RETRY_ATTEMPTS {
                self.problem(
                    format!("{path}.on_error.attempts"),
                    format!("must be between 1 and {MAX_RETRY_ATTEMPTS}"),
                );
            }
            if matches!(raw, RawStep::Conditional(_) | RawStep::Parallel(_)) {
                self.problem(
                    format!("{path}.on_error.mode"),
                    format!(
                        "`retry` does not apply to a {} step: give it to the steps inside",
                        raw.kind()
                    ),
                );
            }
        }
        let kind = match raw {
            RawStep::Llm(s) => self
                .llm(s, path, visible)
                .map(|l| StepKind::Llm(Box::new(l))),
            RawStep::Transform(s) => {
                let input = s.input.as_ref().and_then(|input| {
                    let compiled = self.value(input, &format!("{path}.input"));
                    if let Some(c) = &compiled {
                        self.references(compiled_sources(c), &format!("{path}.input"), visible);
                    }
                    compiled
                });
                let transform = match s.spec.compile() {
                    Ok(t) => Some(t),
                    Err(problems) => {
                        for p in problems {
                            self.problem(format!("{path}.{}", p.field), p.message);
                        }
                        None
                    }
                };
                if let crate::transform::TransformSpec::Template { template, .. } = &s.spec {
                    if s.input.is_none() {
                        self.references(
                            vec![template.clone()],
                            &format!("{path}.template"),
                            visible,
                        );
                    }
                }
                transform.map(|transform| StepKind::Transform {
                    input,
                    operation: s.spec.operation(),
                    transform,
                })
            }
            RawStep::Conditional(s) => {
                let condition = Condition::compile(&s.condition)
                    .map_err(|e| self.problem(format!("{path}.condition"), Chain(&e).to_string()))
                    .ok();
                self.references(
                    vec![s.condition.clone()],
                    &format!("{path}.condition"),
                    visible,
                );
                let mut then_visible = visible.clone();
                let then = self.steps(&s.then, &format!("{path}.then"), &mut then_visible);
                let mut else_visible = visible.clone();
                let otherwise =
                    self.steps(&s.otherwise, &format!("{path}.else"), &mut else_visible);
                visible.extend(then_visible);
                visible.extend(else_visible);
                condition.map(|condition| StepKind::Conditional {
                    condition,
                    then,
                    otherwise,
                })
            }
            RawStep::Parallel(s) => Some(self.parallel(s, path, visible)),
            RawStep::ExternalApi(s) => self
                .external(s, path, visible)
                .map(|e| StepKind::ExternalApi(Box::new(e))),
        };
        if self.problems.len() > before {
            return None;
        }
        Some(Step {
            id: id.to_owned(),
            timeout: timeout_ms.map(Duration::from_millis),
            on_error,
            kind: kind?,
        })
    }

    fn llm(
        &mut self,
        s: &raw::RawLlmStep,
        path: &str,
        visible: &HashSet<String>,
    ) -> Option<LlmStep> {
        if let Some(provider) = &s.provider {
            if !PROVIDER_NAMES.contains(&provider.as_str()) {
                self.problem(
                    format!("{path}.provider"),
                    format!(
                        "unknown provider `{provider}` (one of {})",
                        PROVIDER_NAMES.join(", ")
                    ),
                );
            }
        }
        if !self.pricing.contains(&s.model) {
            self.problem(
                format!("{path}.model"),
                format!("model `{}` is not in the pricing table", s.model),
            );
        }
        if let Some(t) = s.temperature {
            if !(0.0..=2.0).contains(&t) {
                self.problem(format!("{path}.temperature"), "must be between 0 and 2");
            }
        }
        if let Some(m) = s.max_tokens {
            if m == 0 || m > 200_000 {
                self.problem(format!("{path}.max_tokens"), "must be between 1 and 200000");
            }
        }
        if s.json_schema.is_some() && s.response_format != RawResponseFormat::Json {
            self.problem(
                format!("{path}.json_schema"),
                "needs `response_format: json`",
            );
        }
        let answer_schema = s.json_schema.as_ref().and_then(|schema| {
            jsonschema::validator_for(schema)
                .map(Arc::new)
                .map_err(|e| {
                    self.problem(
                        format!("{path}.json_schema"),
                        format!("invalid JSON Schema: {e}"),
                    )
                })
                .ok()
        });
        for (i, fallback) in s.fallbacks.iter().enumerate() {
            if !PROVIDER_NAMES.contains(&fallback.provider.as_str()) {
                self.problem(
                    format!("{path}.fallbacks[{i}].provider"),
                    format!(
                        "unknown provider `{}` (one of {})",
                        fallback.provider,
                        PROVIDER_NAMES.join(", ")
                    ),
                );
            }
            if !self.pricing.contains(&fallback.model) {
                self.problem(
                    format!("{path}.fallbacks[{i}].model"),
                    format!("model `{}` is not in the pricing table", fallback.model),
                );
            }
        }
        if let Some(n) = s.repair_attempts {
            if s.response_format != RawResponseFormat::Json {
                self.problem(
                    format!("{path}.repair_attempts"),
                    "needs `response_format: json`",
                );
            } else if n > MAX_REPAIR_ATTEMPTS {
                self.problem(
                    format!("{path}.repair_attempts"),
                    format!("must be between 0 and {MAX_REPAIR_ATTEMPTS}"),
                );
            }
        }
        let prompt_source = match (&s.prompt, &s.prompt_file) {
            (Some(prompt), None) => Some(prompt),
            (None, Some(file)) => {
                self.problem(
                    format!("{path}.prompt_file"),
                    format!("prompt file `{file}` was not loaded"),
                );
                None
            }
            (Some(_), Some(_)) => {
                self.problem(
                    format!("{path}.prompt"),
                    "give either `prompt` or `prompt_file`, not both",
                );
                None
            }
            (None, None) => {
                self.problem(
                    format!("{path}.prompt"),
                    "`prompt` or `prompt_file` is required",
                );
                None
            }
        };
        let prompt = prompt_source.and_then(|source| {
            self.references(vec![source.clone()], &format!("{path}.prompt"), visible);
            Template::compile(source)
                .map_err(|e| self.problem(format!("{path}.prompt"), Chain(&e).to_string()))
                .ok()
        });
        let system = s.system.as_ref().and_then(|source| {
            self.references(vec![source.clone()], &format!("{path}.system"), visible);
            Template::compile(source)
                .map_err(|e| self.problem(format!("{path}.system"), Chain(&e).to_string()))
                .ok()
        });
        Some(LlmStep {
            provider: s.provider.clone(),
            model: s.model.clone(),
            system,
            prompt: prompt?,
            temperature: s.temperature,
            max_tokens: s.max_tokens,
            format: match s.response_format {
                RawResponseFormat::Text => OutputFormat::Text,
                RawResponseFormat::Json => OutputFormat::Json {
                    schema: s.json_schema.clone(),
                },
            },
            answer_schema,
            stream: s.stream,
            fallbacks: s
                .fallbacks
                .iter()
                .map(|f| Fallback {
                    provider: f.provider.clone(),
                    model: f.model.clone(),
                })
                .collect(),
            repair_attempts: s.repair_attempts.unwrap_or(DEFAULT_REPAIR_ATTEMPTS),
        })
    }

    fn value(&mut self, value: &Value, path: &str) -> Option<ValueTemplate> {
        match ValueTemplate::compile(value, path) {
            Ok(v) => Some(v),
            Err(problems) => {
                for (field, message) in problems {
                    self.problem(field, message);
                }
                None
            }
        }
    }

    /// Every `steps.<id>` in `sources` must name a step that runs earlier; `env.<NAME>` is only
    /// for `external_api` steps (so secrets never reach a prompt, a log or a job's result).
    fn references(&mut self, sources: Vec<String>, path: &str, visible: &HashSet<String>) {
        for source in &sources {
            if let Some(captures) = ENV_REFERENCE.captures(source) {
                let name = captures.get(1).map_or("", |m| m.as_str());
                self.problem(
                    path,
                    format!(
                        "`env.{name}`: environment values may only be used in external_api steps"
                    ),
                );
            }
        }
        self.step_references(sources, path, visible);
    }

    /// Every `steps.<id>` in `sources` must name a step that runs earlier.
    fn step_references(&mut self, sources: Vec<String>, path: &str, visible: &HashSet<String>) {
        for source in sources {
            for captures in STEP_REFERENCE.captures_iter(&source) {
                let Some(id) = captures.get(1).map(|m| m.as_str()) else {
                    continue;
                };
                if visible.contains(id) {
                    continue;
                }
                let message = if self.all_ids.contains(id) {
                    format!("step `{id}` does not run before this point")
                } else {
                    format!("unknown step `{id}`")
                };
                self.problem(path, message);
            }
        }
    }
}

impl Checker<'_> {
    /// A parallel step: each branch sees what ran before the parallel step plus its own earlier
    /// steps (never a sibling branch's); after it, every branch's steps are visible.
    fn parallel(
        &mut self,
        s: &raw::RawParallelStep,
        path: &str,
        visible: &mut HashSet<String>,
    ) -> StepKind {
        if s.branches.is_empty() {
            self.problem(format!("{path}.branches"), "must have at least one branch");
        }
        let mut after = visible.clone();
        let mut branches = Vec::with_capacity(s.branches.len());
        for (name, steps) in &s.branches {
            let branch_path = format!("{path}.branches.{name}");
            if !STEP_ID.is_match(name) {
                self.problem(
                    &branch_path,
                    format!("`{name}` is not a valid branch name (letters, digits and _)"),
                );
            }
            if steps.is_empty() {
                self.problem(&branch_path, "a branch needs at least one step");
            }
            let mut branch_visible = visible.clone();
            let compiled = self.steps(steps, &branch_path, &mut branch_visible);
            after.extend(branch_visible);
            branches.push((name.clone(), compiled));
        }
        *visible = after;
        StepKind::Parallel {
            branches,
            fail_fast: s.fail_fast,
        }
    }
}

/// Delay before retry number `attempt` (1 = the first retry) of a step with
/// `on_error: retry`: `backoff_ms` doubled each time, at most 60 s, without jitter.
pub fn retry_delay(backoff_ms: u64, attempt: u32) -> Duration {
    crate::backoff::exponential(
        Duration::from_millis(backoff_ms),
        Duration::from_secs(60),
        attempt,
        1.0,
    )
}

#[cfg(test)]
mod tests;
