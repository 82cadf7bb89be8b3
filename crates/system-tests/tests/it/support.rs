//! `TestApp`: the whole service in-process — API, worker and webhook sender — against the real
//! PostgreSQL and Redis, on the test's own database and Redis namespace, with the emulator over
//! HTTP as the LLM provider and a receiving HTTP server playing the app's webhook endpoint
//! (all from `llmflow_testkit`).

use std::ops::Deref;

use serde_json::{json, Value};

use llmflow_core::config::Config;
pub use llmflow_testkit::redis::redis_url;
pub use llmflow_testkit::{wait_until, Receiver, ADMIN_KEY, API_KEY, WEBHOOK_SECRET};

pub struct TestApp {
    app: llmflow_testkit::TestApp,
    pub worker: Option<llmflow_worker::WorkerHandle>,
    pub webhook: Option<llmflow_webhook::WebhookHandle>,
}

/// The API's address and client, the test's rooms, the emulator and the receiver.
impl Deref for TestApp {
    type Target = llmflow_testkit::TestApp;

    fn deref(&self) -> &Self::Target {
        &self.app
    }
}

impl TestApp {
    /// API, worker, webhook sender, emulator and receiver, all running.
    pub async fn spawn() -> TestApp {
        Self::spawn_with(json!({})).await
    }

    /// As `spawn`, with configuration overrides (e.g. `{"claim_timeout_secs": 2}`).
    pub async fn spawn_with(overrides: Value) -> TestApp {
        let mut app = Self::spawn_api(overrides).await;
        app.start_worker().await;
        app.start_webhook().await;
        app
    }

    /// API, emulator and receiver only: no consumers running.
    pub async fn spawn_api(overrides: Value) -> TestApp {
        TestApp {
            app: llmflow_testkit::TestApp::start(overrides, serve_api).await,
            worker: None,
            webhook: None,
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
}

/// The API in-process on a free port; answers its base URL.
async fn serve_api(config: Config) -> String {
    let state = llmflow_api::build_state(config).await.expect("api state");
    let (listener, addr) = llmflow_testkit::local_listener();
    tokio::spawn(llmflow_api::run(state, listener).expect("api server"));
    format!("http://{addr}")
}
