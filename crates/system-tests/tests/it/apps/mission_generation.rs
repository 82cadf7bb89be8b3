//! `mission_generation`: the streamed report reaches the caller as SSE chunks, chunk webhooks
//! and the final result; its bundle recommendations name only bundles of the catalog, whether
//! the catalog came with the job or from the app's own endpoint.

use std::time::Duration;

use serde_json::{json, Value};

use llmflow_testkit::{Reply, Scripted};

use super::{completed_webhook, events, finished, form_data, webhook_bodies};
use crate::support::{wait_until, TestApp};

fn catalog() -> Value {
    json!([
        {"id": "water-72h", "name": "Water for 72 hours", "description": "Twelve litres per person, purification tablets."},
        {"id": "first-aid-family", "name": "Family first-aid kit", "description": "Dressings, medicines, a guide."},
        {"id": "power-outage", "name": "Power-outage bundle", "description": "Lamps, batteries, a power bank, a radio."},
        {"id": "go-bag-2p", "name": "Two-person go-bag", "description": "Everything for leaving home in ten minutes."},
        {"id": "pet-kit", "name": "Pet emergency kit", "description": "Food, water and a carrier for a small pet."}
    ])
}

/// Checks `bundleRecommendations` against the catalog and returns the recommended ids.
fn recommended(result: &Value, catalog: &Value) -> Vec<String> {
    let recommendations = result["bundleRecommendations"]
        .as_array()
        .expect("bundleRecommendations");
    assert!(!recommendations.is_empty(), "{result:#}");
    let entries = catalog.as_array().expect("catalog");
    recommendations
        .iter()
        .map(|r| {
            let id = r["bundle_id"].as_str().expect("bundle_id");
            let bundle = entries
                .iter()
                .find(|b| b["id"] == id)
                .unwrap_or_else(|| panic!("{id} is not in the catalog: {result:#}"));
            assert_eq!(r["name"], bundle["name"], "{r}");
            assert!(r["reason"].as_str().is_some_and(|s| !s.is_empty()), "{r}");
            let priority = r["priority"].as_i64().expect("priority");
            assert!((1..=5).contains(&priority), "{r}");
            id.to_owned()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_streamed_report_arrives_three_ways_and_recommends_catalog_bundles() {
    let app = TestApp::spawn().await;
    app.emulator
        .set_stream_chunk_delay(Duration::from_millis(2));
    let job_id = app
        .submit_accepted(json!({"workflow_name": "mission_generation",
                                "input_data": {"formData": form_data(), "bundles": catalog()},
                                "webhook_url": app.receiver.url,
                                "webhook_events": ["workflow.chunk"]}))
        .await;
    let doc = finished(&app, &job_id, Duration::from_secs(60)).await;
    assert_eq!(doc["status"], "completed", "{doc:#}");
    let result = &doc["result"];
    let report = result["report"].as_str().expect("report text").to_owned();
    assert!(report.starts_with("# Mission overview\n"), "{report}");
    assert_eq!(result["bundlesSource"], "input");

    // SSE: the chunk events, in stream order, add up to the report.
    let events = events(&app, &job_id).await;
    let chunks: Vec<&str> = events
        .iter()
        .filter(|e| e.name == "chunk")
        .map(|e| {
            assert_eq!(e.data["step_id"], "generate_streaming");
            e.data["text"].as_str().expect("text")
        })
        .collect();
    assert!(chunks.len() > 1, "streamed in several chunks: {chunks:?}");
    assert_eq!(chunks.concat(), report, "the chunks add up to the report");
    let mut offset = 0;
    for (seq, chunk) in events.iter().filter(|e| e.name == "chunk").enumerate() {
        assert_eq!(chunk.data["seq"], seq, "{:?}", chunk.data);
        assert_eq!(chunk.data["offset"], offset, "{:?}", chunk.data);
        offset += chunk.data["text"].as_str().expect("text").chars().count();
    }
    let started = events
        .iter()
        .position(|e| e.name == "step_started" && e.data["step_id"] == "generate_streaming")
        .expect("started");
    let first_chunk = events
        .iter()
        .position(|e| e.name == "chunk")
        .expect("chunk");
    let completed = events
        .iter()
        .position(|e| e.name == "step_completed" && e.data["step_id"] == "generate_streaming")
        .expect("completed");
    assert!(started < first_chunk && first_chunk < completed);
    assert_eq!(
        events.last().expect("last").data["result"]["report"],
        report.as_str()
    );

    // The parsed sections and the recommendations.
    let sections = &result["sections"];
    for key in [
        "mission_overview",
        "threat_assessment",
        "action_plan",
        "supplies_checklist",
    ] {
        assert!(sections.get(key).is_some(), "{key}: {sections:#}");
    }
    assert_eq!(
        sections["action_plan"].as_array().map(Vec::len),
        Some(8),
        "{sections:#}"
    );
    let threats: Vec<&str> = sections["threat_assessment"]
        .as_array()
        .expect("a table")
        .iter()
        .filter_map(|row| row["Scenario"].as_str())
        .collect();
    assert_eq!(
        threats,
        ["flood", "power_outage", "earthquake"],
        "one row per scenario"
    );
    let ids = recommended(result, &catalog());
    assert_eq!(ids.len(), 3, "{result:#}");

    // Chunk webhooks carry the same text; the completed one carries the result.
    let webhook = completed_webhook(&app, &job_id).await;
    assert_eq!(webhook["result"]["report"], report.as_str());
    // Delivered in any order; ordered by `seq`, they add up to the report.
    let mut hooks = wait_until("the chunk webhooks", Duration::from_secs(20), || async {
        let hooks: Vec<Value> = webhook_bodies(&app)
            .into_iter()
            .filter(|b| b["type"] == "workflow.chunk")
            .collect();
        (hooks.len() == chunks.len()).then_some(hooks)
    })
    .await;
    hooks.sort_by_key(|b| b["data"]["seq"].as_u64());
    let text: String = hooks
        .iter()
        .map(|b| b["data"]["text"].as_str().expect("text"))
        .collect();
    assert_eq!(
        text, report,
        "chunk webhooks ordered by seq add up to the report"
    );
    let stats = app.emulator.stats();
    assert_eq!(stats.calls, 1);
    assert_eq!(stats.calls_by_model["anthropic/claude-3.5-sonnet"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_bundles_the_catalog_is_loaded_from_the_app() {
    // The app's catalog endpoint, served over HTTP in the test.
    let app_site = Scripted::spawn(vec![Reply::Full {
        status: 200,
        headers: vec![("content-type", "application/json".to_owned())],
        body: json!({"bundles": catalog()}).to_string(),
    }])
    .await;
    let base = app_site.url.trim_end_matches("/hooks").to_owned();
    let app =
        TestApp::spawn_with(json!({"workflow_env": {"APP_BASE_URL": format!("{base}/")}})).await;
    let job_id = app
        .submit_accepted(json!({"workflow_name": "mission_generation",
                                "input_data": {"formData": form_data()}}))
        .await;
    let doc = finished(&app, &job_id, Duration::from_secs(60)).await;
    assert_eq!(doc["status"], "completed", "{doc:#}");
    let result = &doc["result"];
    assert_eq!(result["bundlesSource"], "app");
    let ids = recommended(result, &catalog());
    assert_eq!(ids.len(), 3, "{result:#}");
    let hits = app_site.hits();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].request_line, "GET /api/llmflow/bundles");
    assert_eq!(hits[0].header("accept"), "application/json");

    // The app's catalog endpoint is down: the step retries, then fails clearly; the job does
    // not vanish.
    let broken = Scripted::spawn(vec![Reply::Status(503); 3]).await;
    let base = broken.url.trim_end_matches("/hooks").to_owned();
    let app = TestApp::spawn_with(json!({"workflow_env": {"APP_BASE_URL": base}})).await;
    let job_id = app
        .submit_accepted(json!({"workflow_name": "mission_generation",
                                "input_data": {"formData": form_data()}}))
        .await;
    let doc = finished(&app, &job_id, Duration::from_secs(60)).await;
    assert_eq!(doc["status"], "failed", "{doc:#}");
    let error = doc["error_message"].as_str().unwrap_or_default();
    assert!(
        error.contains("bundles_from_app") && error.contains("HTTP 503"),
        "{error}"
    );
    assert_eq!(broken.hits().len(), 3, "retried three times in all");
    assert_eq!(app.emulator.stats().calls, 0, "no report without a catalog");
}
