//! The LLM provider abstraction: one request and response type, one error taxonomy, and one
//! file per provider behind the `LlmProvider` trait (used as `dyn`, so tests can plug in their own).

mod anthropic;
pub mod chain;
pub mod http;
pub mod limits;
mod openai;
mod openrouter;
pub mod retry;
mod stream;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rust_decimal::Decimal;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use anthropic::Anthropic;
pub use openai::{Flavor, OpenAiCompatible};

use crate::config::Config;
use crate::pricing::TokenUsage;
use http::{HttpSettings, LlmHttp};

/// A chat message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    pub content: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

/// What shape of answer to ask for.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum OutputFormat {
    #[default]
    Text,
    /// A JSON object, optionally constrained by a JSON Schema.
    Json { schema: Option<Value> },
}

/// One completion request, provider-neutral.
#[derive(Clone, Debug, PartialEq)]
pub struct CompletionRequest {
    pub model: String,
    pub messages: Vec<Message>,
    pub temperature: Option<f32>,
    pub max_tokens: Option<u32>,
    pub format: OutputFormat,
}

/// Who is calling, for logs and traces, and where a streaming call sends its text.
#[derive(Clone, Debug, Default)]
pub struct CallCtx {
    pub job_id: Option<crate::JobId>,
    pub step_id: Option<String>,
    /// A streaming call sends each text delta here, in order, as it arrives (the engine
    /// forwards them as `chunk` events). Non-streaming calls leave it alone.
    pub chunks: Option<tokio::sync::mpsc::UnboundedSender<String>>,
    /// The step's `timeout_ms`: the whole-request bound of a non-streamed call, instead of
    /// `LLM_TIMEOUT_SECS`. (A streamed call is bounded by the stream's idle timeout, and the
    /// engine ends the step at its `timeout_ms` either way.)
    pub timeout: Option<std::time::Duration>,
}

impl CallCtx {
    /// Passes one text delta on; a closed receiver is not the call's problem.
    pub fn send_chunk(&self, text: &str) {
        if text.is_empty() {
            return;
        }
        if let Some(tx) = &self.chunks {
            let _ = tx.send(text.to_owned());
        }
    }
}

/// What a provider's rate-limit response headers said about the requests left in its window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RateLimitHint {
    /// Requests left before the provider starts answering 429.
    pub remaining_requests: Option<u64>,
    /// When the request window resets, from now.
    pub reset_requests: Option<Duration>,
}

/// One completion, provider-neutral.
#[derive(Clone, Debug, PartialEq)]
pub struct Completion {
    pub content: String,
    /// Why the model stopped, as the provider says it (`stop`, `length`, `end_turn` …).
    pub finish_reason: Option<String>,
    /// The model that actually answered (providers may route to a dated variant).
    pub model: String,
    pub usage: TokenUsage,
    /// True when the provider reported no usage and the counts were estimated from text length.
    pub usage_estimated: bool,
    /// The provider's own cost figure, when it reports one (OpenRouter's `usage.cost`).
    pub provider_cost: Option<Decimal>,
    pub duration: Duration,
    pub request_id: Option<String>,
    /// The provider's rate-limit headers, for the shared limiter to learn from.
    pub rate_limit: Option<RateLimitHint>,
}

/// What a provider's answer said, decoded from its wire format (a whole body or a finished
/// stream), before the call's own facts (duration, headers) are added.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Decoded {
    pub content: String,
    pub model: Option<String>,
    /// The provider's id of the answer.
    pub id: Option<String>,
    /// The reported token counts and (OpenRouter) cost; `None` when the answer had none.
    pub usage: Option<(TokenUsage, Option<Decimal>)>,
    /// Why the model stopped (`stop`, `length`, `end_turn`, …), as the provider says it.
    pub finish_reason: Option<String>,
}

impl Decoded {
    /// The completion of `request`: usage estimated (and flagged) when none was reported, the
    /// request's model when the answer named none, the header's request id before the body's.
    fn into_completion(
        self,
        request: &CompletionRequest,
        started: std::time::Instant,
        request_id: Option<String>,
        rate_limit: Option<RateLimitHint>,
    ) -> Completion {
        let (usage, usage_estimated, provider_cost) = match self.usage {
            Some((usage, cost)) => (usage, false, cost),
            None => (estimate_usage(request, &self.content), true, None),
        };
        Completion {
            content: self.content,
            finish_reason: self.finish_reason,
            model: self.model.unwrap_or_else(|| request.model.clone()),
            usage,
            usage_estimated,
            provider_cost,
            duration: started.elapsed(),
            request_id: request_id.or(self.id),
            rate_limit,
        }
    }
}

/// The providers' wire formats and headers, decoded without a network: the same functions
/// the providers call, open to the fuzz targets and property tests.
pub mod wire {
    pub use super::anthropic::{
        decode_response as anthropic_response, map_error_type as anthropic_error_type,
        map_status as anthropic_status, StreamDecoder as AnthropicStream,
    };
    pub use super::openai::{
        decode_response as openai_response, map_status as openai_status,
        map_stream_error as openai_stream_error, StreamDecoder as OpenAiStream,
    };
    pub use super::stream::{
        anthropic_hint, events_of_pieces, go_duration, openai_hint, parse_retry_after,
        LONGEST_HEADER_WAIT,
    };
}

/// The underlying error of a transport or decoding failure, shared so that [`ProviderError`]
/// stays `Clone` (one failure is reported to the step and to the fallback chain).
pub type Cause = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// Why a call failed, mapped from each provider's statuses and bodies. A failure with an
/// underlying error (the HTTP client's, the JSON decoder's) keeps it as its `source()`; print
/// the whole chain with [`crate::telemetry::Chain`].
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProviderError {
    #[error("authentication failed: {0}")]
    Auth(String),
    #[error("request rejected: {0}")]
    BadRequest(String),
    #[error("rate limited: {message}")]
    RateLimited {
        retry_after: Option<Duration>,
        message: String,
    },
    #[error("provider overloaded: {0}")]
    Overloaded(String),
    #[error("provider error: {0}")]
    Server(String),
    #[error("timed out: {message}")]
    Timeout {
        message: String,
        #[source]
        source: Option<Cause>,
    },
    #[error("network error: {message}")]
    Network {
        message: String,
        #[source]
        source: Option<Cause>,
    },
    #[error("invalid response: {message}")]
    InvalidResponse {
        message: String,
        #[source]
        source: Option<Cause>,
    },
}

impl ProviderError {
    /// A timeout that llmflow itself measured (no underlying error).
    pub fn timeout(message: impl Into<String>) -> ProviderError {
        ProviderError::Timeout {
            message: message.into(),
            source: None,
        }
    }

    /// A lost or refused connection, described by `message` alone.
    pub fn network(message: impl Into<String>) -> ProviderError {
        ProviderError::Network {
            message: message.into(),
            source: None,
        }
    }

    /// An answer llmflow cannot read, described by `message` alone.
    pub fn invalid(message: impl Into<String>) -> ProviderError {
        ProviderError::InvalidResponse {
            message: message.into(),
            source: None,
        }
    }

    /// An answer llmflow cannot read, `message` saying what was expected, `source` why not.
    pub fn invalid_because(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> ProviderError {
        ProviderError::InvalidResponse {
            message: message.into(),
            source: Some(Arc::new(source)),
        }
    }

    /// Whether the same request may succeed if tried again later.
    pub fn is_retryable(&self) -> bool {
        match self {
            ProviderError::RateLimited { .. }
            | ProviderError::Overloaded(_)
            | ProviderError::Server(_)
            | ProviderError::Timeout { .. }
            | ProviderError::Network { .. } => true,
            ProviderError::Auth(_)
            | ProviderError::BadRequest(_)
            | ProviderError::InvalidResponse { .. } => false,
        }
    }

    /// A short stable name for records and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            ProviderError::Auth(_) => "auth",
            ProviderError::BadRequest(_) => "bad_request",
            ProviderError::RateLimited { .. } => "rate_limited",
            ProviderError::Overloaded(_) => "overloaded",
            ProviderError::Server(_) => "server",
            ProviderError::Timeout { .. } => "timeout",
            ProviderError::Network { .. } => "network",
            ProviderError::InvalidResponse { .. } => "invalid_response",
        }
    }
}

/// An LLM provider.
#[async_trait::async_trait]
pub trait LlmProvider: Send + Sync {
    /// The provider's name as workflows write it (`openrouter`, `openai`, `anthropic`).
    fn name(&self) -> &str;

    /// One call, the whole answer at once.
    async fn complete(
        &self,
        request: &CompletionRequest,
        cx: &CallCtx,
    ) -> Result<Completion, ProviderError>;

    /// One streamed call: each text delta goes to `cx.chunks` as it arrives; the result is the
    /// whole answer with the usage of the stream's final event (estimated and flagged when the
    /// provider sent none). Providers without a streaming wire format may keep this default,
    /// which passes the whole answer on as a single chunk.
    async fn stream(
        &self,
        request: &CompletionRequest,
        cx: &CallCtx,
    ) -> Result<Completion, ProviderError> {
        let completion = self.complete(request, cx).await?;
        cx.send_chunk(&completion.content);
        Ok(completion)
    }
}

/// The configured providers by name.
#[derive(Clone, Default)]
pub struct Providers {
    by_name: BTreeMap<String, Arc<dyn LlmProvider>>,
}

impl std::fmt::Debug for Providers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.by_name.keys()).finish()
    }
}

/// Names a workflow may use in `provider`.
pub const PROVIDER_NAMES: [&str; 3] = ["openrouter", "openai", "anthropic"];

impl Providers {
    /// Providers whose API key is set in `config`, sharing one set of HTTP lanes.
    pub fn from_config(config: &Config) -> Result<Providers, reqwest::Error> {
        let http = LlmHttp::new(HttpSettings {
            timeout: config.llm_timeout(),
            stream_idle: config.llm_stream_idle(),
            http2_prior_knowledge: config.llm_http2_prior_knowledge,
            streams_per_lane: config.llm_http2_streams,
        })?;
        let mut providers = Providers::default();
        if let Some(key) = key_of(&config.openrouter_api_key) {
            providers.insert(Arc::new(openrouter::new(
                http.clone(),
                &config.openrouter_base_url,
                key,
            )));
        }
        if let Some(key) = key_of(&config.openai_api_key) {
            providers.insert(Arc::new(OpenAiCompatible::openai(
                http.clone(),
                &config.openai_base_url,
                key,
            )));
        }
        if let Some(key) = key_of(&config.anthropic_api_key) {
            providers.insert(Arc::new(Anthropic::new(
                http.clone(),
                &config.anthropic_base_url,
                key,
            )));
        }
        Ok(providers)
    }

    pub fn insert(&mut self, provider: Arc<dyn LlmProvider>) {
        self.by_name.insert(provider.name().to_owned(), provider);
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn LlmProvider>> {
        self.by_name.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }
}

fn key_of(value: &Option<SecretString>) -> Option<SecretString> {
    Config::secret(value).map(|s| SecretString::from(s.to_owned()))
}

/// Token estimate for text when a provider reports no usage: about four characters a token.
pub fn estimate_tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4)
}

/// Usage estimated from the request's messages and the answer's text (never zero: at least one
/// token each way), for calls whose provider reported none.
pub fn estimate_usage(request: &CompletionRequest, content: &str) -> TokenUsage {
    TokenUsage {
        input_tokens: request
            .messages
            .iter()
            .map(|m| estimate_tokens(&m.content))
            .sum::<u64>()
            .max(1),
        output_tokens: estimate_tokens(content).max(1),
        cached_input_tokens: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimated_usage_is_never_zero() {
        let request = CompletionRequest {
            model: "gpt-4o".into(),
            messages: vec![Message {
                role: Role::User,
                content: "Summarise this paragraph, please.".into(),
            }],
            temperature: None,
            max_tokens: None,
            format: OutputFormat::Text,
        };
        let usage = estimate_usage(&request, "A short answer.");
        assert_eq!(usage.input_tokens, 9);
        assert_eq!(usage.output_tokens, 4);
        let empty = CompletionRequest {
            messages: Vec::new(),
            ..request
        };
        let usage = estimate_usage(&empty, "");
        assert_eq!((usage.input_tokens, usage.output_tokens), (1, 1));
    }

    #[test]
    fn every_error_kind_has_a_retry_decision() {
        let cases = [
            (ProviderError::Auth(String::new()), false),
            (ProviderError::BadRequest(String::new()), false),
            (
                ProviderError::RateLimited {
                    retry_after: None,
                    message: String::new(),
                },
                true,
            ),
            (ProviderError::Overloaded(String::new()), true),
            (ProviderError::Server(String::new()), true),
            (ProviderError::timeout(""), true),
            (ProviderError::network(""), true),
            (ProviderError::invalid(""), false),
        ];
        for (error, retryable) in cases {
            assert_eq!(error.is_retryable(), retryable, "{}", error.kind());
        }
    }

    #[test]
    fn decoding_failures_keep_their_cause() {
        let error = wire::openai_response(b"{\"choices\": 5}", Flavor::OpenAi)
            .expect_err("not a completion");
        assert_eq!(error.kind(), "invalid_response");
        let cause = std::error::Error::source(&error).expect("the JSON error");
        assert!(cause.to_string().contains("invalid type"), "{cause}");
        let text = crate::telemetry::Chain(&error).to_string();
        assert!(
            text.starts_with("invalid response: not a chat completion: invalid type"),
            "{text}"
        );
        let status = |code: u16| {
            wire::openai_status(
                reqwest::StatusCode::from_u16(code).expect("status"),
                None,
                "",
            )
            .kind()
        };
        assert_eq!(status(402), "bad_request");
        assert_eq!(status(408), "timeout");
        assert_eq!(status(529), "overloaded");
        assert_eq!(status(301), "invalid_response");
        let in_stream = |kind: &str| wire::openai_stream_error(&serde_json::json!({"type": kind}));
        assert_eq!(in_stream("server_error").kind(), "server");
        assert_eq!(in_stream("something_new").kind(), "server");
        assert_eq!(in_stream("tokens").kind(), "rate_limited");
    }
}
