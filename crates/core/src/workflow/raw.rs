//! Workflow files as written: strict serde shapes (unknown fields are errors), not yet checked.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::transform::TransformSpec;

fn default_version() -> String {
    "1".to_owned()
}

/// A workflow definition as parsed from JSON.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWorkflow {
    pub name: String,
    #[serde(default = "default_version")]
    pub version: String,
    #[serde(default)]
    pub description: String,
    /// JSON Schema that `input_data` must satisfy at submit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_schema: Option<Value>,
    pub steps: Vec<RawStep>,
    /// The job's result: a JSON value whose strings may reference inputs and step outputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
}

/// One step, tagged by `type`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RawStep {
    Llm(RawLlmStep),
    Transform(RawTransformStep),
    Conditional(RawConditionalStep),
    Parallel(RawParallelStep),
    ExternalApi(RawExternalApiStep),
}

impl RawStep {
    pub fn id(&self) -> &str {
        match self {
            RawStep::Llm(s) => &s.id,
            RawStep::Transform(s) => &s.id,
            RawStep::Conditional(s) => &s.id,
            RawStep::Parallel(s) => &s.id,
            RawStep::ExternalApi(s) => &s.id,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            RawStep::Llm(_) => "llm",
            RawStep::Transform(_) => "transform",
            RawStep::Conditional(_) => "conditional",
            RawStep::Parallel(_) => "parallel",
            RawStep::ExternalApi(_) => "external_api",
        }
    }

    /// The step's `timeout_ms` and `on_error`, whatever its kind.
    pub fn common(&self) -> (Option<u64>, Option<&OnError>) {
        match self {
            RawStep::Llm(s) => (s.timeout_ms, s.on_error.as_ref()),
            RawStep::Transform(s) => (s.timeout_ms, s.on_error.as_ref()),
            RawStep::Conditional(s) => (s.timeout_ms, s.on_error.as_ref()),
            RawStep::Parallel(s) => (s.timeout_ms, s.on_error.as_ref()),
            RawStep::ExternalApi(s) => (s.timeout_ms, s.on_error.as_ref()),
        }
    }

    /// Steps nested inside this one (a conditional's `then` and `else`, a parallel step's
    /// branches), each with the JSON path of its list.
    pub fn children(&self) -> Vec<(String, &[RawStep])> {
        match self {
            RawStep::Conditional(c) => vec![
                ("then".to_owned(), c.then.as_slice()),
                ("else".to_owned(), c.otherwise.as_slice()),
            ],
            RawStep::Parallel(p) => p
                .branches
                .iter()
                .map(|(name, steps)| (format!("branches.{name}"), steps.as_slice()))
                .collect(),
            RawStep::Llm(_) | RawStep::Transform(_) | RawStep::ExternalApi(_) => Vec::new(),
        }
    }
}

/// What to do when a step fails.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
pub enum OnError {
    /// Fail the job (the default).
    #[default]
    Fail,
    /// Record the error, set the step's output to null, and go on.
    Continue,
    /// Try again up to `attempts` times in all, waiting `backoff_ms`, doubling each time.
    Retry {
        attempts: u32,
        #[serde(default = "default_backoff_ms")]
        backoff_ms: u64,
    },
    /// Record the error and use `value` as the step's output.
    Default { value: Value },
}

fn default_backoff_ms() -> u64 {
    1000
}

/// Answer format asked of the model.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RawResponseFormat {
    #[default]
    Text,
    Json,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLlmStep {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_error: Option<OnError>,
    /// `openrouter` (default), `openai` or `anthropic`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    pub model: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    /// Inline prompt template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// A Markdown template under `prompts/`; inlined into `prompt` when the workflow is loaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    #[serde(default)]
    pub response_format: RawResponseFormat,
    /// JSON Schema the answer must satisfy (with `response_format: json`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_schema: Option<Value>,
    #[serde(default)]
    pub stream: bool,
    /// Tried in order when the call fails with a retryable error after its retries, or with an
    /// authentication error — never once streamed text has been passed on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fallbacks: Vec<RawFallback>,
    /// With `response_format: json`: calls made to repair an answer that does not parse or
    /// fails the schema, the errors fed back to the model (default 1; 0 turns repair off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repair_attempts: Option<u32>,
}

/// One entry of an llm step's `fallbacks`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFallback {
    pub provider: String,
    pub model: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RawTransformStep {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_error: Option<OnError>,
    /// The value to transform (usually `"${steps.<id>.output}"`); default: the whole scope
    /// `{input, steps}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Value>,
    #[serde(flatten)]
    pub spec: TransformSpec,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConditionalStep {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_error: Option<OnError>,
    /// A CEL expression over `input` and `steps`, e.g. `steps.extract.output.score > 50`.
    pub condition: String,
    #[serde(default)]
    pub then: Vec<RawStep>,
    #[serde(default, rename = "else")]
    pub otherwise: Vec<RawStep>,
}

fn default_true() -> bool {
    true
}

/// Named branches run concurrently; the output is an object keyed by branch name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawParallelStep {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_error: Option<OnError>,
    /// Branch name → the steps it runs in order.
    pub branches: BTreeMap<String, Vec<RawStep>>,
    /// `true` (default): the first failed branch cancels the others and the step fails.
    /// `false`: every branch runs to its end; a failed one gives `{"error": "…"}`.
    #[serde(default = "default_true")]
    pub fail_fast: bool,
}

/// HTTP method of an `external_api` call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    #[default]
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl HttpMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Get => "GET",
            HttpMethod::Post => "POST",
            HttpMethod::Put => "PUT",
            HttpMethod::Patch => "PATCH",
            HttpMethod::Delete => "DELETE",
        }
    }
}

/// A call to an HTTP API: any URL, or a named service (`google_places`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExternalApiStep {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_error: Option<OnError>,
    /// A named service (`google_places`); without it the call is the generic HTTP request
    /// described by `method`, `url`, `query`, `headers` and `body`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<HttpMethod>,
    /// URL template; scheme and host must be written out (not templated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Generic: an object of query parameters (values are templates). `google_places`: the
    /// text query (a template), e.g. `"${input.city} hospitals"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<Value>,
    /// Header templates; secrets only as `${env.NAME}` of allow-listed names.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// JSON body (a value template), sent with `Content-Type: application/json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    /// Seconds a successful response is reused for an identical request; 0 = no cache.
    /// Default: 3600 for `google_places`, 0 for generic calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_ttl_secs: Option<u64>,
    /// `google_places`: response field mask (default: id, name, address, location, rating…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field_mask: Option<String>,
    /// `google_places`: most results wanted (1–20).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_results: Option<u32>,
    /// `google_places`: language of the results (e.g. `en`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language_code: Option<String>,
    /// `google_places`: prefer results within a circle around a point.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location_bias: Option<RawLocationBias>,
}

/// `google_places`' `location_bias`: the circle's centre as value templates (so
/// `"${input.location.latitude}"` keeps its number) and its radius. A centre that is absent or
/// not a pair of coordinates at run time sends no bias.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLocationBias {
    pub latitude: Value,
    pub longitude: Value,
    /// Metres, 1–50,000 (default 10,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub radius_m: Option<f64>,
}
