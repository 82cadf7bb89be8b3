//! `transform` steps: a pure operation on a value taken from the scope.

use serde_json::Value;

use llmflow_core::transform::Transform;
use llmflow_core::workflow::ValueTemplate;

use super::{StepFailure, StepOutput};
use llmflow_core::telemetry::Chain;

pub fn execute(
    input: Option<&ValueTemplate>,
    transform: &Transform,
    scope: &Value,
) -> Result<StepOutput, StepFailure> {
    let value = match input {
        Some(template) => template
            .render(scope)
            .map_err(|e| {
                StepFailure::new(
                    "input",
                    format!("cannot build the input: {}", Chain(&e)),
                    false,
                )
            })?
            .unwrap_or(Value::Null),
        None => scope.clone(),
    };
    let output = transform
        .apply(&value)
        .map_err(|e| StepFailure::new("transform", e.to_string(), false))?;
    Ok(StepOutput {
        output,
        usage: Vec::new(),
    })
}
