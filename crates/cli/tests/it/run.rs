//! `llmflow run`: the real engine in the command's own process, against the emulator it starts
//! when no provider key is set. PostgreSQL and Redis are pointed at a closed port: a run that
//! touched either would fail.

use std::path::Path;

use serde_json::{json, Value};

use crate::support::cli;

/// No provider key, and services nobody listens on.
const VARS: &[(&str, &str)] = &[
    ("DATABASE_URL", "postgres://postgres@127.0.0.1:1/llmflow"),
    ("REDIS_URL", "redis://127.0.0.1:1/0"),
];

struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
}

fn llmflow_run(args: &[&str]) -> Ran {
    let mut all = vec!["run"];
    all.extend_from_slice(args);
    let out = cli(&all, VARS).output().unwrap();
    Ran {
        code: out.status.code().unwrap(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn write(dir: &Path, name: &str, value: &Value) -> String {
    let file = dir.join(name);
    std::fs::write(&file, value.to_string()).unwrap();
    file.display().to_string()
}

/// The line of `stderr` that starts with `prefix`.
fn line<'a>(stderr: &'a str, prefix: &str) -> &'a str {
    stderr
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting `{prefix}` in:\n{stderr}"))
}

#[test]
fn bench_pipeline_runs_against_the_emulator_without_services() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(
        dir.path(),
        "input.json",
        &json!({"text": "Rust is a language empowering everyone to build reliable software."}),
    );
    let ran = llmflow_run(&["bench_pipeline", "--input", &input]);
    assert_eq!(ran.code, 0, "{}{}", ran.stdout, ran.stderr);
    assert!(
        ran.stderr.contains("running against the built-in emulator"),
        "{}",
        ran.stderr
    );
    let result: Value = serde_json::from_str(&ran.stdout).unwrap();
    assert!(result["summary"].as_str().is_some_and(|s| !s.is_empty()));
    let score = result["score"].as_i64().unwrap();
    assert!(result["tags"].is_array(), "{result}");
    let branch = if score > 50 { "then" } else { "else" };
    assert_eq!(result["branch"], branch, "{result}");
    let cost = &result["cost_data"];
    assert_eq!(cost["provider"], "openrouter");
    assert!(cost["input_tokens"].as_i64().unwrap() > 0, "{cost}");
    assert!(cost["cost_usd"].as_f64().unwrap() > 0.0, "{cost}");

    // Every step, the conditional too, as it starts and as it ends.
    for (step, kind) in [
        ("analyze", "llm"),
        ("extract", "transform"),
        ("route", "conditional"),
    ] {
        line(&ran.stderr, &format!("step {step} ({kind}) started"));
        line(&ran.stderr, &format!("step {step} ({kind}) completed in "));
    }
    assert!(line(&ran.stderr, "step route (conditional) completed")
        .ends_with(&format!("branch {branch}")));
    // The LLM step's line carries its tokens and cost, as the result's cost_data has them.
    let analyze = &cost["steps"][0];
    assert_eq!(analyze["step_id"], "analyze");
    let expected = format!(
        ", tokens {} in / {} out, cost ${}",
        analyze["input_tokens"], analyze["output_tokens"], analyze["cost_usd"]
    );
    let analyzed = line(&ran.stderr, "step analyze (llm) completed");
    assert!(analyzed.ends_with(&expected), "{analyzed} / {expected}");
    let total = line(&ran.stderr, "run completed in ");
    assert!(
        total.ends_with(&format!("cost ${}", cost["cost_usd"])),
        "{total} / {cost}"
    );
}

#[test]
fn json_reports_every_step() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(
        dir.path(),
        "input.json",
        &json!({"text": "EMULATOR_SCORE: 10"}),
    );
    let ran = llmflow_run(&["bench_pipeline", "--input", &input, "--json"]);
    assert_eq!(ran.code, 0, "{}{}", ran.stdout, ran.stderr);
    let report: Value = serde_json::from_str(&ran.stdout).unwrap();
    assert_eq!(report["status"], "completed");
    assert_eq!(report["result"]["branch"], "else", "{report}");
    let steps: Vec<&str> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step_id"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["analyze", "extract", "route", "fallback"]);
    assert_eq!(
        report["cost_usd"], report["result"]["cost_data"]["cost_usd"],
        "{report}"
    );
    assert!(report["steps"][0]["input_tokens"].as_i64().unwrap() > 0);
}

#[test]
fn streamed_text_is_shown_while_its_step_runs() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "topic.json", &json!({"topic": "a lighthouse"}));
    let ran = llmflow_run(&["story_stream", "--input", &input]);
    assert_eq!(ran.code, 0, "{}{}", ran.stdout, ran.stderr);
    let result: Value = serde_json::from_str(&ran.stdout).unwrap();
    let story = result["story"].as_str().unwrap();
    assert!(story.contains("a lighthouse"), "{story}");
    // The text comes between the step's start and end: from the stream, not from the result.
    let started = ran.stderr.find("step story (llm) started").unwrap();
    let text = ran.stderr.find(story).expect("the streamed text");
    let finished = ran.stderr.find("step story (llm) completed").unwrap();
    assert!(started < text && text < finished, "{}", ran.stderr);
}

#[test]
fn a_failing_step_fails_the_run_and_on_error_is_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let broken = json!({
        "name": "broken_answer",
        "version": "1.0.0",
        "steps": [
            {"id": "ask", "type": "llm", "provider": "openrouter", "model": "openai/gpt-4o-mini",
             "prompt": "EMULATOR_REPLY: this is not JSON", "response_format": "json",
             "repair_attempts": 1}
        ]
    });
    let file = write(dir.path(), "broken.json", &broken);
    let ran = llmflow_run(&[&file]);
    assert_eq!(ran.code, 1, "{}{}", ran.stdout, ran.stderr);
    assert!(ran.stdout.is_empty(), "no result: {}", ran.stdout);
    // The answer and its repair were paid for, then the step failed.
    let failed = line(&ran.stderr, "step ask (llm) failed in ");
    assert!(
        failed.contains(", tokens ") && failed.contains("invalid_output"),
        "{failed}"
    );
    assert!(
        ran.stderr
            .contains("llmflow: the run failed: step `ask` failed"),
        "{}",
        ran.stderr
    );

    // The same failure inside a parallel branch with a default goes on.
    let tolerant = json!({
        "name": "tolerant",
        "version": "1.0.0",
        "steps": [
            {"id": "both", "type": "parallel", "branches": {
                "good": [{"id": "shout", "type": "transform", "operation": "template",
                          "template": "{{ input.word | upper }}"}],
                "bad": [{"id": "ask", "type": "llm", "provider": "openrouter",
                         "model": "openai/gpt-4o-mini",
                         "prompt": "EMULATOR_REPLY: still not JSON", "response_format": "json",
                         "repair_attempts": 0,
                         "on_error": {"mode": "default", "value": {"fallback": true}}}]
            }}
        ]
    });
    let file = write(dir.path(), "tolerant.json", &tolerant);
    let input = write(dir.path(), "input.json", &json!({"word": "hi"}));
    let ran = llmflow_run(&[&file, "--input", &input]);
    assert_eq!(ran.code, 0, "{}{}", ran.stdout, ran.stderr);
    let result: Value = serde_json::from_str(&ran.stdout).unwrap();
    assert_eq!(
        result["both"],
        json!({"good": "HI", "bad": {"fallback": true}})
    );
    line(&ran.stderr, "step ask (llm) failed in ");
    line(&ran.stderr, "step both (parallel) completed in ");
}

#[test]
fn bad_input_exits_2_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let unknown = llmflow_run(&["no_such_workflow"]);
    assert_eq!(unknown.code, 2, "{}", unknown.stderr);
    assert!(
        unknown
            .stderr
            .contains("unknown workflow `no_such_workflow`"),
        "{}",
        unknown.stderr
    );

    let not_json = dir.path().join("input.json");
    std::fs::write(&not_json, "{\"text\": ").unwrap();
    let not_json = not_json.display().to_string();
    let ran = llmflow_run(&["bench_pipeline", "--input", &not_json]);
    assert_eq!(ran.code, 2, "{}", ran.stderr);
    assert!(ran.stderr.contains("is not valid JSON"), "{}", ran.stderr);

    let wrong = write(dir.path(), "wrong.json", &json!({"text": 42}));
    let ran = llmflow_run(&["bench_pipeline", "--input", &wrong]);
    assert_eq!(ran.code, 2, "{}", ran.stderr);
    assert!(
        ran.stderr
            .contains("the input does not fit `bench_pipeline`'s input_schema")
            && ran.stderr.contains("input_data.text"),
        "{}",
        ran.stderr
    );
    let ran = llmflow_run(&["bench_pipeline"]);
    assert_eq!(ran.code, 2, "{}", ran.stderr);
    assert!(ran.stderr.contains("input_data.text"), "{}", ran.stderr);
    // Nothing ran: the emulator was not even started.
    assert!(!ran.stderr.contains("emulator"), "{}", ran.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_provider_is_called_and_no_emulator_is_started() {
    let provider = llmflow_emulator::Emulator::spawn(Default::default())
        .await
        .unwrap();
    let base = provider.openrouter_base_url();
    let dir = tempfile::tempdir().unwrap();
    let input = write(
        dir.path(),
        "input.json",
        &json!({"text": "EMULATOR_SCORE: 90"}),
    );
    let out = tokio::task::spawn_blocking(move || {
        let mut vars = VARS.to_vec();
        vars.extend([
            ("OPENROUTER_API_KEY", "test-key"),
            ("OPENROUTER_BASE_URL", base.as_str()),
        ]);
        cli(&["run", "bench_pipeline", "--input", &input], &vars)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("emulator"), "{stderr}");
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result["branch"], "then", "{result}");
    // analyze and refine, both at the configured provider.
    assert_eq!(provider.stats().calls, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_interrupts_the_run_and_exits_1() {
    use tokio::io::{AsyncBufReadExt, BufReader};

    let config = llmflow_emulator::EmulatorConfig {
        latency: std::time::Duration::from_secs(120),
        ..Default::default()
    };
    let provider = llmflow_emulator::Emulator::spawn(config).await.unwrap();
    let base = provider.openrouter_base_url();
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "input.json", &json!({"text": "slow"}));
    let mut vars = VARS.to_vec();
    vars.extend([
        ("OPENROUTER_API_KEY", "test-key"),
        ("OPENROUTER_BASE_URL", base.as_str()),
    ]);
    let mut child = crate::support::llmflow(&["run", "bench_pipeline", "--input", &input], &vars)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    let deadline = std::time::Duration::from_secs(30);
    tokio::time::timeout(deadline, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let started = line.starts_with("step analyze (llm) started");
            seen.push(line);
            if started {
                return;
            }
        }
        panic!("the run ended before its first step: {seen:?}");
    })
    .await
    .expect("the first step did not start in time");
    // The call is in flight (the provider answers after two minutes).
    let pid = child.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(deadline, child.wait())
        .await
        .expect("the run did not stop on SIGINT")
        .unwrap();
    let mut rest = Vec::new();
    while let Some(line) = lines.next_line().await.unwrap() {
        rest.push(line);
    }
    assert_eq!(status.code(), Some(1), "{rest:?}");
    let rest = rest.join("\n");
    assert!(rest.contains("run cancelled in "), "{rest}");
    assert!(rest.contains("llmflow: the run was interrupted"), "{rest}");
}
