//! `llmflow diagram`: deterministic flowcharts that Mermaid's own parser accepts, the committed
//! pages in `docs/workflows/` kept current, and `--describe` against the emulator.

use std::path::PathBuf;

use llmflow_emulator::{Emulator, EmulatorConfig, ScriptStep};
use predicates::str::contains;
use serde_json::json;

use crate::support::{cli, mermaid_checker, mermaid_parses, repo_root};

#[test]
fn docs_pages_are_current_and_parse() {
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().to_str().unwrap();
    cli(&["diagram", "--all", "--out", dir], &[])
        .assert()
        .success();
    let docs = repo_root().join("docs/workflows");
    let mut generated: Vec<PathBuf> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    generated.sort();
    assert!(generated.len() >= 3, "{generated:?}");
    for file in &generated {
        let name = file.file_name().unwrap();
        let committed = std::fs::read_to_string(docs.join(name)).unwrap_or_default();
        assert_eq!(
            committed,
            std::fs::read_to_string(file).unwrap(),
            "docs/workflows/{} is not current: run `llmflow diagram --all --out docs/workflows`",
            name.to_string_lossy()
        );
    }
    // No page for a workflow that is gone.
    for page in std::fs::read_dir(&docs).unwrap() {
        let name = page.unwrap().file_name();
        assert!(
            out.path().join(&name).exists(),
            "docs/workflows/{} has no workflow",
            name.to_string_lossy()
        );
    }
    mermaid_parses(&generated);
}

#[test]
fn the_flowchart_shows_kinds_branches_and_models() {
    let run = cli(&["diagram", "bench_pipeline", "--format", "mermaid"], &[])
        .assert()
        .success();
    let chart = String::from_utf8(run.get_output().stdout.clone()).unwrap();
    // Deterministic: the same text every time.
    let again = cli(&["diagram", "bench_pipeline", "--format", "mermaid"], &[])
        .assert()
        .success();
    assert_eq!(chart.as_bytes(), again.get_output().stdout.as_slice());
    for expected in [
        "flowchart TD",
        "s_analyze(\"<b>analyze</b><br/>llm · openrouter<br/>openai/gpt-4o-mini<br/>retry: 2 attempts\"):::llm",
        "s_extract[/\"<b>extract</b><br/>transform · extract_fields\"/]:::transform",
        "s_route{\"<b>route</b><br/>steps.extract.output.score #gt; 50\"}:::decision",
        "s_route -- \"then\" --> s_refine",
        "s_route -- \"else\" --> s_fallback",
        "s_refine --> j_route",
        "s_fallback --> j_route",
        "j_route --> wf_output",
    ] {
        assert!(chart.contains(expected), "missing {expected:?} in\n{chart}");
    }
}

#[test]
fn awkward_definitions_still_parse() {
    // A step called `end` (a Mermaid keyword), quotes and operators in a condition, an empty
    // else branch, a conditional inside a parallel branch, and a default provider.
    let definition = json!({
        "name": "awkward", "version": "2", "description": "Edge cases.",
        "steps": [
            {"id": "end", "type": "transform", "operation": "template", "template": "x"},
            {"id": "fan", "type": "parallel", "branches": {
                "b": [{"id": "ask", "type": "llm", "model": "openai/gpt-4o-mini", "prompt": "hi",
                       "fallbacks": [{"provider": "openai", "model": "openai/gpt-4o-mini"}]}],
                "a": [{"id": "pick", "type": "conditional",
                       "condition": "input.kind == \"a&b\" || input.tag == \"#1\" || size(input) < 2",
                       "then": [{"id": "t", "type": "transform", "operation": "template", "template": "y"}]}]
            }},
            {"id": "call", "type": "external_api", "url": "https://example.com/x"}
        ]
    });
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("awkward.json");
    std::fs::write(&file, definition.to_string()).unwrap();
    let chart = dir.path().join("awkward.mmd");
    cli(
        &[
            "diagram",
            file.to_str().unwrap(),
            "--format",
            "mermaid",
            "--out",
            chart.to_str().unwrap(),
        ],
        &[("DEFAULT_PROVIDER", "anthropic")],
    )
    .assert()
    .success();
    let text = std::fs::read_to_string(&chart).unwrap();
    assert!(text.contains("s_end[/"), "{text}");
    assert!(text.contains("llm · anthropic"), "{text}");
    assert!(
        text.contains("<br/>fallback: openai · openai/gpt-4o-mini"),
        "{text}"
    );
    assert!(text.contains("s_pick -- \"else\" --> j_pick"), "{text}");
    // Branches in name order: `a` before `b`.
    let a = text.find("s_fan -- \"a\"").unwrap();
    let b = text.find("s_fan -- \"b\"").unwrap();
    assert!(a < b, "{text}");
    assert!(text.contains("external_api · http:example.com"), "{text}");
    mermaid_parses(&[chart]);
}

#[test]
fn bad_input_is_named_with_exit_code_2() {
    cli(&["diagram", "no_such_workflow"], &[])
        .assert()
        .code(2)
        .stderr(contains("unknown workflow `no_such_workflow`"));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broken.json");
    std::fs::write(&file, "{\"name\": ").unwrap();
    cli(&["diagram", file.to_str().unwrap()], &[])
        .assert()
        .code(2)
        .stderr(contains("is not valid JSON"));
    std::fs::write(
        &file,
        json!({"name": "x", "steps": [{"id": "a", "type": "llm", "model": "no/such", "prompt": "p"}]})
            .to_string(),
    )
    .unwrap();
    cli(&["diagram", file.to_str().unwrap()], &[])
        .assert()
        .code(2)
        .stderr(contains(
            "steps[0].model: model `no/such` is not in the pricing table",
        ));
    // --describe without a configured provider.
    cli(&["diagram", "bench_single", "--describe"], &[])
        .assert()
        .code(2)
        .stderr(contains("OPENROUTER_API_KEY"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_asks_the_configured_llm() {
    let emulator = Emulator::spawn(EmulatorConfig::default()).await.unwrap();
    emulator.push_script(vec![ScriptStep::Content(
        "First it summarises the text, then it returns the summary.".to_owned(),
    )]);
    let base = emulator.openrouter_base_url();
    let run = tokio::task::spawn_blocking(move || {
        let vars = [
            ("OPENROUTER_API_KEY", "emulator-key"),
            ("OPENROUTER_BASE_URL", base.as_str()),
        ];
        cli(&["diagram", "bench_single", "--describe"], &vars)
            .assert()
            .success()
            .get_output()
            .stdout
            .clone()
    })
    .await
    .unwrap();
    let page = String::from_utf8(run).unwrap();
    assert!(page.contains("```mermaid\nflowchart TD\n"), "{page}");
    assert!(
        page.ends_with(
            "## Walkthrough\n\nFirst it summarises the text, then it returns the summary.\n"
        ),
        "{page}"
    );
    let stats = emulator.stats();
    assert_eq!(stats.calls, 1);
    assert_eq!(stats.calls_by_model.get("openai/gpt-4o-mini"), Some(&1));
}

#[test]
fn the_mermaid_checker_type_checks_strictly() {
    // `tsc --strict --checkJs` over scripts/mermaid/check.mjs (tsconfig.json).
    let dir = mermaid_checker();
    let out = std::process::Command::new(dir.join("node_modules/.bin/tsc"))
        .args(["-p", "."])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
