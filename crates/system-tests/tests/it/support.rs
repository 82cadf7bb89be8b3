//! `TestApp`: the whole service in-process against the real PostgreSQL and Redis — its own
//! database (copied from a migrated template) and its own Redis namespace — with the emulator
//! over HTTP as the LLM provider and a receiving HTTP server playing the app's webhook endpoint.

use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use figment::providers::Serialized;
use figment::Figment;
use serde_json::{json, Value};
use tokio::sync::OnceCell;

use llmflow_core::config::Config;
use llmflow_core::db::{self, PgPool};
use llmflow_emulator::{Emulator, EmulatorConfig};

pub const API_KEY: &str = "test-client-key";
pub const ADMIN_KEY: &str = "test-admin-key";
pub const WEBHOOK_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

/// Server address for administration (creating databases).
fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

fn database_url(name: &str) -> String {
    let admin = admin_url();
    let base = admin
        .rsplit_once('/')
        .map(|(base, _)| base)
        .unwrap_or(&admin);
    format!("{base}/{name}")
}

pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".to_owned())
}

/// The template's name depends on the migrations, so a changed schema gets a fresh template.
fn template_name() -> String {
    let mut text = String::new();
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../migrations");
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("migrations folder")
        .flatten()
        .collect();
    entries.sort_by_key(|e| e.path());
    for entry in entries {
        for file in ["up.sql", "down.sql"] {
            text.push_str(&std::fs::read_to_string(entry.path().join(file)).unwrap_or_default());
        }
    }
    let hash = llmflow_core::workflow::definition_hash(&Value::String(text));
    format!("llmflow_tpl_{}", &hash[..16])
}

static TEMPLATE: OnceCell<String> = OnceCell::const_new();

/// Creates (once, under an advisory lock shared by every test process) the migrated template.
async fn template() -> String {
    TEMPLATE
        .get_or_init(|| async {
            let name = template_name();
            let mut admin = AsyncPgConnection::establish(&admin_url())
                .await
                .expect("admin connection");
            diesel::sql_query("SELECT pg_advisory_lock(734001)")
                .execute(&mut admin)
                .await
                .expect("lock");
            #[derive(diesel::QueryableByName)]
            struct Exists {
                #[diesel(sql_type = diesel::sql_types::Bool)]
                exists: bool,
            }
            let exists: Exists = diesel::sql_query(format!(
                "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = '{name}') AS exists"
            ))
            .get_result(&mut admin)
            .await
            .expect("query");
            if !exists.exists {
                let building = format!("{name}_building");
                diesel::sql_query(format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)"))
                    .execute(&mut admin)
                    .await
                    .expect("drop");
                diesel::sql_query(format!("CREATE DATABASE {building}"))
                    .execute(&mut admin)
                    .await
                    .expect("create");
                db::run_migrations(&database_url(&building))
                    .await
                    .expect("migrate template");
                diesel::sql_query(format!("ALTER DATABASE {building} RENAME TO {name}"))
                    .execute(&mut admin)
                    .await
                    .expect("rename");
            }
            diesel::sql_query("SELECT pg_advisory_unlock(734001)")
                .execute(&mut admin)
                .await
                .expect("unlock");
            name
        })
        .await
        .clone()
}

/// A fresh database for one test.
pub async fn fresh_database() -> String {
    let template = template().await;
    let name = format!("llmflow_t_{}", uuid::Uuid::now_v7().simple());
    let mut admin = AsyncPgConnection::establish(&admin_url())
        .await
        .expect("admin connection");
    diesel::sql_query(format!("CREATE DATABASE {name} TEMPLATE {template}"))
        .execute(&mut admin)
        .await
        .expect("create test database");
    database_url(&name)
}

/// A new empty database (no migrations applied).
pub async fn empty_database() -> String {
    let name = format!("llmflow_t_{}", uuid::Uuid::now_v7().simple());
    let mut admin = AsyncPgConnection::establish(&admin_url())
        .await
        .expect("admin connection");
    diesel::sql_query(format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .expect("create empty database");
    database_url(&name)
}

/// What the receiving server got.
#[derive(Clone, Debug)]
pub struct Received {
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("webhook body is JSON")
    }
}

/// A webhook consumer: records every request and answers with the queued statuses (then 200).
#[derive(Clone, Default)]
pub struct Receiver {
    pub received: Arc<Mutex<Vec<Received>>>,
    pub replies: Arc<Mutex<Vec<u16>>>,
    pub url: String,
}

impl Receiver {
    pub async fn spawn() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind receiver");
        let url = format!(
            "http://{}/hooks/llmflow",
            listener.local_addr().expect("addr")
        );
        let receiver = Receiver {
            url,
            ..Receiver::default()
        };
        let state = receiver.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(web::Data::new(state.clone()))
                .default_service(web::to(record))
        })
        .workers(1)
        .listen(listener)
        .expect("listen")
        .run();
        tokio::spawn(server);
        receiver
    }

    pub fn requests(&self) -> Vec<Received> {
        self.received.lock().expect("lock").clone()
    }

    pub fn reply_with(&self, statuses: &[u16]) {
        self.replies
            .lock()
            .expect("lock")
            .extend_from_slice(statuses);
    }
}

async fn record(req: HttpRequest, body: web::Bytes, state: web::Data<Receiver>) -> HttpResponse {
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                v.to_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    state.received.lock().expect("lock").push(Received {
        headers,
        body: body.to_vec(),
    });
    let status = {
        let mut replies = state.replies.lock().expect("lock");
        if replies.is_empty() {
            200
        } else {
            replies.remove(0)
        }
    };
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).expect("status")).body("ok")
}

/// Waits until `check` gives `Some`, polling every 50 ms, failing the test after `deadline`.
pub async fn wait_until<T, F, Fut>(what: &str, deadline: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub struct TestApp {
    pub address: String,
    pub config: Config,
    pub pool: PgPool,
    pub emulator: Emulator,
    pub receiver: Receiver,
    pub http: reqwest::Client,
    pub worker: Option<llmflow_worker::WorkerHandle>,
    pub webhook: Option<llmflow_webhook::WebhookHandle>,
    pub namespace: String,
}

impl TestApp {
    /// API, worker, webhook sender, emulator and receiver, all running.
    pub async fn spawn() -> TestApp {
        Self::spawn_with(json!({})).await
    }

    /// As `spawn`, with configuration overrides (e.g. `{"claim_timeout_secs": 2}`).
    pub async fn spawn_with(overrides: Value) -> TestApp {
        let app = Self::spawn_api(overrides).await;
        let mut app = app;
        app.start_worker().await;
        app.start_webhook().await;
        app
    }

    /// API, emulator and receiver only: no consumers running.
    pub async fn spawn_api(overrides: Value) -> TestApp {
        llmflow_core::telemetry::init(llmflow_core::config::LogFormat::Pretty);
        let emulator = Emulator::spawn(EmulatorConfig::default())
            .await
            .expect("emulator");
        let receiver = Receiver::spawn().await;
        let database_url = fresh_database().await;
        let namespace = format!("t{}", uuid::Uuid::now_v7().simple());
        let mut values = json!({
            "database_url": database_url,
            "redis_url": redis_url(),
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
            for (k, v) in overrides {
                values.insert(k.clone(), v.clone());
            }
        }
        let config = Config::from_overrides(Figment::from(Serialized::defaults(values)))
            .expect("test config");
        let state = llmflow_api::build_state(config.clone())
            .await
            .expect("api state");
        let pool = state.pool.clone();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind api");
        let address = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(llmflow_api::run(state, listener).expect("api server"));
        TestApp {
            address,
            config,
            pool,
            emulator,
            receiver,
            http: reqwest::Client::new(),
            worker: None,
            webhook: None,
            namespace,
        }
    }

    pub async fn start_worker(&mut self) {
        let state = llmflow_worker::WorkerState::connect(self.config.clone())
            .await
            .expect("worker state");
        self.worker = Some(llmflow_worker::start(state));
    }

    pub async fn start_webhook(&mut self) {
        let state = llmflow_webhook::WebhookState::connect(self.config.clone())
            .await
            .expect("webhook state");
        self.webhook = Some(llmflow_webhook::start(state));
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.address)
    }

    pub async fn submit(&self, body: Value) -> reqwest::Response {
        self.http
            .post(self.url("/workflow"))
            .header("X-API-Key", API_KEY)
            .json(&body)
            .send()
            .await
            .expect("submit")
    }

    /// Submits `bench_pipeline` and returns the job id.
    pub async fn submit_bench(&self, text: &str, webhook: bool) -> String {
        let mut body = json!({"workflow_name": "bench_pipeline", "input_data": {"text": text}});
        if webhook {
            body["webhook_url"] = json!(self.receiver.url);
        }
        let response = self.submit(body).await;
        assert_eq!(
            response.status(),
            202,
            "submit answered {:?}",
            response.text().await
        );
        let body: Value = response.json().await.expect("json");
        body["job_id"].as_str().expect("job_id").to_owned()
    }

    pub async fn status(&self, job_id: &str) -> Value {
        let response = self
            .http
            .get(self.url(&format!("/status/{job_id}")))
            .header("X-API-Key", API_KEY)
            .send()
            .await
            .expect("status");
        assert_eq!(response.status(), 200);
        response.json().await.expect("json")
    }

    /// Waits for the job to reach `status` and returns its status document.
    pub async fn wait_for_status(&self, job_id: &str, status: &str, deadline: Duration) -> Value {
        wait_until(
            &format!("job {job_id} to be {status}"),
            deadline,
            || async {
                let doc = self.status(job_id).await;
                (doc["status"] == status).then_some(doc)
            },
        )
        .await
    }

    /// Deletes every Redis key of this test's namespace: Redis losing everything it held.
    pub async fn wipe_redis(&self) {
        let client = redis::Client::open(redis_url()).expect("redis client");
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .expect("redis");
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}:*", self.namespace))
            .query_async(&mut conn)
            .await
            .expect("keys");
        if !keys.is_empty() {
            let _: () = redis::cmd("DEL")
                .arg(&keys)
                .query_async(&mut conn)
                .await
                .expect("del");
        }
    }

    pub async fn conn(&self) -> db::PooledConn {
        self.pool.get().await.expect("db connection")
    }
}
