//! The providers against the emulator over real HTTP, one suite run per provider (the
//! `provider_suite!` macro instantiates every case for OpenRouter, OpenAI and Anthropic), plus
//! the shared limiter against the real Redis, and how calls use connections.

mod cases;
mod lanes;
mod limits;
mod workflow;

use std::sync::Arc;

use figment::providers::Serialized;
use figment::Figment;
use serde_json::json;

use llmflow_core::config::Config;
use llmflow_core::llm::{LlmProvider, Providers};
use llmflow_emulator::{Emulator, EmulatorConfig};

/// Which provider a suite run is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    OpenRouter,
    OpenAi,
    Anthropic,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::OpenRouter => "openrouter",
            Kind::OpenAi => "openai",
            Kind::Anthropic => "anthropic",
        }
    }

    /// A priced model as that provider names it.
    pub fn model(self) -> &'static str {
        match self {
            Kind::OpenRouter => "openai/gpt-4o-mini",
            Kind::OpenAi => "gpt-4o-mini",
            Kind::Anthropic => "claude-3-5-sonnet-20241022",
        }
    }

    /// The reason the emulator gives for a finished answer, in the provider's own words.
    pub fn finish_reason(self) -> &'static str {
        match self {
            Kind::OpenRouter | Kind::OpenAi => "stop",
            Kind::Anthropic => "end_turn",
        }
    }

    /// Another provider, for fallback tests.
    pub fn other(self) -> Kind {
        match self {
            Kind::OpenRouter => Kind::OpenAi,
            Kind::OpenAi => Kind::Anthropic,
            Kind::Anthropic => Kind::OpenRouter,
        }
    }
}

/// How the providers reach the emulator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Http {
    /// HTTP/1.1: one connection per call in flight (the default over plain HTTP).
    One,
    /// HTTP/2 by prior knowledge (h2c), as negotiated with the real providers over TLS.
    Two,
}

/// An emulator and every provider pointed at it, built by `Providers::from_config` as the
/// services build them.
pub struct Bench {
    pub emulator: Emulator,
    pub providers: Providers,
}

impl Bench {
    pub async fn start(http: Http) -> Bench {
        Self::start_with(http, json!({})).await
    }

    pub async fn start_with(http: Http, overrides: serde_json::Value) -> Bench {
        let emulator = Emulator::spawn(EmulatorConfig::default())
            .await
            .expect("emulator");
        let mut values = json!({
            "database_url": "postgres://unused",
            "redis_url": "redis://unused",
            "openrouter_api_key": "emulator-key",
            "openrouter_base_url": emulator.openrouter_base_url(),
            "openai_api_key": "emulator-key",
            "openai_base_url": emulator.openai_base_url(),
            "anthropic_api_key": "emulator-key",
            "anthropic_base_url": emulator.anthropic_base_url(),
            "llm_http2_prior_knowledge": http == Http::Two,
        });
        if let (Some(values), Some(overrides)) = (values.as_object_mut(), overrides.as_object()) {
            for (k, v) in overrides {
                values.insert(k.clone(), v.clone());
            }
        }
        let config =
            Config::from_overrides(Figment::from(Serialized::defaults(values))).expect("config");
        let providers = Providers::from_config(&config).expect("providers");
        Bench {
            emulator,
            providers,
        }
    }

    pub fn provider(&self, kind: Kind) -> Arc<dyn LlmProvider> {
        self.providers
            .get(kind.name())
            .unwrap_or_else(|| panic!("{} registered", kind.name()))
            .clone()
    }
}

/// Instantiates every case of `cases` for each provider and HTTP version.
macro_rules! provider_suite {
    ($($module:ident => $kind:expr, $http:expr);* $(;)?) => {$(
        mod $module {
            use super::{cases, Http, Kind};
            const KIND: Kind = $kind;
            const HTTP: Http = $http;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn plain_call_has_usage_cost_and_request_id() { cases::plain(KIND, HTTP).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn streamed_chunks_arrive_in_order_with_usage() { cases::streamed(KIND, HTTP).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn every_error_kind_is_mapped() { cases::errors_mapped(KIND, HTTP).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn slow_headers_time_out() { cases::slow_headers_time_out(KIND, HTTP).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn retries_then_succeeds() { cases::retry_then_success(KIND, HTTP).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn retry_after_is_honoured() { cases::retry_after_honoured(KIND, HTTP).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn falls_back_before_the_first_token() { cases::fallback_before_first_token(KIND, HTTP).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn never_falls_back_after_the_first_token() { cases::no_fallback_after_first_token(KIND, HTTP).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn auth_failure_falls_back() { cases::auth_failure_falls_back(KIND, HTTP).await }
        }
    )*};
}

provider_suite! {
    openrouter => Kind::OpenRouter, Http::One;
    openai => Kind::OpenAi, Http::One;
    anthropic => Kind::Anthropic, Http::One;
    openrouter_h2 => Kind::OpenRouter, Http::Two;
    openai_h2 => Kind::OpenAi, Http::Two;
    anthropic_h2 => Kind::Anthropic, Http::Two;
}
