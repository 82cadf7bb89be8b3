//! `TestEnv`: one test's rooms — its own database and Redis namespace — with the emulator over
//! HTTP as every LLM provider and Google Places, and the configuration every llmflow process of
//! the test is started with.

use figment::providers::Serialized;
use figment::Figment;
use serde_json::{json, Value};

use llmflow_core::config::{Config, LogFormat};
use llmflow_core::db::{self, PgPool, PooledConn};
use llmflow_emulator::{Emulator, EmulatorConfig};

use crate::{database, redis};

pub const API_KEY: &str = "test-client-key";
pub const ADMIN_KEY: &str = "test-admin-key";
pub const WEBHOOK_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

pub struct TestEnv {
    pub config: Config,
    /// A pool on the test's database, for the test's own queries.
    pub pool: PgPool,
    pub namespace: String,
    pub emulator: Emulator,
}

impl TestEnv {
    /// A fresh database, a new namespace and a running emulator; `overrides` (configuration
    /// fields, e.g. `{"claim_timeout_secs": 2}`) replace the test defaults. In an override's
    /// text, `{database}` stands for the fresh database's name (e.g. to reach it through a
    /// pooler); the test's own pool connects to it directly.
    pub async fn start(overrides: Value) -> TestEnv {
        llmflow_core::telemetry::init(LogFormat::Pretty);
        let emulator = Emulator::spawn(EmulatorConfig::default())
            .await
            .expect("emulator");
        let database_url = database::fresh_database().await;
        let namespace = redis::new_namespace();
        let mut values = json!({
            "database_url": database_url,
            "redis_url": redis::redis_url(),
            "redis_namespace": namespace,
            "llm_microservice_api_key": API_KEY,
            "admin_api_key": ADMIN_KEY,
            "llm_webhook_secret": WEBHOOK_SECRET,
            "openrouter_api_key": "emulator-key",
            "openrouter_base_url": emulator.openai_base_url(),
            "openai_api_key": "emulator-key",
            "openai_base_url": emulator.openai_base_url(),
            "anthropic_api_key": "emulator-key",
            "anthropic_base_url": emulator.anthropic_base_url(),
            "google_places_api_key": "emulator-key",
            "google_places_base_url": emulator.places_base_url(),
            "workflows_dir": concat!(env!("CARGO_MANIFEST_DIR"), "/../../workflows"),
            "prompts_dir": concat!(env!("CARGO_MANIFEST_DIR"), "/../../prompts"),
            "webhook_allowed_cidrs": "127.0.0.0/8",
            "webhook_retry_schedule": "1,1,1",
            "worker_concurrency": 50,
            "queue_poll_ms": 50,
            "reconcile_interval_secs": 1,
            "claim_timeout_secs": 5,
            "database_pool_size": 8,
            "log_format": "pretty",
        });
        if let (Some(values), Some(overrides)) = (values.as_object_mut(), overrides.as_object()) {
            let name = database_url.rsplit('/').next().unwrap_or_default();
            for (k, v) in overrides {
                let v = match v.as_str() {
                    Some(text) => Value::String(text.replace("{database}", name)),
                    None => v.clone(),
                };
                values.insert(k.clone(), v);
            }
        }
        let config = Config::from_overrides(Figment::from(Serialized::defaults(values)))
            .expect("test config");
        let pool = db::connect(&database_url, 8)
            .await
            .expect("test database pool");
        TestEnv {
            config,
            pool,
            namespace,
            emulator,
        }
    }

    pub async fn conn(&self) -> PooledConn {
        self.pool.get().await.expect("db connection")
    }
}
