//! `sort`: sorts the items of an array.
//!
//! Shape: `{"operation": "sort", "by": "<JSONPath>", "order": "asc"}`; `by` is optional (default:
//! the item itself), `order` is `"asc"` (default) or `"desc"`.
//!
//! - The input must be an array. Each item's key is the value `by` (RFC 9535 JSONPath, `$` is
//!   the item) picks from it; a key that matches nothing sorts as `null`.
//! - Keys are ordered `null` < booleans (`false` < `true`) < numbers < strings. Numbers compare by
//!   value (`2` < `10`, `1` equals `1.0`); strings compare by Unicode code point (so `"Z"` <
//!   `"a"` < `"é"`; no locale or case folding).
//! - The sort is stable: items with equal keys keep their input order, with `"desc"` too
//!   (`"desc"` reverses the key order, not the input order). With `"desc"`, `null` and missing
//!   keys come last.
//! - A key that is an array or an object (including a `by` matching several values) fails the
//!   step, naming the item's index. An empty array gives `[]`.
//!
//! Example: `{"operation": "sort", "by": "$.score", "order": "desc"}` turns
//! `[{"id": "a", "score": 5}, {"id": "b"}, {"id": "c", "score": 9.5}, {"id": "d", "score": 5}]`
//! into `[{"id": "c", "score": 9.5}, {"id": "a", "score": 5}, {"id": "d", "score": 5}, {"id": "b"}]`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::common::{compare_scalars, expect_array, optional_path, Path};
use super::{type_name, SpecProblem, TransformError};

const OPERATION: &str = "sort";

/// `order` of a `sort`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SortOrder {
    #[default]
    Asc,
    Desc,
}

#[derive(Clone, Debug)]
pub struct SortOp {
    by: Option<Path>,
    order: SortOrder,
}

impl SortOp {
    pub fn compile(by: Option<&str>, order: SortOrder) -> Result<Self, Vec<SpecProblem>> {
        let mut problems = Vec::new();
        let by = optional_path("by", by, &mut problems);
        if problems.is_empty() {
            Ok(Self { by, order })
        } else {
            Err(problems)
        }
    }

    pub fn apply(&self, input: &Value) -> Result<Value, TransformError> {
        let items = expect_array(OPERATION, input)?;
        let mut keyed = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            let key = match &self.by {
                Some(path) => path.pick(item),
                None => item.clone(),
            };
            if key.is_array() || key.is_object() {
                return Err(TransformError::Eval {
                    operation: OPERATION,
                    message: format!(
                        "item {index}: the sort key is an {}; keys must be null, booleans, \
                         numbers or strings",
                        type_name(&key)
                    ),
                });
            }
            keyed.push((key, item));
        }
        // `sort_by` is stable; reversing the comparison (not the result) keeps ties in order.
        keyed.sort_by(|(a, _), (b, _)| match self.order {
            SortOrder::Asc => compare_scalars(a, b),
            SortOrder::Desc => compare_scalars(b, a),
        });
        Ok(Value::Array(
            keyed.into_iter().map(|(_, item)| item.clone()).collect(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(by: Option<&str>, order: SortOrder, input: Value) -> Result<Value, TransformError> {
        SortOp::compile(by, order).expect("compiles").apply(&input)
    }

    #[test]
    fn doc_example() {
        let input = json!([{"id": "a", "score": 5}, {"id": "b"}, {"id": "c", "score": 9.5},
                           {"id": "d", "score": 5}]);
        assert_eq!(
            run(Some("$.score"), SortOrder::Desc, input).expect("applies"),
            json!([{"id": "c", "score": 9.5}, {"id": "a", "score": 5}, {"id": "d", "score": 5},
                   {"id": "b"}])
        );
    }

    #[test]
    fn mixed_types_follow_the_documented_order() {
        let input = json!(["b", 10, null, true, 2, "a", false, 2.5, "É", "Z"]);
        assert_eq!(
            run(None, SortOrder::Asc, input.clone()).expect("applies"),
            json!([null, false, true, 2, 2.5, 10, "Z", "a", "b", "É"])
        );
        assert_eq!(
            run(None, SortOrder::Desc, input).expect("applies"),
            json!(["É", "b", "a", "Z", 10, 2.5, 2, true, false, null])
        );
    }

    #[test]
    fn stable_for_equal_keys_and_missing_keys_sort_as_null() {
        let input = json!([{"k": 1, "n": 1}, {"n": 2}, {"k": 1.0, "n": 3}, {"k": null, "n": 4}]);
        assert_eq!(
            run(Some("$.k"), SortOrder::Asc, input.clone()).expect("applies"),
            json!([{"n": 2}, {"k": null, "n": 4}, {"k": 1, "n": 1}, {"k": 1.0, "n": 3}])
        );
        assert_eq!(
            run(Some("$.k"), SortOrder::Desc, input).expect("applies"),
            json!([{"k": 1, "n": 1}, {"k": 1.0, "n": 3}, {"n": 2}, {"k": null, "n": 4}])
        );
    }

    #[test]
    fn empty_array() {
        assert_eq!(
            run(None, SortOrder::Asc, json!([])).expect("applies"),
            json!([])
        );
    }

    #[test]
    fn compound_keys_are_errors_naming_the_index() {
        let err = run(None, SortOrder::Asc, json!([1, [2]])).expect_err("array item");
        assert!(err.to_string().starts_with("sort: item 1:"), "{err}");
        let err = run(
            Some("$.tags[*]"),
            SortOrder::Asc,
            json!([{"tags": ["a", "b"]}]),
        )
        .expect_err("several matches");
        assert!(err.to_string().contains("item 0"), "{err}");
    }

    #[test]
    fn wrong_input_and_bad_spec() {
        assert!(matches!(
            run(None, SortOrder::Asc, json!({"a": 1})),
            Err(TransformError::InputType { got: "object", .. })
        ));
        let problems = SortOp::compile(Some("$..["), SortOrder::Asc).expect_err("bad path");
        assert_eq!(problems[0].field, "by");
    }

    #[test]
    fn order_deserializes_from_lowercase() {
        let order: SortOrder = serde_json::from_value(json!("desc")).expect("desc");
        assert_eq!(order, SortOrder::Desc);
        assert!(serde_json::from_value::<SortOrder>(json!("DESC")).is_err());
    }
}
