//! OpenAI Chat Completions (`POST {base}/chat/completions`), also spoken by OpenRouter.

use std::str::FromStr;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::StreamExt;
use reqwest::StatusCode;
use rust_decimal::Decimal;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{json, Value};

use super::http::{Lease, LlmHttp};
use super::stream::{events, header, map_transport, openai_hint, send_json, Bound};
use super::{
    estimate_usage, CallCtx, Completion, CompletionRequest, LlmProvider, OutputFormat,
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
    http: LlmHttp,
    url: String,
    api_key: SecretString,
    flavor: Flavor,
}

impl OpenAiCompatible {
    /// `base_url` ends in `/v1`; `/chat/completions` is appended.
    pub fn new(http: LlmHttp, base_url: &str, api_key: SecretString, flavor: Flavor) -> Self {
        Self {
            http,
            url: format!("{}/chat/completions", base_url.trim_end_matches('/')),
            api_key,
            flavor,
        }
    }

    pub fn openai(http: LlmHttp, base_url: &str, api_key: SecretString) -> Self {
        Self::new(http, base_url, api_key, Flavor::OpenAi)
    }

    /// The request body; `stream` asks for SSE with usage in the final chunk.
    fn body(&self, request: &CompletionRequest, stream: bool) -> Value {
        let mut body = json!({
            "model": request.model,
            "messages": request.messages,
        });
        if stream {
            body["stream"] = json!(true);
            if self.flavor == Flavor::OpenAi {
                body["stream_options"] = json!({"include_usage": true});
            }
        }
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
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct ChoiceMessage {
    content: Option<String>,
}

#[derive(Deserialize)]
struct StreamChunk {
    id: Option<String>,
    model: Option<String>,
    #[serde(default)]
    choices: Vec<StreamChoice>,
    usage: Option<Usage>,
    error: Option<Value>,
}

#[derive(Deserialize)]
struct StreamChoice {
    #[serde(default)]
    delta: Option<StreamDelta>,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct StreamDelta {
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

impl OpenAiCompatible {
    /// Sends the request; a non-2xx answer becomes the mapped error.
    async fn send(
        &self,
        body: Value,
        bound: Bound,
    ) -> Result<(reqwest::Response, Lease), ProviderError> {
        let key = self.api_key.expose_secret();
        send_json(
            &self.http,
            &self.url,
            |r| r.bearer_auth(key),
            body,
            bound,
            map_status,
        )
        .await
    }

    /// Token counts and (OpenRouter only) the provider's cost; estimated when absent.
    fn usage(
        &self,
        usage: Option<Usage>,
        request: &CompletionRequest,
        content: &str,
    ) -> (TokenUsage, bool, Option<Decimal>) {
        match usage {
            Some(usage) => {
                let cost = usage
                    .cost
                    .filter(|_| self.flavor == Flavor::OpenRouter)
                    .and_then(|cost| Decimal::from_str(&cost.to_string()).ok());
                (
                    TokenUsage {
                        input_tokens: usage.prompt_tokens,
                        output_tokens: usage.completion_tokens,
                        cached_input_tokens: usage
                            .prompt_tokens_details
                            .and_then(|d| d.cached_tokens)
                            .unwrap_or(0),
                    },
                    false,
                    cost,
                )
            }
            None => (estimate_usage(request, content), true, None),
        }
    }
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
        cx: &CallCtx,
    ) -> Result<Completion, ProviderError> {
        let started = Instant::now();
        let bound = Bound::Whole(cx.timeout.unwrap_or(self.http.default_timeout()));
        let (response, _lease) = self.send(self.body(request, false), bound).await?;
        let request_id = header(response.headers(), "x-request-id");
        let rate_limit = openai_hint(response.headers());
        let bytes = response.bytes().await.map_err(map_transport)?;
        let parsed: ChatResponse = serde_json::from_slice(&bytes)
            .map_err(|e| ProviderError::InvalidResponse(format!("not a chat completion: {e}")))?;
        let (content, finish_reason) = parsed
            .choices
            .into_iter()
            .next()
            .and_then(|choice| Some((choice.message.content?, choice.finish_reason)))
            .ok_or_else(|| ProviderError::InvalidResponse("no message content".into()))?;
        let (usage, usage_estimated, provider_cost) = self.usage(parsed.usage, request, &content);
        Ok(Completion {
            content,
            finish_reason,
            model: parsed.model.unwrap_or_else(|| request.model.clone()),
            usage,
            usage_estimated,
            provider_cost,
            duration: started.elapsed(),
            request_id: request_id.or(parsed.id),
            rate_limit,
        })
    }

    async fn stream(
        &self,
        request: &CompletionRequest,
        cx: &CallCtx,
    ) -> Result<Completion, ProviderError> {
        let started = Instant::now();
        let idle = self.http.stream_idle();
        let (response, _lease) = self
            .send(self.body(request, true), Bound::Idle(idle))
            .await?;
        let mut request_id = header(response.headers(), "x-request-id");
        let rate_limit = openai_hint(response.headers());
        let mut events = events(response, idle);
        let mut content = String::new();
        let mut model = None;
        let mut usage = None;
        let mut finish_reason = None;
        let mut done = false;
        while let Some(event) = events.next().await {
            let event = event?;
            let data = event.data.trim();
            if data == "[DONE]" {
                done = true;
                break;
            }
            if data.is_empty() || data.starts_with(':') {
                continue;
            }
            let chunk: StreamChunk = serde_json::from_str(data).map_err(|e| {
                ProviderError::InvalidResponse(format!("not a chat completion chunk: {e}"))
            })?;
            if let Some(error) = chunk.error {
                return Err(map_stream_error(&error));
            }
            if request_id.is_none() {
                request_id = chunk.id;
            }
            if model.is_none() {
                model = chunk.model;
            }
            for choice in chunk.choices {
                if choice.finish_reason.is_some() {
                    finish_reason = choice.finish_reason;
                }
                if let Some(text) = choice.delta.and_then(|d| d.content) {
                    cx.send_chunk(&text);
                    content.push_str(&text);
                }
            }
            if chunk.usage.is_some() {
                usage = chunk.usage;
            }
        }
        if !done {
            return Err(ProviderError::Network(
                "stream ended before [DONE]".to_owned(),
            ));
        }
        let (usage, usage_estimated, provider_cost) = self.usage(usage, request, &content);
        Ok(Completion {
            content,
            finish_reason,
            model: model.unwrap_or_else(|| request.model.clone()),
            usage,
            usage_estimated,
            provider_cost,
            duration: started.elapsed(),
            request_id,
            rate_limit,
        })
    }
}

/// An error object sent inside a stream (`data: {"error": {...}}`), by its numeric `code`
/// (OpenRouter) or its `type` (OpenAI).
fn map_stream_error(error: &Value) -> ProviderError {
    let message = error["message"]
        .as_str()
        .unwrap_or("error event in stream")
        .to_owned();
    if let Some(code) = error["code"]
        .as_u64()
        .and_then(|c| u16::try_from(c).ok())
        .and_then(|c| StatusCode::from_u16(c).ok())
    {
        return map_status(
            code,
            None,
            &json!({"error": {"message": message}}).to_string(),
        );
    }
    match error["type"].as_str().unwrap_or_default() {
        "overloaded_error" => ProviderError::Overloaded(message),
        "rate_limit_error" | "requests" | "tokens" => ProviderError::RateLimited {
            retry_after: None,
            message,
        },
        "invalid_request_error" => ProviderError::BadRequest(message),
        _ => ProviderError::Server(message),
    }
}

/// The message in an OpenAI-style error body, else the body's start.
fn error_message(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| body.chars().take(300).collect())
}

/// OpenAI's and OpenRouter's statuses: 401/403 auth (OpenRouter 402 is out of credits, a bad
/// request for us), 408 timeout, 429 rate limited, 502/503/529 overloaded, other 5xx server.
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
        502 | 503 | 529 => ProviderError::Overloaded(message),
        500..=599 => ProviderError::Server(message),
        _ => ProviderError::BadRequest(message),
    }
}
