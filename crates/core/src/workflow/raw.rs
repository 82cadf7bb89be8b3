//! Workflow files as written: strict serde shapes (unknown fields are errors), not yet checked.

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
}

impl RawStep {
    pub fn id(&self) -> &str {
        match self {
            RawStep::Llm(s) => &s.id,
            RawStep::Transform(s) => &s.id,
            RawStep::Conditional(s) => &s.id,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            RawStep::Llm(_) => "llm",
            RawStep::Transform(_) => "transform",
            RawStep::Conditional(_) => "conditional",
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
