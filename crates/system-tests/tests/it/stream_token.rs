//! Browser access: `POST /status/{job_id}/stream-token`, the token in place of the API key on the
//! job's status and events, and CORS for `CORS_ALLOWED_ORIGINS` on those routes only.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

use llmflow_api::stream_token;

use crate::support::{TestApp, API_KEY};

const ORIGIN: &str = "http://app.test:3000";

async fn app() -> TestApp {
    TestApp::spawn_api(json!({"cors_allowed_origins": ORIGIN, "stream_token_ttl_secs": 120})).await
}

async fn token(app: &TestApp, job_id: &str, user: Option<&str>) -> (StatusCode, Value) {
    let mut request = app
        .http
        .post(app.url(&format!("/status/{job_id}/stream-token")))
        .header("X-API-Key", API_KEY);
    if let Some(user) = user {
        request = request.header("X-User-Id", user);
    }
    let response = request.send().await.expect("stream-token");
    let status = response.status();
    (status, response.json().await.expect("json"))
}

async fn read(app: &TestApp, job_id: &str, route: &str, token: &str) -> reqwest::Response {
    app.http
        .get(app.url(&format!("/status/{job_id}{route}")))
        .query(&[("token", token)])
        .send()
        .await
        .expect("read")
}

#[tokio::test]
async fn a_stream_token_reads_its_one_job_until_it_expires() {
    let app = app().await;
    let user = Uuid::new_v4().to_string();
    let job = app
        .submit_accepted(json!({"workflow_name": "bench_pipeline", "input_data": {"text": "a"}, "user_id": user}))
        .await;
    let other = app.submit_bench("b", false).await;

    let response = app
        .http
        .post(app.url(&format!("/status/{job}/stream-token")))
        .send()
        .await
        .expect("no key");
    assert_eq!(response.status(), 401);
    let (status, _) = token(&app, &job, Some(&Uuid::new_v4().to_string())).await;
    assert_eq!(status, 404, "another user's job is not found");

    let (status, body) = token(&app, &job, Some(&user)).await;
    assert_eq!(status, 200, "{body}");
    let issued = body["token"].as_str().expect("token").to_owned();
    let expires: chrono::DateTime<chrono::Utc> = body["expires_at"]
        .as_str()
        .expect("expires_at")
        .parse()
        .expect("RFC 3339");
    let ttl = expires - chrono::Utc::now();
    assert!(ttl.num_seconds() > 100 && ttl.num_seconds() <= 120, "{ttl}");

    let status = read(&app, &job, "", &issued).await;
    assert_eq!(status.status(), 200);
    let view: Value = status.json().await.expect("json");
    assert_eq!(view["job_id"], json!(job));
    let events = read(&app, &job, "/events", &issued).await;
    assert_eq!(events.status(), 200);
    assert_eq!(events.headers()["content-type"], "text/event-stream");
    drop(events);

    let job_id: Uuid = job.parse().expect("uuid");
    let expired = stream_token::mint(API_KEY, job_id, chrono::Utc::now().timestamp() - 1);
    let mut tampered = issued.clone();
    let last = if tampered.ends_with('A') { "B" } else { "A" };
    tampered.replace_range(tampered.len() - 1.., last);
    let longer = {
        let mut parts: Vec<&str> = issued.split('.').collect();
        let later = (expires.timestamp() + 3600).to_string();
        parts[1] = &later;
        parts.join(".")
    };
    for (what, job_id, token) in [
        ("another job's token", other.as_str(), issued.as_str()),
        ("an expired token", job.as_str(), expired.as_str()),
        ("an altered signature", job.as_str(), tampered.as_str()),
        ("an altered expiry", job.as_str(), longer.as_str()),
        ("not a token", job.as_str(), "nonsense"),
    ] {
        for route in ["", "/events"] {
            let response = read(&app, job_id, route, token).await;
            assert_eq!(response.status(), 401, "{what} on `{route}`");
            let body: Value = response.json().await.expect("envelope");
            assert!(body["detail"].is_string(), "{what}: {body}");
        }
    }
    // Read-only and for its job's status and events alone.
    let steps = app
        .http
        .get(app.url(&format!("/status/{job}/steps/x")))
        .query(&[("token", &issued)])
        .send()
        .await
        .expect("steps");
    assert_eq!(steps.status(), 401);
    let cancel = app
        .http
        .delete(app.url(&format!("/workflow/{job}")))
        .query(&[("token", &issued)])
        .send()
        .await
        .expect("cancel");
    assert_eq!(cancel.status(), 401);
}

async fn preflight(app: &TestApp, path: &str, origin: &str) -> reqwest::Response {
    app.http
        .request(Method::OPTIONS, app.url(path))
        .header("Origin", origin)
        .header("Access-Control-Request-Method", "GET")
        .send()
        .await
        .expect("preflight")
}

fn allowed_origin(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get("access-control-allow-origin")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

#[tokio::test]
async fn cors_opens_status_and_events_to_the_allowed_origins_only() {
    let app = app().await;
    let job = app.submit_bench("c", false).await;
    let (_, body) = token(&app, &job, None).await;
    let issued = body["token"].as_str().expect("token");

    for route in ["", "/events"] {
        let path = format!("/status/{job}{route}");
        let ok = preflight(&app, &path, ORIGIN).await;
        assert!(
            ok.status().is_success(),
            "preflight of `{route}`: {}",
            ok.status()
        );
        assert_eq!(allowed_origin(&ok).as_deref(), Some(ORIGIN));
        let refused = preflight(&app, &path, "http://evil.test").await;
        assert!(!refused.status().is_success(), "wrong origin on `{route}`");
        assert_eq!(allowed_origin(&refused), None);
    }
    let submit = preflight(&app, "/workflow", ORIGIN).await;
    assert_eq!(allowed_origin(&submit), None, "submit is not for browsers");

    for (origin, expected) in [(ORIGIN, Some(ORIGIN)), ("http://evil.test", None)] {
        let response = app
            .http
            .get(app.url(&format!("/status/{job}")))
            .query(&[("token", issued)])
            .header("Origin", origin)
            .send()
            .await
            .expect("status");
        assert_eq!(response.status(), 200);
        assert_eq!(allowed_origin(&response).as_deref(), expected, "{origin}");
    }
    // Errors carry the header too, so the page can read why.
    let response = app
        .http
        .get(app.url(&format!("/status/{job}/events")))
        .query(&[("token", "nonsense")])
        .header("Origin", ORIGIN)
        .send()
        .await
        .expect("events");
    assert_eq!(response.status(), 401);
    assert_eq!(allowed_origin(&response).as_deref(), Some(ORIGIN));
}
