//! Conditions: CEL expressions (the Common Expression Language) over `input` and `steps`.

use std::sync::Arc;

use cel::{Context, Program};
use serde_json::Value;

/// Why a condition does not compile or evaluate; the CEL interpreter's error is the source.
#[derive(Debug, thiserror::Error)]
pub enum ConditionError {
    #[error("condition is empty")]
    Empty,
    #[error("invalid CEL")]
    Parse(#[source] cel::ParseErrors),
    #[error("cannot bind `{name}`")]
    Bind {
        name: String,
        #[source]
        source: cel::SerializationError,
    },
    #[error("condition gave {0}, not a boolean")]
    NotBoolean(String),
    #[error("condition failed")]
    Execution(#[source] cel::ExecutionError),
}

/// A compiled CEL boolean expression.
#[derive(Clone)]
pub struct Condition {
    program: Arc<Program>,
    source: Arc<str>,
}

impl std::fmt::Debug for Condition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Condition").field(&self.source).finish()
    }
}

impl Condition {
    pub fn compile(source: &str) -> Result<Condition, ConditionError> {
        if source.trim().is_empty() {
            return Err(ConditionError::Empty);
        }
        let program = Program::compile(source).map_err(ConditionError::Parse)?;
        Ok(Condition {
            program: Arc::new(program),
            source: source.into(),
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluates with each top-level key of `scope` (an object) bound as a variable.
    pub fn evaluate(&self, scope: &Value) -> Result<bool, ConditionError> {
        let mut context = Context::default();
        if let Value::Object(map) = scope {
            for (name, value) in map {
                let value = cel::to_value(value).map_err(|source| ConditionError::Bind {
                    name: name.clone(),
                    source,
                })?;
                context.add_variable_from_value(name.clone(), value);
            }
        }
        match self.program.execute(&context) {
            Ok(cel::Value::Bool(b)) => Ok(b),
            Ok(other) => Err(ConditionError::NotBoolean(format!("{other:?}"))),
            Err(e) => Err(ConditionError::Execution(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn evaluates_over_steps_and_input() {
        let c = Condition::compile("steps.extract.output.score > 50 && input.lang == 'en'")
            .expect("compiles");
        let scope = |score: Value| json!({"input": {"lang": "en"}, "steps": {"extract": {"output": {"score": score}}}});
        assert!(c.evaluate(&scope(json!(72))).expect("evaluates"));
        assert!(!c.evaluate(&scope(json!(12))).expect("evaluates"));
        assert!(c
            .evaluate(&scope(json!(50.5)))
            .expect("mixed int/float compare"));
    }

    #[test]
    fn errors_are_reported_not_panicked() {
        assert!(Condition::compile("score >").is_err());
        assert!(Condition::compile("").is_err());
        let c = Condition::compile("input.x + 1").expect("compiles");
        assert!(c.evaluate(&json!({"input": {"x": 1}})).is_err());
        let c = Condition::compile("input.missing > 1").expect("compiles");
        assert!(c.evaluate(&json!({"input": {}})).is_err());
    }

    #[test]
    fn errors_keep_the_interpreters_cause() {
        let error = Condition::compile("score >").expect_err("invalid");
        assert!(matches!(error, ConditionError::Parse(_)));
        assert!(std::error::Error::source(&error).is_some());
        let text = crate::telemetry::Chain(&error).to_string();
        assert!(text.starts_with("invalid CEL: "), "{text}");
        let c = Condition::compile("1 + 1").expect("compiles");
        let error = c.evaluate(&json!({})).expect_err("not a boolean");
        assert_eq!(error.to_string(), "condition gave Int(2), not a boolean");
        let c = Condition::compile("input.missing > 1").expect("compiles");
        let error = c.evaluate(&json!({"input": {}})).expect_err("no such key");
        assert!(matches!(error, ConditionError::Execution(_)));
        let text = crate::telemetry::Chain(&error).to_string();
        assert!(text.starts_with("condition failed: "), "{text}");
    }
}
