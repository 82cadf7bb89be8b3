//! `GET /api/v1/status/{job_id}/events`: SSE with resume by `Last-Event-ID`.

use std::time::Duration;

use futures::StreamExt;
use serde_json::{json, Value};

use llmflow_emulator::ScriptStep;

use crate::support::{wait_until, TestApp, API_KEY};

/// One SSE event of a job's stream.
#[derive(Debug, Clone)]
pub struct Event {
    pub id: Option<String>,
    pub name: String,
    pub data: Value,
}

/// An open SSE response, parsed event by event.
pub struct Sse {
    body: std::pin::Pin<
        Box<dyn futures::Stream<Item = reqwest::Result<actix_web::web::Bytes>> + Send>,
    >,
    buffer: String,
}

impl Sse {
    pub async fn open(app: &TestApp, job_id: &str, last_event_id: Option<&str>) -> Sse {
        let mut request = app
            .http
            .get(app.url(&format!("/status/{job_id}/events")))
            .header("X-API-Key", API_KEY);
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id);
        }
        let response = request.send().await.expect("events");
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        Sse {
            body: Box::pin(response.bytes_stream()),
            buffer: String::new(),
        }
    }

    /// The next event (comments and `retry:` skipped); `None` at the end of the response.
    pub async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let (mut id, mut name, mut data) = (None, None, None);
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id: ") {
                        id = Some(v.to_owned());
                    } else if let Some(v) = line.strip_prefix("event: ") {
                        name = Some(v.to_owned());
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        data = serde_json::from_str(v).ok();
                    }
                }
                if let (Some(name), Some(data)) = (name, data) {
                    return Some(Event { id, name, data });
                }
                continue;
            }
            let chunk = tokio::time::timeout(Duration::from_secs(30), self.body.next())
                .await
                .expect("an event within 30 s")?;
            self.buffer
                .push_str(&String::from_utf8_lossy(&chunk.expect("chunk")));
        }
    }

    /// Every event up to the end of the response.
    pub async fn rest(mut self) -> Vec<Event> {
        let mut events = Vec::new();
        while let Some(e) = self.next().await {
            events.push(e);
        }
        events
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_resume_after_a_dropped_connection_without_loss() {
    let app = TestApp::spawn().await;
    // The first call waits, so the client can connect while the job runs.
    app.emulator
        .push_script(vec![ScriptStep::Delay(Duration::from_millis(1500))]);
    let job_id = app
        .submit_bench("Ship it.\nEMULATOR_SCORE: 80", false)
        .await;
    let mut first = Sse::open(&app, &job_id, None).await;
    let connected = first.next().await.expect("connected");
    assert_eq!(connected.name, "connected");
    assert_eq!(connected.data["job_id"], job_id.as_str());
    let started = first.next().await.expect("first event");
    assert_eq!(started.name, "step_started", "{started:?}");
    assert_eq!(started.data["step_id"], "analyze");
    let resume_from = started.id.clone().expect("events carry ids");
    drop(first); // the connection drops mid-job

    app.wait_for_status(&job_id, "completed", Duration::from_secs(30))
        .await;
    let resumed = Sse::open(&app, &job_id, Some(&resume_from))
        .await
        .rest()
        .await;
    assert_eq!(resumed[0].name, "connected");
    let resumed: Vec<Event> = resumed.into_iter().skip(1).collect();
    // Everything from the start, for comparison.
    let full = Sse::open(&app, &job_id, None).await.rest().await;
    let full: Vec<Event> = full.into_iter().skip(1).collect();
    let names: Vec<&str> = full.iter().map(|e| e.name.as_str()).collect();
    // analyze, extract and refine start and finish (the condition is not a step of its own).
    assert_eq!(
        names,
        [
            "step_started",
            "step_completed",
            "step_started",
            "step_completed",
            "step_started",
            "step_completed",
            "job_completed"
        ]
    );
    assert_eq!(names.first(), Some(&"step_started"));
    assert_eq!(names.last(), Some(&"job_completed"));
    assert!(names.contains(&"step_completed"));
    let ids =
        |events: &[Event]| -> Vec<String> { events.iter().filter_map(|e| e.id.clone()).collect() };
    let full_ids = ids(&full);
    let position = full_ids
        .iter()
        .position(|id| *id == resume_from)
        .expect("resume id in the stream");
    assert_eq!(
        ids(&resumed),
        full_ids[position + 1..].to_vec(),
        "resume loses nothing and repeats nothing"
    );
    let completed = full
        .iter()
        .find(|e| e.name == "step_completed" && e.data["step_id"] == "analyze")
        .expect("analyze completed");
    assert!(completed.data["duration_ms"].as_i64().expect("duration") >= 1000);
    assert!(completed.data["cost_usd"].as_f64().expect("cost") > 0.0);
    assert_eq!(full.last().expect("last").data["result"]["score"], 80);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_webhooks_are_sent_when_asked_for() {
    let app = TestApp::spawn().await;
    let job_id = app.submit_accepted(json!({"workflow_name": "bench_pipeline", "input_data": {"text": "progress\nEMULATOR_SCORE: 10"},
                       "webhook_url": app.receiver.url, "webhook_events": ["workflow.progress"]}),).await;
    app.wait_for_status(&job_id, "completed", Duration::from_secs(30))
        .await;
    let types = wait_until(
        "progress and final webhooks",
        Duration::from_secs(20),
        || async {
            let bodies: Vec<Value> = app.receiver.requests().iter().map(|r| r.json()).collect();
            let progress = bodies
                .iter()
                .filter(|b| b["type"] == "workflow.progress")
                .count();
            let done = bodies.iter().any(|b| b["type"] == "workflow.completed");
            // analyze, extract, route, fallback: started and finished for the non-conditional ones.
            (done && progress >= 6).then_some(bodies)
        },
    )
    .await;
    assert!(
        types
            .iter()
            .any(|b| b["data"]["event"] == "step_started"
                && b["data"]["step"]["step_id"] == "analyze")
    );
    assert!(types
        .iter()
        .any(|b| b["data"]["event"] == "step_completed"
            && b["data"]["step"]["step_id"] == "fallback"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_text_arrives_as_chunk_events_and_chunk_webhooks() {
    let dir = std::env::temp_dir().join(format!("llmflow-wf-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).expect("workflow dir");
    let workflow = json!({
        "name": "streamed", "version": "1", "description": "one streamed call",
        "steps": [{"id": "tell", "type": "llm", "provider": "openai", "model": "gpt-4o-mini",
                   "prompt": "Tell a long story about a quarterly report.", "stream": true,
                   "max_tokens": 400}]
    });
    std::fs::write(dir.join("streamed.json"), workflow.to_string()).expect("write");
    let app = TestApp::spawn_with(json!({"workflows_dir": dir})).await;
    app.emulator
        .set_stream_chunk_delay(Duration::from_millis(5));
    let job_id = app
        .submit_accepted(json!({"workflow_name": "streamed", "input_data": {},
                       "webhook_url": app.receiver.url, "webhook_events": ["workflow.chunk"]}))
        .await;
    let doc = app
        .wait_for_status(&job_id, "completed", Duration::from_secs(30))
        .await;
    let answer = doc["result"]["tell"]
        .as_str()
        .expect("text answer")
        .to_owned();
    let events = Sse::open(&app, &job_id, None).await.rest().await;
    let text: String = events
        .iter()
        .filter(|e| e.name == "chunk")
        .map(|e| e.data["text"].as_str().expect("text"))
        .collect();
    assert!(events.iter().any(|e| e.name == "chunk"), "{events:?}");
    assert_eq!(text, answer, "the chunks add up to the answer");
    // In stream order: seq 0, 1, 2 … and each offset where the text so far ends.
    let mut offset = 0;
    for (seq, chunk) in events.iter().filter(|e| e.name == "chunk").enumerate() {
        assert_eq!(chunk.data["seq"], seq, "{:?}", chunk.data);
        assert_eq!(chunk.data["offset"], offset, "{:?}", chunk.data);
        offset += chunk.data["text"].as_str().expect("text").chars().count();
    }
    let hooks = wait_until("chunk webhooks", Duration::from_secs(20), || async {
        let bodies: Vec<Value> = app.receiver.requests().iter().map(|r| r.json()).collect();
        let chunks: String = bodies
            .iter()
            .filter(|b| b["type"] == "workflow.chunk")
            .filter_map(|b| b["data"]["text"].as_str().map(str::to_owned))
            .collect();
        (chunks.len() == answer.len()).then_some(chunks)
    })
    .await;
    assert!(!hooks.is_empty());
}
