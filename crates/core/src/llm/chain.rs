//! One logical LLM call as a step makes it: through the shared limits, with retries on
//! retryable errors, then down the step's fallback chain — and never retried or handed to a
//! fallback once a streamed token has been passed on to the caller.

use std::sync::Arc;
use std::time::Instant;

use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::limits::Limiter;
use super::retry::RetryPolicy;
use super::{estimate_tokens, CallCtx, Completion, CompletionRequest, LlmProvider, ProviderError};
use crate::metrics::names;

/// One provider and model to try.
#[derive(Clone)]
pub struct Target {
    pub provider: Arc<dyn LlmProvider>,
    pub model: String,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.provider.name(), self.model)
    }
}

/// How the call is made.
#[derive(Clone, Copy, Debug)]
pub struct CallOptions<'a> {
    pub retry: RetryPolicy,
    /// The shared limits; `None` calls without them.
    pub limiter: Option<&'a Limiter>,
    /// Stream the answer (text deltas go to `CallCtx::chunks`).
    pub stream: bool,
}

/// The answer and who gave it.
#[derive(Clone, Debug)]
pub struct Answer {
    pub completion: Completion,
    /// The provider that answered (`openrouter`, `openai`, `anthropic`).
    pub provider: String,
    /// The model asked of it (the table's name; `completion.model` is what the provider says).
    pub model: String,
    /// Calls made in all, across retries and fallbacks.
    pub calls: u32,
}

/// Why the call failed, after retries and fallbacks.
#[derive(Clone, Debug)]
pub struct CallFailure {
    pub error: ProviderError,
    pub provider: String,
    pub model: String,
    /// Text had already been passed on when it failed: retrying would repeat it.
    pub streamed: bool,
}

/// Makes the call against `targets` in order (the step's provider first, then its fallbacks).
/// A target is left for the next after a retryable error that outlived its retries, or after
/// an authentication failure; any other error ends the call.
pub async fn call(
    targets: &[Target],
    request: &CompletionRequest,
    cx: &CallCtx,
    options: CallOptions<'_>,
) -> Result<Answer, CallFailure> {
    let mut calls = 0;
    let mut last = None;
    for (index, target) in targets.iter().enumerate() {
        let name = target.provider.name().to_owned();
        let request = CompletionRequest {
            model: target.model.clone(),
            ..request.clone()
        };
        let failure = |error: ProviderError, streamed: bool| CallFailure {
            error,
            provider: name.clone(),
            model: target.model.clone(),
            streamed,
        };
        let reserve = request
            .messages
            .iter()
            .map(|m| estimate_tokens(&m.content))
            .sum::<u64>()
            + u64::from(request.max_tokens.unwrap_or(0));
        let mut attempt = 1;
        let error = loop {
            let permit = match options.limiter {
                Some(limiter) => {
                    let waiting = Instant::now();
                    let acquired = limiter.acquire(&name, &target.model, reserve).await;
                    metrics::histogram!(names::LLM_LIMITER_WAIT, "gen_ai_provider_name" => name.clone())
                        .record(waiting.elapsed().as_secs_f64());
                    match acquired {
                        Ok(permit) => Some(permit),
                        Err(error) => break error,
                    }
                }
                None => None,
            };
            calls += 1;
            let calling = Instant::now();
            let span = call_span(&name, &target.model);
            let (result, forwarded) = attempt_once(target, &request, cx, options.stream, &name)
                .instrument(span.clone())
                .await;
            record_call(&span, &result);
            crate::metrics::llm_call(
                &name,
                &target.model,
                calling.elapsed(),
                result.as_ref().err().map(ProviderError::kind),
            );
            match result {
                Ok(completion) => {
                    if let Some(limiter) = options.limiter {
                        if let Some(hint) = completion.rate_limit {
                            limiter.learn(&name, hint).await;
                        }
                    }
                    if let Some(permit) = &permit {
                        let usage = completion.usage;
                        permit
                            .record_tokens(usage.input_tokens + usage.output_tokens)
                            .await;
                    }
                    return Ok(Answer {
                        completion,
                        provider: name,
                        model: target.model.clone(),
                        calls,
                    });
                }
                Err(error) => {
                    drop(permit);
                    let retry_after = match &error {
                        ProviderError::RateLimited { retry_after, .. } => *retry_after,
                        _ => None,
                    };
                    if let (Some(limiter), Some(wait)) = (options.limiter, retry_after) {
                        limiter
                            .hold(&name, wait.min(options.retry.retry_after_cap))
                            .await;
                    }
                    if forwarded {
                        tracing::warn!(provider = %name, model = %target.model, error = %error, "stream failed after text was passed on; not retried");
                        return Err(failure(error, true));
                    }
                    if error.is_retryable() && attempt < options.retry.max_attempts {
                        let delay = options.retry.delay(attempt, retry_after);
                        tracing::info!(provider = %name, model = %target.model, attempt, delay_ms = delay.as_millis() as u64, error = %error, "retrying LLM call");
                        tokio::time::sleep(delay).await;
                        attempt += 1;
                        continue;
                    }
                    break error;
                }
            }
        };
        let falls_back = error.is_retryable() || matches!(error, ProviderError::Auth(_));
        if falls_back && index + 1 < targets.len() {
            tracing::warn!(provider = %name, model = %target.model, error = %error, "LLM call failed; trying the next fallback");
            last = Some(failure(error, false));
            continue;
        }
        return Err(failure(error, false));
    }
    Err(last.unwrap_or(CallFailure {
        error: ProviderError::BadRequest("no provider to call".to_owned()),
        provider: String::new(),
        model: request.model.clone(),
        streamed: false,
    }))
}

/// The span of one call to a provider, named and described as the OpenTelemetry GenAI
/// conventions say (`chat {model}`, `gen_ai.*` attributes); [`record_call`] adds the answer.
fn call_span(provider: &str, model: &str) -> tracing::Span {
    tracing::info_span!(
        "chat",
        otel.name = %format_args!("chat {model}"),
        otel.kind = "client",
        otel.status_description = tracing::field::Empty,
        gen_ai.operation.name = "chat",
        gen_ai.provider.name = provider,
        gen_ai.request.model = model,
        gen_ai.response.model = tracing::field::Empty,
        gen_ai.response.id = tracing::field::Empty,
        gen_ai.usage.input_tokens = tracing::field::Empty,
        gen_ai.usage.output_tokens = tracing::field::Empty,
        error.type = tracing::field::Empty,
    )
}

/// The answer's model, id, token counts and finish reason on the call's span, or the error.
fn record_call(span: &tracing::Span, result: &Result<Completion, ProviderError>) {
    match result {
        Ok(completion) => {
            span.record("gen_ai.response.model", completion.model.as_str());
            if let Some(id) = &completion.request_id {
                span.record("gen_ai.response.id", id.as_str());
            }
            // Signed: unsigned fields are exported as text.
            let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
            span.record(
                "gen_ai.usage.input_tokens",
                count(completion.usage.input_tokens),
            );
            span.record(
                "gen_ai.usage.output_tokens",
                count(completion.usage.output_tokens),
            );
            if let Some(reason) = &completion.finish_reason {
                // A string array in the conventions, which a `tracing` field cannot hold.
                let reasons = vec![opentelemetry::StringValue::from(reason.clone())];
                span.set_attribute(
                    "gen_ai.response.finish_reasons",
                    opentelemetry::Value::Array(reasons.into()),
                );
            }
        }
        Err(error) => {
            span.record("error.type", error.kind());
            span.record("otel.status_description", tracing::field::display(error));
        }
    }
}

/// One call; for a stream, the deltas pass through here on their way to `cx.chunks`, so that
/// we know whether any reached the caller.
async fn attempt_once(
    target: &Target,
    request: &CompletionRequest,
    cx: &CallCtx,
    stream: bool,
    provider: &str,
) -> (Result<Completion, ProviderError>, bool) {
    if !stream {
        return (target.provider.complete(request, cx).await, false);
    }
    let Some(outer) = cx.chunks.clone() else {
        return (target.provider.stream(request, cx).await, false);
    };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let inner = CallCtx {
        chunks: Some(tx),
        ..cx.clone()
    };
    // `inner` (the only sender) is dropped when the call ends, which ends the forwarding.
    let call = async move { target.provider.stream(request, &inner).await };
    let started = Instant::now();
    let first_chunk = metrics::histogram!(
        names::GEN_AI_TIME_TO_FIRST_CHUNK,
        "gen_ai_provider_name" => provider.to_owned(),
        "gen_ai_request_model" => request.model.clone(),
    );
    let forward = async move {
        let mut forwarded = false;
        while let Some(chunk) = rx.recv().await {
            if !forwarded {
                first_chunk.record(started.elapsed().as_secs_f64());
            }
            forwarded = true;
            let _ = outer.send(chunk);
        }
        forwarded
    };
    tokio::join!(call, forward)
}
