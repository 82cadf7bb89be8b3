//! Retry from the failed step (`POST /api/v1/workflow/{job_id}/retry`) and step outputs
//! (`GET /api/v1/status/{job_id}/steps/{step_id}`), on the shipped document pipeline
//! `dev_framework`: smart_detection → (event_storming?) → prd → parallel (tech_stack,
//! approach_detection) → execution_plan.

use std::time::Duration;

use serde_json::{json, Value};

use llmflow_core::db::jobs;
use llmflow_emulator::ScriptStep;

use crate::support::{wait_until, TestApp, API_KEY};

/// The workflow the retry tests run: `workflows/dev_framework.json`. The tests take the path
/// without event storming (see [`detection_answer`]), so that the LLM calls come in the order
/// smart_detection, prd, the two parallel ones, execution_plan (the emulator's script fails
/// them by that order).
const PIPELINE: &str = "dev_framework";

/// The id of the parallel step (tech_stack ∥ approach_detection).
const PARALLEL_STEP: &str = "design";

fn pipeline_input() -> Value {
    json!({"projectIdea": "A shared shopping list for a household, synced between phones."})
}

/// smart_detection's answer: no event storming.
fn detection_answer() -> ScriptStep {
    let answer =
        json!({"needs_event_storming": false, "complexity": "low", "reasoning": "A small app."});
    ScriptStep::Content(answer.to_string())
}

/// The LLM steps on the path taken, in the order they are called.
const LLM_STEPS: [&str; 5] = [
    "smart_detection",
    "prd",
    "tech_stack",
    "approach_detection",
    "execution_plan",
];

async fn spawn() -> TestApp {
    TestApp::spawn().await
}

async fn submit(app: &TestApp) -> String {
    app.submit_accepted(json!({
        "workflow_name": PIPELINE,
        "input_data": pipeline_input(),
        "webhook_url": app.receiver.url,
    }))
    .await
}

/// A scripted provider failure that no retry or fallback repeats.
fn bad_request() -> ScriptStep {
    ScriptStep::Status {
        status: 400,
        retry_after: None,
        body: None,
    }
}

async fn post_retry(app: &TestApp, job_id: &str) -> (u16, Value) {
    let response = app
        .http
        .post(app.url(&format!("/workflow/{job_id}/retry")))
        .header("X-API-Key", API_KEY)
        .send()
        .await
        .expect("retry");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json"))
}

async fn get_step(app: &TestApp, job_id: &str, step_id: &str) -> (u16, Value) {
    let response = app
        .http
        .get(app.url(&format!("/status/{job_id}/steps/{step_id}")))
        .header("X-API-Key", API_KEY)
        .send()
        .await
        .expect("step");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json"))
}

/// LLM calls recorded per step, by step id.
async fn usage_per_step(app: &TestApp, job_id: &str) -> Vec<(String, usize)> {
    let mut conn = app.conn().await;
    let usage = jobs::job_usage(&mut conn, job_id.parse().expect("uuid"))
        .await
        .expect("usage");
    LLM_STEPS
        .iter()
        .map(|step| {
            let calls = usage
                .iter()
                .filter(|u| u.step_id.as_deref() == Some(step))
                .count();
            ((*step).to_owned(), calls)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_pipeline_retried_resumes_at_its_failed_phase_and_pays_each_step_once() {
    let app = spawn().await;
    // Run 1: smart_detection answers, prd fails.
    app.emulator
        .push_script(vec![detection_answer(), bad_request()]);
    let job_id = submit(&app).await;
    let failed = app
        .wait_for_status(&job_id, "failed", Duration::from_secs(30))
        .await;
    let finished = failed["finished_steps"].as_array().expect("finished steps");
    assert!(finished.contains(&json!("smart_detection")), "{failed:#}");
    assert!(!finished.contains(&json!("prd")), "{failed:#}");
    let (status, prd) = get_step(&app, &job_id, "prd").await;
    assert_eq!(status, 200, "{prd}");
    assert_eq!(prd["status"], "failed");
    assert!(
        prd["error"].as_str().expect("error").contains("400"),
        "{prd}"
    );
    let (status, detection) = get_step(&app, &job_id, "smart_detection").await;
    assert_eq!(status, 200);
    assert_eq!(
        detection["output"]["needs_event_storming"], false,
        "the script assumes the path without event storming"
    );
    assert_eq!(app.emulator.stats().calls, 2);

    // Only a failed job can be retried.
    let (status, body) = post_retry(&app, &uuid::Uuid::now_v7().to_string()).await;
    assert_eq!(status, 404, "{body}");

    // Run 2: prd answers, then whichever parallel call comes first fails.
    app.emulator
        .push_script(vec![ScriptStep::Ok, bad_request()]);
    let (status, body) = post_retry(&app, &job_id).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["retry_count"], 1);
    let failed = wait_until(
        "the second run to fail",
        Duration::from_secs(30),
        || async {
            let doc = app.status(&job_id).await;
            (doc["status"] == "failed" && doc["retry_count"] == 1).then_some(doc)
        },
    )
    .await;
    assert!(failed["finished_steps"]
        .as_array()
        .expect("finished")
        .contains(&json!("prd")));
    assert!(failed["error_message"]
        .as_str()
        .expect("error")
        .contains(PARALLEL_STEP));

    // Run 3: everything answers.
    let (status, body) = post_retry(&app, &job_id).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["retry_count"], 2);
    let done = app
        .wait_for_status(&job_id, "completed", Duration::from_secs(30))
        .await;
    let result = &done["result"];
    // Each document is the recorded output of its step, reused or not.
    for (document, step) in [
        ("prd", "prd"),
        ("tech_stack", "tech_stack"),
        ("execution_plan", "execution_plan"),
    ] {
        let (status, row) = get_step(&app, &job_id, step).await;
        assert_eq!(status, 200, "{row}");
        assert_eq!(row["status"], "completed");
        let text = result["documents"][document].as_str().expect("document");
        assert!(!text.is_empty());
        assert_eq!(row["output"], text, "{document}");
    }
    assert!(
        ["horizontal", "vertical"].contains(&result["approach"].as_str().expect("approach")),
        "{result:#}"
    );
    assert_eq!(result["detection"]["needs_event_storming"], false);
    assert_eq!(done["progress"], 100);
    assert_eq!(done["retry_count"], 2);
    let history = done["retry_history"].as_array().expect("history");
    assert_eq!(history.len(), 2, "{history:#?}");
    assert_eq!(history[0]["failed_steps"][0]["step_id"], "prd");
    assert!(history[0]["error_message"]
        .as_str()
        .expect("error")
        .contains("prd"));
    assert!(history[1]["failed_steps"]
        .as_array()
        .expect("failed steps")
        .iter()
        .any(|s| s["step_id"] == PARALLEL_STEP));
    assert!(done["attempts"].as_i64().expect("attempts") >= 3);

    // Each phase's LLM call was made and recorded once: earlier phases were reused.
    for (step, calls) in usage_per_step(&app, &job_id).await {
        assert_eq!(calls, 1, "LLM calls recorded for {step}");
    }
    let cost_steps = result["cost_data"]["steps"].as_array().expect("cost steps");
    assert_eq!(cost_steps.len(), LLM_STEPS.len(), "{cost_steps:#?}");
    // Run 1: 2 calls; run 2: prd and one or two parallel calls; run 3: the parallel calls not
    // completed in run 2, and the plan.
    let calls = app.emulator.stats().calls;
    assert!((6..=8).contains(&calls), "{calls} calls");

    // One terminal webhook per run: failed, failed, completed.
    let hooks = wait_until(
        "three terminal webhooks",
        Duration::from_secs(30),
        || async {
            let bodies: Vec<Value> = app
                .receiver
                .requests()
                .iter()
                .map(|r| r.json())
                .filter(|b| b["type"] == "workflow.failed" || b["type"] == "workflow.completed")
                .collect();
            (bodies.len() >= 3).then_some(bodies)
        },
    )
    .await;
    let mut runs: Vec<(i64, String)> = hooks
        .iter()
        .map(|b| {
            (
                b["retry_count"].as_i64().expect("retry_count"),
                b["type"].as_str().expect("type").to_owned(),
            )
        })
        .collect();
    runs.sort();
    assert_eq!(
        runs,
        [
            (0, "workflow.failed".to_owned()),
            (1, "workflow.failed".to_owned()),
            (2, "workflow.completed".to_owned())
        ]
    );
    let (status, body) = post_retry(&app, &job_id).await;
    assert_eq!(status, 409, "{body}");
    assert!(body["detail"]
        .as_str()
        .expect("detail")
        .contains("completed"));

    // The live events follow the last run: they end with its completion, not a failure.
    let events = app
        .http
        .get(app.url(&format!("/status/{job_id}/events")))
        .header("X-API-Key", API_KEY)
        .send()
        .await
        .expect("events")
        .text()
        .await
        .expect("event stream");
    let names: Vec<&str> = events
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(names.last(), Some(&"job_completed"), "{names:?}");
    assert!(!names.contains(&"job_failed"), "{names:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_earlier_step_output_is_readable_while_a_later_step_still_runs() {
    let app = spawn().await;
    // smart_detection and prd answer at once; the first parallel call is slow.
    app.emulator.push_script(vec![
        detection_answer(),
        ScriptStep::Ok,
        ScriptStep::Delay(Duration::from_secs(30)),
    ]);
    let job_id = submit(&app).await;
    let prd = wait_until(
        "the PRD to be readable",
        Duration::from_secs(20),
        || async {
            let (status, body) = get_step(&app, &job_id, "prd").await;
            (status == 200).then_some(body)
        },
    )
    .await;
    assert_eq!(prd["status"], "completed");
    assert!(!prd["output"].as_str().expect("the PRD").is_empty());
    assert!(prd["output_tokens"].as_i64().expect("tokens") > 0);
    assert!(prd["cost_usd"].as_f64().expect("cost") > 0.0);
    assert_eq!(prd["attempts"], 1);
    assert_eq!(prd["calls"].as_array().expect("calls").len(), 1);
    assert_eq!(prd["calls"][0]["model"], "anthropic/claude-3.5-sonnet");
    let doc = app.status(&job_id).await;
    assert_eq!(doc["status"], "processing", "{doc:#}");
    assert!(doc["finished_steps"]
        .as_array()
        .expect("finished")
        .contains(&json!("prd")));
    let (status, plan) = get_step(&app, &job_id, "execution_plan").await;
    assert_eq!(status, 404, "{plan}");
    assert!(plan["detail"]
        .as_str()
        .expect("detail")
        .contains("processing"));
    let (status, _) = get_step(&app, &uuid::Uuid::now_v7().to_string(), "prd").await;
    assert_eq!(status, 404);
    let (status, body) = post_retry(&app, &job_id).await;
    assert_eq!(status, 409, "a running job cannot be retried: {body}");
    assert!(body["detail"]
        .as_str()
        .expect("detail")
        .contains("processing"));
    let (status, _) = app.cancel(&job_id, None).await;
    assert_eq!(status, 202);
}
