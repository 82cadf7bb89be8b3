//! `regex_extract`: finds the matches of a regular expression in a string.
//!
//! Shape: `{"operation": "regex_extract", "pattern": "<regex>", "field": "<JSONPath>",
//! "all": true}`; `pattern` is required, `field` optional, `all` defaults to `true`.
//!
//! - The text searched is the input itself, which must then be a string, or with `field` the
//!   single string that RFC 9535 JSONPath selects in the input (matching nothing, several values
//!   or a non-string fails the step).
//! - `pattern` uses Rust `regex` syntax: no look-around or back-references, matching in linear
//!   time; Unicode-aware (`\w`, `\d` and `.` match non-ASCII characters); flags inline, e.g.
//!   `(?i)` for case-insensitive, `(?m)` for `^`/`$` at line ends, `(?s)` for `.` matching
//!   newlines. Patterns are compiled when the workflow is loaded; an empty or invalid pattern,
//!   or one that compiles to more than 1 MiB, is rejected.
//! - If the pattern has named groups (`(?P<name>…)` or `(?<name>…)`), each match becomes an
//!   object with one member per named group: the group's text, or `null` when the group did not
//!   take part in the match. Unnamed groups are ignored.
//! - Without named groups, each match becomes its whole matched text.
//! - With `all: true` the output is the array of all non-overlapping matches, left to right
//!   (`[]` when none). With `all: false` it is the first match only, or `null` when none.
//!
//! Example: `{"operation": "regex_extract", "pattern": "(?<key>\\w+)=(?<value>\\d+)?"}` turns
//! `"a=1, b=, c=3"` into
//! `[{"key": "a", "value": "1"}, {"key": "b", "value": null}, {"key": "c", "value": "3"}]`.

use regex::{Captures, Regex, RegexBuilder};
use serde_json::{Map, Value};

use super::common::{optional_path, Path};
use super::{type_name, SpecProblem, TransformError};

const OPERATION: &str = "regex_extract";
/// Most memory a compiled pattern may take.
const SIZE_LIMIT: usize = 1 << 20;

#[derive(Clone, Debug)]
pub struct RegexExtract {
    regex: Regex,
    /// The named groups, in pattern order; empty means "whole matches".
    names: Vec<String>,
    field: Option<Path>,
    all: bool,
}

impl RegexExtract {
    pub fn compile(
        pattern: &str,
        field: Option<&str>,
        all: bool,
    ) -> Result<Self, Vec<SpecProblem>> {
        let mut problems = Vec::new();
        let field = optional_path("field", field, &mut problems);
        let regex = if pattern.is_empty() {
            problems.push(SpecProblem::new("pattern", "must not be empty"));
            None
        } else {
            match RegexBuilder::new(pattern).size_limit(SIZE_LIMIT).build() {
                Ok(regex) => Some(regex),
                Err(e) => {
                    problems.push(SpecProblem::new(
                        "pattern",
                        format!("invalid regular expression: {e}"),
                    ));
                    None
                }
            }
        };
        match regex {
            Some(regex) if problems.is_empty() => {
                let names = regex.capture_names().flatten().map(String::from).collect();
                Ok(Self {
                    regex,
                    names,
                    field,
                    all,
                })
            }
            _ => Err(problems),
        }
    }

    pub fn apply(&self, input: &Value) -> Result<Value, TransformError> {
        let text = match (&self.field, input) {
            (Some(path), _) => path.pick_str(OPERATION, input)?,
            (None, Value::String(s)) => s.as_str(),
            (None, other) => {
                return Err(TransformError::InputType {
                    operation: OPERATION,
                    expected: "string (or give `field`)",
                    got: type_name(other),
                })
            }
        };
        if self.all {
            Ok(Value::Array(
                self.regex
                    .captures_iter(text)
                    .map(|c| self.one(&c))
                    .collect(),
            ))
        } else {
            Ok(self
                .regex
                .captures(text)
                .map_or(Value::Null, |c| self.one(&c)))
        }
    }

    fn one(&self, captures: &Captures<'_>) -> Value {
        if self.names.is_empty() {
            return captures
                .get(0)
                .map_or(Value::Null, |m| Value::String(m.as_str().to_owned()));
        }
        let mut object = Map::with_capacity(self.names.len());
        for name in &self.names {
            let value = captures
                .name(name)
                .map_or(Value::Null, |m| Value::String(m.as_str().to_owned()));
            object.insert(name.clone(), value);
        }
        Value::Object(object)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(
        pattern: &str,
        field: Option<&str>,
        all: bool,
        input: Value,
    ) -> Result<Value, TransformError> {
        RegexExtract::compile(pattern, field, all)
            .expect("compiles")
            .apply(&input)
    }

    #[test]
    fn doc_example() {
        assert_eq!(
            run(
                r"(?<key>\w+)=(?<value>\d+)?",
                None,
                true,
                json!("a=1, b=, c=3")
            )
            .expect("applies"),
            json!([{"key": "a", "value": "1"}, {"key": "b", "value": null},
                   {"key": "c", "value": "3"}])
        );
    }

    #[test]
    fn whole_matches_without_named_groups() {
        let text = json!("Call 112 or +351 213 421 623 (ext. 9)");
        assert_eq!(
            run(r"\+?\d[\d ]*\d", None, true, text.clone()).expect("applies"),
            json!(["112", "+351 213 421 623"])
        );
        assert_eq!(
            run(r"(\d)(\d)", None, false, text).expect("applies"),
            json!("11")
        );
    }

    #[test]
    fn first_match_and_no_match() {
        let op = RegexExtract::compile(r"(?P<n>\d+)", None, false).expect("compiles");
        assert_eq!(
            op.apply(&json!("x 42 y 7")).expect("applies"),
            json!({"n": "42"})
        );
        assert_eq!(op.apply(&json!("none")).expect("applies"), json!(null));
        assert_eq!(op.apply(&json!("")).expect("applies"), json!(null));
        assert_eq!(
            run(r"\d+", None, true, json!("none")).expect("applies"),
            json!([])
        );
    }

    #[test]
    fn unicode_text_and_field() {
        let input = json!({"answer": {"text": "Städte: Zürich, 東京, São Paulo"}});
        assert_eq!(
            run(
                r"(?:: |, )(?<city>[^,]+)",
                Some("$.answer.text"),
                true,
                input
            )
            .expect("applies"),
            json!([{"city": "Zürich"}, {"city": "東京"}, {"city": "São Paulo"}])
        );
        assert_eq!(
            run(r"(?i)zürich", None, true, json!("ZÜRICH")).expect("applies"),
            json!(["ZÜRICH"])
        );
    }

    #[test]
    fn wrong_inputs() {
        assert!(matches!(
            run("a", None, true, json!({"a": 1})),
            Err(TransformError::InputType { got: "object", .. })
        ));
        assert!(matches!(
            run("a", Some("$.text"), true, json!({"text": 3})),
            Err(TransformError::InputType { got: "number", .. })
        ));
        let err = run("a", Some("$.text"), true, json!({})).expect_err("missing");
        assert!(err.to_string().contains("matched nothing"), "{err}");
    }

    #[test]
    fn bad_specs_are_caught_at_compile_time() {
        let problems = RegexExtract::compile("(unclosed", None, true).expect_err("invalid");
        assert_eq!(problems[0].field, "pattern");
        assert!(RegexExtract::compile("", None, true).is_err());
        assert!(
            RegexExtract::compile(r"(?<=a)b", None, true).is_err(),
            "no look-behind"
        );
        let problems =
            RegexExtract::compile(r"(?:\w{1000}){1000}", None, true).expect_err("too big");
        assert_eq!(problems[0].field, "pattern");
        let problems = RegexExtract::compile("a", Some("text"), true).expect_err("bad path");
        assert_eq!(problems[0].field, "field");
    }
}
