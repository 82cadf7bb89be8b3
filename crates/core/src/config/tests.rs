//! Loading, parsing and refusing settings. Settings are built with `Serialized` providers, and
//! the environment and file paths inside `figment::Jail` (which restores what it changes).

use std::time::Duration;

use figment::providers::Serialized;
use serde_json::{json, Value};

use super::*;

fn with(values: Value) -> Result<Config, ConfigError> {
    Config::from_overrides(Figment::from(Serialized::defaults(values)))
}

/// The two settings without defaults, plus `extra`.
fn valid_with(extra: Value) -> Result<Config, ConfigError> {
    let mut values = json!({"database_url": "postgres://x", "redis_url": "redis://x"});
    if let (Some(values), Value::Object(extra)) = (values.as_object_mut(), extra) {
        values.extend(extra);
    }
    with(values)
}

/// Refuses `value` for `key`, naming its variable and mentioning `mention`.
fn refuses(key: &str, value: Value, mention: &str) {
    let err = valid_with(json!({ key: value })).expect_err(&format!("{key} = {value}"));
    let text = err.to_string();
    assert!(
        text.contains(&key.to_uppercase()),
        "{key} = {value}: {text}"
    );
    assert!(text.contains(mention), "{key} = {value}: {text}");
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
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
    assert_eq!(config.webhook_retry_schedule, [secs(5), secs(15), secs(45)]);
    assert!(config.webhook_allowed_cidrs.is_empty());
    assert!(config.rate_limits.is_empty());
    assert!(config.llm_limits.0.is_empty());
    assert!(config.maintenance_cron.is_some());
}

#[test]
fn missing_database_url_names_the_field() {
    let err = with(json!({"redis_url": "redis://127.0.0.1"})).expect_err("must fail");
    assert!(err.to_string().contains("DATABASE_URL is not set"), "{err}");
    assert!(matches!(err, ConfigError::Missing { .. }), "{err:?}");
}

#[test]
fn malformed_number_names_the_field() {
    let err = valid_with(json!({"port": "eighty"})).expect_err("must fail");
    assert!(err.to_string().contains("PORT"), "{err}");
    // Where the value came from stays in the chain.
    assert!(std::error::Error::source(&err).is_some(), "{err:?}");
}

#[test]
fn unknown_keys_are_rejected() {
    let err = valid_with(json!({"prot": 1})).expect_err("must fail");
    assert!(err.to_string().contains("prot"), "{err}");
}

#[test]
fn llm_limits_are_parsed_and_checked() {
    let config = valid_with(json!({
        "llm_limits": r#"{"openrouter": {"max_concurrency": 2, "models": {"openai/gpt-4o": {"rpm": 5}}}}"#
    }))
    .expect("valid config");
    let limits = &config.llm_limits;
    assert_eq!(limits.0["openrouter"].rule.max_concurrency, Some(2));
    assert_eq!(limits.0["openrouter"].models["openai/gpt-4o"].rpm, Some(5));
    for bad in [r#"{"acme": {}}"#, r#"{"openai": {"rpm": 0}}"#, "{not json"] {
        refuses("llm_limits", json!(bad), "");
    }
}

#[test]
fn env_allowlist_and_rate_limits_are_parsed_and_checked() {
    let config = valid_with(json!({})).expect("defaults");
    assert_eq!(config.workflow_env_names(), ["APP_BASE_URL"]);
    let limits = &config.external_api_rate_limits;
    assert_eq!(limits["google_places"], Rate::new(10, secs(1)));
    let values = json!({
        "workflow_env_allowlist": "PARTNER_KEY, OTHER",
        "workflow_env": {"PARTNER_KEY": "from-file"},
    });
    let config = valid_with(values).expect("valid");
    assert_eq!(config.workflow_env_names(), ["PARTNER_KEY", "OTHER"]);
    assert_eq!(
        config.workflow_env["PARTNER_KEY"].expose_secret(),
        "from-file"
    );
    let err = valid_with(json!({
        "workflow_env_allowlist": "PARTNER_KEY",
        "workflow_env": {"NOT_LISTED": "x"},
    }))
    .expect_err("value for a name not allowed");
    assert!(err.to_string().contains("NOT_LISTED"), "{err}");
    refuses("external_api_rate_limits", json!("google_places=ten/1"), "");
    refuses("workflow_env_allowlist", json!("OK, 9LIVES"), "`9LIVES`");
}

#[test]
fn rate_limit_tiers_are_rates_per_minute() {
    let config = valid_with(json!({"rate_limits": " default=60 , pro=600,"})).expect("valid");
    assert_eq!(
        config.rate_limits,
        BTreeMap::from([
            ("default".to_owned(), Rate::per_minute(60)),
            ("pro".to_owned(), Rate::per_minute(600)),
        ])
    );
    for (bad, mention) in [
        ("default", "`default` is not tier=requests_per_minute"),
        ("=5", "`=5`"),
        ("default=many", "whole number"),
        ("default=0", "at least 1"),
        ("default=-1", "whole number"),
        ("pro=5,pro=6", "`pro` is listed twice"),
    ] {
        refuses("rate_limits", json!(bad), mention);
    }
}

#[test]
fn external_api_rates_are_calls_per_window() {
    let config = valid_with(json!({"external_api_rate_limits": "google_places=5/2, http=20/1"}))
        .expect("valid");
    assert_eq!(
        config.external_api_rate_limits,
        BTreeMap::from([
            ("google_places".to_owned(), Rate::new(5, secs(2))),
            ("http".to_owned(), Rate::new(20, secs(1))),
        ])
    );
    for bad in [
        "http",
        "http=5",
        "http=0/1",
        "http=5/0",
        "=5/1",
        "http=5/1,http=6/1",
    ] {
        refuses("external_api_rate_limits", json!(bad), "");
    }
}

#[test]
fn allowed_cidrs_are_networks() {
    let config = valid_with(json!({
        "webhook_allowed_cidrs": " 127.0.0.0/8 , ,::1/128,10.1.2.3,"
    }))
    .expect("valid");
    let nets: Vec<String> = config
        .webhook_allowed_cidrs
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(nets, ["127.0.0.0/8", "::1/128", "10.1.2.3/32"]);
    for (list, bad) in [
        ("127.0.0.0/8,nope", "nope"),
        ("10.0.0.0/33", "10.0.0.0/33"),
        ("  300.1.1.1 ", "300.1.1.1"),
        ("::1/129", "::1/129"),
    ] {
        refuses("webhook_allowed_cidrs", json!(list), &format!("`{bad}`"));
    }
}

#[test]
fn retry_schedules_are_whole_seconds() {
    let config = valid_with(json!({"webhook_retry_schedule": " 1 , 2,3 "})).expect("valid");
    assert_eq!(config.webhook_retry_schedule, [secs(1), secs(2), secs(3)]);
    let none = valid_with(json!({"webhook_retry_schedule": ""})).expect("valid");
    assert!(none.webhook_retry_schedule.is_empty());
    for (spec, bad) in [
        ("5,x,45", "x"),
        ("5,,45", ""),
        ("5,-1", "-1"),
        ("1.5", "1.5"),
        ("5s", "5s"),
        ("5,15,", ""),
        ("99999999999999999999", "99999999999999999999"),
    ] {
        refuses(
            "webhook_retry_schedule",
            json!(spec),
            &format!("retry delay `{bad}` is not a whole number of seconds"),
        );
    }
}

#[test]
fn maintenance_cron_is_a_schedule_or_none() {
    let config = valid_with(json!({"maintenance_cron": "  "})).expect("valid");
    assert!(config.maintenance_cron.is_none());
    let config = valid_with(json!({"maintenance_cron": "0 30 4 * * *"})).expect("valid");
    let next = config
        .maintenance_cron
        .and_then(|c| c.upcoming(chrono::Utc).next())
        .expect("a next tick");
    assert_eq!(next.format("%H:%M:%S").to_string(), "04:30:00");
    for bad in ["every day", "0 0 25 * * *", "0 0 0 30 2 *"] {
        refuses("maintenance_cron", json!(bad), &format!("`{bad}`"));
    }
    refuses("maintenance_cron", json!("0 0 0 30 2 *"), "never fires");
}

#[test]
#[allow(clippy::result_large_err)] // the closure's error type is figment's, as `Jail` requires
fn environment_and_file_use_the_documented_text() {
    figment::Jail::expect_with(|jail| {
        jail.create_file(
            "llmflow.toml",
            r#"
                rate_limits = "default=60"
                webhook_retry_schedule = 7
                redis_url = "redis://file"
            "#,
        )?;
        jail.set_env("LLMFLOW_CONFIG", "llmflow.toml");
        jail.set_env("DATABASE_URL", "postgres://x");
        jail.set_env("REDIS_URL", "redis://env");
        jail.set_env("WEBHOOK_ALLOWED_CIDRS", "127.0.0.1");
        jail.set_env("LLM_LIMITS", r#"{"openai": {"rpm": 5}}"#);
        jail.set_env("MAINTENANCE_CRON", "");
        let config = Config::load().map_err(|e| e.to_string())?;
        assert_eq!(config.rate_limits["default"], Rate::per_minute(60));
        assert_eq!(config.webhook_retry_schedule, [secs(7)]);
        assert_eq!(config.redis_url.expose_secret(), "redis://env");
        assert_eq!(config.webhook_allowed_cidrs.len(), 1);
        assert_eq!(config.llm_limits.0["openai"].rule.rpm, Some(5));
        assert!(config.maintenance_cron.is_none());
        // One number is a list of one.
        jail.set_env("WEBHOOK_RETRY_SCHEDULE", "5");
        let config = Config::load().map_err(|e| e.to_string())?;
        assert_eq!(config.webhook_retry_schedule, [secs(5)]);
        // Text that looks like a number stays text where text is expected.
        jail.set_env("LLM_MICROSERVICE_API_KEY", "12345");
        jail.set_env("PORT", "8080");
        jail.set_env("LLM_HTTP2_PRIOR_KNOWLEDGE", "true");
        let config = Config::load().map_err(|e| e.to_string())?;
        let key = Config::secret(&config.llm_microservice_api_key);
        assert_eq!(key, Some("12345"));
        assert_eq!(config.port, 8080);
        assert!(config.llm_http2_prior_knowledge);
        jail.set_env("PORT", "eighty");
        let err = Config::load().expect_err("malformed");
        assert!(err.to_string().contains("PORT"), "{err}");
        jail.set_env("PORT", "8080");
        jail.set_env("EXTERNAL_API_RATE_LIMITS", "google_places=1/x");
        let err = Config::load().expect_err("malformed");
        assert!(
            err.to_string().contains("EXTERNAL_API_RATE_LIMITS"),
            "{err}"
        );
        Ok(())
    });
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

#[test]
fn tools_load_without_connection_urls() {
    let config =
        Config::from_figment(Config::tool_defaults(), Urls::Optional).expect("no URL is needed");
    assert!(config.database_url.expose_secret().is_empty());
    assert_eq!(config.workflows_dir, PathBuf::from("./workflows"));
    let set = Config::tool_defaults().merge(Serialized::default("database_url", "postgres://x"));
    let config = Config::from_figment(set, Urls::Optional).expect("a URL is taken");
    assert_eq!(config.database_url.expose_secret(), "postgres://x");
    let bad = Config::tool_defaults().merge(Serialized::default("stale_job_hours", "soon"));
    let err = Config::from_figment(bad, Urls::Optional).expect_err("still checked");
    assert!(err.to_string().contains("STALE_JOB_HOURS"), "{err}");
    // Services still need both.
    let err = Config::from_figment(Config::tool_defaults(), Urls::Required)
        .expect_err("services need the URLs");
    assert!(err.to_string().contains("DATABASE_URL"), "{err}");
}

#[test]
fn cors_origins_are_origins_and_stream_tokens_live_fifteen_minutes() {
    let config = valid_with(json!({})).expect("valid");
    assert!(config.cors_allowed_origins.is_empty());
    assert_eq!(config.stream_token_ttl_secs, 900);
    let config = valid_with(json!({
        "cors_allowed_origins": " http://localhost:3000 , ,https://app.example.com,"
    }))
    .expect("valid");
    assert_eq!(
        config.cors_allowed_origins,
        ["http://localhost:3000", "https://app.example.com"]
    );
    for bad in ["localhost:3000", "https://app.example.com/", "*", "ftp://x"] {
        refuses("cors_allowed_origins", json!(bad), &format!("`{bad}`"));
    }
}

#[test]
#[allow(clippy::result_large_err)] // the closure's error type is figment's, as `Jail` requires
fn statement_cache_follows_the_setting_else_the_pooler_port() {
    figment::Jail::expect_with(|jail| {
        jail.set_env("REDIS_URL", "rediss://cache.example:6380/0");
        jail.set_env("REDIS_CA_CERT", "/etc/llmflow/redis-ca.pem");
        jail.set_env("DATABASE_URL", "postgres://u@pooler.example:6543/postgres");
        let config = Config::load().map_err(|e| e.to_string())?;
        assert!(!config.database_options().statement_cache, "port 6543");
        let target = config.redis_target();
        assert_eq!(target.url, "rediss://cache.example:6380/0");
        assert_eq!(
            target.ca_cert.as_deref(),
            Some(std::path::Path::new("/etc/llmflow/redis-ca.pem"))
        );
        jail.set_env("DATABASE_STATEMENT_CACHE", "true");
        let config = Config::load().map_err(|e| e.to_string())?;
        assert!(config.database_options().statement_cache, "told to keep it");
        jail.set_env("DATABASE_URL", "postgres://u@db.example:6432/postgres");
        jail.set_env("DATABASE_STATEMENT_CACHE", "false");
        let config = Config::load().map_err(|e| e.to_string())?;
        assert!(
            !config.database_options().statement_cache,
            "told to drop it"
        );
        jail.set_env("DATABASE_STATEMENT_CACHE", "sometimes");
        let err = Config::load().expect_err("not a boolean");
        assert!(
            err.to_string().contains("DATABASE_STATEMENT_CACHE"),
            "{err}"
        );
        Ok(())
    });
}

#[test]
fn otlp_endpoint_is_off_unless_set_and_must_be_an_http_url() {
    let config = valid_with(json!({})).expect("valid");
    assert_eq!(config.otlp_endpoint(), None);
    let config = valid_with(json!({"otel_exporter_otlp_endpoint": "  "})).expect("valid");
    assert_eq!(config.otlp_endpoint(), None, "blank is off");
    let config = valid_with(json!({
        "otel_exporter_otlp_endpoint": "http://collector:4318",
        "otel_service_name": "llmflow-eu",
    }))
    .expect("valid");
    assert_eq!(config.otlp_endpoint(), Some("http://collector:4318"));
    assert_eq!(config.otel_service_name.as_deref(), Some("llmflow-eu"));
    refuses(
        "otel_exporter_otlp_endpoint",
        json!("collector:4318"),
        "http",
    );
    refuses(
        "otel_exporter_otlp_endpoint",
        json!("not a url"),
        "not a URL",
    );
}

#[test]
fn liveness_and_shutdown_grace_have_defaults_and_a_lost_worker_outlasts_a_heartbeat() {
    let config = valid_with(json!({})).expect("valid config");
    assert_eq!(config.worker_heartbeat(), secs(3));
    assert_eq!(config.worker_lost_after(), secs(10));
    assert_eq!(config.shutdown_grace(), secs(25));
    let config = valid_with(json!({"shutdown_grace_secs": "3"})).expect("valid config");
    assert_eq!(config.shutdown_grace(), secs(3));
    refuses(
        "worker_lost_secs",
        json!(3),
        "longer than WORKER_HEARTBEAT_SECS",
    );
    refuses("shutdown_grace_secs", json!("soon"), "SHUTDOWN_GRACE_SECS");
}

#[test]
fn group_commit_sends_at_once_by_default_and_its_window_and_size_are_bounded() {
    let config = valid_with(json!({})).expect("valid config");
    assert_eq!(config.group_commit().window, Duration::ZERO);
    assert_eq!(config.group_commit().max, 64);
    let config =
        valid_with(json!({"db_batch_window_ms": "2", "db_batch_max": "16"})).expect("valid config");
    assert_eq!(config.group_commit().window, Duration::from_millis(2));
    assert_eq!(config.group_commit().max, 16);
    refuses("db_batch_max", json!(0), "at least 1");
    refuses("db_batch_window_ms", json!(60_000), "at most 5000");
    refuses("db_batch_window_ms", json!("soon"), "DB_BATCH_WINDOW_MS");
}

#[test]
fn every_setting_with_a_default_is_read_from_the_environment() {
    let defaults = serde_json::to_value(DEFAULTS).expect("defaults serialise");
    let unread: Vec<String> = defaults
        .as_object()
        .expect("an object")
        .keys()
        .map(|key| key.to_uppercase())
        .filter(|name| !ENV_KEYS.contains(&name.as_str()))
        .collect();
    assert!(unread.is_empty(), "settings no variable sets: {unread:?}");
}
