//! `map`: turns each item of an array into a new value; the output is an array of the same
//! length, in the same order.
//!
//! Shape: exactly one of
//! - `{"operation": "map", "template": "<minijinja>", "parse_json": false}`: renders the template
//!   once per item with two variables, `item` (the element) and `index` (its 0-based position).
//!   The result is the rendered string, or with `parse_json: true` (default `false`) the rendered
//!   text parsed as JSON. Printing an undefined variable (e.g. `{{ item.missing }}`) is an error;
//!   testing one (`{% if item.missing %}`) is not.
//! - `{"operation": "map", "field": "<JSONPath>"}`: the JSONPath (RFC 9535, `$` is the item)
//!   picked from each item: no match gives `null`, one match that value, several matches an
//!   array of them.
//! - `{"operation": "map", "fields": {"<name>": "<JSONPath>", …}}`: an object per item, each
//!   name picked as with `field` (like `extract_fields` applied to every item).
//!
//! Giving none or more than one of `template`, `field` and `fields`, `parse_json` without
//! `template`, an empty `fields`, or an invalid JSONPath or template is rejected when the
//! workflow is loaded. The input must be an array; a render or JSON-parse failure fails the
//! step, naming the item's index.
//!
//! Example: `{"operation": "map", "fields": {"who": "$.name", "first_tag": "$.tags[0]"}}` turns
//! `[{"name": "Ana", "tags": ["x", "y"]}, {"name": "Bo"}]` into
//! `[{"who": "Ana", "first_tag": "x"}, {"who": "Bo", "first_tag": null}]`.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::common::{expect_array, Path};
use super::{SpecProblem, TransformError};
use crate::telemetry::Chain;
use crate::template::Template;

const OPERATION: &str = "map";

#[derive(Clone, Debug)]
pub struct MapOp {
    mapping: Mapping,
}

#[derive(Clone, Debug)]
enum Mapping {
    Template {
        template: Template,
        parse_json: bool,
    },
    Field(Path),
    Fields(Vec<(String, Path)>),
}

impl MapOp {
    pub fn compile(
        template: Option<&str>,
        parse_json: bool,
        field: Option<&str>,
        fields: Option<&BTreeMap<String, String>>,
    ) -> Result<Self, Vec<SpecProblem>> {
        let given: Vec<&str> = [
            ("template", template.is_some()),
            ("field", field.is_some()),
            ("fields", fields.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, present)| present.then_some(name))
        .collect();
        match given.as_slice() {
            [] => {
                return Err(vec![SpecProblem::new(
                    "operation",
                    "`map` needs one of `template`, `field` or `fields`",
                )])
            }
            [_] => {}
            [_, second, ..] => {
                return Err(vec![SpecProblem::new(
                    *second,
                    format!("give only one of `template`, `field` or `fields` (got {given:?})"),
                )])
            }
        }
        let mut problems = Vec::new();
        if parse_json && template.is_none() {
            problems.push(SpecProblem::new(
                "parse_json",
                "only applies with `template`",
            ));
        }
        let mapping = if let Some(source) = template {
            match Template::compile(source) {
                Ok(template) => Some(Mapping::Template {
                    template,
                    parse_json,
                }),
                Err(e) => {
                    problems.push(SpecProblem::new("template", Chain(&e).to_string()));
                    None
                }
            }
        } else if let Some(query) = field {
            Path::compile("field", query, &mut problems).map(Mapping::Field)
        } else {
            let fields = fields.cloned().unwrap_or_default();
            if fields.is_empty() {
                problems.push(SpecProblem::new("fields", "must name at least one field"));
            }
            let compiled: Vec<_> = fields
                .iter()
                .filter_map(|(name, query)| {
                    Path::compile(&format!("fields.{name}"), query, &mut problems)
                        .map(|p| (name.clone(), p))
                })
                .collect();
            Some(Mapping::Fields(compiled))
        };
        match mapping {
            Some(mapping) if problems.is_empty() => Ok(Self { mapping }),
            _ => Err(problems),
        }
    }

    pub fn apply(&self, input: &Value) -> Result<Value, TransformError> {
        let items = expect_array(OPERATION, input)?;
        let mut out = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            out.push(self.map_one(index, item)?);
        }
        Ok(Value::Array(out))
    }

    fn map_one(&self, index: usize, item: &Value) -> Result<Value, TransformError> {
        match &self.mapping {
            Mapping::Template {
                template,
                parse_json,
            } => {
                let fail = |message: String| TransformError::Eval {
                    operation: OPERATION,
                    message: format!("item {index}: {message}"),
                };
                let text = template
                    .render(&json!({"item": item, "index": index}))
                    .map_err(|e| fail(Chain(&e).to_string()))?;
                if *parse_json {
                    serde_json::from_str(&text)
                        .map_err(|e| fail(format!("rendered text is not JSON: {e}")))
                } else {
                    Ok(Value::String(text))
                }
            }
            Mapping::Field(path) => Ok(path.pick(item)),
            Mapping::Fields(fields) => {
                let mut object = Map::new();
                for (name, path) in fields {
                    object.insert(name.clone(), path.pick(item));
                }
                Ok(Value::Object(object))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn doc_example_fields() {
        let spec = fields(&[("who", "$.name"), ("first_tag", "$.tags[0]")]);
        let op = MapOp::compile(None, false, None, Some(&spec)).expect("compiles");
        let out = op
            .apply(&json!([{"name": "Ana", "tags": ["x", "y"]}, {"name": "Bo"}]))
            .expect("applies");
        assert_eq!(
            out,
            json!([{"who": "Ana", "first_tag": "x"}, {"who": "Bo", "first_tag": null}])
        );
    }

    #[test]
    fn field_gives_null_value_or_array() {
        let op = MapOp::compile(None, false, Some("$.tags[*]"), None).expect("compiles");
        let out = op
            .apply(&json!([{"tags": []}, {"tags": ["ü"]}, {"tags": ["a", "b"]}, 7]))
            .expect("applies");
        assert_eq!(out, json!([null, "ü", ["a", "b"], null]));
    }

    #[test]
    fn template_renders_text_and_json_with_index() {
        let op = MapOp::compile(Some("{{ index }}: {{ item.name }}"), false, None, None)
            .expect("compiles");
        let out = op
            .apply(&json!([{"name": "Zoë"}, {"name": "李"}]))
            .expect("applies");
        assert_eq!(out, json!(["0: Zoë", "1: 李"]));
        let op =
            MapOp::compile(Some(r#"{"n": {{ item * 2 }}}"#), true, None, None).expect("compiles");
        assert_eq!(
            op.apply(&json!([1, 2])).expect("applies"),
            json!([{"n": 2}, {"n": 4}])
        );
    }

    #[test]
    fn template_errors_name_the_index() {
        let op = MapOp::compile(Some("{{ item.name }}"), false, None, None).expect("compiles");
        let err = op
            .apply(&json!([{"name": "a"}, {"other": 1}]))
            .expect_err("undefined");
        assert!(err.to_string().starts_with("map: item 1:"), "{err}");
        let op = MapOp::compile(Some("{{ item }}"), true, None, None).expect("compiles");
        let err = op.apply(&json!([1, "x y"])).expect_err("not json");
        assert!(
            err.to_string()
                .contains("item 1: rendered text is not JSON"),
            "{err}"
        );
    }

    #[test]
    fn empty_array_and_wrong_input() {
        let op = MapOp::compile(None, false, Some("$.a"), None).expect("compiles");
        assert_eq!(op.apply(&json!([])).expect("applies"), json!([]));
        assert!(matches!(
            op.apply(&json!("text")),
            Err(TransformError::InputType { got: "string", .. })
        ));
    }

    #[test]
    fn spec_problems() {
        let both = fields(&[("a", "$.a")]);
        assert!(MapOp::compile(None, false, None, None).is_err());
        assert!(MapOp::compile(Some("x"), false, Some("$.a"), None).is_err());
        assert!(MapOp::compile(None, false, Some("$.a"), Some(&both)).is_err());
        let problems = MapOp::compile(None, true, Some("$.a"), None).expect_err("parse_json");
        assert_eq!(problems[0].field, "parse_json");
        let problems = MapOp::compile(None, false, Some("a.b"), None).expect_err("bad path");
        assert_eq!(problems[0].field, "field");
        let bad = fields(&[("ok", "$.a"), ("bad", "$[")]);
        let problems = MapOp::compile(None, false, None, Some(&bad)).expect_err("bad path");
        assert_eq!(problems[0].field, "fields.bad");
        let problems =
            MapOp::compile(None, false, None, Some(&BTreeMap::new())).expect_err("empty");
        assert_eq!(problems[0].field, "fields");
        let problems =
            MapOp::compile(Some("{{ unclosed"), false, None, None).expect_err("bad template");
        assert_eq!(problems[0].field, "template");
    }
}
