//! `join`: joins the items of an array into one string.
//!
//! Shape: `{"operation": "join", "separator": ", ", "field": "<JSONPath>"}`; `separator`
//! defaults to `""`, `field` is optional.
//!
//! - The input must be an array. Without `field` each item is joined; with `field` (RFC 9535
//!   JSONPath, `$` is the item) the value it picks from each item is joined instead (no match
//!   counts as `null`, several matches as an array).
//! - Strings are joined as they are, numbers and booleans as their JSON text (`3`, `2.5`,
//!   `true`), `null` as the empty string (the separators around it are kept).
//! - An array or object fails the step, naming the item's index.
//! - An empty array gives `""`.
//!
//! Example: `{"operation": "join", "separator": ", ", "field": "$.name"}` turns
//! `[{"name": "Ana"}, {"name": 7}, {"other": true}, {"name": "Bo"}]` into `"Ana, 7, , Bo"`.

use serde_json::Value;

use super::common::{expect_array, optional_path, Path};
use super::{type_name, SpecProblem, TransformError};

const OPERATION: &str = "join";

#[derive(Clone, Debug)]
pub struct JoinOp {
    separator: String,
    field: Option<Path>,
}

impl JoinOp {
    pub fn compile(separator: &str, field: Option<&str>) -> Result<Self, Vec<SpecProblem>> {
        let mut problems = Vec::new();
        let field = optional_path("field", field, &mut problems);
        if problems.is_empty() {
            Ok(Self {
                separator: separator.to_owned(),
                field,
            })
        } else {
            Err(problems)
        }
    }

    pub fn apply(&self, input: &Value) -> Result<Value, TransformError> {
        let items = expect_array(OPERATION, input)?;
        let mut out = String::new();
        for (index, item) in items.iter().enumerate() {
            if index > 0 {
                out.push_str(&self.separator);
            }
            let picked;
            let value = match &self.field {
                Some(path) => {
                    picked = path.pick(item);
                    &picked
                }
                None => item,
            };
            match value {
                Value::String(s) => out.push_str(s),
                Value::Number(n) => out.push_str(&n.to_string()),
                Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
                Value::Null => {}
                Value::Array(_) | Value::Object(_) => {
                    return Err(TransformError::Eval {
                        operation: OPERATION,
                        message: format!(
                            "item {index}: cannot join {} {}; only strings, numbers, booleans \
                             and null",
                            if self.field.is_some() {
                                "a field value of type"
                            } else {
                                "an item of type"
                            },
                            type_name(value)
                        ),
                    })
                }
            }
        }
        Ok(Value::String(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(separator: &str, field: Option<&str>, input: Value) -> Result<Value, TransformError> {
        JoinOp::compile(separator, field)
            .expect("compiles")
            .apply(&input)
    }

    #[test]
    fn doc_example() {
        let input = json!([{"name": "Ana"}, {"name": 7}, {"other": true}, {"name": "Bo"}]);
        assert_eq!(
            run(", ", Some("$.name"), input).expect("applies"),
            json!("Ana, 7, , Bo")
        );
    }

    #[test]
    fn scalars_default_separator_and_unicode() {
        assert_eq!(
            run("", None, json!(["a", 1, 2.5, true, null, "é"])).expect("applies"),
            json!("a12.5trueé")
        );
        assert_eq!(
            run(" → ", None, json!(["東京", "Zürich"])).expect("applies"),
            json!("東京 → Zürich")
        );
    }

    #[test]
    fn empty_and_single() {
        assert_eq!(run(",", None, json!([])).expect("applies"), json!(""));
        assert_eq!(run(",", None, json!(["x"])).expect("applies"), json!("x"));
    }

    #[test]
    fn compound_items_name_the_index() {
        let err = run(",", None, json!(["a", {"b": 1}])).expect_err("object");
        assert!(err.to_string().starts_with("join: item 1:"), "{err}");
        let err = run(
            ",",
            Some("$.tags[*]"),
            json!([{"tags": ["a"]}, {"tags": ["a", "b"]}]),
        )
        .expect_err("several matches are an array");
        assert!(err.to_string().contains("item 1"), "{err}");
    }

    #[test]
    fn wrong_input_and_bad_spec() {
        assert!(matches!(
            run(",", None, json!("abc")),
            Err(TransformError::InputType { got: "string", .. })
        ));
        let problems = JoinOp::compile(",", Some("name")).expect_err("bad path");
        assert_eq!(problems[0].field, "field");
    }
}
