//! Request bodies: the nesting limit, and parsing a JSON object into a request type with every
//! bad field reported at once, each with its JSON path.
//!
//! A request type is one `#[serde(deny_unknown_fields)]` struct that is also its OpenAPI schema.
//! serde stops at the first error, so a body that does not parse whole is parsed again one
//! top-level field at a time (and an array one element at a time): each failure gets its own
//! error. For that, every field of a request type must be optional to serde
//! (`#[serde(default)]`); which fields are required is the request's validation pass, which runs
//! on the fields that did parse and adds its own errors.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, DeserializeOwned, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Value};
use serde_path_to_error::Segment;

use crate::error::{ApiError, FieldError};

/// Deepest nesting accepted in a request body (serde_json itself stops at 128).
pub const MAX_JSON_DEPTH: usize = 32;

/// The nesting depth of a JSON value (a scalar is 0).
pub fn json_depth(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(json_depth).max().unwrap_or(0),
        Value::Object(map) => 1 + map.values().map(json_depth).max().unwrap_or(0),
        Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) => 0,
    }
}

/// Refuses bodies nested deeper than [`MAX_JSON_DEPTH`].
pub fn check_depth(body: &Value) -> Result<(), ApiError> {
    if json_depth(body) > MAX_JSON_DEPTH {
        return Err(ApiError::validation(vec![FieldError::new(
            "body",
            format!("nested deeper than {MAX_JSON_DEPTH} levels"),
        )]));
    }
    Ok(())
}

/// A body parsed field by field: the fields that parsed, the errors of those that did not, and
/// the body itself, so that validation can tell a field that was sent from one that was not.
pub struct Fields<'a, T> {
    pub parsed: T,
    body: &'a Map<String, Value>,
    errors: Vec<FieldError>,
}

impl<T: DeserializeOwned> Fields<'_, T> {
    /// Parses `body`, which must be a JSON object, as `T`.
    pub fn parse(body: &Value) -> Result<Fields<'_, T>, Vec<FieldError>> {
        let Some(map) = body.as_object() else {
            return Err(vec![FieldError::new("body", "must be a JSON object")]);
        };
        if let Ok(parsed) = T::deserialize(body) {
            return Ok(Fields {
                parsed,
                body: map,
                errors: Vec::new(),
            });
        }
        let mut errors = Vec::new();
        let mut good = Map::new();
        for (key, value) in map {
            let before = errors.len();
            field_errors::<T>(key, value, &mut errors);
            if errors.len() == before {
                good.insert(key.clone(), value.clone());
            }
        }
        match serde_path_to_error::deserialize(&Value::Object(good)) {
            Ok(parsed) => Ok(Fields {
                parsed,
                body: map,
                errors,
            }),
            // Fields that parse alone but not together: report that too.
            Err(e) => {
                errors.push(error_at(e.path().to_string(), e.inner()));
                Err(errors)
            }
        }
    }
}

impl<T> Fields<'_, T> {
    /// Whether the body has this field (even as `null`, or with a value that did not parse).
    pub fn sent(&self, field: &str) -> bool {
        self.body.contains_key(field)
    }

    /// Adds a validation error.
    pub fn error(&mut self, field: &str, message: &str) {
        self.errors.push(FieldError::new(field, message));
    }

    /// The request, if no field had an error; else every error found.
    pub fn finish(self) -> Result<T, Vec<FieldError>> {
        if self.errors.is_empty() {
            Ok(self.parsed)
        } else {
            Err(self.errors)
        }
    }
}

/// The paths (`input_data.notes`, `tags[2]`) of every string or key in `value` that holds the
/// NUL character: PostgreSQL's text and jsonb cannot store it, so a body carrying one is refused
/// as the client's mistake rather than failing at the insert.
pub fn nul_paths(value: &Value) -> Vec<String> {
    fn walk(value: &Value, path: &str, found: &mut Vec<String>) {
        let join = |key: &str| {
            if path.is_empty() {
                key.to_owned()
            } else {
                format!("{path}.{key}")
            }
        };
        match value {
            Value::String(text) if text.contains('\0') => found.push(path.to_owned()),
            Value::Array(items) => {
                for (index, item) in items.iter().enumerate() {
                    walk(item, &format!("{path}[{index}]"), found);
                }
            }
            Value::Object(map) => {
                for (key, item) in map {
                    if key.contains('\0') {
                        found.push(join(&key.replace('\0', "\\u0000")));
                    } else {
                        walk(item, &join(key), found);
                    }
                }
            }
            _ => {}
        }
    }
    let mut found = Vec::new();
    walk(value, "", &mut found);
    found
}

/// Parses the body `{key: value}` as `T` and adds its errors. A failing element of an array is
/// taken out and the rest parsed again, so that every bad element is named by its index.
fn field_errors<T: DeserializeOwned>(key: &str, value: &Value, errors: &mut Vec<FieldError>) {
    let mut alone = Map::new();
    alone.insert(key.to_owned(), value.clone());
    let mut alone = Value::Object(alone);
    // The original index of each element still in the array.
    let mut indexes: Vec<usize> = value
        .as_array()
        .map_or(Vec::new(), |a| (0..a.len()).collect());
    loop {
        let Err(e) = serde_path_to_error::deserialize::<_, T>(&alone) else {
            return;
        };
        let path = e.path().to_string();
        let element = match e.path().iter().nth(1) {
            Some(Segment::Seq { index }) if *index < indexes.len() => Some(*index),
            _ => None,
        };
        let items = alone.get_mut(key).and_then(Value::as_array_mut);
        let (Some(index), Some(items)) = (element, items) else {
            errors.push(error_at(path, e.inner()));
            return;
        };
        let original = indexes.remove(index);
        items.remove(index);
        let rest = path
            .strip_prefix(&format!("{key}[{index}]"))
            .unwrap_or_default();
        errors.push(error_at(format!("{key}[{original}]{rest}"), e.inner()));
    }
}

fn error_at(path: String, error: &serde_json::Error) -> FieldError {
    FieldError {
        field: if path == "." { "body".to_owned() } else { path },
        message: error.to_string(),
    }
}

/// Deserializes a field as `T`; a value that is not one fails with `message` instead of serde's
/// own words.
pub fn expect<'de, D, T>(deserializer: D, message: &str) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map_err(|_: D::Error| de::Error::custom(message))
}

/// A JSON object field; anything else fails with "must be a JSON object".
pub fn object<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Value, D::Error> {
    expect(deserializer, OBJECT).map(Value::Object)
}

/// An optional JSON object field: `null` is `None`, anything else not an object fails with
/// "must be a JSON object".
pub fn optional_object<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Value>, D::Error> {
    expect(deserializer, OBJECT).map(|object: Option<Map<String, Value>>| object.map(Value::Object))
}

const OBJECT: &str = "must be a JSON object";

/// Deserializes an optional array of `T`: `null` is `None`, anything else that is not an array
/// fails with `message`, and a bad element fails with its own error (and its index in the path).
pub fn list<'de, D, T>(deserializer: D, message: &'static str) -> Result<Option<Vec<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    deserializer.deserialize_any(ListVisitor {
        message,
        item: PhantomData,
    })
}

struct ListVisitor<T> {
    message: &'static str,
    item: PhantomData<T>,
}

impl<T> ListVisitor<T> {
    fn refuse<U, E: de::Error>(&self) -> Result<U, E> {
        Err(E::custom(self.message))
    }
}

impl<'de, T: Deserialize<'de>> Visitor<'de> for ListVisitor<T> {
    type Value = Option<Vec<T>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.message)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Some(items))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        self.refuse()
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        self.refuse()
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        self.refuse()
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        self.refuse()
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        self.refuse()
    }

    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        self.refuse()
    }
}

/// Each body beside the errors `parse` finds in it (`null` for none): what the snapshot tests of
/// the request types' messages record.
#[cfg(test)]
pub fn errors_of<T>(
    bodies: impl IntoIterator<Item = Value>,
    parse: impl Fn(&Value) -> Result<T, Vec<FieldError>>,
) -> Vec<Value> {
    bodies
        .into_iter()
        .map(|body| serde_json::json!({"errors": parse(&body).err(), "body": body}))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Sample {
        #[serde(default)]
        name: Option<String>,
        #[serde(default)]
        count: Option<u8>,
        #[serde(default, deserialize_with = "letters")]
        letters: Option<Vec<char>>,
    }

    fn letters<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<char>>, D::Error> {
        list(d, "must be a list of letters")
    }

    fn errors(body: Value) -> Vec<String> {
        match Fields::<Sample>::parse(&body) {
            Ok(fields) => fields.errors,
            Err(errors) => errors,
        }
        .into_iter()
        .map(|e| e.field)
        .collect()
    }

    #[test]
    fn a_good_body_parses_whole() {
        let body = json!({"name": "a", "count": 3, "letters": ["x"]});
        let fields = Fields::<Sample>::parse(&body).expect("object");
        assert!(fields.errors.is_empty());
        assert_eq!(fields.parsed.count, Some(3));
        assert!(fields.sent("name") && !fields.sent("other"));
    }

    #[test]
    fn every_bad_field_and_element_is_named_and_the_good_ones_kept() {
        let body = json!({"name": 1, "count": 300, "letters": ["a", 1, "b", "cd", 2], "x": 0});
        assert_eq!(
            errors(body.clone()),
            [
                "count",
                "letters[1]",
                "letters[3]",
                "letters[4]",
                "name",
                "x"
            ]
        );
        let body = json!({"name": 1, "count": 2});
        let fields = Fields::<Sample>::parse(&body).expect("object");
        assert_eq!(fields.parsed.count, Some(2));
        assert_eq!(fields.parsed.name, None);
        assert!(fields.sent("name"));
    }

    #[test]
    fn a_list_that_is_not_an_array_gets_its_own_message() {
        let err = Fields::<Sample>::parse(&json!({"letters": "abc"}))
            .expect("object")
            .errors;
        assert_eq!(
            err,
            [FieldError::new("letters", "must be a list of letters")]
        );
        let body = json!({"letters": null});
        let fields = Fields::<Sample>::parse(&body).expect("object");
        assert_eq!(fields.parsed.letters, None);
    }

    #[test]
    fn a_body_that_is_not_an_object_is_one_error() {
        assert_eq!(errors(json!([1])), ["body"]);
        assert_eq!(errors(json!("text")), ["body"]);
    }

    #[test]
    fn depth_counts_nesting() {
        assert_eq!(json_depth(&json!(1)), 0);
        assert_eq!(json_depth(&json!({"a": [[1]]})), 3);
        let mut deep = json!(1);
        for _ in 0..=MAX_JSON_DEPTH {
            deep = json!([deep]);
        }
        assert!(check_depth(&deep).is_err());
        assert!(check_depth(&json!({"a": 1})).is_ok());
    }
}
