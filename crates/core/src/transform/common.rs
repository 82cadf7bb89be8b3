//! Helpers shared by several operations: JSONPath picking, input checks, and the ordering and
//! equality of JSON values used by `sort` and `unique`.

use std::cmp::Ordering;

use serde_json::Value;
use serde_json_path::JsonPath;

use super::{type_name, SpecProblem, TransformError};

/// A JSONPath query kept with its source text, for error messages.
#[derive(Clone, Debug)]
pub(super) struct Path {
    pub source: String,
    pub path: JsonPath,
}

impl Path {
    /// Parses `query`, or records a problem against `field`.
    pub fn compile(field: &str, query: &str, problems: &mut Vec<SpecProblem>) -> Option<Path> {
        match JsonPath::parse(query) {
            Ok(path) => Some(Path {
                source: query.to_owned(),
                path,
            }),
            Err(e) => {
                problems.push(SpecProblem::new(
                    field,
                    format!("invalid JSONPath `{query}`: {e}"),
                ));
                None
            }
        }
    }

    /// The query's result as one value: no match → `null`, one match → that value, several →
    /// an array of them in document order.
    pub fn pick(&self, value: &Value) -> Value {
        let nodes = self.path.query(value).all();
        match nodes.as_slice() {
            [] => Value::Null,
            [one] => (*one).clone(),
            many => Value::Array(many.iter().map(|v| (*v).clone()).collect()),
        }
    }

    /// The single string the query selects in `input`; anything else is an error.
    pub fn pick_str<'a>(
        &self,
        operation: &'static str,
        input: &'a Value,
    ) -> Result<&'a str, TransformError> {
        let nodes = self.path.query(input).all();
        match nodes.as_slice() {
            [Value::String(s)] => Ok(s.as_str()),
            [other] => Err(TransformError::InputType {
                operation,
                expected: "a string at `field`",
                got: type_name(other),
            }),
            [] => Err(TransformError::Eval {
                operation,
                message: format!("field `{}` matched nothing in the input", self.source),
            }),
            many => Err(TransformError::Eval {
                operation,
                message: format!(
                    "field `{}` matched {} values, expected one string",
                    self.source,
                    many.len()
                ),
            }),
        }
    }
}

/// Compiles an optional JSONPath spec field.
pub(super) fn optional_path(
    field: &str,
    query: Option<&str>,
    problems: &mut Vec<SpecProblem>,
) -> Option<Path> {
    query.and_then(|q| Path::compile(field, q, problems))
}

/// The input as an array, or an `InputType` error.
pub(super) fn expect_array<'a>(
    operation: &'static str,
    input: &'a Value,
) -> Result<&'a Vec<Value>, TransformError> {
    input.as_array().ok_or(TransformError::InputType {
        operation,
        expected: "array",
        got: type_name(input),
    })
}

/// Compares two scalar JSON values: null < booleans (false < true) < numbers (by value) <
/// strings (by Unicode code point). Arrays and objects must be rejected before calling this;
/// they compare as equal to each other and greater than everything else.
pub(super) fn compare_scalars(a: &Value, b: &Value) -> Ordering {
    fn rank(v: &Value) -> u8 {
        match v {
            Value::Null => 0,
            Value::Bool(_) => 1,
            Value::Number(_) => 2,
            Value::String(_) => 3,
            Value::Array(_) | Value::Object(_) => 4,
        }
    }
    match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Number(x), Value::Number(y)) => compare_numbers(x, y),
        // Rust compares `str` byte-wise; UTF-8 byte order is code point order.
        (Value::String(x), Value::String(y)) => x.cmp(y),
        _ => rank(a).cmp(&rank(b)),
    }
}

/// Numbers by value: exact for integers, `f64` otherwise (JSON has no NaN).
fn compare_numbers(x: &serde_json::Number, y: &serde_json::Number) -> Ordering {
    if let (Some(a), Some(b)) = (x.as_i64(), y.as_i64()) {
        return a.cmp(&b);
    }
    if let (Some(a), Some(b)) = (x.as_u64(), y.as_u64()) {
        return a.cmp(&b);
    }
    let (a, b) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
    a.partial_cmp(&b).unwrap_or(Ordering::Equal)
}

/// A text that is equal for two JSON values exactly when they are equal as JSON: object key
/// order does not matter and numbers compare by value (`1`, `1.0` and `1e0` are the same).
pub(super) fn canonical_key(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push('n'),
        Value::Bool(b) => out.push(if *b { 't' } else { 'f' }),
        Value::Number(n) => {
            out.push('#');
            out.push_str(&canonical_number(n));
        }
        Value::String(s) => {
            // JSON-quoted, so a string can never be confused with a delimiter.
            out.push_str(&Value::String(s.clone()).to_string());
        }
        Value::Array(items) => {
            out.push('[');
            for item in items {
                write_canonical(item, out);
                out.push(',');
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for key in keys {
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                if let Some(v) = map.get(key) {
                    write_canonical(v, out);
                }
                out.push(',');
            }
            out.push('}');
        }
    }
}

/// Integers (and integral floats in the 64-bit integer range) as integer text, other floats in
/// Rust's shortest round-trip form.
fn canonical_number(n: &serde_json::Number) -> String {
    if let Some(i) = n.as_i64() {
        return i.to_string();
    }
    if let Some(u) = n.as_u64() {
        return u.to_string();
    }
    let f = n.as_f64().unwrap_or(0.0);
    // `i64::MAX as f64` is 2^63 and `u64::MAX as f64` is 2^64: the bounds are exclusive.
    if f.fract() == 0.0 && f >= i64::MIN as f64 && f < i64::MAX as f64 {
        return (f as i64).to_string();
    }
    if f.fract() == 0.0 && f >= 0.0 && f < u64::MAX as f64 {
        return (f as u64).to_string();
    }
    format!("{f:?}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scalar_order_is_null_bool_number_string() {
        let mut values = vec![
            json!("b"),
            json!(2.5),
            json!(true),
            json!(null),
            json!("a"),
            json!(-3),
            json!(false),
            json!(u64::MAX),
            json!("É"),
        ];
        values.sort_by(compare_scalars);
        assert_eq!(
            values,
            vec![
                json!(null),
                json!(false),
                json!(true),
                json!(-3),
                json!(2.5),
                json!(u64::MAX),
                json!("a"),
                json!("b"),
                json!("É")
            ]
        );
    }

    #[test]
    fn canonical_keys_ignore_key_order_and_number_form() {
        let a: Value = serde_json::from_str(r#"{"x": 1, "y": [1.0, "a"]}"#).expect("json");
        let b: Value = serde_json::from_str(r#"{"y": [1e0, "a"], "x": 1.0}"#).expect("json");
        assert_eq!(canonical_key(&a), canonical_key(&b));
        assert_ne!(canonical_key(&json!("1")), canonical_key(&json!(1)));
        assert_ne!(canonical_key(&json!(0.5)), canonical_key(&json!(1)));
        assert_ne!(
            canonical_key(&json!([1, 2])),
            canonical_key(&json!([[1], 2]))
        );
    }

    #[test]
    fn pick_str_reports_missing_several_and_wrong_type() {
        let mut problems = Vec::new();
        let path = Path::compile("field", "$.a[*]", &mut problems).expect("compiles");
        assert!(path.pick_str("op", &json!({"a": ["x"]})).is_ok());
        assert!(path.pick_str("op", &json!({"a": []})).is_err());
        assert!(path.pick_str("op", &json!({"a": ["x", "y"]})).is_err());
        assert!(matches!(
            path.pick_str("op", &json!({"a": [1]})),
            Err(TransformError::InputType { .. })
        ));
    }
}
