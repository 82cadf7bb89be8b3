//! `llm` steps: render the prompts, call the provider, parse the answer, and price the call.

use chrono::Utc;
use serde_json::Value;

use llmflow_core::db::models::UsageRow;
use llmflow_core::llm::chain::{self, Answer, CallOptions, Target};
use llmflow_core::llm::{CallCtx, CompletionRequest, Message, OutputFormat, Role};
use llmflow_core::pricing::round_usd;
use llmflow_core::workflow::LlmStep;

use super::{StepFailure, StepOutput};
use crate::Engine;
use llmflow_core::telemetry::Chain;

/// Who the call is for, recorded on the usage row, and where streamed text goes.
pub struct LlmCallCtx<'a> {
    pub job_id: uuid::Uuid,
    pub user_id: Option<uuid::Uuid>,
    pub step_id: &'a str,
    /// Text deltas of a `stream: true` step, in order (the engine forwards them as events).
    pub chunks: Option<tokio::sync::mpsc::UnboundedSender<String>>,
    /// The step's `timeout_ms`, which bounds a non-streamed call instead of `LLM_TIMEOUT_SECS`.
    pub timeout: Option<std::time::Duration>,
}

/// How much longer than the step's own `timeout_ms` the HTTP call may take. The engine's bound
/// on the step is what ends it and what the job reports ("took longer than N ms"); the call's
/// bound is only a backstop, so the two never race to name the failure.
const CALL_TIMEOUT_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// Runs one llm step: the call (limits, retries and fallbacks are in `chain::call`), then the
/// answer parsed; a JSON answer that fails to parse or to match the schema gets up to
/// `repair_attempts` follow-up calls with the errors fed back, each recorded with its usage.
pub async fn execute(
    state: &Engine,
    step: &LlmStep,
    scope: &Value,
    cx: &LlmCallCtx<'_>,
) -> Result<StepOutput, StepFailure> {
    let targets = targets(state, step)?;
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
    let mut request = CompletionRequest {
        model: step.model.clone(),
        messages,
        temperature: step.temperature,
        max_tokens: step.max_tokens,
        format: step.format.clone(),
    };
    let call_ctx = CallCtx {
        job_id: Some(cx.job_id.into()),
        step_id: Some(cx.step_id.to_owned()),
        chunks: cx.chunks.clone(),
        timeout: cx.timeout.map(|limit| limit + CALL_TIMEOUT_GRACE),
    };
    let mut usage = Vec::new();
    let mut repairs_left = match step.format {
        OutputFormat::Text => 0,
        OutputFormat::Json { .. } => step.repair_attempts,
    };
    // Repair calls are not streamed: the text already passed on stays the first answer's.
    let mut stream = step.stream;
    loop {
        let options = CallOptions {
            retry: state.retry,
            limiter: state.limiter.as_ref(),
            stream,
        };
        let answer = match chain::call(&targets, &request, &call_ctx, options).await {
            Ok(answer) => answer,
            Err(failure) => {
                let error = failure.error;
                return Err(StepFailure {
                    kind: error.kind(),
                    message: format!(
                        "{} ({}): {}",
                        failure.provider,
                        failure.model,
                        Chain(&error)
                    ),
                    // Text already streamed would be streamed again by a step retry.
                    retryable: error.is_retryable() && !failure.streamed,
                    usage,
                });
            }
        };
        let row = usage_row(state, &answer, cx);
        llmflow_core::metrics::llm_usage(
            &row.provider,
            &row.model,
            row.input_tokens,
            row.output_tokens,
            row.cost_usd,
        );
        usage.push(row);
        match parse_output(
            &step.format,
            step.answer_schema.as_deref(),
            &answer.completion.content,
        ) {
            Ok(output) => return Ok(StepOutput { output, usage }),
            Err(message) if repairs_left > 0 => {
                tracing::info!(step = cx.step_id, error = %message, "asking the model to repair its JSON answer");
                repairs_left -= 1;
                stream = false;
                request.messages.push(Message {
                    role: Role::Assistant,
                    content: answer.completion.content,
                });
                request.messages.push(Message {
                    role: Role::User,
                    content: format!(
                        "Your answer could not be used: {message}\n\
                         Answer again with only the corrected JSON, nothing else."
                    ),
                });
            }
            Err(message) => {
                return Err(StepFailure {
                    kind: "invalid_output",
                    message,
                    retryable: true,
                    usage,
                })
            }
        }
    }
}

/// The step's provider and model, then its fallbacks; providers without an API key are left
/// out (a fallback to an unconfigured provider is skipped, not an error).
fn targets(state: &Engine, step: &LlmStep) -> Result<Vec<Target>, StepFailure> {
    let primary = step
        .provider
        .as_deref()
        .unwrap_or(&state.config.default_provider);
    let wanted = std::iter::once((primary, step.model.as_str())).chain(
        step.fallbacks
            .iter()
            .map(|f| (f.provider.as_str(), f.model.as_str())),
    );
    let mut targets = Vec::new();
    let mut missing = Vec::new();
    for (name, model) in wanted {
        match state.providers.get(name) {
            Some(provider) => targets.push(Target {
                provider: provider.clone(),
                model: model.to_owned(),
            }),
            None => missing.push(name),
        }
    }
    if !missing.is_empty() {
        tracing::warn!(providers = ?missing, "skipping providers without an API key");
    }
    if targets.is_empty() {
        return Err(StepFailure::new(
            "auth",
            format!("provider `{primary}` is not configured (set its API key)"),
            false,
        ));
    }
    Ok(targets)
}

/// The step's output: the text, or for `response_format: json` the parsed (and schema-checked)
/// value. Models often wrap JSON in a Markdown fence; that is accepted.
fn parse_output(
    format: &OutputFormat,
    schema: Option<&jsonschema::Validator>,
    content: &str,
) -> Result<Value, String> {
    match format {
        OutputFormat::Text => Ok(Value::String(content.to_owned())),
        OutputFormat::Json { .. } => {
            let text = strip_fence(content);
            let value: Value = serde_json::from_str(text)
                .map_err(|e| format!("the model's answer is not JSON: {e}"))?;
            if let Some(validator) = schema {
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
/// provider's own figure, when reported, is the recorded cost and the table's is kept beside it.
/// The row names the provider and model that answered (a fallback, perhaps).
fn usage_row(state: &Engine, answer: &Answer, cx: &LlmCallCtx<'_>) -> UsageRow {
    let (provider, model, completion) = (&answer.provider, &answer.model, &answer.completion);
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
        assert_eq!(
            parse_output(&plain, None, r#"{"a":1}"#),
            Ok(json!({"a": 1}))
        );
        assert_eq!(
            parse_output(&plain, None, "```json\n{\"a\":1}\n```"),
            Ok(json!({"a": 1}))
        );
        assert!(parse_output(&plain, None, "not json").is_err());
        let schema = json!({"type": "object", "required": ["score"]});
        let validator = jsonschema::validator_for(&schema).expect("schema");
        let format = OutputFormat::Json {
            schema: Some(schema),
        };
        assert!(parse_output(&format, Some(&validator), r#"{"a":1}"#).is_err());
        assert_eq!(
            parse_output(&format, Some(&validator), r#"{"score":1}"#),
            Ok(json!({"score": 1}))
        );
        assert_eq!(
            parse_output(&OutputFormat::Text, None, "hi"),
            Ok(json!("hi"))
        );
    }
}
