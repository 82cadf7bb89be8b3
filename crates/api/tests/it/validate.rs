//! `POST /api/v1/workflow/validate`: problems with paths, the plan and a cost estimate, and no
//! provider call.

use serde_json::{json, Value};

use crate::support::{TestApp, API_KEY};

async fn validate(app: &TestApp, body: Value) -> (u16, Value) {
    let response = app
        .http
        .post(app.url("/workflow/validate"))
        .header("X-API-Key", API_KEY)
        .json(&body)
        .send()
        .await
        .expect("validate");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json"))
}

fn num(v: &Value) -> f64 {
    v.as_f64()
        .unwrap_or_else(|| panic!("number expected, got {v}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_named_workflow_gets_its_plan_and_a_cost_estimate() {
    let app = TestApp::spawn_api(json!({})).await;
    let short = validate(
        &app,
        json!({"workflow_name": "bench_pipeline", "input_data": {"text": "x"}}),
    )
    .await;
    let long = validate(
        &app,
        json!({"workflow_name": "bench_pipeline", "input_data": {"text": "word ".repeat(4000)}}),
    )
    .await;
    for (status, body) in [&short, &long] {
        assert_eq!(*status, 200, "{body}");
        assert_eq!(body["valid"], true, "{body}");
        let steps: Vec<&str> = body["plan"]
            .as_array()
            .expect("plan")
            .iter()
            .map(|s| s["step_id"].as_str().expect("id"))
            .collect();
        assert_eq!(steps, ["analyze", "extract", "route"]);
        assert_eq!(body["plan"][2]["then"][0]["step_id"], "refine");
        assert_eq!(body["plan"][2]["else"][0]["step_id"], "fallback");
        assert_eq!(body["plan"][0]["max_attempts"], 2);
        let cost = &body["cost_estimate"];
        let (min, expected, max) = (
            num(&cost["min_usd"]),
            num(&cost["expected_usd"]),
            num(&cost["max_usd"]),
        );
        assert!(0.0 < min && min < expected && expected < max, "{cost}");
        assert_eq!(cost["llm_steps"].as_array().expect("steps").len(), 2);
    }
    // A longer input renders a longer prompt: more input tokens, a higher minimum.
    let tokens = |b: &Value| {
        b["cost_estimate"]["llm_steps"][0]["input_tokens"]
            .as_u64()
            .expect("tokens")
    };
    assert!(
        tokens(&long.1) > tokens(&short.1) + 4000,
        "{} vs {}",
        tokens(&long.1),
        tokens(&short.1)
    );
    assert!(num(&long.1["cost_estimate"]["min_usd"]) > num(&short.1["cost_estimate"]["min_usd"]));

    // Bad input: every problem with its path; still a plan.
    let (status, body) = validate(
        &app,
        json!({"workflow_name": "bench_pipeline", "input_data": {"text": 5}}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["valid"], false);
    assert_eq!(body["problems"][0]["field"], "input_data.text", "{body}");

    // An inline definition with several mistakes: all reported with JSON paths.
    let (status, body) = validate(
        &app,
        json!({"definition": {
            "name": "inline", "version": "1", "description": "d",
            "steps": [
                {"id": "a", "type": "llm", "model": "no/such-model", "prompt": "hi"},
                {"id": "a", "type": "transform", "operation": "template", "template": "{{ steps.zzz.output }}"}
            ]
        }}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["valid"], false);
    let fields: Vec<&str> = body["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .map(|p| p["field"].as_str().expect("field"))
        .collect();
    assert!(fields.len() >= 2, "{body}");
    assert!(
        fields.iter().all(|f| f.starts_with("definition.steps[")),
        "{fields:?}"
    );

    let (status, _) = validate(&app, json!({"workflow_name": "nope"})).await;
    assert_eq!(status, 404);
    let (status, body) = validate(&app, json!({"input_data": {}})).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(app.emulator.stats().calls, 0, "a dry run calls no provider");
}
