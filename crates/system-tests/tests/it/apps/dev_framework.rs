//! `dev_framework`: the document pipeline on both of its branches (with and without event
//! storming), with the status moving phase by phase and SSE showing each phase start and end.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use llmflow_core::db::jobs;
use llmflow_emulator::ScriptStep;

use super::{events, Event};
use crate::support::TestApp;

const IDEA: &str = "A marketplace where neighbours lend each other tools, with deposits, \
                    reservations, reviews and insurance claims when a tool comes back broken.";

/// What the status showed while the job ran: `(progress, current_step)` snapshots, and the
/// final document.
async fn watch(app: &TestApp, job_id: &str) -> (Vec<(i64, Option<String>)>, Value) {
    let deadline = Duration::from_secs(60);
    let start = Instant::now();
    let mut seen = Vec::new();
    loop {
        let doc = app.status(job_id).await;
        seen.push((
            doc["progress"].as_i64().expect("progress"),
            doc["current_step"].as_str().map(str::to_owned),
        ));
        if matches!(doc["status"].as_str(), Some("completed" | "failed")) {
            return (seen, doc);
        }
        assert!(
            start.elapsed() < deadline,
            "the job did not finish: {doc:#}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Position of a step's event in the stream.
fn at(events: &[Event], name: &str, step: &str) -> usize {
    events
        .iter()
        .position(|e| e.name == name && e.data["step_id"] == step)
        .unwrap_or_else(|| panic!("no {name} for {step}"))
}

/// Runs the pipeline with `needs_event_storming` decided by the detection call, and checks
/// what both branches share; returns the result and the phases the stream showed.
async fn run(needs_event_storming: bool) -> (TestApp, Value, Vec<Event>) {
    let app = TestApp::spawn().await;
    // Each call takes a moment, so the status can be seen between phases.
    app.emulator.set_latency(Duration::from_millis(600));
    let detection = json!({"needs_event_storming": needs_event_storming, "complexity": "high",
                           "reasoning": "Several actors, money and a claims process."});
    app.emulator
        .push_script(vec![ScriptStep::Content(detection.to_string())]);
    let job_id = app
        .submit_accepted(json!({"workflow_name": "dev_framework",
                                "input_data": {"projectIdea": IDEA, "projectName": "Toolshare"},
                                "webhook_url": app.receiver.url}))
        .await;
    let (seen, doc) = watch(&app, &job_id).await;
    assert_eq!(doc["status"], "completed", "{doc:#}");
    let result = doc["result"].clone();

    // Progress only grows, through several values, to 100; `current_step` names the last
    // finished step, so it follows the phases in order.
    let progress: Vec<i64> = seen.iter().map(|(p, _)| *p).collect();
    assert!(progress.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
    let mut distinct = progress.clone();
    distinct.dedup();
    assert!(
        distinct.len() >= 5,
        "progress moved phase by phase: {seen:?}"
    );
    assert_eq!(progress.last(), Some(&100));
    let mut phases = vec!["smart_detection", "prd", "execution_plan"];
    if needs_event_storming {
        phases.insert(1, "event_storming");
    }
    let finished_phases = &phases[..phases.len() - 1];
    let first_seen: Vec<usize> = finished_phases
        .iter()
        .map(|phase| {
            seen.iter()
                .position(|(_, step)| step.as_deref() == Some(phase))
                .unwrap_or_else(|| panic!("current_step never showed {phase}: {seen:?}"))
        })
        .collect();
    assert!(first_seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
    let design = seen
        .iter()
        .position(|(_, step)| {
            matches!(
                step.as_deref(),
                Some("tech_stack" | "approach_detection" | "design")
            )
        })
        .unwrap_or_else(|| panic!("current_step never showed the design phase: {seen:?}"));
    assert!(
        first_seen.last().is_some_and(|prd| *prd < design),
        "{seen:?}"
    );

    // SSE shows every phase start and end, in the pipeline's order.
    let events = events(&app, &job_id).await;
    for step in phases.iter().chain(&["tech_stack", "approach_detection"]) {
        assert!(at(&events, "step_started", step) < at(&events, "step_completed", step));
    }
    let prd_done = at(&events, "step_completed", "prd");
    assert!(at(&events, "step_completed", "smart_detection") < at(&events, "step_started", "prd"));
    for parallel in ["tech_stack", "approach_detection"] {
        assert!(prd_done < at(&events, "step_started", parallel));
        assert!(
            at(&events, "step_completed", parallel) < at(&events, "step_started", "execution_plan")
        );
    }
    assert_eq!(events.last().expect("last").name, "job_completed");

    // The documents are Markdown with the sections their prompts ask for.
    let documents = &result["documents"];
    for (document, heading) in [
        ("prd", "# Functional requirements\n"),
        ("tech_stack", "# Stack\n"),
        ("execution_plan", "# Phases\n"),
    ] {
        let text = documents[document].as_str().expect("a Markdown document");
        assert!(text.contains(heading), "{document}: {text}");
    }
    assert!(
        ["horizontal", "vertical"].contains(&result["approach"].as_str().unwrap_or("")),
        "{result:#}"
    );
    assert!(result["approach_reasoning"]
        .as_str()
        .is_some_and(|r| !r.is_empty()));
    assert_eq!(result["detection"], detection);

    // One usage row per LLM phase, and the models the pipeline names.
    let mut conn = app.conn().await;
    let usage = jobs::job_usage(&mut conn, job_id.parse().expect("uuid"))
        .await
        .expect("usage");
    let calls = if needs_event_storming { 6 } else { 5 };
    assert_eq!(usage.len(), calls);
    let stats = app.emulator.stats();
    assert_eq!(stats.calls, calls as u64);
    assert_eq!(stats.calls_by_model["openai/gpt-4o-mini"], 2);
    assert_eq!(stats.calls_by_model["openai/gpt-4o"], 1);
    assert_eq!(
        stats.calls_by_model["anthropic/claude-3.5-sonnet"],
        calls as u64 - 3
    );
    drop(conn);
    (app, result, events)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_complex_idea_gets_event_storming_first() {
    let (_app, result, _events) = run(true).await;
    let storming = result["documents"]["event_storming"]
        .as_str()
        .expect("the event-storming document");
    for heading in ["# Domain events\n", "# Bounded contexts\n"] {
        assert!(storming.contains(heading), "{storming}");
    }
    assert!(
        storming.contains("| Event | Triggered by | Aggregate |"),
        "{storming}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simple_idea_goes_straight_to_the_prd() {
    let (app, result, events) = run(false).await;
    assert!(
        result["documents"].get("event_storming").is_none(),
        "{result:#}"
    );
    assert!(
        !events.iter().any(|e| e.data["step_id"] == "event_storming"),
        "the branch not taken never started"
    );
    assert_eq!(app.emulator.stats().calls_by_model.len(), 3);
}
