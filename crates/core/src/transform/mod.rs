//! Transforms: pure, synchronous operations on JSON values, one file per operation.
//!
//! A `transform` step names its operation in `operation` beside the operation's own fields:
//! `{"id": "extract", "type": "transform", "input": "${steps.analyze.output}",
//!   "operation": "extract_fields", "fields": {"score": "$.score"}}`.
//! Specs are compiled once when the workflow is loaded (JSONPath, CEL, regex and templates are
//! checked then), and applied to each job's value.

mod extract_fields;
mod template;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use extract_fields::ExtractFields;
pub use template::TemplateOp;

/// An operation as written in a workflow file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "operation", rename_all = "snake_case", deny_unknown_fields)]
pub enum TransformSpec {
    /// Picks fields out of the input with RFC 9535 JSONPath: `{"fields": {"name": "$.a.b"}}`.
    ExtractFields {
        fields: std::collections::BTreeMap<String, String>,
    },
    /// Renders a minijinja template with the input as its variables.
    Template {
        template: String,
        /// Parse the rendered text as JSON (for templates that build JSON).
        #[serde(default)]
        parse_json: bool,
    },
}

/// A problem in a spec, found when compiling it; `field` is relative to the step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecProblem {
    pub field: String,
    pub message: String,
}

impl SpecProblem {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// An operation failing on a job's value.
#[derive(Debug, thiserror::Error)]
pub enum TransformError {
    /// The input is not of the shape the operation needs (e.g. `sort` of a string).
    #[error("{operation}: expected {expected}, got {got}")]
    InputType {
        operation: &'static str,
        expected: &'static str,
        got: &'static str,
    },
    /// Evaluating an expression or template failed.
    #[error("{operation}: {message}")]
    Eval {
        operation: &'static str,
        message: String,
    },
}

/// The name of a JSON value's type, for error messages.
pub fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A spec ready to apply.
#[derive(Clone, Debug)]
pub enum Transform {
    ExtractFields(ExtractFields),
    Template(TemplateOp),
}

impl TransformSpec {
    /// The operation's name as written in workflows.
    pub fn operation(&self) -> &'static str {
        match self {
            TransformSpec::ExtractFields { .. } => "extract_fields",
            TransformSpec::Template { .. } => "template",
        }
    }

    /// Checks and compiles the spec, reporting every problem found.
    pub fn compile(&self) -> Result<Transform, Vec<SpecProblem>> {
        match self {
            TransformSpec::ExtractFields { fields } => {
                ExtractFields::compile(fields).map(Transform::ExtractFields)
            }
            TransformSpec::Template {
                template,
                parse_json,
            } => TemplateOp::compile(template, *parse_json).map(Transform::Template),
        }
    }
}

impl Transform {
    /// Applies the operation to `input`. Pure: the same input always gives the same output.
    pub fn apply(&self, input: &Value) -> Result<Value, TransformError> {
        match self {
            Transform::ExtractFields(op) => op.apply(input),
            Transform::Template(op) => op.apply(input),
        }
    }
}
