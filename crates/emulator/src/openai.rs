//! `POST /v1/chat/completions`: the OpenAI Chat Completions wire format, and OpenRouter's
//! OpenAI-compatible variant (selected by a `vendor/model` name) with `usage.cost`,
//! `provider` and OpenRouter's error shape.

use std::sync::Arc;
use std::time::Instant;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, HttpResponseBuilder};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::content::{content_text, count_tokens, split_chunks, Conversation, Format, Role};
use crate::sse::{self, Ending};
use crate::state::{Action, CallGuard, CallKind, Shared};

const LIMIT_REQUESTS: u64 = 10_000;
const LIMIT_TOKENS: u64 = 30_000_000;
const FINGERPRINT: &str = "fp_emulator";

/// USD per million (prompt, completion) tokens for the OpenRouter models the emulator knows.
const PRICES: &[(&str, f64, f64)] = &[
    ("openai/gpt-4o-mini", 0.15, 0.60),
    ("openai/gpt-4o", 2.50, 10.00),
    ("openai/gpt-4.1", 2.00, 8.00),
    ("openai/gpt-4.1-mini", 0.40, 1.60),
    ("openai/gpt-4.1-nano", 0.10, 0.40),
    ("openai/gpt-5-mini", 0.25, 2.00),
    ("anthropic/claude-3.5-haiku", 0.80, 4.00),
    ("anthropic/claude-3.5-sonnet", 3.00, 15.00),
    ("anthropic/claude-sonnet-4", 3.00, 15.00),
    ("anthropic/claude-3-haiku", 0.25, 1.25),
    ("google/gemini-2.0-flash-001", 0.10, 0.40),
    ("google/gemini-2.5-flash", 0.30, 2.50),
    ("meta-llama/llama-3.1-8b-instruct", 0.02, 0.03),
    ("mistralai/mistral-small", 0.20, 0.60),
];

/// USD per token for models missing from the price map (0.0001 per 1k tokens).
const UNKNOWN_PRICE_PER_TOKEN: f64 = 0.0001 / 1000.0;

/// The `usage.cost` (USD) the emulator reports for an OpenRouter model: a small built-in price
/// map, `:free` variants cost 0, unknown models cost 0.0001 USD per 1k tokens.
pub fn openrouter_cost(model: &str, prompt_tokens: u64, completion_tokens: u64) -> f64 {
    let (base, variant) = model.split_once(':').unwrap_or((model, ""));
    if variant == "free" {
        return 0.0;
    }
    let (p, c) = (prompt_tokens as f64, completion_tokens as f64);
    match PRICES.iter().find(|(name, _, _)| *name == base) {
        Some((_, input, output)) => (p * input + c * output) / 1_000_000.0,
        None => (p + c) * UNKNOWN_PRICE_PER_TOKEN,
    }
}

/// Whether a model name selects the OpenRouter flavour (`vendor/model`).
fn is_openrouter(model: &str) -> bool {
    model.contains('/')
}

/// OpenRouter's display name for the upstream provider of a `vendor/model` name.
fn provider_name(model: &str) -> String {
    let vendor = model.split('/').next().unwrap_or_default();
    match vendor {
        "openai" => "OpenAI".to_owned(),
        "anthropic" => "Anthropic".to_owned(),
        "google" => "Google".to_owned(),
        "meta-llama" => "Meta".to_owned(),
        "mistralai" => "Mistral".to_owned(),
        other => {
            let mut chars = other.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_uppercase().chain(chars).collect()
            })
        }
    }
}

#[derive(Deserialize)]
struct ChatRequest {
    model: Option<String>,
    messages: Option<Vec<ChatMessage>>,
    temperature: Option<f64>,
    max_tokens: Option<u64>,
    max_completion_tokens: Option<u64>,
    response_format: Option<Value>,
    stream: Option<bool>,
    stream_options: Option<StreamOptions>,
    /// OpenRouter usage accounting: `{"include": true}`.
    usage: Option<UsageOptions>,
}

#[derive(Deserialize)]
struct ChatMessage {
    role: String,
    #[serde(default)]
    content: Value,
}

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

#[derive(Deserialize)]
struct UsageOptions {
    #[serde(default)]
    include: bool,
}

/// An OpenAI-shaped error: `{"error": {"message", "type", "param", "code"}}`.
fn openai_error(message: &str, kind: &str, param: Option<&str>, code: Option<&str>) -> Value {
    json!({"error": {"message": message, "type": kind, "param": param, "code": code}})
}

/// The default error body for a status, in the OpenAI or OpenRouter shape.
fn default_error(status: u16, model: &str) -> Value {
    let (message, kind, code) = match status {
        400 => (
            "Bad request (scripted by llmflow-emulator).",
            "invalid_request_error",
            None,
        ),
        401 => (
            "Incorrect API key provided.",
            "invalid_request_error",
            Some("invalid_api_key"),
        ),
        403 => (
            "You are not allowed to sample from this model.",
            "invalid_request_error",
            None,
        ),
        404 => (
            "The model does not exist or you do not have access to it.",
            "invalid_request_error",
            Some("model_not_found"),
        ),
        429 => (
            "Rate limit reached for requests. Please try again later.",
            "requests",
            Some("rate_limit_exceeded"),
        ),
        502 | 503 | 529 => (
            "The server is overloaded, please try again later.",
            "overloaded_error",
            Some("overloaded"),
        ),
        _ => (
            "The server had an error while processing your request. Sorry about that!",
            "server_error",
            None,
        ),
    };
    if is_openrouter(model) {
        json!({"error": {"code": status, "message": message,
                         "metadata": {"provider_name": provider_name(model)}}})
    } else {
        openai_error(message, kind, None, code)
    }
}

/// Per-call response metadata: ids and the headers every reply carries.
struct ReplyMeta {
    request_id: String,
    started: Instant,
    prompt_tokens: u64,
}

impl ReplyMeta {
    fn builder(&self, status: StatusCode, retry_after: Option<u64>) -> HttpResponseBuilder {
        let mut b = HttpResponse::build(status);
        let remaining_requests = if retry_after.is_some() {
            0
        } else {
            LIMIT_REQUESTS - 1
        };
        let reset_requests = retry_after.map_or_else(|| "6ms".to_owned(), |s| format!("{s}s"));
        b.insert_header(("x-request-id", self.request_id.as_str()))
            .insert_header(("openai-version", "2020-10-01"))
            .insert_header((
                "openai-processing-ms",
                self.started.elapsed().as_millis().to_string(),
            ))
            .insert_header(("x-ratelimit-limit-requests", LIMIT_REQUESTS.to_string()))
            .insert_header((
                "x-ratelimit-remaining-requests",
                remaining_requests.to_string(),
            ))
            .insert_header(("x-ratelimit-reset-requests", reset_requests))
            .insert_header(("x-ratelimit-limit-tokens", LIMIT_TOKENS.to_string()))
            .insert_header((
                "x-ratelimit-remaining-tokens",
                LIMIT_TOKENS.saturating_sub(self.prompt_tokens).to_string(),
            ))
            .insert_header(("x-ratelimit-reset-tokens", "0s"));
        if let Some(secs) = retry_after {
            b.insert_header(("retry-after", secs.to_string()));
        }
        b
    }

    fn error(&self, status: u16, retry_after: Option<u64>, body: &Value) -> HttpResponse {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        self.builder(status, retry_after).json(body)
    }
}

/// A validated request.
struct Parsed {
    model: String,
    conversation: Conversation,
    max_tokens: Option<u64>,
    response_format: Option<Value>,
    stream: bool,
    include_usage: bool,
}

fn check_auth(req: &HttpRequest) -> Result<(), Value> {
    let header = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    match header.strip_prefix("Bearer ") {
        Some(key) if !key.trim().is_empty() => Ok(()),
        Some(_) => Err(openai_error(
            "Incorrect API key provided: ''. You can find your API key at https://platform.openai.com/account/api-keys.",
            "invalid_request_error",
            None,
            Some("invalid_api_key"),
        )),
        None => Err(openai_error(
            "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            "invalid_request_error",
            None,
            None,
        )),
    }
}

fn parse(body: &[u8]) -> Result<Parsed, Value> {
    let request: ChatRequest = serde_json::from_slice(body).map_err(|e| {
        openai_error(
            &format!(
                "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload.) Details: {e}"
            ),
            "invalid_request_error",
            None,
            None,
        )
    })?;
    let model = request.model.filter(|m| !m.is_empty()).ok_or_else(|| {
        openai_error(
            "you must provide a model parameter",
            "invalid_request_error",
            None,
            None,
        )
    })?;
    let messages = request.messages.ok_or_else(|| {
        openai_error(
            "Missing required parameter: 'messages'.",
            "invalid_request_error",
            Some("messages"),
            Some("missing_required_parameter"),
        )
    })?;
    if messages.is_empty() {
        return Err(openai_error(
            "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.",
            "invalid_request_error",
            Some("messages"),
            Some("empty_array"),
        ));
    }
    if let Some(t) = request.temperature.filter(|t| !(0.0..=2.0).contains(t)) {
        return Err(openai_error(
            &format!(
                "Invalid 'temperature': expected a value between 0 and 2, but got {t} instead."
            ),
            "invalid_request_error",
            Some("temperature"),
            Some("invalid_value"),
        ));
    }
    if let Some(format) = &request.response_format {
        let kind = format.get("type").and_then(Value::as_str);
        if !matches!(kind, Some("text" | "json_object" | "json_schema")) {
            return Err(openai_error(
                "Invalid value for 'response_format.type'. Supported values are: 'json_object', 'json_schema', and 'text'.",
                "invalid_request_error",
                Some("response_format.type"),
                Some("invalid_value"),
            ));
        }
        if kind == Some("json_schema") && format.pointer("/json_schema/name").is_none() {
            return Err(openai_error(
                "Missing required parameter: 'response_format.json_schema.name'.",
                "invalid_request_error",
                Some("response_format.json_schema.name"),
                Some("missing_required_parameter"),
            ));
        }
    }
    let mut conversation = Conversation::default();
    for message in &messages {
        let role = match message.role.as_str() {
            "system" | "developer" => Role::System,
            "user" => Role::User,
            "assistant" => Role::Assistant,
            _ => Role::Other,
        };
        conversation.push(role, content_text(&message.content));
    }
    let include_usage = request.stream_options.is_some_and(|o| o.include_usage)
        || request.usage.is_some_and(|u| u.include);
    Ok(Parsed {
        model,
        conversation,
        max_tokens: request.max_completion_tokens.or(request.max_tokens),
        response_format: request.response_format,
        stream: request.stream.unwrap_or(false),
        include_usage,
    })
}

/// Everything needed to render the reply objects.
struct Completion<'a> {
    parsed: &'a Parsed,
    id: String,
    created: i64,
    content: String,
    prompt_tokens: u64,
    completion_tokens: u64,
}

impl Completion<'_> {
    fn openrouter(&self) -> bool {
        is_openrouter(&self.parsed.model)
    }

    fn usage(&self) -> Value {
        let (p, c) = (self.prompt_tokens, self.completion_tokens);
        if self.openrouter() {
            json!({
                "prompt_tokens": p,
                "completion_tokens": c,
                "total_tokens": p + c,
                "cost": openrouter_cost(&self.parsed.model, p, c),
                "is_byok": false,
                "prompt_tokens_details": {"cached_tokens": 0},
                "cost_details": {"upstream_inference_cost": null},
                "completion_tokens_details": {"reasoning_tokens": 0},
            })
        } else {
            json!({
                "prompt_tokens": p,
                "completion_tokens": c,
                "total_tokens": p + c,
                "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                "completion_tokens_details": {
                    "reasoning_tokens": 0,
                    "audio_tokens": 0,
                    "accepted_prediction_tokens": 0,
                    "rejected_prediction_tokens": 0,
                },
            })
        }
    }

    /// The non-streaming `chat.completion` object.
    fn object(&self) -> Value {
        let mut body = json!({
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.parsed.model,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": self.content, "refusal": null},
                "logprobs": null,
                "finish_reason": "stop",
            }],
            "usage": self.usage(),
            "system_fingerprint": FINGERPRINT,
        });
        if self.openrouter() {
            body["provider"] = json!(provider_name(&self.parsed.model));
            body["choices"][0]["native_finish_reason"] = json!("stop");
        } else {
            body["service_tier"] = json!("default");
            body["choices"][0]["message"]["annotations"] = json!([]);
        }
        body
    }

    /// One `chat.completion.chunk` with a single choice.
    fn chunk(&self, delta: Value, finish_reason: Option<&str>) -> Bytes {
        let mut chunk = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.parsed.model,
            "system_fingerprint": FINGERPRINT,
            "choices": [{
                "index": 0,
                "delta": delta,
                "logprobs": null,
                "finish_reason": finish_reason,
            }],
        });
        if self.openrouter() {
            chunk["provider"] = json!(provider_name(&self.parsed.model));
            chunk["choices"][0]["native_finish_reason"] = json!(finish_reason);
        } else if self.parsed.include_usage {
            chunk["usage"] = Value::Null;
        }
        sse::event(None, &chunk)
    }

    fn usage_chunk(&self) -> Bytes {
        let mut chunk = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.parsed.model,
            "system_fingerprint": FINGERPRINT,
            "choices": [],
            "usage": self.usage(),
        });
        if self.openrouter() {
            chunk["provider"] = json!(provider_name(&self.parsed.model));
        }
        sse::event(None, &chunk)
    }

    /// The role chunk followed by at most `limit` content chunks.
    fn opening_chunks(&self, limit: usize) -> Vec<Bytes> {
        let mut events = vec![self.chunk(
            json!({"role": "assistant", "content": "", "refusal": null}),
            None,
        )];
        events.extend(
            split_chunks(&self.content)
                .into_iter()
                .take(limit)
                .map(|piece| self.chunk(json!({"content": piece}), None)),
        );
        events
    }

    fn full_stream(&self) -> Vec<Bytes> {
        let mut events = self.opening_chunks(usize::MAX);
        events.push(self.chunk(json!({}), Some("stop")));
        if self.parsed.include_usage {
            events.push(self.usage_chunk());
        }
        events.push(sse::raw_data("[DONE]"));
        events
    }
}

fn reply_format(response_format: Option<&Value>) -> Format<'_> {
    let Some(format) = response_format else {
        return Format::Text;
    };
    match format.get("type").and_then(Value::as_str) {
        Some("json_schema") => match format.pointer("/json_schema/schema") {
            Some(schema) => Format::JsonSchema(schema),
            None => Format::JsonObject,
        },
        Some("json_object") => Format::JsonObject,
        _ => Format::Text,
    }
}

fn finish(guard: CallGuard, response: HttpResponse) -> HttpResponse {
    guard.finish();
    response
}

/// Handler for `POST /v1/chat/completions`.
pub(crate) async fn chat_completions(
    req: HttpRequest,
    body: web::Bytes,
    shared: web::Data<Arc<Shared>>,
) -> HttpResponse {
    let guard = shared.begin_call(&req, CallKind::Llm);
    let mut meta = ReplyMeta {
        request_id: format!("req_{}", uuid::Uuid::new_v4().simple()),
        started: Instant::now(),
        prompt_tokens: 0,
    };
    if let Err(body) = check_auth(&req) {
        return finish(guard, meta.error(401, None, &body));
    }
    let parsed = match parse(&body) {
        Ok(parsed) => parsed,
        Err(body) => return finish(guard, meta.error(400, None, &body)),
    };
    shared.record_model(&parsed.model);
    meta.prompt_tokens = parsed.conversation.prompt_tokens();
    let mut plan = shared.plan(&req, CallKind::Llm);
    plan.apply_latency_directive(parsed.conversation.latency_directive());
    tracing::debug!(model = %parsed.model, stream = parsed.stream, action = ?plan.action, "chat completion");
    plan.wait(&shared).await;

    let content = match plan.action {
        Action::Status {
            status,
            retry_after,
            body,
        } => {
            let body = body.unwrap_or_else(|| default_error(status, &parsed.model));
            return finish(guard, meta.error(status, retry_after, &body));
        }
        Action::InjectedError => {
            let body = default_error(500, &parsed.model);
            return finish(guard, meta.error(500, None, &body));
        }
        Action::ErrorMidStream if !parsed.stream => {
            let body = default_error(500, &parsed.model);
            return finish(guard, meta.error(500, None, &body));
        }
        Action::DropMidStream if !parsed.stream => return sse::drop_connection(guard),
        Action::Content(ref text) => text.clone(),
        _ => parsed
            .conversation
            .reply(reply_format(parsed.response_format.as_ref())),
    };
    let completion_tokens = count_tokens(&content).min(parsed.max_tokens.unwrap_or(u64::MAX));
    let prefix = if is_openrouter(&parsed.model) {
        "gen-"
    } else {
        "chatcmpl-"
    };
    let completion = Completion {
        parsed: &parsed,
        id: format!("{prefix}{}", uuid::Uuid::new_v4().simple()),
        created: chrono::Utc::now().timestamp(),
        content,
        prompt_tokens: meta.prompt_tokens,
        completion_tokens,
    };
    if !parsed.stream {
        let response = meta.builder(StatusCode::OK, None).json(completion.object());
        return finish(guard, response);
    }
    let (events, ending) = match plan.action {
        Action::DropMidStream => (completion.opening_chunks(2), Ending::Abort),
        Action::ErrorMidStream => {
            let mut events = completion.opening_chunks(2);
            let error = default_error(500, &parsed.model);
            events.push(sse::event(None, &error));
            (events, Ending::Complete)
        }
        _ => (completion.full_stream(), Ending::Complete),
    };
    sse::response(
        meta.builder(StatusCode::OK, None),
        events,
        plan.chunk_delay,
        ending,
        guard,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_uses_price_map_and_fallback() {
        let known = openrouter_cost("openai/gpt-4o-mini", 1_000_000, 1_000_000);
        assert!((known - 0.75).abs() < 1e-9, "{known}");
        let unknown = openrouter_cost("acme/unknown", 600, 400);
        assert!((unknown - 0.0001).abs() < 1e-12, "{unknown}");
        assert_eq!(openrouter_cost("openai/gpt-4o-mini:free", 10, 10), 0.0);
    }

    #[test]
    fn provider_names() {
        assert_eq!(provider_name("openai/gpt-4o"), "OpenAI");
        assert_eq!(provider_name("deepseek/deepseek-chat"), "Deepseek");
    }

    #[test]
    fn parse_rejects_bad_requests() {
        assert!(parse(b"{not json").is_err());
        assert!(parse(br#"{"messages":[{"role":"user","content":"x"}]}"#).is_err());
        assert!(parse(br#"{"model":"m"}"#).is_err());
        assert!(parse(br#"{"model":"m","messages":[]}"#).is_err());
        let bad_format = br#"{"model":"m","messages":[{"role":"user","content":"x"}],
                              "response_format":{"type":"yaml"}}"#;
        assert!(parse(bad_format).is_err());
        let ok = parse(
            br#"{"model":"m","messages":[{"role":"user","content":"x"}],
                          "stream":true,"usage":{"include":true}}"#,
        )
        .map_err(|e| e.to_string())
        .expect("valid request");
        assert!(ok.stream && ok.include_usage);
    }
}
