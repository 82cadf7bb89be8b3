//! Conditions: CEL expressions (the Common Expression Language) over `input` and `steps`.

use std::sync::Arc;

use cel::{Context, Program};
use serde_json::Value;

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
    pub fn compile(source: &str) -> Result<Condition, String> {
        if source.trim().is_empty() {
            return Err("condition is empty".into());
        }
        let program = Program::compile(source).map_err(|e| format!("invalid CEL: {e}"))?;
        Ok(Condition {
            program: Arc::new(program),
            source: source.into(),
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluates with each top-level key of `scope` (an object) bound as a variable.
    pub fn evaluate(&self, scope: &Value) -> Result<bool, String> {
        let mut context = Context::default();
        if let Value::Object(map) = scope {
            for (name, value) in map {
                let value =
                    cel::to_value(value).map_err(|e| format!("cannot bind `{name}`: {e}"))?;
                context.add_variable_from_value(name.clone(), value);
            }
        }
        match self.program.execute(&context) {
            Ok(cel::Value::Bool(b)) => Ok(b),
            Ok(other) => Err(format!("condition gave {other:?}, not a boolean")),
            Err(e) => Err(format!("condition failed: {e}")),
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
}
