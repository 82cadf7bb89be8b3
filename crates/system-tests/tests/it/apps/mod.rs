//! The app's three AI features as shipped in `workflows/` — `emergency_contacts`,
//! `mission_generation` and `dev_framework` — run through the real API, worker, webhook sender,
//! PostgreSQL, Redis and the emulator, with their output contracts checked on real values.

mod dev_framework;
mod emergency_contacts;
mod mission_generation;

use std::time::Duration;

use serde_json::{json, Value};

use crate::events::{Event, Sse};
use crate::support::{wait_until, TestApp, API_KEY};

/// Every event of a job's stream from its start up to the terminal one (the stream is kept
/// after the job ends, so this may be read after completion).
pub async fn events(app: &TestApp, job_id: &str) -> Vec<Event> {
    Sse::open(app, job_id, None).await.rest().await
}

/// Waits for the job to end (completed, failed or cancelled) and returns its status document.
pub async fn finished(app: &TestApp, job_id: &str, deadline: Duration) -> Value {
    wait_until("the job to finish", deadline, || async {
        let doc = app.status(job_id).await;
        matches!(
            doc["status"].as_str(),
            Some("completed" | "failed" | "cancelled")
        )
        .then_some(doc)
    })
    .await
}

/// The app's wizard data for a household.
pub fn form_data() -> Value {
    json!({
        "location": {"city": "Lyon", "region": "Auvergne-Rhone-Alpes", "country": "France",
                     "latitude": 45.764, "longitude": 4.8357},
        "household": {"adults": 2, "children": 1, "pets": 1, "medicalNeeds": ["insulin"]},
        "scenarios": ["flood", "power_outage", "earthquake"]
    })
}

/// Webhook bodies the receiver got, as JSON.
pub fn webhook_bodies(app: &TestApp) -> Vec<Value> {
    app.receiver.requests().iter().map(|r| r.json()).collect()
}

/// Waits for the job's `workflow.completed` webhook and returns its body.
pub async fn completed_webhook(app: &TestApp, job_id: &str) -> Value {
    wait_until("the completed webhook", Duration::from_secs(20), || async {
        webhook_bodies(app)
            .into_iter()
            .find(|b| b["type"] == "workflow.completed" && b["job_id"] == job_id)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalog_lists_the_three_app_workflows() {
    let app = TestApp::spawn_api(json!({})).await;
    let response = app
        .http
        .get(app.url("/workflows"))
        .header("X-API-Key", API_KEY)
        .send()
        .await
        .expect("list");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    let workflows = body["workflows"].as_array().expect("workflows");
    for name in ["emergency_contacts", "mission_generation", "dev_framework"] {
        let listed = workflows
            .iter()
            .find(|w| w["name"] == name)
            .unwrap_or_else(|| panic!("{name} is not listed: {body:#}"));
        assert_eq!(listed["version"], "1.0.0");
        assert!(listed["input_schema"]["required"].is_array(), "{listed}");
    }
    // A submit that misses the wizard data is refused with the path of what is missing.
    let response = app
        .submit(json!({"workflow_name": "emergency_contacts", "input_data": {"formData": {}}}))
        .await;
    assert_eq!(response.status(), 422);
    let body: Value = response.json().await.expect("json");
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["field"].as_str())
        .collect();
    assert!(
        fields.iter().any(|f| f.starts_with("input_data.formData")),
        "{body:#}"
    );
}
