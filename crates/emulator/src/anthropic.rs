//! `POST /v1/messages`: the Anthropic Messages API wire format (JSON and named SSE events).

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, HttpResponseBuilder};
use bytes::Bytes;
use chrono::{SecondsFormat, Utc};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::content::{content_text, count_tokens, split_chunks, Conversation, Format, Role};
use crate::sse::{self, Ending};
use crate::state::{Action, CallGuard, CallKind, Shared};

const LIMIT_REQUESTS: u64 = 4_000;
const LIMIT_INPUT_TOKENS: u64 = 2_000_000;
const LIMIT_OUTPUT_TOKENS: u64 = 400_000;

#[derive(Deserialize)]
struct MessagesRequest {
    model: Option<String>,
    messages: Option<Vec<Message>>,
    system: Option<Value>,
    max_tokens: Option<u64>,
    temperature: Option<f64>,
    stream: Option<bool>,
}

#[derive(Deserialize)]
struct Message {
    role: String,
    content: Value,
}

/// The error type Anthropic uses for an HTTP status.
fn error_type(status: u16) -> &'static str {
    match status {
        400 => "invalid_request_error",
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        504 => "timeout_error",
        529 | 503 => "overloaded_error",
        _ => "api_error",
    }
}

fn default_message(status: u16) -> &'static str {
    match status {
        400 => "Bad request (scripted by llmflow-emulator).",
        401 => "invalid x-api-key",
        403 => "Your API key does not have permission to use the specified resource.",
        404 => "The requested resource could not be found.",
        429 => "Number of request tokens has exceeded your per-minute rate limit.",
        529 | 503 => "Overloaded",
        _ => "Internal server error",
    }
}

/// An Anthropic error body: `{"type": "error", "error": {"type", "message"}, "request_id"}`.
fn error_body(kind: &str, message: &str, request_id: &str) -> Value {
    json!({
        "type": "error",
        "error": {"type": kind, "message": message},
        "request_id": request_id,
    })
}

/// Per-call response metadata.
struct ReplyMeta {
    request_id: String,
    input_tokens: u64,
    output_tokens: u64,
}

impl ReplyMeta {
    fn builder(&self, status: StatusCode, retry_after: Option<u64>) -> HttpResponseBuilder {
        let now = Utc::now();
        let reset =
            now + chrono::Duration::seconds(i64::try_from(retry_after.unwrap_or(1)).unwrap_or(1));
        let reset = reset.to_rfc3339_opts(SecondsFormat::Secs, true);
        let limited = retry_after.is_some();
        let remaining_requests = if limited { 0 } else { LIMIT_REQUESTS - 1 };
        let remaining_in = LIMIT_INPUT_TOKENS.saturating_sub(self.input_tokens);
        let remaining_out = LIMIT_OUTPUT_TOKENS.saturating_sub(self.output_tokens);
        let mut b = HttpResponse::build(status);
        b.insert_header(("request-id", self.request_id.as_str()))
            .insert_header((
                "anthropic-ratelimit-requests-limit",
                LIMIT_REQUESTS.to_string(),
            ))
            .insert_header((
                "anthropic-ratelimit-requests-remaining",
                remaining_requests.to_string(),
            ))
            .insert_header(("anthropic-ratelimit-requests-reset", reset.as_str()))
            .insert_header((
                "anthropic-ratelimit-input-tokens-limit",
                LIMIT_INPUT_TOKENS.to_string(),
            ))
            .insert_header((
                "anthropic-ratelimit-input-tokens-remaining",
                remaining_in.to_string(),
            ))
            .insert_header(("anthropic-ratelimit-input-tokens-reset", reset.as_str()))
            .insert_header((
                "anthropic-ratelimit-output-tokens-limit",
                LIMIT_OUTPUT_TOKENS.to_string(),
            ))
            .insert_header((
                "anthropic-ratelimit-output-tokens-remaining",
                remaining_out.to_string(),
            ))
            .insert_header(("anthropic-ratelimit-output-tokens-reset", reset.as_str()))
            .insert_header((
                "anthropic-ratelimit-tokens-limit",
                (LIMIT_INPUT_TOKENS + LIMIT_OUTPUT_TOKENS).to_string(),
            ))
            .insert_header((
                "anthropic-ratelimit-tokens-remaining",
                (remaining_in + remaining_out).to_string(),
            ))
            .insert_header(("anthropic-ratelimit-tokens-reset", reset.as_str()));
        if let Some(secs) = retry_after {
            b.insert_header(("retry-after", secs.to_string()));
        }
        b
    }

    fn error(&self, status: u16, retry_after: Option<u64>, body: Option<Value>) -> HttpResponse {
        let body = body.unwrap_or_else(|| {
            error_body(
                error_type(status),
                default_message(status),
                &self.request_id,
            )
        });
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        self.builder(status, retry_after).json(body)
    }

    fn invalid(&self, status: u16, message: &str) -> HttpResponse {
        let body = error_body(error_type(status), message, &self.request_id);
        self.error(status, None, Some(body))
    }
}

/// A validated request.
struct Parsed {
    model: String,
    conversation: Conversation,
    max_tokens: u64,
    stream: bool,
}

fn check_headers(req: &HttpRequest) -> Result<(), (u16, &'static str)> {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    if header("x-api-key").is_none() {
        return Err((401, "x-api-key header is required"));
    }
    if header("anthropic-version").is_none() {
        return Err((400, "anthropic-version: header is required"));
    }
    Ok(())
}

fn parse(body: &[u8]) -> Result<Parsed, String> {
    let request: MessagesRequest =
        serde_json::from_slice(body).map_err(|e| format!("invalid JSON body: {e}"))?;
    let model = request
        .model
        .filter(|m| !m.is_empty())
        .ok_or("model: Field required")?;
    let messages = request.messages.ok_or("messages: Field required")?;
    let max_tokens = request.max_tokens.ok_or("max_tokens: Field required")?;
    if max_tokens == 0 {
        return Err("max_tokens: Input should be greater than or equal to 1".into());
    }
    if messages.is_empty() {
        return Err("messages: at least one message is required".into());
    }
    if let Some(t) = request.temperature.filter(|t| !(0.0..=1.0).contains(t)) {
        return Err(format!("temperature: range: 0..1 (got {t})"));
    }
    let mut conversation = Conversation::default();
    match &request.system {
        None | Some(Value::Null) => {}
        Some(system @ (Value::String(_) | Value::Array(_))) => {
            conversation.push(Role::System, content_text(system));
        }
        Some(_) => return Err("system: Input should be a valid string or list of blocks".into()),
    }
    for (i, message) in messages.iter().enumerate() {
        let role = match message.role.as_str() {
            "user" => Role::User,
            "assistant" => Role::Assistant,
            other => {
                return Err(format!(
                    "messages.{i}.role: Input should be 'user' or 'assistant' (got '{other}')"
                ))
            }
        };
        conversation.push(role, content_text(&message.content));
    }
    Ok(Parsed {
        model,
        conversation,
        max_tokens,
        stream: request.stream.unwrap_or(false),
    })
}

fn usage(input_tokens: u64, output_tokens: u64) -> Value {
    json!({
        "input_tokens": input_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": output_tokens,
        "service_tier": "standard",
    })
}

/// Everything needed to render the reply.
struct Reply<'a> {
    parsed: &'a Parsed,
    id: String,
    text: String,
    input_tokens: u64,
    output_tokens: u64,
}

impl Reply<'_> {
    fn message(&self) -> Value {
        json!({
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.parsed.model,
            "content": [{"type": "text", "text": self.text}],
            "stop_reason": "end_turn",
            "stop_sequence": null,
            "usage": usage(self.input_tokens, self.output_tokens),
        })
    }

    /// `message_start`, `content_block_start`, `ping` and at most `limit` text deltas.
    fn opening_events(&self, limit: usize) -> Vec<Bytes> {
        let start = json!({
            "type": "message_start",
            "message": {
                "id": self.id,
                "type": "message",
                "role": "assistant",
                "model": self.parsed.model,
                "content": [],
                "stop_reason": null,
                "stop_sequence": null,
                "usage": usage(self.input_tokens, 1),
            },
        });
        let mut events = vec![
            sse::event(Some("message_start"), &start),
            sse::event(
                Some("content_block_start"),
                &json!({"type": "content_block_start", "index": 0,
                        "content_block": {"type": "text", "text": ""}}),
            ),
            sse::event(Some("ping"), &json!({"type": "ping"})),
        ];
        events.extend(
            split_chunks(&self.text)
                .into_iter()
                .take(limit)
                .map(|piece| {
                    sse::event(
                        Some("content_block_delta"),
                        &json!({"type": "content_block_delta", "index": 0,
                        "delta": {"type": "text_delta", "text": piece}}),
                    )
                }),
        );
        events
    }

    fn full_stream(&self) -> Vec<Bytes> {
        let mut events = self.opening_events(usize::MAX);
        events.push(sse::event(
            Some("content_block_stop"),
            &json!({"type": "content_block_stop", "index": 0}),
        ));
        events.push(sse::event(
            Some("message_delta"),
            &json!({"type": "message_delta",
                    "delta": {"stop_reason": "end_turn", "stop_sequence": null},
                    "usage": {"output_tokens": self.output_tokens}}),
        ));
        events.push(sse::event(
            Some("message_stop"),
            &json!({"type": "message_stop"}),
        ));
        events
    }
}

fn finish(guard: CallGuard, response: HttpResponse) -> HttpResponse {
    guard.finish();
    response
}

/// Handler for `POST /v1/messages`.
pub(crate) async fn messages(
    req: HttpRequest,
    body: web::Bytes,
    shared: web::Data<Arc<Shared>>,
) -> HttpResponse {
    let guard = shared.begin_call(&req, CallKind::Llm);
    let mut meta = ReplyMeta {
        request_id: format!("req_01{}", uuid::Uuid::new_v4().simple()),
        input_tokens: 0,
        output_tokens: 0,
    };
    if let Err((status, message)) = check_headers(&req) {
        return finish(guard, meta.invalid(status, message));
    }
    let parsed = match parse(&body) {
        Ok(parsed) => parsed,
        Err(message) => return finish(guard, meta.invalid(400, &message)),
    };
    shared.record_model(&parsed.model);
    meta.input_tokens = parsed.conversation.prompt_tokens();
    let mut plan = shared.plan(&req, CallKind::Llm);
    plan.apply_latency_directive(parsed.conversation.latency_directive());
    tracing::debug!(model = %parsed.model, stream = parsed.stream, action = ?plan.action, "anthropic message");
    plan.wait(&shared).await;

    let text = match plan.action {
        Action::Status {
            status,
            retry_after,
            body,
        } => return finish(guard, meta.error(status, retry_after, body)),
        Action::InjectedError => return finish(guard, meta.error(500, None, None)),
        Action::ErrorMidStream if !parsed.stream => {
            return finish(guard, meta.error(500, None, None))
        }
        Action::DropMidStream if !parsed.stream => return sse::drop_connection(guard),
        Action::Content(ref text) => text.clone(),
        _ => {
            let schema = parsed.conversation.schema_in_text();
            let format = match &schema {
                Some(schema) => Format::JsonSchema(schema),
                None if parsed.conversation.asks_for_json() => Format::JsonObject,
                None => Format::Text,
            };
            parsed.conversation.reply(format)
        }
    };
    meta.output_tokens = count_tokens(&text).min(parsed.max_tokens);
    let reply = Reply {
        parsed: &parsed,
        id: format!("msg_01{}", uuid::Uuid::new_v4().simple()),
        text,
        input_tokens: meta.input_tokens,
        output_tokens: meta.output_tokens,
    };
    if !parsed.stream {
        let response = meta.builder(StatusCode::OK, None).json(reply.message());
        return finish(guard, response);
    }
    let (events, ending) = match plan.action {
        Action::DropMidStream => (reply.opening_events(2), Ending::Abort),
        Action::ErrorMidStream => {
            let mut events = reply.opening_events(2);
            let error = error_body("overloaded_error", "Overloaded", &meta.request_id);
            events.push(sse::event(Some("error"), &error));
            (events, Ending::Complete)
        }
        _ => (reply.full_stream(), Ending::Complete),
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
    fn parse_requires_max_tokens_and_valid_roles() {
        let missing = parse(br#"{"model":"claude","messages":[{"role":"user","content":"x"}]}"#);
        assert_eq!(missing.err().as_deref(), Some("max_tokens: Field required"));
        let bad_role =
            parse(br#"{"model":"c","max_tokens":5,"messages":[{"role":"system","content":"x"}]}"#);
        assert!(bad_role.is_err());
        let ok = parse(
            br#"{"model":"c","max_tokens":5,"system":[{"type":"text","text":"Answer in JSON"}],
                 "messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}]}"#,
        )
        .expect("valid request");
        assert!(ok.conversation.asks_for_json());
        assert_eq!(ok.conversation.last_user(), "hi");
    }

    #[test]
    fn error_types_follow_anthropic() {
        assert_eq!(error_type(429), "rate_limit_error");
        assert_eq!(error_type(529), "overloaded_error");
        assert_eq!(error_type(500), "api_error");
    }
}
