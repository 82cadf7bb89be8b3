//! Transforms: pure, synchronous operations on JSON values, one file per operation.
//!
//! A `transform` step names its operation in `operation` beside the operation's own fields:
//! `{"id": "extract", "type": "transform", "input": "${steps.analyze.output}",
//!   "operation": "extract_fields", "fields": {"score": "$.score"}}`.
//! Specs are compiled once when the workflow is loaded (JSONPath, CEL, regex and templates are
//! checked then), and applied to each job's value.
//!
//! The operations, each documented (shape, rules, example) at the top of its file:
//! `extract_fields`, `template`, `filter`, `map`, `join`, `sort`, `unique`, `regex_extract`,
//! `markdown_to_json` and `merge`. An operation fails with a [`TransformError`] that names the
//! operation and, for per-item work, the item's index (or key).

mod common;
mod extract_fields;
mod filter;
mod join;
mod map;
mod markdown_to_json;
mod merge;
mod regex_extract;
mod sort;
mod template;
mod unique;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use extract_fields::ExtractFields;
pub use filter::FilterOp;
pub use join::JoinOp;
pub use map::MapOp;
pub use markdown_to_json::{MarkdownToJson, SectionKeyStyle};
pub use merge::{MergeArrays, MergeOp, MergeStrategy};
pub use regex_extract::RegexExtract;
pub use sort::{SortOp, SortOrder};
pub use template::TemplateOp;
pub use unique::UniqueOp;

/// An operation as written in a workflow file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "operation", rename_all = "snake_case", deny_unknown_fields)]
pub enum TransformSpec {
    /// Picks fields out of the input with RFC 9535 JSONPath: `{"fields": {"name": "$.a.b"}}`.
    ExtractFields { fields: BTreeMap<String, String> },
    /// Renders a minijinja template with the input as its variables.
    Template {
        template: String,
        /// Parse the rendered text as JSON (for templates that build JSON).
        #[serde(default)]
        parse_json: bool,
    },
    /// Keeps the items of an array for which a CEL expression over `item` and `index` is true.
    Filter { condition: String },
    /// Turns each item of an array into something else; exactly one of `template`, `field`,
    /// `fields`.
    Map {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        template: Option<String>,
        /// With `template`: parse each rendered text as JSON.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        parse_json: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        field: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fields: Option<BTreeMap<String, String>>,
    },
    /// Joins the items of an array (or a JSONPath picked from each) into one string.
    Join {
        #[serde(default)]
        separator: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        field: Option<String>,
    },
    /// Stable sort of an array by the item or a JSONPath key.
    Sort {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<String>,
        #[serde(default)]
        order: SortOrder,
    },
    /// Keeps the first item of an array for each distinct key.
    Unique {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<String>,
    },
    /// Matches a regular expression against a string.
    RegexExtract {
        pattern: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        field: Option<String>,
        #[serde(default = "default_true")]
        all: bool,
    },
    /// Turns Markdown into nested JSON, one key per heading.
    MarkdownToJson {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        field: Option<String>,
        #[serde(default)]
        section_key_style: SectionKeyStyle,
    },
    /// Merges an array (or an object) of objects into one object.
    Merge {
        #[serde(default)]
        strategy: MergeStrategy,
        #[serde(default)]
        arrays: MergeArrays,
    },
}

fn default_true() -> bool {
    true
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
    /// One item of the input (an array element or an object member, named by `item`, e.g.
    /// `index 3` or `key "a"`) is not of the shape the operation needs.
    #[error("{operation}: {item}: expected {expected}, got {got}")]
    ItemType {
        operation: &'static str,
        item: String,
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
    Filter(FilterOp),
    Map(MapOp),
    Join(JoinOp),
    Sort(SortOp),
    Unique(UniqueOp),
    RegexExtract(RegexExtract),
    MarkdownToJson(MarkdownToJson),
    Merge(MergeOp),
}

impl TransformSpec {
    /// The operation's name as written in workflows.
    pub fn operation(&self) -> &'static str {
        match self {
            TransformSpec::ExtractFields { .. } => "extract_fields",
            TransformSpec::Template { .. } => "template",
            TransformSpec::Filter { .. } => "filter",
            TransformSpec::Map { .. } => "map",
            TransformSpec::Join { .. } => "join",
            TransformSpec::Sort { .. } => "sort",
            TransformSpec::Unique { .. } => "unique",
            TransformSpec::RegexExtract { .. } => "regex_extract",
            TransformSpec::MarkdownToJson { .. } => "markdown_to_json",
            TransformSpec::Merge { .. } => "merge",
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
            TransformSpec::Filter { condition } => {
                FilterOp::compile(condition).map(Transform::Filter)
            }
            TransformSpec::Map {
                template,
                parse_json,
                field,
                fields,
            } => MapOp::compile(
                template.as_deref(),
                *parse_json,
                field.as_deref(),
                fields.as_ref(),
            )
            .map(Transform::Map),
            TransformSpec::Join { separator, field } => {
                JoinOp::compile(separator, field.as_deref()).map(Transform::Join)
            }
            TransformSpec::Sort { by, order } => {
                SortOp::compile(by.as_deref(), *order).map(Transform::Sort)
            }
            TransformSpec::Unique { by } => UniqueOp::compile(by.as_deref()).map(Transform::Unique),
            TransformSpec::RegexExtract {
                pattern,
                field,
                all,
            } => {
                RegexExtract::compile(pattern, field.as_deref(), *all).map(Transform::RegexExtract)
            }
            TransformSpec::MarkdownToJson {
                field,
                section_key_style,
            } => MarkdownToJson::compile(field.as_deref(), *section_key_style)
                .map(Transform::MarkdownToJson),
            TransformSpec::Merge { strategy, arrays } => {
                Ok(Transform::Merge(MergeOp::new(*strategy, *arrays)))
            }
        }
    }
}

impl Transform {
    /// Applies the operation to `input`. Pure: the same input always gives the same output.
    pub fn apply(&self, input: &Value) -> Result<Value, TransformError> {
        match self {
            Transform::ExtractFields(op) => op.apply(input),
            Transform::Template(op) => op.apply(input),
            Transform::Filter(op) => op.apply(input),
            Transform::Map(op) => op.apply(input),
            Transform::Join(op) => op.apply(input),
            Transform::Sort(op) => op.apply(input),
            Transform::Unique(op) => op.apply(input),
            Transform::RegexExtract(op) => op.apply(input),
            Transform::MarkdownToJson(op) => op.apply(input),
            Transform::Merge(op) => op.apply(input),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Like a transform step: the spec is flattened beside the step's own fields.
    #[derive(Debug, Deserialize)]
    struct Step {
        #[allow(dead_code)]
        id: String,
        #[serde(flatten)]
        spec: TransformSpec,
    }

    fn step(value: Value) -> Result<TransformSpec, serde_json::Error> {
        serde_json::from_value::<Step>(value).map(|s| s.spec)
    }

    #[test]
    fn every_operation_parses_with_its_defaults() {
        let cases = [
            (
                json!({"operation": "extract_fields", "fields": {"a": "$.a"}}),
                "extract_fields",
            ),
            (
                json!({"operation": "template", "template": "x"}),
                "template",
            ),
            (
                json!({"operation": "filter", "condition": "item > 1"}),
                "filter",
            ),
            (json!({"operation": "map", "field": "$.a"}), "map"),
            (json!({"operation": "join"}), "join"),
            (json!({"operation": "sort"}), "sort"),
            (json!({"operation": "unique"}), "unique"),
            (
                json!({"operation": "regex_extract", "pattern": "a"}),
                "regex_extract",
            ),
            (json!({"operation": "markdown_to_json"}), "markdown_to_json"),
            (json!({"operation": "merge"}), "merge"),
        ];
        for (mut value, name) in cases {
            value["id"] = json!("x");
            let spec = step(value).expect(name);
            assert_eq!(spec.operation(), name);
            assert!(spec.compile().is_ok(), "{name}");
        }
        assert_eq!(
            step(json!({"id": "x", "operation": "sort"})).expect("sort"),
            TransformSpec::Sort {
                by: None,
                order: SortOrder::Asc
            }
        );
        assert_eq!(
            step(json!({"id": "x", "operation": "join"})).expect("join"),
            TransformSpec::Join {
                separator: String::new(),
                field: None
            }
        );
        assert_eq!(
            step(json!({"id": "x", "operation": "regex_extract", "pattern": "a"})).expect("re"),
            TransformSpec::RegexExtract {
                pattern: "a".into(),
                field: None,
                all: true
            }
        );
        assert_eq!(
            step(json!({"id": "x", "operation": "markdown_to_json"})).expect("md"),
            TransformSpec::MarkdownToJson {
                field: None,
                section_key_style: SectionKeyStyle::Text
            }
        );
        assert_eq!(
            step(json!({"id": "x", "operation": "merge"})).expect("merge"),
            TransformSpec::Merge {
                strategy: MergeStrategy::Deep,
                arrays: MergeArrays::Replace
            }
        );
    }

    #[test]
    fn unknown_fields_and_values_are_rejected() {
        for bad in [
            json!({"id": "x", "operation": "sort", "order": "descending"}),
            json!({"id": "x", "operation": "sort", "by": "$.a", "field": "$.b"}),
            json!({"id": "x", "operation": "merge", "strategy": "deepest"}),
            json!({"id": "x", "operation": "merge", "arrays": "append"}),
            json!({"id": "x", "operation": "markdown_to_json", "section_key_style": "kebab"}),
            json!({"id": "x", "operation": "regex_extract"}),
            json!({"id": "x", "operation": "filter"}),
            json!({"id": "x", "operation": "shuffle"}),
        ] {
            assert!(step(bad.clone()).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_sort_step_runs_end_to_end() {
        let spec = step(
            json!({"id": "x", "type_": 1, "operation": "sort", "by": "$.score",
                                "order": "desc"}),
        );
        assert!(spec.is_err(), "unknown step-level field reaches the spec");
        let spec = step(json!({"id": "x", "operation": "sort", "by": "$.score", "order": "desc"}))
            .expect("parses");
        let out = spec
            .compile()
            .expect("compiles")
            .apply(&json!([{"score": 1}, {"score": 3}, {"score": 2}]))
            .expect("applies");
        assert_eq!(out, json!([{"score": 3}, {"score": 2}, {"score": 1}]));
    }

    #[test]
    fn compile_errors_name_the_spec_field() {
        let spec = step(json!({"id": "x", "operation": "map", "field": "$.a", "template": "t"}))
            .expect("parses");
        assert!(spec.compile().is_err());
        let spec =
            step(json!({"id": "x", "operation": "regex_extract", "pattern": "("})).expect("parses");
        let problems = spec.compile().expect_err("bad regex");
        assert_eq!(problems[0].field, "pattern");
    }

    #[test]
    fn transforms_can_be_shared_across_threads() {
        fn assert_send_sync<T: Send + Sync + Clone>() {}
        assert_send_sync::<Transform>();
    }
}
