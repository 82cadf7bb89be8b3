//! One typed configuration for every llmflow process: defaults in code, then an optional TOML
//! file (`LLMFLOW_CONFIG`), then environment variables with the names the service has always used.
//! This is the only module that reads the environment.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Pretty,
}

/// Every setting, with its environment variable in upper case (`database_url` ← `DATABASE_URL`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// PostgreSQL, the record of every job.
    pub database_url: SecretString,
    /// Redis for dispatch and events; a `/N` suffix selects database N.
    pub redis_url: SecretString,
    /// Prefix of every Redis key this deployment uses (lets tests and tenants share one Redis).
    pub redis_namespace: String,
    /// HTTP port of the API.
    pub port: u16,
    /// Address the API binds to.
    pub host: String,

    /// Clients send this in `X-API-Key`.
    pub llm_microservice_api_key: Option<SecretString>,
    /// Admin routes require this in `X-API-Key`.
    pub admin_api_key: Option<SecretString>,
    /// Default webhook signing secret (`whsec_…` is base64, anything else raw bytes).
    pub llm_webhook_secret: Option<SecretString>,
    /// The previous signing secret during key rotation: both signatures are sent.
    pub llm_webhook_secret_previous: Option<SecretString>,

    pub openrouter_api_key: Option<SecretString>,
    pub openai_api_key: Option<SecretString>,
    pub anthropic_api_key: Option<SecretString>,
    pub google_places_api_key: Option<SecretString>,
    /// Ends in `/v1`; `/chat/completions` is appended.
    pub openrouter_base_url: String,
    /// Ends in `/v1`; `/chat/completions` is appended.
    pub openai_base_url: String,
    /// The host root; `/v1/messages` is appended.
    pub anthropic_base_url: String,
    /// The host root.
    pub google_places_base_url: String,
    /// Provider used by `llm` steps that name none.
    pub default_provider: String,
    /// Whole-request timeout of one LLM call, in seconds.
    pub llm_timeout_secs: u64,
    /// Calls in all (the first included) one provider gets on retryable errors.
    pub llm_retry_max_attempts: u32,
    /// Backoff before the first retry, in milliseconds; doubled each time, with jitter.
    pub llm_retry_base_ms: u64,
    /// Largest backoff between retries, in milliseconds.
    pub llm_retry_cap_ms: u64,
    /// Largest `Retry-After` honoured, in seconds.
    pub llm_retry_after_cap_secs: u64,
    /// Provider limits shared by all workers, as JSON (see README, "Provider limits").
    pub llm_limits: String,
    /// A concurrency lease not renewed for this many seconds (its worker died) is freed.
    pub llm_limit_lease_secs: u64,
    /// Longest an LLM call waits for its limits, in seconds (a step's timeout ends it sooner).
    pub llm_limit_max_wait_secs: u64,
    /// Speak HTTP/2 to provider base URLs without negotiating it (plain-HTTP endpoints that
    /// serve h2c, such as a local gateway or the emulator). Over HTTPS, HTTP/2 is negotiated.
    pub llm_http2_prior_knowledge: bool,
    /// Provider calls one HTTP/2 connection carries at once before another is opened.
    pub llm_http2_streams: usize,

    /// Workflow definitions (`*.json`).
    pub workflows_dir: PathBuf,
    /// Prompt templates referenced by `prompt_file`.
    pub prompts_dir: PathBuf,
    /// Model prices; the table compiled into the binary when unset.
    pub pricing_file: Option<PathBuf>,

    /// CIDRs webhook delivery may reach despite the SSRF rules (comma-separated).
    pub webhook_allowed_cidrs: String,
    /// Seconds between webhook attempts after each failure (comma-separated).
    pub webhook_retry_schedule: String,
    /// The longest a receiver's `Retry-After` may postpone a webhook retry, in seconds.
    pub webhook_retry_after_cap_secs: u64,
    /// TCP connect timeout of one webhook attempt, in seconds.
    pub webhook_connect_timeout_secs: u64,
    /// Whole-request timeout of one webhook attempt, in seconds (keep it below `claim_timeout_secs`).
    pub webhook_request_timeout_secs: u64,

    /// Jobs one worker process runs at once (LLM calls are waits, not CPU).
    pub worker_concurrency: usize,
    /// Webhook deliveries one process sends at once.
    pub webhook_concurrency: usize,
    /// How often an idle consumer asks Redis for work, in milliseconds.
    pub queue_poll_ms: u64,
    /// How often the reconciler re-pushes jobs and deliveries missing from Redis, in seconds.
    pub reconcile_interval_secs: u64,
    /// A claim whose heartbeat is older than this many seconds is taken as abandoned.
    pub claim_timeout_secs: u64,
    /// Jobs stuck in a non-terminal state longer than this are marked stale.
    pub stale_job_hours: u64,
    /// PostgreSQL connections per process.
    pub database_pool_size: usize,
    /// Per-user submit rate limits, requests per minute by tier (`default=60,pro=600`; the
    /// tier comes from `X-User-Tier`, else `default`). Empty: no limit.
    pub rate_limits: String,
    /// When the maintenance job (stale cleanup, queue history trim) runs: a cron expression
    /// with seconds (`0 0 3 * * *` = daily at 03:00 UTC). Empty: never.
    pub maintenance_cron: String,
    /// Finished and dead queue entries older than this many hours are trimmed from Redis.
    pub queue_history_hours: u64,
    /// Seconds of quiet after which an SSE stream sends a keep-alive comment.
    pub sse_keepalive_secs: u64,

    pub log_format: LogFormat,

    /// Environment names workflows may read as `${env.NAME}` in `external_api` steps
    /// (comma-separated; default none).
    pub workflow_env_allowlist: String,
    /// Values of the allow-listed names: read from the environment at load (a value given in
    /// the config file under `[workflow_env]` is used when the variable is unset).
    #[serde(default)]
    pub workflow_env: BTreeMap<String, SecretString>,
    /// Calls per window for each external service, `service=calls/seconds`, comma-separated;
    /// `http` is the limit of each host reached by generic `external_api` calls.
    pub external_api_rate_limits: String,
}

/// Defaults in code; serialised into the first figment layer.
#[derive(Serialize)]
struct Defaults {
    redis_namespace: &'static str,
    port: u16,
    host: &'static str,
    openrouter_base_url: &'static str,
    openai_base_url: &'static str,
    anthropic_base_url: &'static str,
    google_places_base_url: &'static str,
    default_provider: &'static str,
    llm_timeout_secs: u64,
    llm_retry_max_attempts: u32,
    llm_retry_base_ms: u64,
    llm_retry_cap_ms: u64,
    llm_retry_after_cap_secs: u64,
    llm_limits: &'static str,
    llm_limit_lease_secs: u64,
    llm_limit_max_wait_secs: u64,
    llm_http2_prior_knowledge: bool,
    llm_http2_streams: usize,
    workflows_dir: &'static str,
    prompts_dir: &'static str,
    webhook_allowed_cidrs: &'static str,
    webhook_retry_schedule: &'static str,
    webhook_retry_after_cap_secs: u64,
    webhook_connect_timeout_secs: u64,
    webhook_request_timeout_secs: u64,
    worker_concurrency: usize,
    webhook_concurrency: usize,
    queue_poll_ms: u64,
    reconcile_interval_secs: u64,
    claim_timeout_secs: u64,
    stale_job_hours: u64,
    database_pool_size: usize,
    log_format: LogFormat,
    workflow_env_allowlist: &'static str,
    external_api_rate_limits: &'static str,
    rate_limits: &'static str,
    maintenance_cron: &'static str,
    queue_history_hours: u64,
    sse_keepalive_secs: u64,
}

const DEFAULTS: Defaults = Defaults {
    redis_namespace: "llmflow",
    port: 8000,
    host: "0.0.0.0",
    openrouter_base_url: "https://openrouter.ai/api/v1",
    openai_base_url: "https://api.openai.com/v1",
    anthropic_base_url: "https://api.anthropic.com",
    google_places_base_url: "https://places.googleapis.com",
    default_provider: "openrouter",
    llm_timeout_secs: 120,
    llm_retry_max_attempts: 3,
    llm_retry_base_ms: 500,
    llm_retry_cap_ms: 20_000,
    llm_retry_after_cap_secs: 60,
    llm_limits: "",
    llm_limit_lease_secs: 30,
    llm_limit_max_wait_secs: 600,
    llm_http2_prior_knowledge: false,
    llm_http2_streams: 100,
    workflows_dir: "./workflows",
    prompts_dir: "./prompts",
    webhook_allowed_cidrs: "",
    webhook_retry_schedule: "5,15,45",
    webhook_retry_after_cap_secs: 300,
    webhook_connect_timeout_secs: 5,
    webhook_request_timeout_secs: 15,
    worker_concurrency: 1000,
    webhook_concurrency: 200,
    queue_poll_ms: 100,
    reconcile_interval_secs: 5,
    claim_timeout_secs: 60,
    stale_job_hours: 72,
    database_pool_size: 16,
    log_format: LogFormat::Json,
    workflow_env_allowlist: "",
    external_api_rate_limits: "google_places=10/1,http=20/1",
    rate_limits: "",
    maintenance_cron: "0 0 3 * * *",
    queue_history_hours: 24,
    sse_keepalive_secs: 15,
};

/// Environment variables read, each mapped to the field of the same name in lower case.
const ENV_KEYS: &[&str] = &[
    "DATABASE_URL",
    "REDIS_URL",
    "REDIS_NAMESPACE",
    "PORT",
    "HOST",
    "LLM_MICROSERVICE_API_KEY",
    "ADMIN_API_KEY",
    "LLM_WEBHOOK_SECRET",
    "LLM_WEBHOOK_SECRET_PREVIOUS",
    "OPENROUTER_API_KEY",
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "GOOGLE_PLACES_API_KEY",
    "OPENROUTER_BASE_URL",
    "OPENAI_BASE_URL",
    "ANTHROPIC_BASE_URL",
    "GOOGLE_PLACES_BASE_URL",
    "DEFAULT_PROVIDER",
    "LLM_TIMEOUT_SECS",
    "LLM_RETRY_MAX_ATTEMPTS",
    "LLM_RETRY_BASE_MS",
    "LLM_RETRY_CAP_MS",
    "LLM_RETRY_AFTER_CAP_SECS",
    "LLM_LIMITS",
    "LLM_LIMIT_LEASE_SECS",
    "LLM_LIMIT_MAX_WAIT_SECS",
    "LLM_HTTP2_PRIOR_KNOWLEDGE",
    "LLM_HTTP2_STREAMS",
    "WORKFLOWS_DIR",
    "PROMPTS_DIR",
    "PRICING_FILE",
    "WEBHOOK_ALLOWED_CIDRS",
    "WEBHOOK_RETRY_SCHEDULE",
    "WEBHOOK_RETRY_AFTER_CAP_SECS",
    "WEBHOOK_CONNECT_TIMEOUT_SECS",
    "WEBHOOK_REQUEST_TIMEOUT_SECS",
    "WORKER_CONCURRENCY",
    "WEBHOOK_CONCURRENCY",
    "QUEUE_POLL_MS",
    "RECONCILE_INTERVAL_SECS",
    "CLAIM_TIMEOUT_SECS",
    "STALE_JOB_HOURS",
    "DATABASE_POOL_SIZE",
    "LOG_FORMAT",
    "WORKFLOW_ENV_ALLOWLIST",
    "EXTERNAL_API_RATE_LIMITS",
    "RATE_LIMITS",
    "MAINTENANCE_CRON",
    "QUEUE_HISTORY_HOURS",
    "SSE_KEEPALIVE_SECS",
];

/// Whether `DATABASE_URL` and `REDIS_URL` must be set (services) or may be left empty (tools).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Urls {
    Required,
    Optional,
}

/// Settings that could not be read; the message names the variable or file key at fault.
#[derive(Debug, thiserror::Error)]
#[error("configuration error: {0}")]
pub struct ConfigError(#[source] Box<figment::Error>);

impl Config {
    /// Defaults, then the TOML file named by `LLMFLOW_CONFIG` (if set), then the environment.
    pub fn load() -> Result<Config, ConfigError> {
        let defaults = Figment::from(Serialized::defaults(DEFAULTS));
        Self::from_figment(Self::file_then_env(defaults), Urls::Required)
    }

    /// Like [`Config::load`], for the operator CLI, whose commands reach PostgreSQL at most
    /// (migrations) and often nothing (validation, the webhook listener): `DATABASE_URL` and
    /// `REDIS_URL` may be unset, and are then empty. A command that connects checks its URL.
    pub fn load_for_tools() -> Result<Config, ConfigError> {
        Self::from_figment(Self::file_then_env(Self::tool_defaults()), Urls::Optional)
    }

    /// The defaults, with both connection URLs empty.
    fn tool_defaults() -> Figment {
        Figment::from(Serialized::defaults(DEFAULTS))
            .merge(Serialized::default("database_url", ""))
            .merge(Serialized::default("redis_url", ""))
    }

    fn file_then_env(mut figment: Figment) -> Figment {
        if let Ok(path) = std::env::var("LLMFLOW_CONFIG") {
            figment = figment.merge(Toml::file_exact(path));
        }
        figment.merge(Self::env())
    }

    /// Defaults overlaid with the given figment (used by tests and tools that build settings in code).
    pub fn from_overrides(overrides: Figment) -> Result<Config, ConfigError> {
        Self::from_figment(
            Figment::from(Serialized::defaults(DEFAULTS)).merge(overrides),
            Urls::Required,
        )
    }

    fn from_figment(figment: Figment, urls: Urls) -> Result<Config, ConfigError> {
        let mut config: Config = figment.extract().map_err(|e| {
            // Name the environment variable, not the struct field, when one is missing.
            let text = e.to_string();
            let missing = text
                .split_once("missing field `")
                .and_then(|(_, rest)| rest.split('`').next());
            match missing {
                Some(field) => ConfigError(Box::new(figment::Error::from(format!(
                    "{} is not set (environment variable, or `{field}` in the LLMFLOW_CONFIG file)",
                    field.to_uppercase()
                )))),
                None => ConfigError(Box::new(e)),
            }
        })?;
        config.check(urls)?;
        for name in config.workflow_env_names() {
            if let Ok(value) = std::env::var(&name) {
                config.workflow_env.insert(name, SecretString::from(value));
            }
        }
        Ok(config)
    }

    /// The names of `WORKFLOW_ENV_ALLOWLIST`.
    pub fn workflow_env_names(&self) -> Vec<String> {
        self.workflow_env_allowlist
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// `EXTERNAL_API_RATE_LIMITS` as service → (calls, window).
    pub fn external_api_rate_limits(&self) -> Result<BTreeMap<String, (u64, Duration)>, String> {
        let mut limits = BTreeMap::new();
        for entry in self
            .external_api_rate_limits
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
        {
            let parsed = entry.split_once('=').and_then(|(service, rate)| {
                let (calls, secs) = rate.split_once('/')?;
                let calls: u64 = calls.trim().parse().ok().filter(|n| *n > 0)?;
                let secs: u64 = secs.trim().parse().ok().filter(|n| *n > 0)?;
                Some((service.trim().to_owned(), calls, secs))
            });
            match parsed {
                Some((service, calls, secs)) if !service.is_empty() => {
                    limits.insert(service, (calls, Duration::from_secs(secs)));
                }
                _ => return Err(format!("`{entry}` is not `service=calls/seconds`")),
            }
        }
        Ok(limits)
    }

    /// Environment variables are taken as plain strings: an API key of digits stays a string.
    fn env() -> Env {
        Env::raw()
            .only(ENV_KEYS)
            .map(|key| key.as_str().to_lowercase().into())
    }

    fn check(&self, urls: Urls) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: String| {
            ConfigError(Box::new(figment::Error::from(format!(
                "{}: {message}",
                key.to_uppercase()
            ))))
        };
        for (key, url) in [
            ("database_url", self.database_url.expose_secret()),
            ("redis_url", self.redis_url.expose_secret()),
        ] {
            if url.trim().is_empty() && urls == Urls::Required {
                return Err(invalid(key, "must not be empty".into()));
            }
        }
        if urls == Urls::Required
            && !self.redis_url.expose_secret().starts_with("redis://")
            && !self.redis_url.expose_secret().starts_with("rediss://")
        {
            return Err(invalid(
                "redis_url",
                "must start with redis:// or rediss://".into(),
            ));
        }
        if self.worker_concurrency == 0 {
            return Err(invalid("worker_concurrency", "must be at least 1".into()));
        }
        if self.webhook_concurrency == 0 {
            return Err(invalid("webhook_concurrency", "must be at least 1".into()));
        }
        for (key, secs) in [
            (
                "webhook_connect_timeout_secs",
                self.webhook_connect_timeout_secs,
            ),
            (
                "webhook_request_timeout_secs",
                self.webhook_request_timeout_secs,
            ),
        ] {
            if secs == 0 {
                return Err(invalid(key, "must be at least 1 second".into()));
            }
        }
        if self.database_pool_size == 0 {
            return Err(invalid("database_pool_size", "must be at least 1".into()));
        }
        let allowed = self.workflow_env_names();
        for name in &allowed {
            let valid = name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !name.starts_with(|c: char| c.is_ascii_digit());
            if !valid {
                return Err(invalid(
                    "workflow_env_allowlist",
                    format!("`{name}` is not an environment variable name"),
                ));
            }
        }
        if let Some(name) = self.workflow_env.keys().find(|n| !allowed.contains(n)) {
            return Err(invalid(
                "workflow_env",
                format!("`{name}` is not in WORKFLOW_ENV_ALLOWLIST"),
            ));
        }
        self.external_api_rate_limits()
            .map_err(|e| invalid("external_api_rate_limits", e))?;
        if let Err(message) = self.rate_limit_tiers() {
            return Err(invalid("rate_limits", message));
        }
        for (key, value) in [("default_provider", self.default_provider.as_str())] {
            if !matches!(value, "openrouter" | "openai" | "anthropic") {
                return Err(invalid(key, format!("unknown provider `{value}`")));
            }
        }
        if let Err(e) = crate::llm::limits::LimitsConfig::parse(&self.llm_limits) {
            return Err(invalid("llm_limits", e.to_string()));
        }
        if self.llm_limit_lease_secs == 0 {
            return Err(invalid("llm_limit_lease_secs", "must be at least 1".into()));
        }
        if self.llm_http2_streams == 0 {
            return Err(invalid("llm_http2_streams", "must be at least 1".into()));
        }
        Ok(())
    }

    /// The shared provider limits (`LLM_LIMITS`), checked when the config was loaded.
    pub fn llm_limits(&self) -> crate::llm::limits::LimitsConfig {
        crate::llm::limits::LimitsConfig::parse(&self.llm_limits).unwrap_or_default()
    }

    /// Lease expiry and longest wait of the shared limiter.
    pub fn limiter_settings(&self) -> crate::llm::limits::LimiterSettings {
        crate::llm::limits::LimiterSettings {
            lease_ttl: Duration::from_secs(self.llm_limit_lease_secs.max(1)),
            max_wait: Duration::from_secs(self.llm_limit_max_wait_secs),
        }
    }

    /// The pool timeout and the like are derived, not configured.
    pub fn llm_timeout(&self) -> Duration {
        Duration::from_secs(self.llm_timeout_secs)
    }

    pub fn claim_timeout(&self) -> Duration {
        Duration::from_secs(self.claim_timeout_secs)
    }

    pub fn reconcile_interval(&self) -> Duration {
        Duration::from_secs(self.reconcile_interval_secs.max(1))
    }

    pub fn queue_poll_interval(&self) -> Duration {
        Duration::from_millis(self.queue_poll_ms.max(1))
    }

    /// The per-user limits by tier (requests per minute), from `rate_limits`.
    pub fn rate_limit_tiers(&self) -> Result<Vec<(String, u32)>, String> {
        let mut tiers = Vec::new();
        for part in self
            .rate_limits
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            let (tier, limit) = part
                .split_once('=')
                .ok_or_else(|| format!("`{part}` is not tier=requests_per_minute"))?;
            let limit: u32 = limit
                .trim()
                .parse()
                .map_err(|_| format!("`{part}`: the limit must be a whole number"))?;
            if limit == 0 {
                return Err(format!("`{part}`: the limit must be at least 1"));
            }
            tiers.push((tier.trim().to_owned(), limit));
        }
        Ok(tiers)
    }

    pub fn stale_after(&self) -> Duration {
        Duration::from_secs(self.stale_job_hours.saturating_mul(3600))
    }

    /// A secret that is set and not blank.
    pub fn secret(value: &Option<SecretString>) -> Option<&str> {
        value
            .as_ref()
            .map(|s| s.expose_secret())
            .filter(|s| !s.trim().is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use figment::providers::Serialized;
    use serde_json::json;

    fn with(values: serde_json::Value) -> Result<Config, ConfigError> {
        Config::from_overrides(Figment::from(Serialized::defaults(values)))
    }

    #[test]
    fn defaults_fill_everything_but_the_urls() {
        let config = with(json!({
            "database_url": "postgres://localhost/llmflow",
            "redis_url": "redis://127.0.0.1:6379/2",
        }))
        .expect("valid config");
        assert_eq!(config.port, 8000);
        assert_eq!(config.worker_concurrency, 1000);
        assert_eq!(config.webhook_retry_schedule, "5,15,45");
    }

    #[test]
    fn missing_database_url_names_the_field() {
        let err = with(json!({"redis_url": "redis://127.0.0.1"})).expect_err("must fail");
        assert!(err.to_string().contains("DATABASE_URL is not set"), "{err}");
    }

    #[test]
    fn malformed_number_names_the_field() {
        let err = with(json!({
            "database_url": "postgres://x", "redis_url": "redis://x", "port": "eighty"
        }))
        .expect_err("must fail");
        assert!(err.to_string().contains("port"), "{err}");
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = with(json!({
            "database_url": "postgres://x", "redis_url": "redis://x", "prot": 1
        }))
        .expect_err("must fail");
        assert!(err.to_string().contains("prot"), "{err}");
    }

    #[test]
    fn llm_limits_are_parsed_and_checked() {
        let config = with(json!({
            "database_url": "postgres://x", "redis_url": "redis://x",
            "llm_limits": r#"{"openrouter": {"max_concurrency": 2, "models": {"openai/gpt-4o": {"rpm": 5}}}}"#
        }))
        .expect("valid config");
        let limits = config.llm_limits();
        assert_eq!(limits.0["openrouter"].rule.max_concurrency, Some(2));
        assert_eq!(limits.0["openrouter"].models["openai/gpt-4o"].rpm, Some(5));
        for bad in [r#"{"acme": {}}"#, r#"{"openai": {"rpm": 0}}"#, "{not json"] {
            let err = with(json!({
                "database_url": "postgres://x", "redis_url": "redis://x", "llm_limits": bad
            }))
            .expect_err("must fail");
            assert!(err.to_string().contains("LLM_LIMITS"), "{err}");
        }
    }

    #[test]
    fn env_allowlist_and_rate_limits_are_parsed_and_checked() {
        let base = json!({"database_url": "postgres://x", "redis_url": "redis://x"});
        let config = with(base.clone()).expect("defaults");
        assert!(config.workflow_env_names().is_empty());
        let limits = config.external_api_rate_limits().expect("default limits");
        assert_eq!(limits["google_places"], (10, Duration::from_secs(1)));
        let mut values = base.clone();
        values["workflow_env_allowlist"] = json!("PARTNER_KEY, OTHER");
        values["workflow_env"] = json!({"PARTNER_KEY": "from-file"});
        let config = with(values.clone()).expect("valid");
        assert_eq!(config.workflow_env_names(), ["PARTNER_KEY", "OTHER"]);
        assert_eq!(
            config.workflow_env["PARTNER_KEY"].expose_secret(),
            "from-file"
        );
        values["workflow_env"] = json!({"NOT_LISTED": "x"});
        let err = with(values).expect_err("value for a name not allowed");
        assert!(err.to_string().contains("NOT_LISTED"), "{err}");
        let mut values = base;
        values["external_api_rate_limits"] = json!("google_places=ten/1");
        let err = with(values).expect_err("bad limit");
        assert!(
            err.to_string().contains("EXTERNAL_API_RATE_LIMITS"),
            "{err}"
        );
    }

    #[test]
    fn tools_load_without_connection_urls() {
        let config = Config::from_figment(Config::tool_defaults(), Urls::Optional)
            .expect("no URL is needed");
        assert!(config.database_url.expose_secret().is_empty());
        assert_eq!(config.workflows_dir, PathBuf::from("./workflows"));
        let set =
            Config::tool_defaults().merge(Serialized::default("database_url", "postgres://x"));
        let config = Config::from_figment(set, Urls::Optional).expect("a URL is taken");
        assert_eq!(config.database_url.expose_secret(), "postgres://x");
        let bad = Config::tool_defaults().merge(Serialized::default("stale_job_hours", "soon"));
        let err = Config::from_figment(bad, Urls::Optional).expect_err("still checked");
        assert!(err.to_string().contains("stale_job_hours"), "{err}");
        // Services still need both.
        let err = Config::from_figment(Config::tool_defaults(), Urls::Required)
            .expect_err("services need the URLs");
        assert!(err.to_string().contains("DATABASE_URL"), "{err}");
    }

    #[test]
    fn secrets_never_print() {
        let config = with(json!({
            "database_url": "postgres://user:hunter2@db/x",
            "redis_url": "redis://x",
            "admin_api_key": "sekrit-admin"
        }))
        .expect("valid config");
        let printed = format!("{config:?}");
        assert!(
            !printed.contains("hunter2") && !printed.contains("sekrit-admin"),
            "{printed}"
        );
    }
}
