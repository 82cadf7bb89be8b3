//! JSON values with references, for step inputs and workflow outputs. A string that is exactly
//! `"${path}"` stands for the value at that path (any JSON type); any other string with template
//! syntax is rendered to text; everything else is copied as it is.

use serde_json::{Map, Value};

use crate::telemetry::Chain;
use crate::template::{is_template, lookup, whole_reference, Template, TemplateError};

#[derive(Clone, Debug)]
pub enum ValueTemplate {
    Literal(Value),
    Reference(String),
    Text(Template),
    Array(Vec<ValueTemplate>),
    Object(Vec<(String, ValueTemplate)>),
}

impl ValueTemplate {
    /// Compiles a value; every template problem is reported with its path below `path`.
    pub fn compile(value: &Value, path: &str) -> Result<ValueTemplate, Vec<(String, String)>> {
        let mut problems = Vec::new();
        let compiled = Self::compile_into(value, path, &mut problems);
        if problems.is_empty() {
            Ok(compiled)
        } else {
            Err(problems)
        }
    }

    fn compile_into(
        value: &Value,
        path: &str,
        problems: &mut Vec<(String, String)>,
    ) -> ValueTemplate {
        match value {
            Value::String(text) => {
                if let Some(reference) = whole_reference(text) {
                    ValueTemplate::Reference(reference.to_owned())
                } else if is_template(text) {
                    match Template::compile(text) {
                        Ok(t) => ValueTemplate::Text(t),
                        Err(e) => {
                            problems.push((path.to_owned(), Chain(&e).to_string()));
                            ValueTemplate::Literal(Value::Null)
                        }
                    }
                } else {
                    ValueTemplate::Literal(value.clone())
                }
            }
            Value::Array(items) => ValueTemplate::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| Self::compile_into(item, &format!("{path}[{i}]"), problems))
                    .collect(),
            ),
            Value::Object(map) => ValueTemplate::Object(
                map.iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            Self::compile_into(v, &format!("{path}.{k}"), problems),
                        )
                    })
                    .collect(),
            ),
            other => ValueTemplate::Literal(other.clone()),
        }
    }

    /// Every template source and reference path inside, for reference checks.
    pub fn sources(&self, out: &mut Vec<String>) {
        match self {
            ValueTemplate::Literal(_) => {}
            ValueTemplate::Reference(path) => out.push(path.clone()),
            ValueTemplate::Text(t) => out.push(t.source().to_owned()),
            ValueTemplate::Array(items) => items.iter().for_each(|i| i.sources(out)),
            ValueTemplate::Object(fields) => fields.iter().for_each(|(_, v)| v.sources(out)),
        }
    }

    /// The value for `scope`. `None` when the whole value is a reference to something absent
    /// (a step on a branch not taken): such object fields are left out, array items become null.
    pub fn render(&self, scope: &Value) -> Result<Option<Value>, TemplateError> {
        Ok(match self {
            ValueTemplate::Literal(v) => Some(v.clone()),
            ValueTemplate::Reference(path) => lookup(scope, path).cloned(),
            ValueTemplate::Text(t) => Some(Value::String(t.render(scope)?)),
            ValueTemplate::Array(items) => Some(Value::Array(
                items
                    .iter()
                    .map(|i| i.render(scope).map(|v| v.unwrap_or(Value::Null)))
                    .collect::<Result<_, _>>()?,
            )),
            ValueTemplate::Object(fields) => {
                let mut out = Map::with_capacity(fields.len());
                for (key, value) in fields {
                    if let Some(v) = value.render(scope)? {
                        out.insert(key.clone(), v);
                    }
                }
                Some(Value::Object(out))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn references_keep_types_and_absent_fields_are_left_out() {
        let t = ValueTemplate::compile(
            &json!({"score": "${steps.x.output.score}", "label": "s=${steps.x.output.score}",
                    "missing": "${steps.nope.output}", "n": 1, "list": ["${input.a}", "${input.zz}"]}),
            "output",
        )
        .expect("compiles");
        let scope = json!({"input": {"a": true}, "steps": {"x": {"output": {"score": 72}}}});
        assert_eq!(
            t.render(&scope).expect("renders"),
            Some(json!({"score": 72, "label": "s=72", "n": 1, "list": [true, null]}))
        );
    }

    #[test]
    fn template_errors_carry_paths() {
        let problems =
            ValueTemplate::compile(&json!({"a": ["{{ broken"]}), "output").expect_err("bad");
        assert_eq!(problems[0].0, "output.a[0]");
    }
}
