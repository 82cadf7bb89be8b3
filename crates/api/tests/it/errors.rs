//! Bad inputs of every kind answer with the one envelope and the right status, never a 5xx.

use serde_json::{json, Value};

use crate::support::{TestApp, ADMIN_KEY, API_KEY};

struct Case {
    name: &'static str,
    method: &'static str,
    path: &'static str,
    key: Option<&'static str>,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    status: u16,
    /// A field the envelope's `errors` must name (422 only).
    field: Option<&'static str>,
}

fn case(
    name: &'static str,
    method: &'static str,
    path: &'static str,
    body: &str,
    status: u16,
) -> Case {
    Case {
        name,
        method,
        path,
        key: Some(API_KEY),
        content_type: Some("application/json"),
        body: body.as_bytes().to_vec(),
        status,
        field: None,
    }
}

fn deep(levels: usize) -> String {
    let mut text = "1".to_owned();
    for _ in 0..levels {
        text = format!("[{text}]");
    }
    format!(r#"{{"workflow_name": "bench_pipeline", "input_data": {{"x": {text}}}}}"#)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inputs_get_the_envelope_and_the_right_status() {
    let app = TestApp::spawn_api(json!({})).await;
    let job = "/api/v1/status/00000000-0000-4000-8000-000000000000";
    let mut cases = vec![
        Case {
            field: Some("body"),
            ..case(
                "malformed JSON",
                "POST",
                "/api/v1/workflow",
                "{not json",
                422,
            )
        },
        Case {
            field: Some("body"),
            ..case(
                "truncated JSON",
                "POST",
                "/api/v1/workflow",
                r#"{"workflow_name": "#,
                422,
            )
        },
        Case {
            field: Some("input_data"),
            ..case(
                "missing field",
                "POST",
                "/api/v1/workflow",
                r#"{"workflow_name": "bench_pipeline"}"#,
                422,
            )
        },
        Case {
            field: Some("priority"),
            ..case(
                "priority out of range",
                "POST",
                "/api/v1/workflow",
                r#"{"workflow_name": "bench_pipeline", "input_data": {"text": "x"}, "priority": 99}"#,
                422,
            )
        },
        Case {
            field: Some("max_cost_usd"),
            ..case(
                "negative budget",
                "POST",
                "/api/v1/workflow",
                r#"{"workflow_name": "bench_pipeline", "input_data": {"text": "x"}, "max_cost_usd": -1}"#,
                422,
            )
        },
        Case {
            field: Some("webhook_events[0]"),
            ..case(
                "unknown webhook event",
                "POST",
                "/api/v1/workflow",
                r#"{"workflow_name": "bench_pipeline", "input_data": {"text": "x"}, "webhook_url": "https://example.com/h", "webhook_events": ["workflow.everything"]}"#,
                422,
            )
        },
        Case {
            field: Some("webhook_url"),
            ..case(
                "webhook to a metadata address",
                "POST",
                "/api/v1/workflow",
                r#"{"workflow_name": "bench_pipeline", "input_data": {"text": "x"}, "webhook_url": "http://169.254.169.254/latest"}"#,
                422,
            )
        },
        Case {
            field: Some("webhook_url"),
            ..case(
                "webhook to a private address",
                "POST",
                "/api/v1/workflow",
                r#"{"workflow_name": "bench_pipeline", "input_data": {"text": "x"}, "webhook_url": "http://10.0.0.5/h"}"#,
                422,
            )
        },
        Case {
            field: Some("body"),
            ..case(
                "nested too deep",
                "POST",
                "/api/v1/workflow",
                &deep(40),
                422,
            )
        },
        Case {
            field: Some("body"),
            ..case(
                "nested past serde's limit",
                "POST",
                "/api/v1/workflow",
                &deep(300),
                422,
            )
        },
        case(
            "unknown workflow",
            "POST",
            "/api/v1/workflow",
            r#"{"workflow_name": "nope", "input_data": {}}"#,
            404,
        ),
        Case {
            content_type: Some("text/plain"),
            ..case("wrong content type", "POST", "/api/v1/workflow", "{}", 415)
        },
        Case {
            content_type: None,
            ..case("no content type", "POST", "/api/v1/workflow", "{}", 415)
        },
        case(
            "body too large",
            "POST",
            "/api/v1/workflow",
            &format!(r#"{{"workflow_name": "{}"}}"#, "x".repeat(1_100_000)),
            413,
        ),
        Case {
            key: None,
            ..case("no key", "POST", "/api/v1/workflow", "{}", 401)
        },
        Case {
            key: Some("wrong"),
            ..case("wrong key", "GET", job, "", 401)
        },
        case("unknown job", "GET", job, "", 404),
        case(
            "job id not a UUID",
            "GET",
            "/api/v1/status/not-a-uuid",
            "",
            404,
        ),
        case("unknown route", "GET", "/api/v1/nope", "", 404),
        case("unknown route outside the API", "GET", "/nope", "", 404),
        case("wrong method", "GET", "/api/v1/workflow", "", 405),
        case("wrong method on a job", "PUT", job, "", 405),
        case(
            "cancel of an unknown job",
            "DELETE",
            "/api/v1/workflow/00000000-0000-4000-8000-000000000000",
            "",
            404,
        ),
        Case {
            key: None,
            ..case(
                "admin without a key",
                "POST",
                "/api/v1/admin/cleanup/stale",
                "",
                401,
            )
        },
        case(
            "admin with the client key",
            "POST",
            "/api/v1/admin/cleanup/stale",
            "",
            403,
        ),
        Case {
            key: Some(ADMIN_KEY),
            field: Some("older_than_hours"),
            ..case(
                "admin with a bad threshold",
                "POST",
                "/api/v1/admin/cleanup/stale",
                r#"{"older_than_hours": -3}"#,
                422,
            )
        },
        case(
            "validate with neither name nor definition",
            "POST",
            "/api/v1/workflow/validate",
            "{}",
            422,
        ),
    ];
    let mut bad_user = case("X-User-Id not a UUID", "GET", job, "", 400);
    bad_user.path = job;
    cases.push(bad_user);
    for c in cases {
        let method = reqwest::Method::from_bytes(c.method.as_bytes()).expect("method");
        let mut request = app
            .http
            .request(method, format!("{}{}", app.address, c.path));
        if let Some(key) = c.key {
            request = request.header("X-API-Key", key);
        }
        if let Some(ct) = c.content_type {
            request = request.header("Content-Type", ct);
        }
        if c.name == "X-User-Id not a UUID" {
            request = request.header("X-User-Id", "someone");
        }
        if !c.body.is_empty() {
            request = request.body(c.body.clone());
        }
        let response = request.send().await.expect(c.name);
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let text = response.text().await.expect("body");
        assert_eq!(status, c.status, "{}: {text}", c.name);
        assert!(
            content_type.starts_with("application/json"),
            "{}: content type {content_type}",
            c.name
        );
        let body: Value =
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("{}: not JSON: {text}", c.name));
        assert!(
            body["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{}: {body}",
            c.name
        );
        let keys: Vec<&String> = body.as_object().expect("object").keys().collect();
        assert!(
            keys.iter()
                .all(|k| ["detail", "errors", "request_id"].contains(&k.as_str())),
            "{}: {body}",
            c.name
        );
        if let Some(field) = c.field {
            let fields: Vec<&str> = body["errors"]
                .as_array()
                .unwrap_or_else(|| panic!("{}: errors in {body}", c.name))
                .iter()
                .filter_map(|e| e["field"].as_str())
                .collect();
            assert!(fields.contains(&field), "{}: {fields:?}", c.name);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_and_swagger_ui_are_served() {
    let app = TestApp::spawn_api(json!({})).await;
    let doc: Value = app
        .http
        .get(format!("{}/openapi.json", app.address))
        .send()
        .await
        .expect("openapi")
        .json()
        .await
        .expect("json");
    assert!(doc["openapi"].as_str().expect("version").starts_with("3."));
    // Generated clients name their methods by operationId: each must be unique.
    let mut ids: Vec<&str> = doc["paths"]
        .as_object()
        .expect("paths")
        .values()
        .flat_map(|methods| methods.as_object().expect("methods").values())
        .filter_map(|op| op["operationId"].as_str())
        .collect();
    let count = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), count, "operationIds repeat: {ids:?}");
    for (path, method) in [
        ("/api/v1/workflow", "post"),
        ("/api/v1/workflow/validate", "post"),
        ("/api/v1/workflow/{job_id}", "delete"),
        ("/api/v1/workflow/{job_id}/retry", "post"),
        ("/api/v1/status/{job_id}", "get"),
        ("/api/v1/status/{job_id}/steps/{step_id}", "get"),
        ("/api/v1/status/{job_id}/events", "get"),
        ("/api/v1/health", "get"),
        ("/api/v1/admin/cleanup/stale", "post"),
        ("/api/v1/admin/webhooks/dead", "get"),
        ("/api/v1/admin/webhooks/{delivery_id}/replay", "post"),
        ("/api/v1/workflows", "get"),
        ("/api/v1/workflows/schema", "get"),
    ] {
        let op = &doc["paths"][path][method];
        assert!(op.is_object(), "{method} {path} missing");
        assert!(
            op["responses"].as_object().expect("responses").len() >= 2
                || path == "/api/v1/health"
                || path == "/api/v1/workflows/schema",
            "{path}"
        );
    }
    for schema in [
        "ErrorBody",
        "SubmitRequest",
        "Accepted",
        "StatusView",
        "Validation",
        "Cancelled",
        "CleanupReport",
        "Retried",
        "StepDetail",
    ] {
        assert!(
            doc["components"]["schemas"][schema].is_object(),
            "schema {schema}"
        );
    }
    let ui = app
        .http
        .get(format!("{}/docs/", app.address))
        .send()
        .await
        .expect("docs");
    assert_eq!(ui.status(), 200);
    let html = ui.text().await.expect("html");
    assert!(html.contains("swagger"), "{html}");
    assert!(html.contains("/openapi.json"), "{html}");
}
