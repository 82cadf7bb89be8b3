//! `extract_fields`: a map of output names to RFC 9535 JSONPath queries.
//!
//! Each query's result becomes one field: no match gives `null`, exactly one match gives that
//! value, several matches give an array of them (in document order).

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use serde_json_path::JsonPath;

use super::{SpecProblem, TransformError};

#[derive(Clone, Debug)]
pub struct ExtractFields {
    fields: Vec<(String, JsonPath)>,
}

impl ExtractFields {
    pub fn compile(fields: &BTreeMap<String, String>) -> Result<Self, Vec<SpecProblem>> {
        let mut problems = Vec::new();
        let mut compiled = Vec::with_capacity(fields.len());
        if fields.is_empty() {
            problems.push(SpecProblem::new("fields", "must name at least one field"));
        }
        for (name, query) in fields {
            match JsonPath::parse(query) {
                Ok(path) => compiled.push((name.clone(), path)),
                Err(e) => problems.push(SpecProblem::new(
                    format!("fields.{name}"),
                    format!("invalid JSONPath `{query}`: {e}"),
                )),
            }
        }
        if problems.is_empty() {
            Ok(Self { fields: compiled })
        } else {
            Err(problems)
        }
    }

    pub fn apply(&self, input: &Value) -> Result<Value, TransformError> {
        let mut out = Map::with_capacity(self.fields.len());
        for (name, path) in &self.fields {
            let nodes = path.query(input).all();
            let value = match nodes.as_slice() {
                [] => Value::Null,
                [one] => (*one).clone(),
                many => Value::Array(many.iter().map(|v| (*v).clone()).collect()),
            };
            out.insert(name.clone(), value);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn op(fields: &[(&str, &str)]) -> Result<ExtractFields, Vec<SpecProblem>> {
        ExtractFields::compile(
            &fields
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn picks_single_missing_and_multiple_matches() {
        let op = op(&[
            ("score", "$.score"),
            ("none", "$.nope"),
            ("names", "$.items[*].name"),
        ])
        .expect("compiles");
        let out = op
            .apply(&json!({"score": 72, "items": [{"name": "a"}, {"name": "b"}]}))
            .expect("applies");
        assert_eq!(out, json!({"score": 72, "none": null, "names": ["a", "b"]}));
    }

    #[test]
    fn bad_paths_are_all_reported() {
        let problems = op(&[("a", "$.["), ("b", "score"), ("c", "$.ok")]).expect_err("invalid");
        let fields: Vec<_> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["fields.a", "fields.b"]);
    }

    #[test]
    fn empty_field_map_is_rejected() {
        assert!(op(&[]).is_err());
    }
}
