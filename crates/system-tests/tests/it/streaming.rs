//! Streamed calls end to end: `workflow.chunk` webhooks carry `seq` and `offset` so a receiver
//! can order and deduplicate them; a long stream is not cut by the whole-request cap of
//! non-streamed calls (`LLM_TIMEOUT_SECS`, scaled down here), while a stalled one fails at the
//! idle timeout (`LLM_STREAM_IDLE_SECS`); a non-streamed call is bounded by its step's
//! `timeout_ms` when it has one.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};

use llmflow_emulator::ScriptStep;

use crate::support::{wait_until, TestApp};

fn workflows_dir(definitions: &[Value]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("llmflow-wf-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).expect("workflows dir");
    for definition in definitions {
        let name = definition["name"].as_str().expect("name");
        std::fs::write(dir.join(format!("{name}.json")), definition.to_string())
            .expect("write workflow");
    }
    dir
}

/// One LLM step, streamed or not, with an optional `timeout_ms`.
fn one_call(name: &str, stream: bool, timeout_ms: Option<u64>) -> Value {
    let mut step = json!({"id": "tell", "type": "llm", "provider": "openai", "model": "gpt-4o-mini",
        "prompt": "Tell a long story about a quarterly report.", "stream": stream, "max_tokens": 400});
    if let Some(ms) = timeout_ms {
        step["timeout_ms"] = json!(ms);
    }
    json!({"name": name, "version": "1", "steps": [step]})
}

async fn spawn(definitions: &[Value], extra: Value) -> TestApp {
    let mut overrides = json!({"workflows_dir": workflows_dir(definitions)});
    if let (Some(o), Some(extra)) = (overrides.as_object_mut(), extra.as_object()) {
        o.extend(extra.clone());
    }
    TestApp::spawn_with(overrides).await
}

async fn finished(app: &TestApp, job_id: &str) -> Value {
    wait_until("the job to finish", Duration::from_secs(60), || async {
        let doc = app.status(job_id).await;
        matches!(doc["status"].as_str(), Some("completed" | "failed")).then_some(doc)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunk_webhooks_carry_seq_and_offset_to_order_and_deduplicate_them() {
    let app = spawn(&[one_call("streamed", true, None)], json!({})).await;
    // Paced so the text goes out in several batches.
    app.emulator
        .set_stream_chunk_delay(Duration::from_millis(120));
    let job_id = app
        .submit_accepted(json!({"workflow_name": "streamed", "input_data": {},
                       "webhook_url": app.receiver.url, "webhook_events": ["workflow.chunk"]}))
        .await;
    let doc = finished(&app, &job_id).await;
    assert_eq!(doc["status"], "completed", "{doc:#}");
    let answer = doc["result"]["tell"].as_str().expect("text").to_owned();
    let mut chunks = wait_until("every chunk webhook", Duration::from_secs(30), || async {
        let chunks: Vec<Value> = app
            .receiver
            .requests()
            .iter()
            .map(|r| r.json())
            .filter(|b| b["type"] == "workflow.chunk")
            .map(|b| b["data"].clone())
            .collect();
        let chars: usize = chunks
            .iter()
            .map(|c| c["text"].as_str().map_or(0, |t| t.chars().count()))
            .sum();
        (chars == answer.chars().count()).then_some(chunks)
    })
    .await;
    assert!(chunks.len() >= 3, "{} chunks", chunks.len());
    // Delivered in any order, and one delivered twice: the receiver's view.
    chunks.reverse();
    chunks.push(chunks[1].clone());
    chunks.sort_by_key(|c| c["seq"].as_u64().expect("seq"));
    chunks.dedup_by_key(|c| (c["step_id"].clone(), c["attempt"].clone(), c["seq"].clone()));
    let mut expected_offset = 0;
    let mut text = String::new();
    for (i, chunk) in chunks.iter().enumerate() {
        assert_eq!(chunk["seq"], i, "{chunk}");
        assert_eq!(chunk["attempt"], 1);
        assert_eq!(chunk["step_id"], "tell");
        assert_eq!(chunk["offset"], expected_offset, "{chunk}");
        let part = chunk["text"].as_str().expect("text");
        expected_offset += part.chars().count();
        text.push_str(part);
    }
    assert_eq!(text, answer, "the ordered chunks add up to the answer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_longer_than_the_request_cap_completes_and_a_stalled_one_times_out() {
    // The whole-request cap of non-streamed calls is 1 s here (120 s by default); a streamed
    // call goes on as long as bytes keep coming, at most 1 s apart.
    let app = spawn(
        &[one_call("streamed", true, None)],
        json!({"llm_timeout_secs": 1, "llm_stream_idle_secs": 1, "llm_retry_max_attempts": 1}),
    )
    .await;
    app.emulator
        .set_stream_chunk_delay(Duration::from_millis(250));
    let job_id = app
        .submit_accepted(json!({"workflow_name": "streamed", "input_data": {}}))
        .await;
    let doc = finished(&app, &job_id).await;
    assert_eq!(doc["status"], "completed", "{doc:#}");
    let step = &doc["steps"][0];
    assert!(
        step["duration_ms"].as_i64().expect("duration") > 1500,
        "the stream outlasted the 1 s cap: {step}"
    );
    assert!(!doc["result"]["tell"].as_str().expect("text").is_empty());

    // Now the chunks come 1.5 s apart: the first gap past the idle timeout fails the call.
    app.emulator
        .set_stream_chunk_delay(Duration::from_millis(1500));
    let job_id = app
        .submit_accepted(json!({"workflow_name": "streamed", "input_data": {}}))
        .await;
    let doc = finished(&app, &job_id).await;
    assert_eq!(doc["status"], "failed", "{doc:#}");
    let error = doc["error_message"].as_str().expect("error");
    assert!(
        error.contains("timeout") && error.contains("idle"),
        "{error}"
    );
    assert_eq!(doc["steps"][0]["status"], "failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_streamed_call_is_bounded_by_its_step_timeout() {
    let app = spawn(
        &[
            one_call("patient", false, Some(10_000)),
            one_call("default_cap", false, None),
        ],
        json!({"llm_timeout_secs": 1, "llm_retry_max_attempts": 1}),
    )
    .await;
    // Both answers take 2 s: past LLM_TIMEOUT_SECS, within the first step's `timeout_ms`.
    app.emulator
        .push_script(vec![ScriptStep::Delay(Duration::from_secs(2))]);
    let patient = app
        .submit_accepted(json!({"workflow_name": "patient", "input_data": {}}))
        .await;
    let doc = finished(&app, &patient).await;
    assert_eq!(doc["status"], "completed", "{doc:#}");
    app.emulator
        .push_script(vec![ScriptStep::Delay(Duration::from_secs(2))]);
    let capped = app
        .submit_accepted(json!({"workflow_name": "default_cap", "input_data": {}}))
        .await;
    let doc = finished(&app, &capped).await;
    assert_eq!(doc["status"], "failed", "{doc:#}");
    assert!(doc["error_message"]
        .as_str()
        .expect("error")
        .contains("timeout"));
}
