//! `/_emulator/*` control endpoints and server lifecycle.

use std::time::Duration;

use serde_json::{json, Value};

use crate::{client, emulator};

async fn chat_status(base: &str) -> u16 {
    client()
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth("k")
        .json(&json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]}))
        .send()
        .await
        .expect("send")
        .status()
        .as_u16()
}

#[tokio::test]
async fn http_script_config_stats_and_reset() {
    let emu = emulator().await;
    let base = emu.base_url();
    let script = json!([
        {"type": "status", "status": 429, "retry_after": 1},
        "ok",
        {"type": "status", "status": 503}
    ]);
    let r = client()
        .post(format!("{base}/_emulator/script"))
        .json(&script)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.expect("JSON")["pending"], 3);
    assert_eq!(chat_status(&base).await, 429);
    assert_eq!(chat_status(&base).await, 200);
    assert_eq!(chat_status(&base).await, 503);
    assert_eq!(chat_status(&base).await, 200);

    let bad = client()
        .post(format!("{base}/_emulator/script"))
        .json(&json!([{"type": "explode"}]))
        .send()
        .await
        .expect("send");
    assert_eq!(bad.status(), 400);

    let stats: Value = client()
        .get(format!("{base}/_emulator/stats"))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("JSON");
    assert_eq!(stats["calls"], 4);
    assert_eq!(stats["calls_by_model"]["gpt-4o-mini"], 4);
    assert_eq!(stats["completed"], 4);
    assert_eq!(stats["in_flight"], 0);
    assert_eq!(stats["max_in_flight"], 1);
    assert_eq!(stats["dropped"], 0);
    assert_eq!(stats["places_calls"], 0);

    let config: Value = client()
        .post(format!("{base}/_emulator/config"))
        .json(&json!({"latency_ms": 200, "error_rate": 0.0}))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("JSON");
    assert_eq!(config["latency_ms"], 200);
    let (status, elapsed) = crate::timed(chat_status(&base)).await;
    assert_eq!(status, 200);
    assert!(elapsed >= Duration::from_millis(200), "{elapsed:?}");

    let invalid = client()
        .post(format!("{base}/_emulator/config"))
        .json(&json!({"error_rate": 2.0}))
        .send()
        .await
        .expect("send");
    assert_eq!(invalid.status(), 400);

    let reset = client()
        .post(format!("{base}/_emulator/reset"))
        .send()
        .await
        .expect("send");
    assert_eq!(reset.status(), 200);
    assert_eq!(emu.stats(), llmflow_emulator::EmulatorStats::default());
}

#[tokio::test]
async fn unknown_paths_are_404_json() {
    let emu = emulator().await;
    let r = client()
        .get(format!("{}/v1/nope", emu.base_url()))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 404);
    let body: Value = r.json().await.expect("JSON");
    assert!(body["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("/v1/nope")));
}

#[tokio::test]
async fn openrouter_path_alias_serves_chat_completions() {
    let emu = emulator().await;
    let r = client()
        .post(format!("{}/chat/completions", emu.openrouter_base_url()))
        .bearer_auth("k")
        .json(
            &json!({"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]}),
        )
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn shutdown_stops_the_server() {
    let emu = emulator().await;
    let base = emu.base_url();
    assert_eq!(chat_status(&base).await, 200);
    emu.shutdown().await;
    let fresh = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    let result = fresh.get(format!("{base}/_emulator/health")).send().await;
    assert!(result.is_err(), "server should be gone");
}
