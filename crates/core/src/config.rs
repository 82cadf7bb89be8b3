//! One typed configuration for every llmflow process: defaults in code, then an optional TOML
//! file (`LLMFLOW_CONFIG`), then environment variables with the names the service has always used.
//! This is the only module that reads the environment.
//!
//! Settings written as text (comma-separated lists, a cron expression, JSON) are parsed here,
//! once, into their types (see `parse`); a malformed value stops the load with an error naming
//! its variable.

mod parse;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use figment::error::Kind;
use figment::providers::{Env, Format, Serialized, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
use ipnet::IpNet;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::llm::limits::LimitsConfig;
use crate::ratelimit::Rate;

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
    /// Keep the hot statements prepared on each connection (see `db::prepared`). Unset: on,
    /// except when `database_url` names port 6543 (Supabase's transaction-mode pooler). Set it
    /// to `false` behind any transaction-mode pooler.
    pub database_statement_cache: Option<bool>,
    /// Redis for dispatch and events; a `/N` suffix selects database N; `rediss://` is TLS.
    pub redis_url: SecretString,
    /// PEM file of the CA that signs the Redis server's certificate (`rediss://`); unset: the
    /// webpki roots.
    pub redis_ca_cert: Option<PathBuf>,
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
    /// Whole-request timeout of one non-streamed LLM call whose step sets no `timeout_ms`, in
    /// seconds (a step's `timeout_ms` bounds its calls instead). Streamed calls have none.
    pub llm_timeout_secs: u64,
    /// A streamed LLM call fails with a timeout when no bytes arrive for this long, in seconds
    /// (it is otherwise bounded only by its step's `timeout_ms`).
    pub llm_stream_idle_secs: u64,
    /// Calls in all (the first included) one provider gets on retryable errors.
    pub llm_retry_max_attempts: u32,
    /// Backoff before the first retry, in milliseconds; doubled each time, with jitter.
    pub llm_retry_base_ms: u64,
    /// Largest backoff between retries, in milliseconds.
    pub llm_retry_cap_ms: u64,
    /// Largest `Retry-After` honoured, in seconds.
    pub llm_retry_after_cap_secs: u64,
    /// Provider limits shared by all workers, given as JSON (see README, "Provider limits").
    #[serde(deserialize_with = "parse::llm_limits")]
    pub llm_limits: LimitsConfig,
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

    /// CIDRs webhook delivery may reach despite the SSRF rules (given comma-separated; a bare
    /// address is that address alone).
    #[serde(deserialize_with = "parse::cidrs")]
    pub webhook_allowed_cidrs: Vec<IpNet>,
    /// Delays between webhook attempts after each failure (given as seconds, comma-separated).
    #[serde(deserialize_with = "parse::seconds_list")]
    pub webhook_retry_schedule: Vec<Duration>,
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
    /// How often a worker or webhook sender refreshes its row in the worker registry, in seconds.
    pub worker_heartbeat_secs: u64,
    /// A registered process without a heartbeat for this many seconds is lost: shown as lost,
    /// no longer counted by the health check, and the jobs it claimed are released at once.
    pub worker_lost_secs: u64,
    /// How long a stopping worker or webhook sender lets running jobs and deliveries finish
    /// after SIGTERM/SIGINT before handing the rest back; also the API's graceful-stop bound.
    pub shutdown_grace_secs: u64,
    /// Where the worker or webhook sender serves `GET /metrics` (`host:port`). Unset: the
    /// process's default (`127.0.0.1:9101` worker, `127.0.0.1:9102` webhook sender); empty:
    /// no metrics listener. The API serves `/metrics` on its own port.
    pub metrics_addr: Option<String>,
    /// Jobs stuck in a non-terminal state longer than this are marked stale.
    pub stale_job_hours: u64,
    /// PostgreSQL connections per process.
    pub database_pool_size: usize,
    /// How long a group-commit writer (the worker's jobs' writes, the webhook sender's attempt
    /// claims and records) waits for more writes before sending a group, in milliseconds. 0: it
    /// sends what is waiting at once (writes that arrive while a group is being written still go
    /// out together next).
    pub db_batch_window_ms: u64,
    /// Most writes one group commit carries.
    pub db_batch_max: usize,
    /// Per-user submit rate limits by tier, given as requests per minute (`default=60,pro=600`;
    /// the tier comes from `X-User-Tier`, else `default`). Empty: no limit.
    #[serde(deserialize_with = "parse::rate_tiers")]
    pub rate_limits: BTreeMap<String, Rate>,
    /// When the maintenance job (stale cleanup, queue history trim) runs, given as a cron
    /// expression with seconds (`0 0 3 * * *` = daily at 03:00 UTC). Empty: never (`None`).
    #[serde(deserialize_with = "parse::cron_schedule")]
    pub maintenance_cron: Option<cron::Schedule>,
    /// Finished and dead queue entries older than this many hours are trimmed from Redis.
    pub queue_history_hours: u64,
    /// Finished jobs (completed, failed, cancelled) older than this many days are deleted with
    /// all their rows by the maintenance pass, in small batches. 0 keeps everything.
    pub job_retention_days: u64,
    /// Seconds of quiet after which an SSE stream sends a keep-alive comment.
    pub sse_keepalive_secs: u64,
    /// Lifetime of a browser stream token (`POST /status/{job_id}/stream-token`), in seconds.
    pub stream_token_ttl_secs: u64,
    /// Origins (`https://app.example.com`, comma-separated) whose pages may read the status and
    /// events routes (CORS). Default none.
    #[serde(deserialize_with = "parse::origins")]
    pub cors_allowed_origins: Vec<String>,

    pub log_format: LogFormat,
    /// Base URL of an OTLP/HTTP collector (`http://localhost:4318`): spans go to
    /// `{endpoint}/v1/traces`. Unset or empty: no spans are exported.
    pub otel_exporter_otlp_endpoint: Option<String>,
    /// `service.name` of the exported spans; unset: the process's name (`llmflow-api` …).
    pub otel_service_name: Option<String>,

    /// Environment names workflows may read as `${env.NAME}` in `external_api` steps
    /// (given comma-separated; default `APP_BASE_URL`, the app's base URL the shipped workflows
    /// call back to).
    #[serde(deserialize_with = "parse::env_names")]
    pub workflow_env_allowlist: Vec<String>,
    /// Values of the allow-listed names: read from the environment at load (a value given in
    /// the config file under `[workflow_env]` is used when the variable is unset).
    #[serde(default)]
    pub workflow_env: BTreeMap<String, SecretString>,
    /// Calls per window for each external service, given as `service=calls/seconds`,
    /// comma-separated; `http` is the limit of each host reached by generic `external_api` calls.
    #[serde(deserialize_with = "parse::service_rates")]
    pub external_api_rate_limits: BTreeMap<String, Rate>,
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
    llm_stream_idle_secs: u64,
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
    worker_heartbeat_secs: u64,
    worker_lost_secs: u64,
    shutdown_grace_secs: u64,
    stale_job_hours: u64,
    database_pool_size: usize,
    db_batch_window_ms: u64,
    db_batch_max: usize,
    log_format: LogFormat,
    workflow_env_allowlist: &'static str,
    external_api_rate_limits: &'static str,
    rate_limits: &'static str,
    maintenance_cron: &'static str,
    queue_history_hours: u64,
    job_retention_days: u64,
    sse_keepalive_secs: u64,
    stream_token_ttl_secs: u64,
    cors_allowed_origins: &'static str,
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
    llm_stream_idle_secs: 60,
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
    queue_poll_ms: 50,
    reconcile_interval_secs: 5,
    claim_timeout_secs: 60,
    worker_heartbeat_secs: 3,
    worker_lost_secs: 10,
    shutdown_grace_secs: 25,
    stale_job_hours: 72,
    database_pool_size: 16,
    db_batch_window_ms: 0,
    db_batch_max: 64,
    log_format: LogFormat::Json,
    workflow_env_allowlist: "APP_BASE_URL",
    external_api_rate_limits: "google_places=10/1,http=20/1",
    rate_limits: "",
    maintenance_cron: "0 0 3 * * *",
    queue_history_hours: 24,
    job_retention_days: 30,
    sse_keepalive_secs: 15,
    stream_token_ttl_secs: 900,
    cors_allowed_origins: "",
};

/// The longest group-commit window accepted (`DB_BATCH_WINDOW_MS`), in milliseconds.
const MAX_BATCH_WINDOW_MS: u64 = 5_000;

/// Environment variables read, each mapped to the field of the same name in lower case.
const ENV_KEYS: &[&str] = &[
    "DATABASE_URL",
    "DATABASE_STATEMENT_CACHE",
    "REDIS_URL",
    "REDIS_CA_CERT",
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
    "LLM_STREAM_IDLE_SECS",
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
    "WORKER_HEARTBEAT_SECS",
    "WORKER_LOST_SECS",
    "SHUTDOWN_GRACE_SECS",
    "METRICS_ADDR",
    "STALE_JOB_HOURS",
    "JOB_RETENTION_DAYS",
    "DATABASE_POOL_SIZE",
    "DB_BATCH_WINDOW_MS",
    "DB_BATCH_MAX",
    "LOG_FORMAT",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_SERVICE_NAME",
    "WORKFLOW_ENV_ALLOWLIST",
    "EXTERNAL_API_RATE_LIMITS",
    "RATE_LIMITS",
    "MAINTENANCE_CRON",
    "QUEUE_HISTORY_HOURS",
    "SSE_KEEPALIVE_SECS",
    "STREAM_TOKEN_TTL_SECS",
    "CORS_ALLOWED_ORIGINS",
];

/// The environment variables of [`ENV_KEYS`], each as the text it holds. figment's `Env` reads
/// a value that looks like a number as a number, which refused an API key of digits; numeric
/// settings are read from text instead (`extract_lossy`).
struct EnvText(Env);

impl Provider for EnvText {
    fn metadata(&self) -> Metadata {
        self.0.metadata()
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let dict = self
            .0
            .iter()
            .map(|(key, value)| (key.into_string(), Value::from(value)))
            .collect();
        Ok(self.0.profile.collect(dict))
    }
}

/// Whether `DATABASE_URL` and `REDIS_URL` must be set (services) or may be left empty (tools).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Urls {
    Required,
    Optional,
}

/// Settings that could not be read; the message names the variable at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A required setting is not given.
    #[error(
        "configuration error: {variable} is not set (environment variable, or `{key}` in the \
         LLMFLOW_CONFIG file)"
    )]
    Missing { variable: String, key: String },
    /// A setting's value cannot be read as its type (the source says where it came from).
    #[error("configuration error: {variable}: {}", .source.kind)]
    Malformed {
        variable: String,
        #[source]
        source: Box<figment::Error>,
    },
    /// A setting's value is out of range, or contradicts another setting.
    #[error("configuration error: {variable}: {message}")]
    Invalid { variable: String, message: String },
    /// A key in the file (or in settings built in code) that names no setting.
    #[error("configuration error: `{key}` is not a setting")]
    Unknown {
        key: String,
        #[source]
        source: Box<figment::Error>,
    },
    /// Anything else figment refused (an unreadable or malformed file).
    #[error("configuration error: {0}")]
    Other(#[source] Box<figment::Error>),
}

impl ConfigError {
    /// A value refused by a check after parsing; `key` is the field (`rate_limits`).
    fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            variable: key.to_uppercase(),
            message: message.into(),
        }
    }

    /// Names the variable at fault from figment's error kind and key path.
    fn from_figment(error: figment::Error) -> ConfigError {
        let key = |last: Option<&str>| {
            error
                .path
                .iter()
                .map(String::as_str)
                .chain(last)
                .collect::<Vec<_>>()
                .join(".")
        };
        match &error.kind {
            Kind::MissingField(field) => {
                let key = key(Some(field));
                ConfigError::Missing {
                    variable: key.to_uppercase(),
                    key,
                }
            }
            Kind::UnknownField(field, _) => ConfigError::Unknown {
                key: key(Some(field)),
                source: Box::new(error),
            },
            _ if error.path.is_empty() => ConfigError::Other(Box::new(error)),
            _ => ConfigError::Malformed {
                variable: key(None).to_uppercase(),
                source: Box::new(error),
            },
        }
    }
}

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
        // Lossy: numbers and booleans are read from text (the environment gives only text).
        let mut config: Config = figment.extract_lossy().map_err(ConfigError::from_figment)?;
        config.check(urls)?;
        for name in &config.workflow_env_allowlist {
            if let Ok(value) = std::env::var(name) {
                config
                    .workflow_env
                    .insert(name.clone(), SecretString::from(value));
            }
        }
        Ok(config)
    }

    /// The names of `WORKFLOW_ENV_ALLOWLIST`.
    pub fn workflow_env_names(&self) -> &[String] {
        &self.workflow_env_allowlist
    }

    fn env() -> EnvText {
        EnvText(
            Env::raw()
                .only(ENV_KEYS)
                .map(|key| key.as_str().to_lowercase().into()),
        )
    }

    /// What parsing alone cannot refuse: ranges, and rules across settings.
    fn check(&self, urls: Urls) -> Result<(), ConfigError> {
        for (key, url) in [
            ("database_url", self.database_url.expose_secret()),
            ("redis_url", self.redis_url.expose_secret()),
        ] {
            if url.trim().is_empty() && urls == Urls::Required {
                return Err(ConfigError::invalid(key, "must not be empty"));
            }
        }
        if urls == Urls::Required
            && !self.redis_url.expose_secret().starts_with("redis://")
            && !self.redis_url.expose_secret().starts_with("rediss://")
        {
            return Err(ConfigError::invalid(
                "redis_url",
                "must start with redis:// or rediss://",
            ));
        }
        for (key, value) in [
            ("worker_concurrency", self.worker_concurrency),
            ("webhook_concurrency", self.webhook_concurrency),
            ("database_pool_size", self.database_pool_size),
            ("db_batch_max", self.db_batch_max),
            ("llm_http2_streams", self.llm_http2_streams),
        ] {
            if value == 0 {
                return Err(ConfigError::invalid(key, "must be at least 1"));
            }
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
            ("llm_stream_idle_secs", self.llm_stream_idle_secs),
        ] {
            if secs == 0 {
                return Err(ConfigError::invalid(key, "must be at least 1 second"));
            }
        }
        if let Some(name) = self
            .workflow_env
            .keys()
            .find(|n| !self.workflow_env_allowlist.contains(n))
        {
            return Err(ConfigError::invalid(
                "workflow_env",
                format!("`{name}` is not in WORKFLOW_ENV_ALLOWLIST"),
            ));
        }
        if !crate::llm::PROVIDER_NAMES.contains(&self.default_provider.as_str()) {
            return Err(ConfigError::invalid(
                "default_provider",
                format!("unknown provider `{}`", self.default_provider),
            ));
        }
        if let Some(endpoint) = self.otlp_endpoint() {
            let parsed = url::Url::parse(endpoint).map_err(|e| {
                ConfigError::invalid("otel_exporter_otlp_endpoint", format!("not a URL: {e}"))
            })?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(ConfigError::invalid(
                    "otel_exporter_otlp_endpoint",
                    "must start with http:// or https://",
                ));
            }
        }
        if self.worker_lost_secs <= self.worker_heartbeat_secs.max(1) {
            // A live process would count as lost between two heartbeats, and its jobs released.
            return Err(ConfigError::invalid(
                "worker_lost_secs",
                "must be longer than WORKER_HEARTBEAT_SECS",
            ));
        }
        if self.db_batch_window_ms > MAX_BATCH_WINDOW_MS {
            // Every job's every write would wait this long when the worker is quiet.
            return Err(ConfigError::invalid(
                "db_batch_window_ms",
                format!("must be at most {MAX_BATCH_WINDOW_MS}"),
            ));
        }
        if self.llm_limit_lease_secs == 0 {
            return Err(ConfigError::invalid(
                "llm_limit_lease_secs",
                "must be at least 1",
            ));
        }
        Ok(())
    }

    /// How the processes open PostgreSQL connections (`DATABASE_STATEMENT_CACHE`).
    pub fn database_options(&self) -> crate::db::ConnectOptions {
        crate::db::ConnectOptions::for_url(
            self.database_url.expose_secret(),
            self.database_statement_cache,
        )
    }

    /// Where the processes reach Redis (`REDIS_URL`, `REDIS_CA_CERT`).
    pub fn redis_target(&self) -> crate::queue::RedisTarget {
        crate::queue::RedisTarget {
            url: self.redis_url.expose_secret().to_owned(),
            ca_cert: self.redis_ca_cert.clone(),
        }
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

    /// How long a streamed LLM call may go without a byte.
    pub fn llm_stream_idle(&self) -> Duration {
        Duration::from_secs(self.llm_stream_idle_secs)
    }

    pub fn claim_timeout(&self) -> Duration {
        Duration::from_secs(self.claim_timeout_secs)
    }

    /// How often a process refreshes its registry row.
    pub fn worker_heartbeat(&self) -> Duration {
        Duration::from_secs(self.worker_heartbeat_secs.max(1))
    }

    /// How long a registered process may go without a heartbeat before it counts as lost.
    pub fn worker_lost_after(&self) -> Duration {
        Duration::from_secs(self.worker_lost_secs.max(1))
    }

    /// How long a graceful stop waits for work in flight (`SHUTDOWN_GRACE_SECS`).
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }

    /// The metrics listener's address: `METRICS_ADDR`, else `default`; `None` when set empty.
    pub fn metrics_listen_addr(&self, default: &str) -> Option<String> {
        match self.metrics_addr.as_deref().map(str::trim) {
            None => Some(default.to_owned()),
            Some("") => None,
            Some(addr) => Some(addr.to_owned()),
        }
    }

    pub fn reconcile_interval(&self) -> Duration {
        Duration::from_secs(self.reconcile_interval_secs.max(1))
    }

    /// When a group-commit writer sends a group (`DB_BATCH_WINDOW_MS`, `DB_BATCH_MAX`).
    pub fn group_commit(&self) -> crate::db::group::GroupSettings {
        crate::db::group::GroupSettings {
            window: Duration::from_millis(self.db_batch_window_ms),
            max: self.db_batch_max,
        }
    }

    pub fn queue_poll_interval(&self) -> Duration {
        Duration::from_millis(self.queue_poll_ms.max(1))
    }

    /// How long finished jobs are kept; `None` keeps them for good (`JOB_RETENTION_DAYS=0`).
    pub fn job_retention(&self) -> Option<Duration> {
        (self.job_retention_days > 0)
            .then(|| Duration::from_secs(self.job_retention_days.saturating_mul(24 * 3600)))
    }

    pub fn stale_after(&self) -> Duration {
        Duration::from_secs(self.stale_job_hours.saturating_mul(3600))
    }

    /// The OTLP collector's base URL, when spans are to be exported (`None` when unset or blank).
    pub fn otlp_endpoint(&self) -> Option<&str> {
        self.otel_exporter_otlp_endpoint
            .as_deref()
            .map(str::trim)
            .filter(|e| !e.is_empty())
    }

    /// A secret that is set and not blank.
    pub fn secret(value: &Option<SecretString>) -> Option<&str> {
        value
            .as_ref()
            .map(|s| s.expose_secret())
            .filter(|s| !s.trim().is_empty())
    }
}
