//! `merge`: merges several objects into one.
//!
//! Shape: `{"operation": "merge", "strategy": "deep", "arrays": "replace"}`; `strategy` is
//! `"deep"` (default) or `"shallow"`, `arrays` is `"replace"` (default) or `"concat"`.
//!
//! - The input is an array of objects, merged left to right, or an object whose members are all
//!   objects, merged in the order of their keys sorted by Unicode code point (`{"b": …, "a": …}`
//!   merges `a` first, then `b`). Any other input, or a member that is not an object, fails the
//!   step (naming the index or key). An empty array or object gives `{}`.
//! - Conflicts: a later object's value for a key wins over an earlier one, whatever the types,
//!   and a `null` in a later object overwrites (it does not mean "absent"). Two exceptions:
//!   - with `strategy: "deep"`, when both values are objects they are merged recursively by the
//!     same rules (at every depth); with `"shallow"` the later object replaces the earlier one;
//!   - with `arrays: "concat"`, when both values are arrays the later one is appended to the
//!     earlier one (at every depth `deep` reaches, and at the top level with `shallow`); with
//!     `"replace"` the later array replaces the earlier one.
//! - Keys appear in the output as in serde_json's map (sorted by key).
//!
//! Example: `{"operation": "merge", "arrays": "concat"}` turns
//! `[{"a": {"x": 1, "y": [1]}, "b": 1}, {"a": {"y": [2], "z": null}, "b": null}]` into
//! `{"a": {"x": 1, "y": [1, 2], "z": null}, "b": null}`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{type_name, TransformError};

const OPERATION: &str = "merge";

/// `strategy` of a `merge`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MergeStrategy {
    #[default]
    Deep,
    Shallow,
}

/// `arrays` of a `merge`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MergeArrays {
    #[default]
    Replace,
    Concat,
}

#[derive(Clone, Debug)]
pub struct MergeOp {
    strategy: MergeStrategy,
    arrays: MergeArrays,
}

impl MergeOp {
    /// Every combination of options is valid, so there is nothing to check.
    pub fn new(strategy: MergeStrategy, arrays: MergeArrays) -> Self {
        Self { strategy, arrays }
    }

    pub fn apply(&self, input: &Value) -> Result<Value, TransformError> {
        let not_object = |item: String, value: &Value| TransformError::ItemType {
            operation: OPERATION,
            item,
            expected: "object",
            got: type_name(value),
        };
        let mut sources: Vec<&Map<String, Value>> = Vec::new();
        match input {
            Value::Array(items) => {
                for (index, item) in items.iter().enumerate() {
                    let object = item
                        .as_object()
                        .ok_or_else(|| not_object(format!("index {index}"), item))?;
                    sources.push(object);
                }
            }
            Value::Object(members) => {
                let mut keys: Vec<&String> = members.keys().collect();
                keys.sort();
                for key in keys {
                    if let Some(member) = members.get(key) {
                        let object = member.as_object().ok_or_else(|| {
                            not_object(format!("key {}", Value::String(key.clone())), member)
                        })?;
                        sources.push(object);
                    }
                }
            }
            other => {
                return Err(TransformError::InputType {
                    operation: OPERATION,
                    expected: "array of objects or object of objects",
                    got: type_name(other),
                })
            }
        }
        let mut merged = Map::new();
        for source in sources {
            self.merge_into(&mut merged, source);
        }
        Ok(Value::Object(merged))
    }

    fn merge_into(&self, target: &mut Map<String, Value>, source: &Map<String, Value>) {
        for (key, value) in source {
            match (target.get_mut(key), value) {
                (Some(Value::Object(earlier)), Value::Object(later))
                    if self.strategy == MergeStrategy::Deep =>
                {
                    self.merge_into(earlier, later);
                }
                (Some(Value::Array(earlier)), Value::Array(later))
                    if self.arrays == MergeArrays::Concat =>
                {
                    earlier.extend(later.iter().cloned());
                }
                _ => {
                    target.insert(key.clone(), value.clone());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(strategy: MergeStrategy, arrays: MergeArrays, input: Value) -> Value {
        MergeOp::new(strategy, arrays)
            .apply(&input)
            .expect("applies")
    }

    #[test]
    fn doc_example() {
        let input =
            json!([{"a": {"x": 1, "y": [1]}, "b": 1}, {"a": {"y": [2], "z": null}, "b": null}]);
        assert_eq!(
            run(MergeStrategy::Deep, MergeArrays::Concat, input),
            json!({"a": {"x": 1, "y": [1, 2], "z": null}, "b": null})
        );
    }

    #[test]
    fn deep_replace_is_the_default() {
        let input = json!([
            {"user": {"name": "Ana", "prefs": {"lang": "pt", "tz": "Europe/Lisbon"}}, "tags": ["a"]},
            {"user": {"prefs": {"lang": "en"}}, "tags": ["b"]},
            {"user": {"name": "Ana Sá"}}
        ]);
        assert_eq!(
            run(MergeStrategy::default(), MergeArrays::default(), input),
            json!({"user": {"name": "Ana Sá", "prefs": {"lang": "en", "tz": "Europe/Lisbon"}},
                   "tags": ["b"]})
        );
    }

    #[test]
    fn shallow_replaces_whole_members_but_concats_top_level_arrays() {
        let input = json!([{"a": {"x": 1}, "l": [1]}, {"a": {"y": 2}, "l": [2]}]);
        assert_eq!(
            run(MergeStrategy::Shallow, MergeArrays::Replace, input.clone()),
            json!({"a": {"y": 2}, "l": [2]})
        );
        assert_eq!(
            run(MergeStrategy::Shallow, MergeArrays::Concat, input),
            json!({"a": {"y": 2}, "l": [1, 2]})
        );
    }

    #[test]
    fn type_changes_later_wins() {
        let input = json!([{"a": {"x": 1}, "b": [1], "c": 1}, {"a": 5, "b": {"k": 1}, "c": [3]}]);
        assert_eq!(
            run(MergeStrategy::Deep, MergeArrays::Concat, input),
            json!({"a": 5, "b": {"k": 1}, "c": [3]})
        );
    }

    #[test]
    fn object_of_objects_merges_in_key_order() {
        let input = json!({"2-override": {"lang": "日本語"}, "1-base": {"lang": "en", "n": 1}});
        assert_eq!(
            run(MergeStrategy::Deep, MergeArrays::Replace, input),
            json!({"lang": "日本語", "n": 1})
        );
    }

    #[test]
    fn empty_inputs() {
        assert_eq!(
            run(MergeStrategy::Deep, MergeArrays::Replace, json!([])),
            json!({})
        );
        assert_eq!(
            run(MergeStrategy::Deep, MergeArrays::Replace, json!({})),
            json!({})
        );
        assert_eq!(
            run(
                MergeStrategy::Deep,
                MergeArrays::Replace,
                json!([{}, {"a": 1}, {}])
            ),
            json!({"a": 1})
        );
    }

    #[test]
    fn errors_name_the_item() {
        let op = MergeOp::new(MergeStrategy::Deep, MergeArrays::Replace);
        let err = op.apply(&json!([{"a": 1}, null])).expect_err("null item");
        assert_eq!(err.to_string(), "merge: index 1: expected object, got null");
        let err = op
            .apply(&json!({"a": {}, "b c": [1]}))
            .expect_err("array member");
        assert_eq!(
            err.to_string(),
            r#"merge: key "b c": expected object, got array"#
        );
        assert!(matches!(
            op.apply(&json!("x")),
            Err(TransformError::InputType { got: "string", .. })
        ));
    }

    #[test]
    fn options_deserialize_from_snake_case() {
        let s: MergeStrategy = serde_json::from_value(json!("shallow")).expect("shallow");
        let a: MergeArrays = serde_json::from_value(json!("concat")).expect("concat");
        assert_eq!((s, a), (MergeStrategy::Shallow, MergeArrays::Concat));
        assert!(serde_json::from_value::<MergeArrays>(json!("append")).is_err());
    }
}
