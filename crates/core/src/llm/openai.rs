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
    CallCtx, Completion, CompletionRequest, Decoded, LlmProvider, OutputFormat, ProviderError,
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

/// Token counts and (OpenRouter only) the provider's cost, as the answer reported them.
fn reported_usage(usage: Usage, flavor: Flavor) -> (TokenUsage, Option<Decimal>) {
    let cost = usage
        .cost
        .filter(|cost| flavor == Flavor::OpenRouter && cost.is_finite() && *cost >= 0.0)
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
        cost,
    )
}

/// A whole (non-streamed) chat completion's body, decoded.
pub fn decode_response(body: &[u8], flavor: Flavor) -> Result<Decoded, ProviderError> {
    let parsed: ChatResponse = serde_json::from_slice(body)
        .map_err(|e| ProviderError::invalid_because("not a chat completion", e))?;
    let (content, finish_reason) = parsed
        .choices
        .into_iter()
        .next()
        .and_then(|choice| Some((choice.message.content?, choice.finish_reason)))
        .ok_or_else(|| ProviderError::invalid("no message content"))?;
    Ok(Decoded {
        content,
        model: parsed.model,
        id: parsed.id,
        usage: parsed.usage.map(|u| reported_usage(u, flavor)),
        finish_reason,
    })
}

/// A chat completion stream, decoded one event's data at a time.
pub struct StreamDecoder {
    flavor: Flavor,
    decoded: Decoded,
    done: bool,
}

impl StreamDecoder {
    pub fn new(flavor: Flavor) -> StreamDecoder {
        StreamDecoder {
            flavor,
            decoded: Decoded::default(),
            done: false,
        }
    }

    /// Reads one event's data, passing each text delta to `on_text`; `Ok(true)` once the
    /// stream says `[DONE]`.
    pub fn feed(
        &mut self,
        data: &str,
        mut on_text: impl FnMut(&str),
    ) -> Result<bool, ProviderError> {
        let data = data.trim();
        if data == "[DONE]" {
            self.done = true;
            return Ok(true);
        }
        if data.is_empty() || data.starts_with(':') {
            return Ok(false);
        }
        let chunk: StreamChunk = serde_json::from_str(data)
            .map_err(|e| ProviderError::invalid_because("not a chat completion chunk", e))?;
        if let Some(error) = chunk.error {
            return Err(map_stream_error(&error));
        }
        let decoded = &mut self.decoded;
        if decoded.id.is_none() {
            decoded.id = chunk.id;
        }
        if decoded.model.is_none() {
            decoded.model = chunk.model;
        }
        for choice in chunk.choices {
            if choice.finish_reason.is_some() {
                decoded.finish_reason = choice.finish_reason;
            }
            if let Some(text) = choice.delta.and_then(|d| d.content) {
                on_text(&text);
                decoded.content.push_str(&text);
            }
        }
        if let Some(usage) = chunk.usage {
            decoded.usage = Some(reported_usage(usage, self.flavor));
        }
        Ok(false)
    }

    /// The whole answer, once the stream has said `[DONE]`.
    pub fn finish(self) -> Result<Decoded, ProviderError> {
        if !self.done {
            return Err(ProviderError::network("stream ended before [DONE]"));
        }
        Ok(self.decoded)
    }
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
        let decoded = decode_response(&bytes, self.flavor)?;
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
            .send(self.body(request, true), Bound::Idle(idle))
            .await?;
        let request_id = header(response.headers(), "x-request-id");
        let rate_limit = openai_hint(response.headers());
        let mut events = events(response, idle);
        let mut decoder = StreamDecoder::new(self.flavor);
        while let Some(event) = events.next().await {
            if decoder.feed(&event?.data, |text| cx.send_chunk(text))? {
                break;
            }
        }
        let decoded = decoder.finish()?;
        Ok(decoded.into_completion(request, started, request_id, rate_limit))
    }
}

/// An error object sent inside a stream (`data: {"error": {...}}`), by its numeric `code`
/// (OpenRouter) or its `type` (OpenAI).
pub fn map_stream_error(error: &Value) -> ProviderError {
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
    match StreamErrorType::of(error["type"].as_str().unwrap_or_default()) {
        StreamErrorType::Overloaded => ProviderError::Overloaded(message),
        StreamErrorType::RateLimit => ProviderError::RateLimited {
            retry_after: None,
            message,
        },
        StreamErrorType::InvalidRequest => ProviderError::BadRequest(message),
        StreamErrorType::Server => ProviderError::Server(message),
        // An error llmflow does not know, in the middle of an answer: the provider's side
        // failed, so it counts as a (retryable) server error.
        StreamErrorType::Unknown => ProviderError::Server(message),
    }
}

/// The `type` of an error object in an OpenAI-style stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StreamErrorType {
    Overloaded,
    RateLimit,
    InvalidRequest,
    Server,
    Unknown,
}

impl StreamErrorType {
    fn of(kind: &str) -> StreamErrorType {
        match kind {
            "overloaded_error" => StreamErrorType::Overloaded,
            "rate_limit_error" | "requests" | "tokens" => StreamErrorType::RateLimit,
            "invalid_request_error" => StreamErrorType::InvalidRequest,
            "server_error" | "api_error" => StreamErrorType::Server,
            _unknown => StreamErrorType::Unknown,
        }
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
/// request for us), 408 timeout, 429 rate limited, 502/503/529 overloaded, other 5xx server,
/// other 4xx bad request. A status that is not an error at all (1xx, 3xx: a redirect past the
/// client's limit) is an answer llmflow cannot read.
pub fn map_status(status: StatusCode, retry_after: Option<Duration>, body: &str) -> ProviderError {
    let message = format!("{status}: {}", error_message(body));
    match status.as_u16() {
        401 | 403 => ProviderError::Auth(message),
        408 => ProviderError::timeout(message),
        429 => ProviderError::RateLimited {
            retry_after,
            message,
        },
        400 | 402 | 404..=407 | 409..=428 | 430..=499 => ProviderError::BadRequest(message),
        502 | 503 | 529 => ProviderError::Overloaded(message),
        500 | 501 | 504..=528 | 530..=599 => ProviderError::Server(message),
        0..=399 | 600..=u16::MAX => ProviderError::invalid(format!("unexpected status {message}")),
    }
}
