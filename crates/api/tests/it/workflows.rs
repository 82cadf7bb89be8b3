//! The catalog routes: the workflows this deployment runs, and the language's JSON Schema.

use serde_json::{json, Value};

use crate::support::{TestApp, API_KEY};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalog_and_the_language_schema_are_served() {
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
    let list = body["workflows"].as_array().expect("workflows");
    let bench = list
        .iter()
        .find(|w| w["name"] == "bench_pipeline")
        .expect("bench_pipeline listed");
    assert_eq!(bench["version"], "1.0.0");
    assert_eq!(bench["input_schema"]["required"], json!(["text"]));
    assert!(bench["description"].as_str().is_some_and(|d| !d.is_empty()));
    assert_eq!(bench["hash"].as_str().map(str::len), Some(64));

    let unauthenticated = app
        .http
        .get(app.url("/workflows"))
        .send()
        .await
        .expect("list");
    assert_eq!(unauthenticated.status(), 401);

    let response = app
        .http
        .get(app.url("/workflows/schema"))
        .send()
        .await
        .expect("schema");
    assert_eq!(response.status(), 200);
    let schema: Value = response.json().await.expect("json schema");
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    let on_disk: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../workflows/schema.json"
        ))
        .expect("schema file"),
    )
    .expect("schema json");
    assert_eq!(schema, on_disk);
}
