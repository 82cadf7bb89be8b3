//! `llm` steps: render the prompts, call the provider, parse the answer, and price the call.

use chrono::Utc;
use serde_json::Value;

use llmflow_core::db::models::UsageRow;
use llmflow_core::llm::{CallCtx, Completion, CompletionRequest, Message, OutputFormat, Role};
use llmflow_core::pricing::round_usd;
use llmflow_core::workflow::LlmStep;

use super::{StepFailure, StepOutput};
use crate::WorkerState;

/// Who the call is for, recorded on the usage row.
pub struct LlmCallCtx<'a> {
    pub job_id: uuid::Uuid,
    pub user_id: Option<uuid::Uuid>,
    pub step_id: &'a str,
}

pub async fn execute(
    state: &WorkerState,
    step: &LlmStep,
    scope: &Value,
    cx: &LlmCallCtx<'_>,
) -> Result<StepOutput, StepFailure> {
    let provider_name = step
        .provider
        .as_deref()
        .unwrap_or(&state.config.default_provider);
    let provider = state.providers.get(provider_name).ok_or_else(|| {
        StepFailure::new(
            "auth",
            format!("provider `{provider_name}` is not configured (set its API key)"),
            false,
        )
    })?;
    let render = |t: &llmflow_core::template::Template, what: &str| {
        t.render(scope)
            .map_err(|e| StepFailure::new("template", format!("{what}: {e}"), false))
    };
    let mut messages = Vec::with_capacity(2);
    if let Some(system) = &step.system {
        messages.push(Message {
            role: Role::System,
            content: render(system, "system")?,
        });
    }
    messages.push(Message {
        role: Role::User,
        content: render(&step.prompt, "prompt")?,
    });
    let request = CompletionRequest {
        model: step.model.clone(),
        messages,
        temperature: step.temperature,
        max_tokens: step.max_tokens,
        format: step.format.clone(),
    };
    let call_ctx = CallCtx {
        job_id: Some(cx.job_id.into()),
        step_id: Some(cx.step_id.to_owned()),
    };
    let completion = provider
        .complete(&request, &call_ctx)
        .await
        .map_err(|e| StepFailure::new(e.kind(), e.to_string(), e.is_retryable()))?;
    let usage = vec![usage_row(
        state,
        provider_name,
        &step.model,
        &completion,
        cx,
    )];
    match parse_output(&step.format, &completion.content) {
        Ok(output) => Ok(StepOutput { output, usage }),
        Err(message) => Err(StepFailure {
            kind: "invalid_output",
            message,
            retryable: true,
            usage,
        }),
    }
}

/// The step's output: the text, or for `response_format: json` the parsed (and schema-checked)
/// value. Models often wrap JSON in a Markdown fence; that is accepted.
fn parse_output(format: &OutputFormat, content: &str) -> Result<Value, String> {
    match format {
        OutputFormat::Text => Ok(Value::String(content.to_owned())),
        OutputFormat::Json { schema } => {
            let text = strip_fence(content);
            let value: Value = serde_json::from_str(text)
                .map_err(|e| format!("the model's answer is not JSON: {e}"))?;
            if let Some(schema) = schema {
                let validator = jsonschema::validator_for(schema)
                    .map_err(|e| format!("invalid JSON Schema: {e}"))?;
                let errors: Vec<String> = validator
                    .iter_errors(&value)
                    .map(|e| e.to_string())
                    .collect();
                if !errors.is_empty() {
                    return Err(format!(
                        "the model's answer does not match the schema: {}",
                        errors.join("; ")
                    ));
                }
            }
            Ok(value)
        }
    }
}

fn strip_fence(content: &str) -> &str {
    let trimmed = content.trim();
    trimmed
        .strip_prefix("```json")
        .or_else(|| trimmed.strip_prefix("```"))
        .and_then(|rest| rest.strip_suffix("```"))
        .map(str::trim)
        .unwrap_or(trimmed)
}

/// Prices the call from the table (by the model asked for, else the model that answered); the
/// provider's own figure, when reported, is the recorded cost.
fn usage_row(
    state: &WorkerState,
    provider: &str,
    model: &str,
    completion: &Completion,
    cx: &LlmCallCtx<'_>,
) -> UsageRow {
    let table_cost = state
        .pricing
        .cost(model, completion.usage)
        .or_else(|| state.pricing.cost(&completion.model, completion.usage))
        .unwrap_or_default();
    let cost = completion.provider_cost.unwrap_or(table_cost);
    let clamp = |n: u64| i32::try_from(n).unwrap_or(i32::MAX);
    UsageRow {
        id: uuid::Uuid::now_v7(),
        job_id: Some(cx.job_id),
        step_id: Some(cx.step_id.to_owned()),
        user_id: cx.user_id,
        provider: provider.to_owned(),
        model: model.to_owned(),
        input_tokens: clamp(completion.usage.input_tokens),
        output_tokens: clamp(completion.usage.output_tokens),
        total_tokens: clamp(completion.usage.input_tokens + completion.usage.output_tokens),
        cached_input_tokens: clamp(completion.usage.cached_input_tokens),
        cost_usd: round_usd(cost),
        table_cost_usd: round_usd(table_cost),
        provider_cost_usd: completion.provider_cost.map(round_usd),
        usage_estimated: completion.usage_estimated,
        provider_request_id: completion.request_id.clone(),
        duration_ms: i32::try_from(completion.duration.as_millis()).unwrap_or(i32::MAX),
        created_at: Utc::now(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_answers_are_parsed_fenced_or_not_and_checked() {
        let plain = OutputFormat::Json { schema: None };
        assert_eq!(parse_output(&plain, r#"{"a":1}"#), Ok(json!({"a": 1})));
        assert_eq!(
            parse_output(&plain, "```json\n{\"a\":1}\n```"),
            Ok(json!({"a": 1}))
        );
        assert!(parse_output(&plain, "not json").is_err());
        let schema = OutputFormat::Json {
            schema: Some(json!({"type": "object", "required": ["score"]})),
        };
        assert!(parse_output(&schema, r#"{"a":1}"#).is_err());
        assert_eq!(parse_output(&OutputFormat::Text, "hi"), Ok(json!("hi")));
    }
}
