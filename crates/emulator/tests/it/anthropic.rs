//! `POST /v1/messages` (Anthropic Messages API).

use llmflow_emulator::{count_tokens, Emulator, ScriptStep};
use serde_json::{json, Value};

use crate::{client, emulator, parse_sse, wait_for_stats};

fn messages(emulator: &Emulator, body: &Value) -> reqwest::RequestBuilder {
    client()
        .post(format!("{}/v1/messages", emulator.anthropic_base_url()))
        .header("x-api-key", "sk-ant-test")
        .header("anthropic-version", "2023-06-01")
        .json(body)
}

fn request(user: &str) -> Value {
    json!({
        "model": "claude-3-5-haiku-latest",
        "max_tokens": 1024,
        "system": "You are concise.",
        "messages": [{"role": "user", "content": user}],
    })
}

#[tokio::test]
async fn non_stream_reply_has_anthropic_shape() {
    let emu = emulator().await;
    let user = "What is the capital of Portugal and why is it famous?";
    let response = messages(&emu, &request(user)).send().await.expect("send");
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("request-id"));
    assert!(response
        .headers()
        .contains_key("anthropic-ratelimit-requests-limit"));
    assert!(response
        .headers()
        .contains_key("anthropic-ratelimit-tokens-remaining"));
    let body: Value = response.json().await.expect("JSON");
    assert!(body["id"].as_str().is_some_and(|id| id.starts_with("msg_")));
    assert_eq!(body["type"], "message");
    assert_eq!(body["role"], "assistant");
    assert_eq!(body["model"], "claude-3-5-haiku-latest");
    assert_eq!(body["stop_reason"], "end_turn");
    assert!(body["stop_sequence"].is_null());
    assert_eq!(body["content"][0]["type"], "text");
    let text = body["content"][0]["text"].as_str().expect("text");
    assert!(
        text.starts_with(&format!("Emulated reply to: {user}")),
        "{text}"
    );
    let usage = &body["usage"];
    assert_eq!(
        usage["input_tokens"],
        count_tokens(&format!("You are concise.{user}"))
    );
    assert_eq!(usage["output_tokens"], count_tokens(text));
    assert_eq!(usage["cache_creation_input_tokens"], 0);
    assert_eq!(usage["cache_read_input_tokens"], 0);
}

#[tokio::test]
async fn asking_for_json_gets_the_json_object_shape() {
    let emu = emulator().await;
    let mut body = request("Rate this review: lovely place.\nEMULATOR_SCORE: 80");
    body["system"] = json!([{"type": "text", "text": "Answer only with JSON."}]);
    let reply: Value = messages(&emu, &body)
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("JSON");
    let text = reply["content"][0]["text"].as_str().expect("text");
    let parsed: Value = serde_json::from_str(text).expect("reply is JSON");
    assert_eq!(parsed["score"], 80);
    assert_eq!(parsed["summary"], "Rate this review: lovely place.");
    assert_eq!(parsed["tags"], json!(["tag-a", "tag-b"]));
}

#[tokio::test]
async fn stream_events_come_in_anthropic_order() {
    let emu = emulator().await;
    let user = "Describe a sunrise over the mountains in some detail please";
    let expected: Value = messages(&emu, &request(user))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("JSON");
    let mut body = request(user);
    body["stream"] = json!(true);
    let response = messages(&emu, &body).send().await.expect("send");
    assert_eq!(response.status(), 200);
    let events = parse_sse(&response.text().await.expect("body"));
    let names: Vec<&str> = events
        .iter()
        .map(|e| e.event.as_deref().unwrap_or(""))
        .collect();
    let deltas = names
        .iter()
        .filter(|n| **n == "content_block_delta")
        .count();
    assert!(deltas >= 3, "{names:?}");
    let mut expected_names = vec!["message_start", "content_block_start", "ping"];
    expected_names.extend(std::iter::repeat_n("content_block_delta", deltas));
    expected_names.extend(["content_block_stop", "message_delta", "message_stop"]);
    assert_eq!(names, expected_names);
    // Each event's data `type` matches its name.
    for e in &events {
        assert_eq!(e.json()["type"], e.event.clone().unwrap_or_default());
    }
    let start = events[0].json();
    assert_eq!(
        start["message"]["usage"]["input_tokens"],
        expected["usage"]["input_tokens"]
    );
    let text: String = events
        .iter()
        .filter(|e| e.event.as_deref() == Some("content_block_delta"))
        .map(|e| {
            let d = e.json();
            assert_eq!(d["delta"]["type"], "text_delta");
            d["delta"]["text"].as_str().expect("text").to_owned()
        })
        .collect();
    assert_eq!(text, expected["content"][0]["text"].as_str().expect("text"));
    let delta = events[events.len() - 2].json();
    assert_eq!(delta["delta"]["stop_reason"], "end_turn");
    assert_eq!(
        delta["usage"]["output_tokens"],
        expected["usage"]["output_tokens"]
    );
}

#[tokio::test]
async fn missing_key_version_or_max_tokens_are_rejected() {
    let emu = emulator().await;
    let url = format!("{}/v1/messages", emu.anthropic_base_url());
    let no_key = client()
        .post(&url)
        .header("anthropic-version", "2023-06-01")
        .json(&request("hi"))
        .send()
        .await
        .expect("send");
    assert_eq!(no_key.status(), 401);
    let err: Value = no_key.json().await.expect("JSON");
    assert_eq!(err["type"], "error");
    assert_eq!(err["error"]["type"], "authentication_error");
    assert!(err["error"]["message"].is_string());

    let no_version = client()
        .post(&url)
        .header("x-api-key", "k")
        .json(&request("hi"))
        .send()
        .await
        .expect("send");
    assert_eq!(no_version.status(), 400);
    let err: Value = no_version.json().await.expect("JSON");
    assert_eq!(err["error"]["type"], "invalid_request_error");

    let mut body = request("hi");
    body.as_object_mut().expect("object").remove("max_tokens");
    let no_max = messages(&emu, &body).send().await.expect("send");
    assert_eq!(no_max.status(), 400);
    let err: Value = no_max.json().await.expect("JSON");
    assert_eq!(err["error"]["type"], "invalid_request_error");
    assert!(err["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("max_tokens")));

    let bad_json = client()
        .post(&url)
        .header("x-api-key", "k")
        .header("anthropic-version", "2023-06-01")
        .header("content-type", "application/json")
        .body("[1, 2")
        .send()
        .await
        .expect("send");
    assert_eq!(bad_json.status(), 400);
    let err: Value = bad_json.json().await.expect("JSON");
    assert_eq!(err["type"], "error");
    assert_eq!(emu.stats().calls, 4);
}

#[tokio::test]
async fn scripted_errors_use_anthropic_types() {
    let emu = emulator().await;
    emu.push_script(vec![
        ScriptStep::Status {
            status: 429,
            retry_after: Some(3),
            body: None,
        },
        ScriptStep::Status {
            status: 529,
            retry_after: None,
            body: None,
        },
        ScriptStep::Status {
            status: 500,
            retry_after: None,
            body: None,
        },
    ]);
    let r = messages(&emu, &request("x")).send().await.expect("send");
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "3");
    let err: Value = r.json().await.expect("JSON");
    assert_eq!(err["error"]["type"], "rate_limit_error");
    for (status, kind) in [(529, "overloaded_error"), (500, "api_error")] {
        let r = messages(&emu, &request("x")).send().await.expect("send");
        assert_eq!(r.status(), status);
        let err: Value = r.json().await.expect("JSON");
        assert_eq!(
            (err["type"].as_str(), err["error"]["type"].as_str()),
            (Some("error"), Some(kind))
        );
    }
    let r = messages(&emu, &request("x")).send().await.expect("send");
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn error_mid_stream_is_an_error_event() {
    let emu = emulator().await;
    emu.push_script(vec![ScriptStep::ErrorMidStream]);
    let mut body = request("Tell me a long story about a lighthouse keeper");
    body["stream"] = json!(true);
    let text = messages(&emu, &body)
        .send()
        .await
        .expect("send")
        .text()
        .await
        .expect("body");
    let events = parse_sse(&text);
    let last = events.last().expect("events");
    assert_eq!(last.event.as_deref(), Some("error"));
    assert_eq!(last.json()["error"]["type"], "overloaded_error");
    assert_eq!(
        events
            .iter()
            .filter(|e| e.event.as_deref() == Some("content_block_delta"))
            .count(),
        2
    );
    assert!(events
        .iter()
        .all(|e| e.event.as_deref() != Some("message_stop")));
    let stats = wait_for_stats(&emu, std::time::Duration::from_secs(5), |s| {
        s.completed == 1
    })
    .await;
    assert_eq!(stats.completed, 1);
}
