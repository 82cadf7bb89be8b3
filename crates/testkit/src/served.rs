//! `TestApp`: the API under test as its clients see it — an address and an HTTP client — with
//! the test's rooms (`TestEnv`) and a receiving HTTP server playing the app's webhook endpoint.
//! The crate whose tests use it starts the API (and whatever else the test needs) itself.

use std::future::Future;
use std::time::Duration;

use serde_json::{json, Value};

use llmflow_core::config::Config;
use llmflow_core::db::{PgPool, PooledConn};
use llmflow_emulator::Emulator;

use crate::{redis, wait_until, Receiver, TestEnv, API_KEY};

pub struct TestApp {
    pub address: String,
    pub config: Config,
    pub pool: PgPool,
    pub emulator: Emulator,
    pub receiver: Receiver,
    pub http: reqwest::Client,
    pub namespace: String,
}

impl TestApp {
    /// The test's rooms and receiver, and an API started by `serve`, which is given the
    /// configuration and answers the base URL (`http://host:port`) it serves on.
    pub async fn start<F, Fut>(overrides: Value, serve: F) -> TestApp
    where
        F: FnOnce(Config) -> Fut,
        Fut: Future<Output = String>,
    {
        let TestEnv {
            config,
            pool,
            namespace,
            emulator,
        } = TestEnv::start(overrides).await;
        let receiver = Receiver::spawn().await;
        let address = serve(config.clone()).await;
        TestApp {
            address,
            config,
            pool,
            emulator,
            receiver,
            http: reqwest::Client::new(),
            namespace,
        }
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

    /// Submits `body`, expects 202 and returns the job id.
    pub async fn submit_accepted(&self, body: Value) -> String {
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

    /// Submits `bench_pipeline` and returns the job id.
    pub async fn submit_bench(&self, text: &str, webhook: bool) -> String {
        let mut body = json!({"workflow_name": "bench_pipeline", "input_data": {"text": text}});
        if webhook {
            body["webhook_url"] = json!(self.receiver.url);
        }
        self.submit_accepted(body).await
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

    /// `DELETE /api/v1/workflow/{job_id}`, as `user` (`X-User-Id`) when given: the status and
    /// the body.
    pub async fn cancel(&self, job_id: &str, user: Option<&str>) -> (u16, Value) {
        let mut request = self
            .http
            .delete(self.url(&format!("/workflow/{job_id}")))
            .header("X-API-Key", API_KEY);
        if let Some(user) = user {
            request = request.header("X-User-Id", user);
        }
        let response = request.send().await.expect("cancel");
        let status = response.status().as_u16();
        (status, response.json().await.expect("json"))
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
        redis::wipe(&self.namespace).await;
    }

    pub async fn conn(&self) -> PooledConn {
        self.pool.get().await.expect("db connection")
    }
}
