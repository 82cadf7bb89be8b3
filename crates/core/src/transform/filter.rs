//! `filter`: keeps the items of an array for which a CEL expression is true.
//!
//! Shape: `{"operation": "filter", "condition": "<CEL expression>"}` (`condition` required).
//!
//! - The input must be an array; anything else fails the step.
//! - `condition` is evaluated once per item with two variables: `item`, the element, and
//!   `index`, its 0-based position (an `int`). JSON objects are CEL maps (`item.score`,
//!   `item["a key"]`), arrays are lists, and numbers compare across int/uint/double
//!   (`item.score > 0.5` works for `72` too).
//! - Items for which it gives `true` are kept, in their original order; `false` drops them.
//! - Any other result (a string, `null`, …), or an evaluation error (a missing key, a type
//!   mismatch), fails the step, naming the index. Test optional keys with `has(item.key)`.
//! - The expression is checked when the workflow is loaded; an empty or invalid one is rejected.
//!
//! Example: `{"operation": "filter", "condition": "has(item.score) && item.score >= 50"}`
//! turns `[{"name": "a", "score": 72}, {"name": "b", "score": 12}, {"name": "c"}]` into
//! `[{"name": "a", "score": 72}]`.

use std::sync::Arc;

use cel::{Context, Program};
use serde_json::Value;

use super::common::expect_array;
use super::{SpecProblem, TransformError};

const OPERATION: &str = "filter";

#[derive(Clone)]
pub struct FilterOp {
    program: Arc<Program>,
    source: Arc<str>,
}

impl std::fmt::Debug for FilterOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("FilterOp").field(&self.source).finish()
    }
}

impl FilterOp {
    pub fn compile(condition: &str) -> Result<Self, Vec<SpecProblem>> {
        if condition.trim().is_empty() {
            return Err(vec![SpecProblem::new("condition", "must not be empty")]);
        }
        let program = Program::compile(condition)
            .map_err(|e| vec![SpecProblem::new("condition", format!("invalid CEL: {e}"))])?;
        Ok(Self {
            program: Arc::new(program),
            source: condition.into(),
        })
    }

    pub fn apply(&self, input: &Value) -> Result<Value, TransformError> {
        let items = expect_array(OPERATION, input)?;
        let mut kept = Vec::new();
        let mut context = Context::default();
        for (index, item) in items.iter().enumerate() {
            let fail = |message: String| TransformError::Eval {
                operation: OPERATION,
                message: format!("item {index}: {message}"),
            };
            let bound =
                cel::to_value(item).map_err(|e| fail(format!("cannot bind `item`: {e}")))?;
            context.add_variable_from_value("item", bound);
            context.add_variable_from_value("index", cel::Value::Int(index_as_i64(index)));
            match self.program.execute(&context) {
                Ok(cel::Value::Bool(true)) => kept.push(item.clone()),
                Ok(cel::Value::Bool(false)) => {}
                Ok(other) => {
                    return Err(fail(format!(
                        "condition `{}` gave {other:?}, not a boolean",
                        self.source
                    )))
                }
                Err(e) => return Err(fail(format!("condition `{}` failed: {e}", self.source))),
            }
        }
        Ok(Value::Array(kept))
    }
}

fn index_as_i64(index: usize) -> i64 {
    i64::try_from(index).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(condition: &str, input: Value) -> Result<Value, TransformError> {
        FilterOp::compile(condition)
            .expect("compiles")
            .apply(&input)
    }

    #[test]
    fn doc_example() {
        let input = json!([{"name": "a", "score": 72}, {"name": "b", "score": 12}, {"name": "c"}]);
        assert_eq!(
            run("has(item.score) && item.score >= 50", input).expect("applies"),
            json!([{"name": "a", "score": 72}])
        );
    }

    #[test]
    fn binds_index_and_compares_mixed_numbers() {
        let input = json!([1, 2.5, 3, "x"]);
        assert_eq!(
            run("index % 2 == 0", input).expect("applies"),
            json!([1, 3])
        );
        assert_eq!(
            run("item == 3 || item == 2.5", json!([1, 2.5, 3])).expect("applies"),
            json!([2.5, 3])
        );
        let input = json!([{"a key": 72}, {"a key": 0.25}, {"a key": -1}]);
        assert_eq!(
            run("item['a key'] > 0.5 || item['a key'] < 0", input).expect("applies"),
            json!([{"a key": 72}, {"a key": -1}])
        );
    }

    #[test]
    fn strings_lists_and_unicode() {
        let input = json!([
            {"city": "São Paulo", "tags": ["big"]},
            {"city": "Zürich", "tags": []},
            {"city": "東京", "tags": ["big", "capital"]}
        ]);
        let out = run("'big' in item.tags && item.city != 'São Paulo'", input).expect("applies");
        assert_eq!(out, json!([{"city": "東京", "tags": ["big", "capital"]}]));
        let out = run(
            "item.city.startsWith('Z')",
            json!([{"city": "Zürich"}, {"city": "Ab"}]),
        )
        .expect("applies");
        assert_eq!(out, json!([{"city": "Zürich"}]));
    }

    #[test]
    fn empty_array_gives_empty_array() {
        assert_eq!(run("item > 1", json!([])).expect("applies"), json!([]));
    }

    #[test]
    fn missing_key_and_non_boolean_name_the_index() {
        let err = run("item.score > 1", json!([{"score": 3}, {"other": 1}])).expect_err("missing");
        let message = err.to_string();
        assert!(message.starts_with("filter: item 1:"), "{message}");
        let err = run("item", json!([true, "yes"])).expect_err("not a boolean");
        assert!(err.to_string().contains("item 1"), "{err}");
        assert!(err.to_string().contains("not a boolean"), "{err}");
    }

    #[test]
    fn non_array_input_is_an_input_type_error() {
        let err = run("true", json!({"a": 1})).expect_err("object");
        assert!(matches!(
            err,
            TransformError::InputType {
                operation: "filter",
                expected: "array",
                got: "object"
            }
        ));
    }

    #[test]
    fn bad_conditions_are_caught_at_compile_time() {
        for bad in ["", "  ", "item >", "item.score > > 1"] {
            let problems = FilterOp::compile(bad).expect_err("invalid");
            assert_eq!(problems[0].field, "condition", "{bad}");
        }
    }
}
