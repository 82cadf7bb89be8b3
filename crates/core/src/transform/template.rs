//! `template`: renders a minijinja template with the input's keys as variables. With
//! `parse_json`, the rendered text is parsed as JSON, so a template can build structured output.

use serde_json::Value;

use super::{type_name, SpecProblem, TransformError};
use crate::telemetry::Chain;
use crate::template::Template;

#[derive(Clone, Debug)]
pub struct TemplateOp {
    template: Template,
    parse_json: bool,
}

impl TemplateOp {
    pub fn compile(source: &str, parse_json: bool) -> Result<Self, Vec<SpecProblem>> {
        Template::compile(source)
            .map(|template| Self {
                template,
                parse_json,
            })
            .map_err(|e| vec![SpecProblem::new("template", Chain(&e).to_string())])
    }

    pub fn apply(&self, input: &Value) -> Result<Value, TransformError> {
        if !input.is_object() {
            return Err(TransformError::InputType {
                operation: "template",
                expected: "object",
                got: type_name(input),
            });
        }
        let text = self
            .template
            .render(input)
            .map_err(|e| TransformError::Eval {
                operation: "template",
                message: Chain(&e).to_string(),
            })?;
        if self.parse_json {
            serde_json::from_str(&text).map_err(|e| TransformError::Eval {
                operation: "template",
                message: format!("rendered text is not JSON: {e}"),
            })
        } else {
            Ok(Value::String(text))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_text_and_json() {
        let op = TemplateOp::compile("Score was {{ score }}", false).expect("compiles");
        assert_eq!(
            op.apply(&json!({"score": 3})).expect("renders"),
            json!("Score was 3")
        );
        let op = TemplateOp::compile(r#"{"double": {{ score * 2 }}}"#, true).expect("compiles");
        assert_eq!(
            op.apply(&json!({"score": 3})).expect("renders"),
            json!({"double": 6})
        );
    }

    #[test]
    fn errors_on_non_object_input_and_bad_json() {
        let op = TemplateOp::compile("x", true).expect("compiles");
        assert!(op.apply(&json!([1])).is_err());
        assert!(op.apply(&json!({})).is_err());
    }
}
