//! OpenAI Chat Completions (`POST {base}/chat/completions`), also spoken by OpenRouter.

use std::str::FromStr;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::StatusCode;
use rust_decimal::Decimal;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{
    estimate_tokens, CallCtx, Completion, CompletionRequest, LlmProvider, OutputFormat,
    ProviderError,
};
use crate::pricing::TokenUsage;

/// Which service speaks the wire format; they differ in small ways (OpenRouter's `usage.cost`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    OpenAi,
    OpenRouter,
}

/// A client of an OpenAI-compatible chat-completions endpoint.
pub struct OpenAiCompatible {
    http: reqwest::Client,
    url: String,
    api_key: SecretString,
    flavor: Flavor,
}

impl OpenAiCompatible {
    /// `base_url` ends in `/v1`; `/chat/completions` is appended.
    pub fn new(
        http: reqwest::Client,
        base_url: &str,
        api_key: SecretString,
        flavor: Flavor,
    ) -> Self {
        Self {
            http,
            url: format!("{}/chat/completions", base_url.trim_end_matches('/')),
            api_key,
            flavor,
        }
    }

    pub fn openai(http: reqwest::Client, base_url: &str, api_key: SecretString) -> Self {
        Self::new(http, base_url, api_key, Flavor::OpenAi)
    }

    fn body(&self, request: &CompletionRequest) -> Value {
        let mut body = json!({
            "model": request.model,
            "messages": request.messages,
        });
        if let Some(temperature) = request.temperature {
            body["temperature"] = json!(temperature);
        }
        if let Some(max_tokens) = request.max_tokens {
            body["max_tokens"] = json!(max_tokens);
        }
        match &request.format {
            OutputFormat::Text => {}
            OutputFormat::Json { schema: None } => {
                body["response_format"] = json!({"type": "json_object"});
            }
            OutputFormat::Json {
                schema: Some(schema),
            } => {
                body["response_format"] = json!({
                    "type": "json_schema",
                    "json_schema": {"name": "output", "schema": schema, "strict": false},
                });
            }
        }
        if self.flavor == Flavor::OpenRouter {
            body["usage"] = json!({"include": true});
        }
        body
    }
}

#[derive(Deserialize)]
struct ChatResponse {
    id: Option<String>,
    model: Option<String>,
    choices: Vec<Choice>,
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Choice {
    message: ChoiceMessage,
}

#[derive(Deserialize)]
struct ChoiceMessage {
    content: Option<String>,
}

#[derive(Deserialize)]
struct Usage {
    prompt_tokens: u64,
    completion_tokens: u64,
    prompt_tokens_details: Option<PromptDetails>,
    /// OpenRouter only: what the call cost, in USD.
    cost: Option<f64>,
}

#[derive(Deserialize)]
struct PromptDetails {
    cached_tokens: Option<u64>,
}

#[async_trait]
impl LlmProvider for OpenAiCompatible {
    fn name(&self) -> &str {
        match self.flavor {
            Flavor::OpenAi => "openai",
            Flavor::OpenRouter => "openrouter",
        }
    }

    async fn complete(
        &self,
        request: &CompletionRequest,
        _cx: &CallCtx,
    ) -> Result<Completion, ProviderError> {
        let started = Instant::now();
        let response = self
            .http
            .post(&self.url)
            .bearer_auth(self.api_key.expose_secret())
            .json(&self.body(request))
            .send()
            .await
            .map_err(map_transport)?;
        let status = response.status();
        let request_id = header(response.headers(), "x-request-id");
        if !status.is_success() {
            let retry_after = retry_after(response.headers());
            let text = response.text().await.unwrap_or_default();
            return Err(map_status(status, retry_after, &text));
        }
        let bytes = response.bytes().await.map_err(map_transport)?;
        let parsed: ChatResponse = serde_json::from_slice(&bytes)
            .map_err(|e| ProviderError::InvalidResponse(format!("not a chat completion: {e}")))?;
        let content = parsed
            .choices
            .into_iter()
            .next()
            .and_then(|choice| choice.message.content)
            .ok_or_else(|| ProviderError::InvalidResponse("no message content".into()))?;
        let (usage, usage_estimated, provider_cost) = match parsed.usage {
            Some(usage) => (
                TokenUsage {
                    input_tokens: usage.prompt_tokens,
                    output_tokens: usage.completion_tokens,
                    cached_input_tokens: usage
                        .prompt_tokens_details
                        .and_then(|d| d.cached_tokens)
                        .unwrap_or(0),
                },
                false,
                usage
                    .cost
                    .and_then(|cost| Decimal::from_str(&cost.to_string()).ok()),
            ),
            None => (estimate(request, &content), true, None),
        };
        Ok(Completion {
            content,
            model: parsed.model.unwrap_or_else(|| request.model.clone()),
            usage,
            usage_estimated,
            provider_cost: if self.flavor == Flavor::OpenRouter {
                provider_cost
            } else {
                None
            },
            duration: started.elapsed(),
            request_id: request_id.or(parsed.id),
        })
    }
}

fn estimate(request: &CompletionRequest, content: &str) -> TokenUsage {
    TokenUsage {
        input_tokens: request
            .messages
            .iter()
            .map(|m| estimate_tokens(&m.content))
            .sum(),
        output_tokens: estimate_tokens(content),
        cached_input_tokens: 0,
    }
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// `Retry-After` in seconds (the form LLM providers send).
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|secs| secs.is_finite() && *secs >= 0.0)
        .map(Duration::from_secs_f64)
}

/// The message in an OpenAI-style error body, else the body's start.
fn error_message(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| body.chars().take(300).collect())
}

pub(crate) fn map_status(
    status: StatusCode,
    retry_after: Option<Duration>,
    body: &str,
) -> ProviderError {
    let message = format!("{status}: {}", error_message(body));
    match status.as_u16() {
        401 | 403 => ProviderError::Auth(message),
        408 => ProviderError::Timeout(message),
        429 => ProviderError::RateLimited {
            retry_after,
            message,
        },
        503 | 529 => ProviderError::Overloaded(message),
        500..=599 => ProviderError::Server(message),
        _ => ProviderError::BadRequest(message),
    }
}

pub(crate) fn map_transport(e: reqwest::Error) -> ProviderError {
    if e.is_timeout() {
        ProviderError::Timeout(e.to_string())
    } else if e.is_decode() || e.is_body() {
        ProviderError::InvalidResponse(e.to_string())
    } else {
        ProviderError::Network(e.to_string())
    }
}
