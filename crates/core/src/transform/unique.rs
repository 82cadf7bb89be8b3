//! `unique`: removes duplicates from an array, keeping the first item for each distinct key.
//!
//! Shape: `{"operation": "unique", "by": "<JSONPath>"}`; `by` is optional (default: the item
//! itself).
//!
//! - The input must be an array. Each item's key is the value `by` (RFC 9535 JSONPath, `$` is
//!   the item) picks from it: no match gives `null`, several matches an array of them. Items
//!   whose key matches nothing therefore all share the key `null`: only the first is kept.
//! - Keys are compared as JSON values: any type may be a key; objects are equal when they have
//!   the same members in any order; numbers compare by value (`1` equals `1.0`); strings are
//!   compared exactly (case- and normalization-sensitive).
//! - The kept items stay in their input order. An empty array gives `[]`.
//!
//! Example: `{"operation": "unique", "by": "$.email"}` turns
//! `[{"email": "a@x.io", "n": 1}, {"email": "b@x.io", "n": 2}, {"email": "a@x.io", "n": 3}]` into
//! `[{"email": "a@x.io", "n": 1}, {"email": "b@x.io", "n": 2}]`.

use std::collections::HashSet;

use serde_json::Value;

use super::common::{canonical_key, expect_array, optional_path, Path};
use super::{SpecProblem, TransformError};

const OPERATION: &str = "unique";

#[derive(Clone, Debug)]
pub struct UniqueOp {
    by: Option<Path>,
}

impl UniqueOp {
    pub fn compile(by: Option<&str>) -> Result<Self, Vec<SpecProblem>> {
        let mut problems = Vec::new();
        let by = optional_path("by", by, &mut problems);
        if problems.is_empty() {
            Ok(Self { by })
        } else {
            Err(problems)
        }
    }

    pub fn apply(&self, input: &Value) -> Result<Value, TransformError> {
        let items = expect_array(OPERATION, input)?;
        let mut seen = HashSet::with_capacity(items.len());
        let mut kept = Vec::new();
        for item in items {
            let key = match &self.by {
                Some(path) => canonical_key(&path.pick(item)),
                None => canonical_key(item),
            };
            if seen.insert(key) {
                kept.push(item.clone());
            }
        }
        Ok(Value::Array(kept))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(by: Option<&str>, input: Value) -> Result<Value, TransformError> {
        UniqueOp::compile(by).expect("compiles").apply(&input)
    }

    #[test]
    fn doc_example() {
        let input = json!([{"email": "a@x.io", "n": 1}, {"email": "b@x.io", "n": 2},
                           {"email": "a@x.io", "n": 3}]);
        assert_eq!(
            run(Some("$.email"), input).expect("applies"),
            json!([{"email": "a@x.io", "n": 1}, {"email": "b@x.io", "n": 2}])
        );
    }

    #[test]
    fn whole_items_compare_as_json_values() {
        let input: Value =
            serde_json::from_str(r#"[1, "1", 1.0, {"a": 1, "b": [2]}, {"b": [2.0], "a": 1}, null, null, "é", "e\u0301"]"#)
                .expect("json");
        assert_eq!(
            run(None, input).expect("applies"),
            json!([1, "1", {"a": 1, "b": [2]}, null, "é", "e\u{301}"])
        );
    }

    #[test]
    fn missing_keys_share_null_and_compound_keys_work() {
        let input = json!([{"n": 1}, {"k": null, "n": 2}, {"k": [1, 2], "n": 3}, {"k": [1, 2], "n": 4},
                           {"n": 5}]);
        assert_eq!(
            run(Some("$.k"), input).expect("applies"),
            json!([{"n": 1}, {"k": [1, 2], "n": 3}])
        );
    }

    #[test]
    fn empty_array() {
        assert_eq!(run(None, json!([])).expect("applies"), json!([]));
    }

    #[test]
    fn wrong_input_and_bad_spec() {
        assert!(matches!(
            run(None, json!(null)),
            Err(TransformError::InputType { got: "null", .. })
        ));
        let problems = UniqueOp::compile(Some("email")).expect_err("bad path");
        assert_eq!(problems[0].field, "by");
    }
}
