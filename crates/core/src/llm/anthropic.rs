//! Anthropic's native Messages API (`POST {base}/v1/messages`, `x-api-key`,
//! `anthropic-version`), whole answers and named SSE events.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::StreamExt;
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{json, Value};

use super::http::{Lease, LlmHttp};
use super::stream::{anthropic_hint, events, header, map_transport, send_json, Bound};
use super::{
    estimate_usage, CallCtx, Completion, CompletionRequest, LlmProvider, OutputFormat,
    ProviderError, Role,
};
use crate::pricing::TokenUsage;

/// The API version every request names.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";
/// `max_tokens` is required by the Messages API; this is sent when a step gives none.
pub const DEFAULT_MAX_TOKENS: u32 = 4096;

/// A client of the Anthropic Messages API.
pub struct Anthropic {
    http: LlmHttp,
    url: String,
    api_key: SecretString,
}

impl Anthropic {
    /// `base_url` is the host root; `/v1/messages` is appended.
    pub fn new(http: LlmHttp, base_url: &str, api_key: SecretString) -> Self {
        Self {
            http,
            url: format!("{}/v1/messages", base_url.trim_end_matches('/')),
            api_key,
        }
    }

    /// System messages become the top-level `system`; a JSON answer is asked for in words
    /// (the Messages API has no response-format switch), with the schema when there is one.
    /// Temperatures above Anthropic's maximum of 1 are sent as 1.
    fn body(request: &CompletionRequest, stream: bool) -> Value {
        let mut system: Vec<&str> = request
            .messages
            .iter()
            .filter(|m| m.role == Role::System)
            .map(|m| m.content.as_str())
            .collect();
        let instruction = match &request.format {
            OutputFormat::Text => None,
            OutputFormat::Json { schema: None } => {
                Some("Answer with a single JSON object and nothing else.".to_owned())
            }
            OutputFormat::Json {
                schema: Some(schema),
            } => Some(format!(
                "Answer with a single JSON object and nothing else, matching this JSON Schema: {schema}"
            )),
        };
        if let Some(instruction) = &instruction {
            system.push(instruction);
        }
        let messages: Vec<Value> = request
            .messages
            .iter()
            .filter(|m| m.role != Role::System)
            .map(|m| json!({"role": m.role, "content": m.content}))
            .collect();
        let mut body = json!({
            "model": request.model,
            "max_tokens": request.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
            "messages": messages,
        });
        if !system.is_empty() {
            body["system"] = json!(system.join("\n\n"));
        }
        if let Some(temperature) = request.temperature {
            body["temperature"] = json!(temperature.min(1.0));
        }
        if stream {
            body["stream"] = json!(true);
        }
        body
    }

    async fn send(
        &self,
        body: Value,
        bound: Bound,
    ) -> Result<(reqwest::Response, Lease), ProviderError> {
        let key = self.api_key.expose_secret();
        let headers = |r: reqwest::RequestBuilder| {
            r.header("x-api-key", key)
                .header("anthropic-version", ANTHROPIC_VERSION)
        };
        send_json(&self.http, &self.url, headers, body, bound, map_status).await
    }
}

#[derive(Deserialize)]
struct MessageResponse {
    id: Option<String>,
    model: Option<String>,
    #[serde(default)]
    content: Vec<ContentBlock>,
    usage: Option<Usage>,
    stop_reason: Option<String>,
}

#[derive(Deserialize)]
struct ContentBlock {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: Option<String>,
}

/// Anthropic's `input_tokens` excludes what was read from or written to the prompt cache.
#[derive(Clone, Copy, Default, Deserialize)]
struct Usage {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
}

impl Usage {
    /// All input (cache reads and writes included) with the cache reads as `cached_input`.
    fn tokens(self) -> TokenUsage {
        let read = self.cache_read_input_tokens.unwrap_or(0);
        let written = self.cache_creation_input_tokens.unwrap_or(0);
        TokenUsage {
            input_tokens: self.input_tokens + read + written,
            output_tokens: self.output_tokens,
            cached_input_tokens: read,
        }
    }
}

#[async_trait]
impl LlmProvider for Anthropic {
    fn name(&self) -> &str {
        "anthropic"
    }

    async fn complete(
        &self,
        request: &CompletionRequest,
        cx: &CallCtx,
    ) -> Result<Completion, ProviderError> {
        let started = Instant::now();
        let bound = Bound::Whole(cx.timeout.unwrap_or(self.http.default_timeout()));
        let (response, _lease) = self.send(Self::body(request, false), bound).await?;
        let request_id = header(response.headers(), "request-id");
        let rate_limit = anthropic_hint(response.headers());
        let bytes = response.bytes().await.map_err(map_transport)?;
        let parsed: MessageResponse = serde_json::from_slice(&bytes)
            .map_err(|e| ProviderError::InvalidResponse(format!("not a message: {e}")))?;
        let content: String = parsed
            .content
            .iter()
            .filter(|block| block.kind == "text")
            .filter_map(|block| block.text.as_deref())
            .collect();
        let (usage, usage_estimated) = match parsed.usage {
            Some(usage) => (usage.tokens(), false),
            None => (estimate_usage(request, &content), true),
        };
        Ok(Completion {
            content,
            finish_reason: parsed.stop_reason,
            model: parsed.model.unwrap_or_else(|| request.model.clone()),
            usage,
            usage_estimated,
            provider_cost: None,
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
            .send(Self::body(request, true), Bound::Idle(idle))
            .await?;
        let mut request_id = header(response.headers(), "request-id");
        let rate_limit = anthropic_hint(response.headers());
        let mut events = events(response, idle);
        let mut content = String::new();
        let mut model = None;
        let mut usage: Option<Usage> = None;
        let mut finish_reason = None;
        let mut stopped = false;
        while let Some(event) = events.next().await {
            let event = event?;
            let data: Value = match event.event.as_str() {
                "ping" => continue,
                _ => serde_json::from_str(&event.data).map_err(|e| {
                    ProviderError::InvalidResponse(format!(
                        "malformed `{}` event: {e}",
                        event.event
                    ))
                })?,
            };
            match event.event.as_str() {
                "message_start" => {
                    let message = &data["message"];
                    if request_id.is_none() {
                        request_id = message["id"].as_str().map(str::to_owned);
                    }
                    model = message["model"].as_str().map(str::to_owned);
                    usage = serde_json::from_value(message["usage"].clone()).ok();
                }
                "content_block_delta" => {
                    let delta = &data["delta"];
                    let text = delta["text"]
                        .as_str()
                        .filter(|_| delta["type"] == "text_delta");
                    if let Some(text) = text {
                        cx.send_chunk(text);
                        content.push_str(text);
                    }
                }
                "message_delta" => {
                    if let Some(reason) = data["delta"]["stop_reason"].as_str() {
                        finish_reason = Some(reason.to_owned());
                    }
                    if let Some(output) = data["usage"]["output_tokens"].as_u64() {
                        let mut u = usage.unwrap_or_default();
                        u.output_tokens = output;
                        usage = Some(u);
                    }
                }
                "message_stop" => {
                    stopped = true;
                    break;
                }
                "error" => return Err(map_error_type(&data["error"], None)),
                // content_block_start / content_block_stop and event types added later.
                _ => {}
            }
        }
        if !stopped {
            return Err(ProviderError::Network(
                "stream ended before message_stop".to_owned(),
            ));
        }
        let (usage, usage_estimated) = match usage {
            Some(usage) => (usage.tokens(), false),
            None => (estimate_usage(request, &content), true),
        };
        Ok(Completion {
            content,
            finish_reason,
            model: model.unwrap_or_else(|| request.model.clone()),
            usage,
            usage_estimated,
            provider_cost: None,
            duration: started.elapsed(),
            request_id,
            rate_limit,
        })
    }
}

/// An Anthropic error object (`{"type": "overloaded_error", "message": …}`) by its type.
fn map_error_type(error: &Value, retry_after: Option<Duration>) -> ProviderError {
    let kind = error["type"].as_str().unwrap_or_default();
    let message = format!(
        "{kind}: {}",
        error["message"].as_str().unwrap_or("no message")
    );
    match kind {
        "authentication_error" | "permission_error" => ProviderError::Auth(message),
        "rate_limit_error" => ProviderError::RateLimited {
            retry_after,
            message,
        },
        "overloaded_error" => ProviderError::Overloaded(message),
        "timeout_error" => ProviderError::Timeout(message),
        "invalid_request_error" | "not_found_error" | "request_too_large" | "billing_error" => {
            ProviderError::BadRequest(message)
        }
        _ => ProviderError::Server(message),
    }
}

/// Anthropic's statuses: 401/403 auth, 429 rate limited (with `retry-after`), 529 overloaded,
/// 504 timeout, other 5xx server, other 4xx bad request.
fn map_status(status: StatusCode, retry_after: Option<Duration>, body: &str) -> ProviderError {
    let error = serde_json::from_str::<Value>(body)
        .ok()
        .map(|v| v["error"].clone())
        .filter(Value::is_object);
    let message = match &error {
        Some(error) => format!(
            "{status}: {}",
            error["message"].as_str().unwrap_or("no message")
        ),
        None => format!("{status}: {}", body.chars().take(300).collect::<String>()),
    };
    match status.as_u16() {
        401 | 403 => ProviderError::Auth(message),
        429 => ProviderError::RateLimited {
            retry_after,
            message,
        },
        503 | 529 => ProviderError::Overloaded(message),
        504 => ProviderError::Timeout(message),
        500..=599 => ProviderError::Server(message),
        _ => ProviderError::BadRequest(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::Message;

    #[test]
    fn body_lifts_system_and_defaults_max_tokens() {
        let request = CompletionRequest {
            model: "claude-3-5-sonnet-20241022".into(),
            messages: vec![
                Message {
                    role: Role::System,
                    content: "Be brief.".into(),
                },
                Message {
                    role: Role::User,
                    content: "Hi".into(),
                },
            ],
            temperature: Some(1.5),
            max_tokens: None,
            format: OutputFormat::Json { schema: None },
        };
        let body = Anthropic::body(&request, true);
        assert_eq!(body["max_tokens"], DEFAULT_MAX_TOKENS);
        assert_eq!(body["messages"], json!([{"role": "user", "content": "Hi"}]));
        assert!(body["system"]
            .as_str()
            .is_some_and(|s| s.starts_with("Be brief.") && s.contains("JSON")));
        assert_eq!(body["temperature"], 1.0);
        assert_eq!(body["stream"], true);
    }

    #[test]
    fn cache_tokens_count_as_input_and_reads_as_cached() {
        let usage = Usage {
            input_tokens: 10,
            output_tokens: 5,
            cache_read_input_tokens: Some(100),
            cache_creation_input_tokens: Some(20),
        };
        assert_eq!(
            usage.tokens(),
            TokenUsage {
                input_tokens: 130,
                output_tokens: 5,
                cached_input_tokens: 100
            }
        );
    }

    #[test]
    fn statuses_map_to_kinds() {
        let kind = |status: u16| {
            map_status(
                StatusCode::from_u16(status).expect("status"),
                None,
                r#"{"type":"error","error":{"type":"x","message":"m"}}"#,
            )
            .kind()
        };
        assert_eq!(kind(401), "auth");
        assert_eq!(kind(400), "bad_request");
        assert_eq!(kind(429), "rate_limited");
        assert_eq!(kind(500), "server");
        assert_eq!(kind(529), "overloaded");
    }
}
