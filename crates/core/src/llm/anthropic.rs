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
    CallCtx, Completion, CompletionRequest, Decoded, LlmProvider, OutputFormat, ProviderError, Role,
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
    /// Counts that would overflow saturate: they are the provider's figures, not llmflow's.
    fn tokens(self) -> TokenUsage {
        let read = self.cache_read_input_tokens.unwrap_or(0);
        let written = self.cache_creation_input_tokens.unwrap_or(0);
        TokenUsage {
            input_tokens: self
                .input_tokens
                .saturating_add(read)
                .saturating_add(written),
            output_tokens: self.output_tokens,
            cached_input_tokens: read,
        }
    }
}

/// A whole (non-streamed) Messages API body, decoded: the text blocks joined.
pub fn decode_response(body: &[u8]) -> Result<Decoded, ProviderError> {
    let parsed: MessageResponse = serde_json::from_slice(body)
        .map_err(|e| ProviderError::invalid_because("not a message", e))?;
    let content: String = parsed
        .content
        .iter()
        .filter(|block| block.kind == "text")
        .filter_map(|block| block.text.as_deref())
        .collect();
    Ok(Decoded {
        content,
        model: parsed.model,
        id: parsed.id,
        usage: parsed.usage.map(|u| (u.tokens(), None)),
        finish_reason: parsed.stop_reason,
    })
}

/// The named events of a Messages API stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum EventType {
    Ping,
    MessageStart,
    ContentBlockStart,
    ContentBlockDelta,
    ContentBlockStop,
    MessageDelta,
    MessageStop,
    Error,
    /// An event type added to the API after this was written: read, then ignored.
    Unknown,
}

impl EventType {
    fn of(name: &str) -> EventType {
        match name {
            "ping" => EventType::Ping,
            "message_start" => EventType::MessageStart,
            "content_block_start" => EventType::ContentBlockStart,
            "content_block_delta" => EventType::ContentBlockDelta,
            "content_block_stop" => EventType::ContentBlockStop,
            "message_delta" => EventType::MessageDelta,
            "message_stop" => EventType::MessageStop,
            "error" => EventType::Error,
            _unknown => EventType::Unknown,
        }
    }
}

/// A Messages API stream, decoded one named event at a time.
#[derive(Default)]
pub struct StreamDecoder {
    decoded: Decoded,
    usage: Option<Usage>,
    stopped: bool,
}

impl StreamDecoder {
    pub fn new() -> StreamDecoder {
        StreamDecoder::default()
    }

    /// Reads one event (`event` is its name), passing each text delta to `on_text`;
    /// `Ok(true)` at `message_stop`.
    pub fn feed(
        &mut self,
        event: &str,
        data: &str,
        mut on_text: impl FnMut(&str),
    ) -> Result<bool, ProviderError> {
        let kind = EventType::of(event);
        if kind == EventType::Ping {
            return Ok(false);
        }
        let data: Value = serde_json::from_str(data)
            .map_err(|e| ProviderError::invalid_because(format!("malformed `{event}` event"), e))?;
        match kind {
            EventType::MessageStart => {
                let message = &data["message"];
                if self.decoded.id.is_none() {
                    self.decoded.id = message["id"].as_str().map(str::to_owned);
                }
                self.decoded.model = message["model"].as_str().map(str::to_owned);
                self.usage = serde_json::from_value(message["usage"].clone()).ok();
            }
            EventType::ContentBlockDelta => {
                let delta = &data["delta"];
                let text = delta["text"]
                    .as_str()
                    .filter(|_| delta["type"] == "text_delta");
                if let Some(text) = text {
                    on_text(text);
                    self.decoded.content.push_str(text);
                }
            }
            EventType::MessageDelta => {
                if let Some(reason) = data["delta"]["stop_reason"].as_str() {
                    self.decoded.finish_reason = Some(reason.to_owned());
                }
                if let Some(output) = data["usage"]["output_tokens"].as_u64() {
                    let mut usage = self.usage.unwrap_or_default();
                    usage.output_tokens = output;
                    self.usage = Some(usage);
                }
            }
            EventType::MessageStop => {
                self.stopped = true;
                return Ok(true);
            }
            EventType::Error => return Err(map_error_type(&data["error"], None)),
            EventType::Ping
            | EventType::ContentBlockStart
            | EventType::ContentBlockStop
            | EventType::Unknown => {}
        }
        Ok(false)
    }

    /// The whole answer, once the stream has said `message_stop`.
    pub fn finish(self) -> Result<Decoded, ProviderError> {
        if !self.stopped {
            return Err(ProviderError::network("stream ended before message_stop"));
        }
        Ok(Decoded {
            usage: self.usage.map(|u| (u.tokens(), None)),
            ..self.decoded
        })
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
        let decoded = decode_response(&bytes)?;
        Ok(decoded.into_completion(request, started, request_id, rate_limit))
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
        let request_id = header(response.headers(), "request-id");
        let rate_limit = anthropic_hint(response.headers());
        let mut events = events(response, idle);
        let mut decoder = StreamDecoder::new();
        while let Some(event) = events.next().await {
            let event = event?;
            if decoder.feed(&event.event, &event.data, |text| cx.send_chunk(text))? {
                break;
            }
        }
        let decoded = decoder.finish()?;
        Ok(decoded.into_completion(request, started, request_id, rate_limit))
    }
}

/// The `type` of an Anthropic error object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ErrorType {
    Authentication,
    Permission,
    RateLimit,
    Overloaded,
    Timeout,
    InvalidRequest,
    NotFound,
    RequestTooLarge,
    Billing,
    Api,
    Unknown,
}

impl ErrorType {
    fn of(kind: &str) -> ErrorType {
        match kind {
            "authentication_error" => ErrorType::Authentication,
            "permission_error" => ErrorType::Permission,
            "rate_limit_error" => ErrorType::RateLimit,
            "overloaded_error" => ErrorType::Overloaded,
            "timeout_error" => ErrorType::Timeout,
            "invalid_request_error" => ErrorType::InvalidRequest,
            "not_found_error" => ErrorType::NotFound,
            "request_too_large" => ErrorType::RequestTooLarge,
            "billing_error" => ErrorType::Billing,
            "api_error" => ErrorType::Api,
            _unknown => ErrorType::Unknown,
        }
    }
}

/// An Anthropic error object (`{"type": "overloaded_error", "message": …}`) by its type.
pub fn map_error_type(error: &Value, retry_after: Option<Duration>) -> ProviderError {
    let kind = error["type"].as_str().unwrap_or_default();
    let message = format!(
        "{kind}: {}",
        error["message"].as_str().unwrap_or("no message")
    );
    match ErrorType::of(kind) {
        ErrorType::Authentication | ErrorType::Permission => ProviderError::Auth(message),
        ErrorType::RateLimit => ProviderError::RateLimited {
            retry_after,
            message,
        },
        ErrorType::Overloaded => ProviderError::Overloaded(message),
        ErrorType::Timeout => ProviderError::timeout(message),
        ErrorType::InvalidRequest
        | ErrorType::NotFound
        | ErrorType::RequestTooLarge
        | ErrorType::Billing => ProviderError::BadRequest(message),
        ErrorType::Api => ProviderError::Server(message),
        // A type llmflow does not know yet: the provider failed on its side, so it counts as a
        // (retryable) server error.
        ErrorType::Unknown => ProviderError::Server(message),
    }
}

/// Anthropic's statuses: 401/403 auth, 429 rate limited (with `retry-after`), 529 overloaded,
/// 504 timeout, other 5xx server, other 4xx bad request. A status that is not an error at all
/// (1xx, 3xx) is an answer llmflow cannot read.
pub fn map_status(status: StatusCode, retry_after: Option<Duration>, body: &str) -> ProviderError {
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
        400 | 402 | 404..=428 | 430..=499 => ProviderError::BadRequest(message),
        503 | 529 => ProviderError::Overloaded(message),
        504 => ProviderError::timeout(message),
        500..=502 | 505..=528 | 530..=599 => ProviderError::Server(message),
        0..=399 | 600..=u16::MAX => ProviderError::invalid(format!("unexpected status {message}")),
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

    #[test]
    fn unknown_types_and_statuses_are_classified() {
        let error = |kind: &str| map_error_type(&json!({"type": kind, "message": "m"}), None);
        assert_eq!(error("api_error").kind(), "server");
        assert_eq!(error("brand_new_error").kind(), "server");
        assert_eq!(error("not_found_error").kind(), "bad_request");
        let status =
            |code: u16| map_status(StatusCode::from_u16(code).expect("status"), None, "").kind();
        assert_eq!(status(302), "invalid_response");
        assert_eq!(status(504), "timeout");
        assert_eq!(status(418), "bad_request");
        assert_eq!(status(599), "server");
        assert_eq!(status(999), "invalid_response");
    }

    #[test]
    fn decoded_usage_saturates_and_streams_need_their_stop() {
        let body = br#"{"content": [{"type": "text", "text": "hi"}], "usage": {"input_tokens": 18446744073709551615, "cache_read_input_tokens": 1}}"#;
        let decoded = decode_response(body).expect("decodes");
        let (usage, _) = decoded.usage.expect("usage");
        assert_eq!(usage.input_tokens, u64::MAX);
        let error = decode_response(b"{").expect_err("not JSON");
        assert!(std::error::Error::source(&error).is_some());

        let mut stream = StreamDecoder::new();
        let mut text = String::new();
        let delta = r#"{"delta": {"type": "text_delta", "text": "Hi"}}"#;
        assert!(!stream
            .feed("content_block_delta", delta, |t| text.push_str(t))
            .expect("a delta"));
        assert!(!stream
            .feed("ping", "not JSON", |_| {})
            .expect("pings are skipped"));
        assert!(!stream
            .feed("later_event", "{}", |_| {})
            .expect("unknown events are skipped"));
        assert_eq!(text, "Hi");
        assert_eq!(
            StreamDecoder::new().finish().expect_err("no stop").kind(),
            "network"
        );
        assert!(stream.feed("message_stop", "{}", |_| {}).expect("the stop"));
        assert_eq!(stream.finish().expect("finished").content, "Hi");
    }
}
