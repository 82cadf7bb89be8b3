//! `TestApp`: the API in-process against the real PostgreSQL and Redis, on the test's own
//! database and Redis namespace, with the emulator as the LLM provider (from `llmflow_testkit`).
//! No worker or webhook sender runs: jobs stay where the API put them.

use std::ops::Deref;

use serde_json::Value;

use llmflow_core::config::Config;
pub use llmflow_testkit::database::empty_database;
pub use llmflow_testkit::{ADMIN_KEY, API_KEY};

pub struct TestApp(llmflow_testkit::TestApp);

/// The API's address and client, the test's rooms and the emulator.
impl Deref for TestApp {
    type Target = llmflow_testkit::TestApp;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl TestApp {
    /// The API alone, with configuration overrides (e.g. `{"rate_limits": "default=3"}`).
    pub async fn spawn_api(overrides: Value) -> TestApp {
        TestApp(llmflow_testkit::TestApp::start(overrides, serve).await)
    }
}

/// The API on a free local port; answers its base URL.
async fn serve(config: Config) -> String {
    let state = llmflow_api::build_state(config).await.expect("api state");
    let (listener, addr) = llmflow_testkit::local_listener();
    tokio::spawn(llmflow_api::run(state, listener).expect("api server"));
    format!("http://{addr}")
}
