//! The LLM provider abstraction: one request and response type, one error taxonomy, and one
//! file per provider behind the `LlmProvider` trait (used as `dyn`, so tests can plug in their own).

mod openai;
mod openrouter;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rust_decimal::Decimal;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use openai::OpenAiCompatible;

use crate::config::Config;
use crate::pricing::TokenUsage;

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

/// Who is calling, for logs and traces.
#[derive(Clone, Debug, Default)]
pub struct CallCtx {
    pub job_id: Option<crate::JobId>,
    pub step_id: Option<String>,
}

/// One completion, provider-neutral.
#[derive(Clone, Debug, PartialEq)]
pub struct Completion {
    pub content: String,
    /// The model that actually answered (providers may route to a dated variant).
    pub model: String,
    pub usage: TokenUsage,
    /// True when the provider reported no usage and the counts were estimated from text length.
    pub usage_estimated: bool,
    /// The provider's own cost figure, when it reports one (OpenRouter's `usage.cost`).
    pub provider_cost: Option<Decimal>,
    pub duration: Duration,
    pub request_id: Option<String>,
}

/// Why a call failed, mapped from each provider's statuses and bodies.
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
    #[error("timed out: {0}")]
    Timeout(String),
    #[error("network error: {0}")]
    Network(String),
    #[error("invalid response: {0}")]
    InvalidResponse(String),
}

impl ProviderError {
    /// Whether the same request may succeed if tried again later.
    pub fn is_retryable(&self) -> bool {
        match self {
            ProviderError::RateLimited { .. }
            | ProviderError::Overloaded(_)
            | ProviderError::Server(_)
            | ProviderError::Timeout(_)
            | ProviderError::Network(_) => true,
            ProviderError::Auth(_)
            | ProviderError::BadRequest(_)
            | ProviderError::InvalidResponse(_) => false,
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
            ProviderError::Timeout(_) => "timeout",
            ProviderError::Network(_) => "network",
            ProviderError::InvalidResponse(_) => "invalid_response",
        }
    }
}

/// An LLM provider.
#[async_trait::async_trait]
pub trait LlmProvider: Send + Sync {
    /// The provider's name as workflows write it (`openrouter`, `openai`, `anthropic`).
    fn name(&self) -> &str;

    async fn complete(
        &self,
        request: &CompletionRequest,
        cx: &CallCtx,
    ) -> Result<Completion, ProviderError>;
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
    /// Providers whose API key is set in `config`, sharing one HTTP client.
    pub fn from_config(config: &Config) -> Result<Providers, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(config.llm_timeout())
            .connect_timeout(Duration::from_secs(10))
            .pool_max_idle_per_host(1024)
            .build()?;
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
