//! `POST /v1/chat/completions` (OpenAI and OpenRouter).

use std::time::Duration;

use llmflow_emulator::{count_tokens, openrouter_cost, EmulatorConfig, ScriptStep};
use serde_json::{json, Value};

use crate::{client, emulator, emulator_with, parse_sse, read_until_error, wait_for_stats};

fn chat(emulator: &llmflow_emulator::Emulator, body: &Value) -> reqwest::RequestBuilder {
    client()
        .post(format!("{}/chat/completions", emulator.openai_base_url()))
        .bearer_auth("sk-test")
        .json(body)
}

fn request(model: &str, user: &str) -> Value {
    json!({
        "model": model,
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": user},
        ],
        "temperature": 0.2,
    })
}

async fn json_of(response: reqwest::Response) -> Value {
    response.json().await.expect("JSON body")
}

#[tokio::test]
async fn non_stream_reply_has_openai_shape_and_usage() {
    let emu = emulator().await;
    let user = "Hello there, please describe the weather in Lisbon today";
    let response = chat(&emu, &request("gpt-4o-mini", user))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    for name in [
        "x-request-id",
        "x-ratelimit-limit-requests",
        "x-ratelimit-remaining-requests",
        "x-ratelimit-reset-requests",
        "x-ratelimit-limit-tokens",
        "x-ratelimit-remaining-tokens",
        "x-ratelimit-reset-tokens",
    ] {
        assert!(headers.contains_key(name), "missing header {name}");
    }
    let body = json_of(response).await;
    assert!(
        body["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("chatcmpl-")),
        "{body}"
    );
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "gpt-4o-mini");
    assert!(body["created"].as_i64().is_some_and(|t| t > 1_600_000_000));
    assert!(body.get("provider").is_none());
    let choice = &body["choices"][0];
    assert_eq!(choice["index"], 0);
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(choice["finish_reason"], "stop");
    let content = choice["message"]["content"]
        .as_str()
        .expect("string content");
    assert!(
        content.starts_with(&format!("Emulated reply to: {user}")),
        "{content}"
    );

    let usage = &body["usage"];
    let prompt = count_tokens(&format!("You are a helpful assistant.{user}"));
    let completion = count_tokens(content);
    assert_eq!(usage["prompt_tokens"], prompt);
    assert_eq!(usage["completion_tokens"], completion);
    assert_eq!(usage["total_tokens"], prompt + completion);
    assert_eq!(usage["prompt_tokens_details"]["cached_tokens"], 0);
    assert!(usage.get("cost").is_none());

    // Deterministic: the same request gives the same content.
    let again = json_of(
        chat(&emu, &request("gpt-4o-mini", user))
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(again["choices"][0]["message"]["content"], content);
    assert_ne!(again["id"], body["id"]);
}

#[tokio::test]
async fn max_tokens_caps_completion_tokens() {
    let emu = emulator().await;
    let mut body = request("gpt-4o-mini", "Write a long essay about the sea");
    body["max_completion_tokens"] = json!(3);
    let reply = json_of(chat(&emu, &body).send().await.expect("send")).await;
    assert_eq!(reply["usage"]["completion_tokens"], 3);
}

#[tokio::test]
async fn openrouter_model_reports_cost_and_provider() {
    let emu = emulator().await;
    let model = "openai/gpt-4o-mini";
    let mut body = request(model, "Summarise the history of Rome");
    body["usage"] = json!({"include": true});
    let reply = json_of(chat(&emu, &body).send().await.expect("send")).await;
    assert!(
        reply["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("gen-")),
        "{reply}"
    );
    assert_eq!(reply["model"], model);
    assert_eq!(reply["provider"], "OpenAI");
    let usage = &reply["usage"];
    let p = usage["prompt_tokens"].as_u64().expect("prompt tokens");
    let c = usage["completion_tokens"]
        .as_u64()
        .expect("completion tokens");
    let cost = usage["cost"].as_f64().expect("usage.cost is a number");
    assert!(cost > 0.0);
    assert!((cost - openrouter_cost(model, p, c)).abs() < 1e-12);
    assert!((cost - (p as f64 * 0.15 + c as f64 * 0.60) / 1e6).abs() < 1e-12);

    // Unknown models cost 0.0001 USD per 1k tokens.
    let reply = json_of(
        chat(&emu, &request("acme/mystery-1", "hi"))
            .send()
            .await
            .expect("send"),
    )
    .await;
    let total = reply["usage"]["total_tokens"].as_f64().expect("total");
    let cost = reply["usage"]["cost"].as_f64().expect("cost");
    assert!((cost - total * 0.0001 / 1000.0).abs() < 1e-15, "{cost}");
    assert_eq!(reply["provider"], "Acme");
}

#[tokio::test]
async fn stream_sends_role_content_finish_usage_then_done() {
    let emu = emulator_with(EmulatorConfig {
        stream_chunk_delay: Duration::from_millis(5),
        ..EmulatorConfig::default()
    })
    .await;
    let user = "Explain how rainbows form in a few sentences";
    let expected = json_of(
        chat(&emu, &request("gpt-4o", user))
            .send()
            .await
            .expect("send"),
    )
    .await;
    let expected_content = expected["choices"][0]["message"]["content"]
        .as_str()
        .expect("content");

    let mut body = request("gpt-4o", user);
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let response = chat(&emu, &body).send().await.expect("send");
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        content_type.starts_with("text/event-stream"),
        "{content_type}"
    );
    let events = parse_sse(&response.text().await.expect("body"));

    assert_eq!(events.last().map(|e| e.data.as_str()), Some("[DONE]"));
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| e.json())
        .collect();
    assert!(chunks
        .iter()
        .all(|c| c["object"] == "chat.completion.chunk"));
    assert!(chunks.iter().all(|c| c["id"] == chunks[0]["id"]));
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");

    let usage_chunk = chunks.last().expect("usage chunk");
    assert_eq!(usage_chunk["choices"], json!([]));
    assert_eq!(
        usage_chunk["usage"]["total_tokens"],
        expected["usage"]["total_tokens"]
    );

    let finish_chunk = &chunks[chunks.len() - 2];
    assert_eq!(finish_chunk["choices"][0]["finish_reason"], "stop");

    let deltas = &chunks[1..chunks.len() - 2];
    assert!(
        deltas.len() >= 3,
        "expected several content chunks, got {}",
        deltas.len()
    );
    assert!(deltas
        .iter()
        .all(|c| c["choices"][0]["finish_reason"].is_null()));
    let streamed: String = deltas
        .iter()
        .map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .expect("delta text")
        })
        .collect();
    assert_eq!(streamed, expected_content);
}

#[tokio::test]
async fn stream_without_usage_option_has_no_usage_chunk() {
    let emu = emulator().await;
    let mut body = request("gpt-4o", "Hi there, how are you doing?");
    body["stream"] = json!(true);
    let text = chat(&emu, &body)
        .send()
        .await
        .expect("send")
        .text()
        .await
        .expect("body");
    let events = parse_sse(&text);
    assert_eq!(events.last().map(|e| e.data.as_str()), Some("[DONE]"));
    let before_done = events[events.len() - 2].json();
    assert_eq!(before_done["choices"][0]["finish_reason"], "stop");
    assert!(events
        .iter()
        .filter(|e| e.data != "[DONE]")
        .all(|e| e.json().get("usage").is_none()));
}

#[tokio::test]
async fn openrouter_stream_usage_include_adds_cost_chunk() {
    let emu = emulator().await;
    let mut body = request("anthropic/claude-3.5-haiku", "Stream something please now");
    body["stream"] = json!(true);
    body["usage"] = json!({"include": true});
    let text = chat(&emu, &body)
        .send()
        .await
        .expect("send")
        .text()
        .await
        .expect("body");
    let events = parse_sse(&text);
    let usage = events[events.len() - 2].json();
    assert_eq!(usage["choices"], json!([]));
    assert!(
        usage["usage"]["cost"].as_f64().is_some_and(|c| c > 0.0),
        "{usage}"
    );
}

#[tokio::test]
async fn missing_or_empty_bearer_is_401_with_openai_error_shape() {
    let emu = emulator().await;
    let url = format!("{}/chat/completions", emu.openai_base_url());
    let body = request("gpt-4o-mini", "hi");
    let no_auth = client().post(&url).json(&body).send().await.expect("send");
    let empty = client()
        .post(&url)
        .header("authorization", "Bearer ")
        .json(&body)
        .send()
        .await
        .expect("send");
    for response in [no_auth, empty] {
        assert_eq!(response.status(), 401);
        let err = json_of(response).await;
        let error = err["error"].as_object().expect("error object");
        for key in ["message", "type", "param", "code"] {
            assert!(error.contains_key(key), "missing error.{key}: {err}");
        }
        assert_eq!(err["error"]["type"], "invalid_request_error");
    }
    assert_eq!(emu.stats().calls, 2);
    assert!(emu.stats().calls_by_model.is_empty());
}

#[tokio::test]
async fn bad_json_and_missing_fields_are_400() {
    let emu = emulator().await;
    let url = format!("{}/chat/completions", emu.openai_base_url());
    let bad = client()
        .post(&url)
        .bearer_auth("k")
        .header("content-type", "application/json")
        .body("{\"model\": ")
        .send()
        .await
        .expect("send");
    assert_eq!(bad.status(), 400);
    assert_eq!(json_of(bad).await["error"]["type"], "invalid_request_error");
    let missing = chat(&emu, &json!({"model": "gpt-4o"}))
        .send()
        .await
        .expect("send");
    assert_eq!(missing.status(), 400);
    assert_eq!(json_of(missing).await["error"]["param"], "messages");
}

#[tokio::test]
async fn scripted_429_with_retry_after_then_ok() {
    let emu = emulator().await;
    emu.push_script(vec![ScriptStep::Status {
        status: 429,
        retry_after: Some(7),
        body: None,
    }]);
    let first = chat(&emu, &request("gpt-4o-mini", "hi"))
        .send()
        .await
        .expect("send");
    assert_eq!(first.status(), 429);
    assert_eq!(first.headers()["retry-after"], "7");
    assert_eq!(first.headers()["x-ratelimit-reset-requests"], "7s");
    assert_eq!(first.headers()["x-ratelimit-remaining-requests"], "0");
    let err = json_of(first).await;
    assert_eq!(err["error"]["code"], "rate_limit_exceeded");

    let second = chat(&emu, &request("gpt-4o-mini", "hi"))
        .send()
        .await
        .expect("send");
    assert_eq!(second.status(), 200);
    let stats = emu.stats();
    assert_eq!(stats.calls, 2);
    assert_eq!(stats.calls_by_model.get("gpt-4o-mini"), Some(&2));
    assert_eq!(stats.injected_errors, 1);
    assert_eq!(stats.completed, 2);
    assert_eq!(emu.pending_script(), 0);
}

#[tokio::test]
async fn scripted_steps_are_consumed_in_order() {
    let emu = emulator().await;
    emu.push_script(vec![
        ScriptStep::Status {
            status: 529,
            retry_after: None,
            body: None,
        },
        ScriptStep::Status {
            status: 500,
            retry_after: None,
            body: Some(json!({"custom": true})),
        },
        ScriptStep::Content("exactly this".into()),
        ScriptStep::Delay(Duration::from_millis(150)),
    ]);
    let r = chat(&emu, &request("gpt-4o", "x"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 529);
    assert_eq!(json_of(r).await["error"]["type"], "overloaded_error");
    let r = chat(&emu, &request("gpt-4o", "x"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 500);
    assert_eq!(json_of(r).await, json!({"custom": true}));
    let r = json_of(
        chat(&emu, &request("gpt-4o", "x"))
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(r["choices"][0]["message"]["content"], "exactly this");
    let (r, elapsed) = crate::timed(chat(&emu, &request("gpt-4o", "x")).send()).await;
    assert_eq!(r.expect("send").status(), 200);
    assert!(elapsed >= Duration::from_millis(150), "{elapsed:?}");
}

#[tokio::test]
async fn openrouter_errors_use_openrouter_shape() {
    let emu = emulator().await;
    emu.push_script(vec![ScriptStep::Status {
        status: 429,
        retry_after: Some(1),
        body: None,
    }]);
    let r = chat(&emu, &request("openai/gpt-4o", "x"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 429);
    let err = json_of(r).await;
    assert_eq!(err["error"]["code"], 429);
    assert!(err["error"]["message"].is_string());
}

#[tokio::test]
async fn emulator_reply_directive_sets_exact_content() {
    let emu = emulator().await;
    let user = "Score this essay.\nEMULATOR_REPLY: {\"score\": 80, \"reason\": \"good\"}";
    let r = json_of(
        chat(&emu, &request("gpt-4o-mini", user))
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(
        r["choices"][0]["message"]["content"],
        "{\"score\": 80, \"reason\": \"good\"}"
    );
}

#[tokio::test]
async fn json_object_reply_has_benchmark_shape() {
    let emu = emulator().await;
    let mut body = request(
        "gpt-4o-mini",
        "Review: the food was great and the service was friendly but slow at times.",
    );
    body["response_format"] = json!({"type": "json_object"});
    let r = json_of(chat(&emu, &body).send().await.expect("send")).await;
    let content: Value =
        serde_json::from_str(r["choices"][0]["message"]["content"].as_str().expect("str"))
            .expect("content is JSON");
    assert_eq!(
        content["summary"],
        "Review: the food was great and the service was friendly but slow"
    );
    assert!(content["score"]
        .as_i64()
        .is_some_and(|s| (0..=100).contains(&s)));
    assert_eq!(content["tags"], json!(["tag-a", "tag-b"]));

    body["messages"][1]["content"] = json!("Rate it\nEMULATOR_SCORE: 20");
    let r = json_of(chat(&emu, &body).send().await.expect("send")).await;
    let content: Value =
        serde_json::from_str(r["choices"][0]["message"]["content"].as_str().expect("str"))
            .expect("content is JSON");
    assert_eq!(content["score"], 20);
}

#[tokio::test]
async fn json_schema_reply_satisfies_the_schema() {
    let emu = emulator().await;
    let schema = json!({
        "type": "object",
        "properties": {
            "score": {"type": "integer", "minimum": 40, "maximum": 45},
            "confidence": {"type": "number", "minimum": 0.5, "maximum": 0.75},
            "label": {"type": "string", "enum": ["positive", "negative", "neutral"]},
            "keywords": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 3},
            "flagged": {"type": "boolean"},
            "details": {
                "type": "object",
                "properties": {"words": {"type": "integer", "minimum": 1}},
                "required": ["words"],
                "additionalProperties": false
            }
        },
        "required": ["score", "confidence", "label", "keywords", "flagged", "details"],
        "additionalProperties": false
    });
    let validator = jsonschema::validator_for(&schema).expect("valid schema");
    let mut seen = std::collections::BTreeSet::new();
    for prompt in [
        "first text",
        "second text",
        "third text",
        "fourth text",
        "fifth text",
    ] {
        let mut body = request("gpt-4o-mini", prompt);
        body["response_format"] = json!({
            "type": "json_schema",
            "json_schema": {"name": "review", "schema": schema, "strict": true}
        });
        let r = json_of(chat(&emu, &body).send().await.expect("send")).await;
        let text = r["choices"][0]["message"]["content"]
            .as_str()
            .expect("str")
            .to_owned();
        let instance: Value = serde_json::from_str(&text).expect("content is JSON");
        assert!(
            validator.is_valid(&instance),
            "{instance} does not satisfy the schema"
        );
        let again = json_of(chat(&emu, &body).send().await.expect("send")).await;
        assert_eq!(
            again["choices"][0]["message"]["content"], text,
            "not deterministic"
        );
        seen.insert(text);
    }
    assert!(
        seen.len() > 1,
        "different prompts should give different instances"
    );
}

#[tokio::test]
async fn error_rate_one_always_answers_500() {
    let emu = emulator_with(EmulatorConfig {
        error_rate: 1.0,
        seed: Some(7),
        ..EmulatorConfig::default()
    })
    .await;
    for _ in 0..3 {
        let r = chat(&emu, &request("gpt-4o-mini", "x"))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 500);
        assert_eq!(json_of(r).await["error"]["type"], "server_error");
    }
    // A scripted Ok step overrides the error rate.
    emu.push_script(vec![ScriptStep::Ok]);
    let r = chat(&emu, &request("gpt-4o-mini", "x"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    emu.set_error_rate(0.0);
    let r = chat(&emu, &request("gpt-4o-mini", "x"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    assert_eq!(emu.stats().injected_errors, 3);
}

#[tokio::test]
async fn drop_mid_stream_cuts_the_connection_after_two_chunks() {
    let emu = emulator().await;
    emu.push_script(vec![ScriptStep::DropMidStream]);
    let mut body = request(
        "gpt-4o-mini",
        "Tell me a long story about dragons and knights",
    );
    body["stream"] = json!(true);
    let response = chat(&emu, &body).send().await.expect("headers arrive");
    assert_eq!(response.status(), 200);
    let (text, failed) = read_until_error(response).await;
    assert!(failed, "the body should end with an error, got {text:?}");
    assert!(!text.contains("[DONE]"));
    let contents = text.matches("\"content\":").count();
    assert_eq!(contents, 3, "role chunk plus two content chunks: {text}");
}

#[tokio::test]
async fn drop_mid_stream_on_non_stream_request_closes_without_response() {
    let emu = emulator().await;
    emu.push_script(vec![ScriptStep::DropMidStream]);
    let result = chat(&emu, &request("gpt-4o-mini", "x")).send().await;
    let failed = match result {
        Err(_) => true,
        Ok(response) => response.bytes().await.is_err(),
    };
    assert!(failed, "expected a transport error");
    // The next call is normal again.
    let r = chat(&emu, &request("gpt-4o-mini", "x"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn error_mid_stream_sends_error_chunk_without_done() {
    let emu = emulator().await;
    emu.push_script(vec![ScriptStep::ErrorMidStream]);
    let mut body = request(
        "gpt-4o-mini",
        "Tell me a long story about dragons and knights",
    );
    body["stream"] = json!(true);
    let text = chat(&emu, &body)
        .send()
        .await
        .expect("send")
        .text()
        .await
        .expect("body");
    let events = parse_sse(&text);
    assert!(events.iter().all(|e| e.data != "[DONE]"));
    let last = events.last().expect("events").json();
    assert_eq!(last["error"]["type"], "server_error");
}

#[tokio::test]
async fn max_in_flight_reaches_five_with_five_concurrent_slow_requests() {
    let emu = emulator().await;
    let calls = (0..5).map(|i| {
        chat(&emu, &request("gpt-4o-mini", &format!("request {i}")))
            .header("x-emulator-latency-ms", "1500")
            .send()
    });
    let all = futures::future::join_all(calls);
    let watcher = wait_for_stats(&emu, Duration::from_secs(5), |s| s.in_flight == 5);
    let (responses, seen) = tokio::join!(all, watcher);
    assert_eq!(seen.in_flight, 5, "{seen:?}");
    for r in responses {
        assert_eq!(r.expect("send").status(), 200);
    }
    let stats = emu.stats();
    assert_eq!(stats.max_in_flight, 5);
    assert_eq!(stats.in_flight, 0);
    assert_eq!(stats.completed, 5);
    assert_eq!(stats.dropped, 0);
    assert_eq!(stats.calls, 5);
}

#[tokio::test]
async fn rendezvous_answers_only_once_enough_calls_are_in_flight_together() {
    let emu = emulator().await;
    emu.set_rendezvous(2);
    let first = tokio::spawn(chat(&emu, &request("gpt-4o-mini", "first")).send());
    let seen = wait_for_stats(&emu, Duration::from_secs(5), |s| s.in_flight == 1).await;
    assert_eq!(seen.in_flight, 1, "{seen:?}");
    assert!(!first.is_finished(), "a lone call waits for its partner");
    let second = chat(&emu, &request("gpt-4o-mini", "second")).send().await;
    assert_eq!(second.expect("send").status(), 200);
    let first = first.await.expect("task").expect("send");
    assert_eq!(first.status(), 200);
    let stats = emu.stats();
    assert_eq!((stats.max_in_flight, stats.completed), (2, 2));
    // Once reached, later calls go straight through.
    let third = chat(&emu, &request("gpt-4o-mini", "third")).send().await;
    assert_eq!(third.expect("send").status(), 200);
}

#[tokio::test]
async fn client_that_gives_up_during_latency_is_counted_as_dropped() {
    let emu = emulator().await;
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(200))
        .build()
        .expect("client");
    let result = impatient
        .post(format!("{}/chat/completions", emu.openai_base_url()))
        .bearer_auth("k")
        .header("x-emulator-latency-ms", "30000")
        .json(&request("gpt-4o-mini", "slow"))
        .send()
        .await;
    assert!(result.is_err(), "the client should time out");
    let stats = wait_for_stats(&emu, Duration::from_secs(10), |s| s.dropped == 1).await;
    assert_eq!(stats.dropped, 1, "{stats:?}");
    assert_eq!(stats.in_flight, 0);
    assert_eq!(stats.completed, 0);
}

#[tokio::test]
async fn hang_lasts_until_the_client_drops() {
    let emu = emulator().await;
    emu.push_script(vec![ScriptStep::Hang]);
    let request_fut = chat(&emu, &request("gpt-4o-mini", "x")).send();
    let outcome = tokio::time::timeout(Duration::from_millis(300), request_fut).await;
    assert!(outcome.is_err(), "a hanging call must not answer");
    let stats = wait_for_stats(&emu, Duration::from_secs(10), |s| s.dropped == 1).await;
    assert_eq!((stats.dropped, stats.in_flight), (1, 0), "{stats:?}");
}

#[tokio::test]
async fn client_that_drops_a_slow_stream_is_counted_as_dropped() {
    let emu = emulator_with(EmulatorConfig {
        stream_chunk_delay: Duration::from_millis(200),
        ..EmulatorConfig::default()
    })
    .await;
    let mut body = request(
        "gpt-4o-mini",
        "Stream a long answer about the ocean and its tides",
    );
    body["stream"] = json!(true);
    let mut response = chat(&emu, &body).send().await.expect("send");
    let first = response
        .chunk()
        .await
        .expect("first chunk")
        .expect("some bytes");
    assert!(String::from_utf8_lossy(&first).contains("\"role\":\"assistant\""));
    assert_eq!(emu.stats().in_flight, 1);
    drop(response);
    let stats = wait_for_stats(&emu, Duration::from_secs(10), |s| s.dropped == 1).await;
    assert_eq!(
        (stats.dropped, stats.in_flight, stats.completed),
        (1, 0, 0),
        "{stats:?}"
    );
}

#[tokio::test]
async fn latency_header_and_set_latency_delay_replies() {
    let emu = emulator().await;
    let (r, elapsed) = crate::timed(
        chat(&emu, &request("gpt-4o-mini", "x"))
            .header("x-emulator-latency-ms", "200")
            .send(),
    )
    .await;
    assert_eq!(r.expect("send").status(), 200);
    assert!(elapsed >= Duration::from_millis(200), "{elapsed:?}");

    emu.set_latency(Duration::from_millis(250));
    let (r, elapsed) = crate::timed(chat(&emu, &request("gpt-4o-mini", "x")).send()).await;
    assert_eq!(r.expect("send").status(), 200);
    assert!(elapsed >= Duration::from_millis(250), "{elapsed:?}");
}

#[tokio::test]
async fn a_latency_directive_sets_one_calls_latency() {
    let emu = emulator().await;
    emu.set_latency(Duration::from_secs(30));
    let prompt = "slow one.\nEMULATOR_LATENCY_MS: 300";
    let (r, elapsed) = crate::timed(chat(&emu, &request("gpt-4o-mini", prompt)).send()).await;
    let body: Value = r.expect("send").json().await.expect("json");
    assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
    assert!(
        elapsed < Duration::from_secs(30),
        "the directive replaces the configured latency: {elapsed:?}"
    );
    let text = body["choices"][0]["message"]["content"]
        .as_str()
        .expect("content");
    assert!(!text.contains("EMULATOR_LATENCY_MS"), "{text}");
}
