//! `llmflow dry-run`: offline, and the same answer as `POST /api/v1/workflow/validate`.

use predicates::str::contains;
use serde_json::{json, Value};

use llmflow_core::config::Config;
use llmflow_testkit::{TestApp, API_KEY};

use crate::support::cli;

/// The API on a free local port; answers its base URL.
async fn serve(config: Config) -> String {
    let state = llmflow_api::build_state(config).await.unwrap();
    let (listener, addr) = llmflow_testkit::local_listener();
    tokio::spawn(llmflow_api::run(state, listener).unwrap());
    format!("http://{addr}")
}

/// `llmflow dry-run --json` with the API's own settings; answers the exit code and the report.
async fn dry_run(config: &Config, workflow: &str, input: &Value) -> (i32, Value) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("input.json");
    std::fs::write(&file, input.to_string()).unwrap();
    let mut vars = vec![
        ("WORKFLOWS_DIR", config.workflows_dir.display().to_string()),
        ("PROMPTS_DIR", config.prompts_dir.display().to_string()),
        ("DEFAULT_PROVIDER", config.default_provider.clone()),
    ];
    if let Some(pricing) = &config.pricing_file {
        vars.push(("PRICING_FILE", pricing.display().to_string()));
    }
    let args = [
        "dry-run".to_owned(),
        workflow.to_owned(),
        "--input".to_owned(),
        file.display().to_string(),
        "--json".to_owned(),
    ];
    let out = tokio::task::spawn_blocking(move || {
        let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        cli(&args, &vars).output().unwrap()
    })
    .await
    .unwrap();
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap(), report)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_equals_the_api_estimate() {
    let app = TestApp::start(json!({}), serve).await;
    let cases = [
        ("bench_pipeline", json!({"text": "word ".repeat(300)}), 0),
        ("bench_single", json!({"text": "A short text."}), 0),
        ("city_guide", json!({"city": "Lisbon", "min_rating": 3}), 0),
        // Fails the input schema: problems with paths, still a plan and an estimate.
        ("bench_pipeline", json!({"text": 5}), 2),
        ("city_guide", json!({"min_rating": 9}), 2),
    ];
    for (workflow, input, code) in cases {
        let response = app
            .http
            .post(app.url("/workflow/validate"))
            .header("X-API-Key", API_KEY)
            .json(&json!({"workflow_name": workflow, "input_data": input}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let api: Value = response.json().await.unwrap();
        let (exit, local) = dry_run(&app.config, workflow, &input).await;
        assert_eq!(local, api, "{workflow} with {input}");
        assert_eq!(exit, code, "{workflow} with {input}: {local}");
        assert!(
            api["cost_estimate"]["max_usd"].as_f64().unwrap() > 0.0,
            "{api}"
        );
    }
    assert_eq!(app.emulator.stats().calls, 0, "a dry run calls no provider");
}

#[test]
fn the_report_lists_problems_plan_and_costs() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input.json");
    std::fs::write(&input, r#"{"text": "Hello there"}"#).unwrap();
    let run = cli(
        &[
            "dry-run",
            "bench_pipeline",
            "--input",
            input.to_str().unwrap(),
        ],
        &[],
    )
    .assert()
    .success();
    let text = String::from_utf8(run.get_output().stdout.clone()).unwrap();
    for expected in [
        "bench_pipeline v1.0.0: valid",
        "1. analyze (llm) openrouter · openai/gpt-4o-mini, up to 2 attempts",
        "3. route (conditional) if steps.extract.output.score > 50",
        "then:\n      1. refine (llm) openrouter · openai/gpt-4o-mini",
        "else:\n      1. fallback (transform) template",
        "cost estimate (USD):",
        "  analyze ",
        "  refine ",
        "  total ",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }

    // `--input -` reads standard input.
    cli(&["dry-run", "city_guide", "--input", "-"], &[])
        .write_stdin(r#"{"city": "Porto"}"#)
        .assert()
        .success()
        .stdout(contains("city_guide v1.0.0: valid"))
        .stdout(contains(
            "branch places:\n      1. hospitals (external_api) google_places",
        ));

    // Failing the input schema: exit 2, every problem with its path, the plan still shown.
    std::fs::write(&input, r#"{"text": ""}"#).unwrap();
    cli(
        &[
            "dry-run",
            "bench_pipeline",
            "--input",
            input.to_str().unwrap(),
        ],
        &[],
    )
    .assert()
    .code(2)
    .stdout(contains("problems:\n  input_data.text:"))
    .stdout(contains("1. analyze (llm)"))
    .stderr(contains("1 problem(s) found"));
}

#[test]
fn bad_input_exits_with_2_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input.json");
    std::fs::write(&input, "{\"text\": ").unwrap();
    let path = input.to_str().unwrap();
    cli(&["dry-run", "bench_pipeline", "--input", path], &[])
        .assert()
        .code(2)
        .stderr(contains("input.json is not valid JSON"));
    cli(&["dry-run", "no_such_workflow", "--input", path], &[])
        .assert()
        .code(2)
        .stderr(contains("unknown workflow `no_such_workflow`"));
    cli(
        &["dry-run", "bench_pipeline", "--input", "missing.json"],
        &[],
    )
    .assert()
    .code(2)
    .stderr(contains("cannot read missing.json"));
    std::fs::write(&input, "[1, 2]").unwrap();
    cli(&["dry-run", "bench_pipeline", "--input", path], &[])
        .assert()
        .code(2)
        .stdout(contains("input_data: must be a JSON object"));
    // An invalid definition file: its problems with their paths, no plan.
    let file = dir.path().join("broken.json");
    std::fs::write(
        &file,
        json!({"name": "b", "steps": [{"id": "a", "type": "llm", "model": "no/such", "prompt": "p"}]})
            .to_string(),
    )
    .unwrap();
    cli(&["dry-run", file.to_str().unwrap(), "--json"], &[])
        .assert()
        .code(2)
        .stdout(contains("\"field\": \"steps[0].model\""));
    // A usage mistake is clap's: exit 2 with the usage line.
    cli(&["dry-run"], &[])
        .assert()
        .code(2)
        .stderr(contains("Usage: llmflow dry-run"));
}
