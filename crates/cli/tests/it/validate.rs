//! `llmflow validate` reads its folders through the configuration and needs neither
//! PostgreSQL nor Redis.

use crate::support::{cli, run};

#[tokio::test]
async fn validates_the_repository_workflows_without_services() {
    let ran = run(&["validate"], &[]).await;
    assert!(ran.success, "{}{}", ran.stdout, ran.stderr);
    for name in [
        "bench_pipeline",
        "emergency_contacts",
        "mission_generation",
        "dev_framework",
    ] {
        assert!(
            ran.stdout.contains(&format!("ok  {name} v")),
            "{}",
            ran.stdout
        );
    }
}

#[tokio::test]
async fn an_allow_list_without_the_app_base_url_is_reported() {
    // mission_generation reads `${env.APP_BASE_URL}`: a deployment must allow it.
    let ran = run(
        &["validate"],
        &[("WORKFLOW_ENV_ALLOWLIST", "PARTNER_TOKEN")],
    )
    .await;
    assert!(!ran.success);
    assert!(
        ran.stderr.contains("mission_generation.json")
            && ran
                .stderr
                .contains("`env.APP_BASE_URL` is not allow-listed"),
        "{}",
        ran.stderr
    );
}

#[tokio::test]
async fn folders_come_from_the_environment_and_flags_win() {
    let missing = [("WORKFLOWS_DIR", "no/such/folder")];
    assert!(!run(&["validate"], &missing).await.success);
    let ran = run(&["validate", "--workflows", "workflows"], &missing).await;
    assert!(ran.success, "{}", ran.stderr);
}

#[tokio::test]
async fn a_malformed_setting_is_named() {
    let ran = run(&["validate"], &[("WORKFLOW_ENV_ALLOWLIST", "NOT-A-NAME")]).await;
    assert!(!ran.success);
    assert!(
        ran.stderr.contains("WORKFLOW_ENV_ALLOWLIST"),
        "{}",
        ran.stderr
    );
    // A malformed setting is bad input for every command that reads workflows.
    for args in [
        &["validate"][..],
        &["dry-run", "bench_single"],
        &["diagram", "bench_single"],
        &["new", "x"],
    ] {
        cli(args, &[("WORKFLOW_ENV_ALLOWLIST", "NOT-A-NAME")])
            .assert()
            .code(2)
            .stderr(predicates::str::contains("WORKFLOW_ENV_ALLOWLIST"));
    }
}

#[test]
fn summarises_each_workflow_and_flags_unused_prompt_files() {
    use predicates::prelude::PredicateBooleanExt;
    use predicates::str::contains;

    let dir = tempfile::tempdir().unwrap();
    let workflows = dir.path().join("workflows");
    let prompts = dir.path().join("prompts");
    std::fs::create_dir_all(&workflows).unwrap();
    std::fs::create_dir_all(prompts.join("partials")).unwrap();
    std::fs::write(
        prompts.join("used.md"),
        "Say: {{include:partials/shared.md}}",
    )
    .unwrap();
    std::fs::write(prompts.join("partials/shared.md"), "{{ input.text }}").unwrap();
    std::fs::write(prompts.join("stale.md"), "nobody reads me").unwrap();
    std::fs::write(prompts.join("partials/old.md"), "nor me").unwrap();
    let definition = serde_json::json!({
        "name": "uses_prompts", "version": "3",
        "steps": [
            {"id": "go", "type": "conditional", "condition": "true",
             "then": [{"id": "say", "type": "llm", "model": "openai/gpt-4o-mini", "prompt_file": "used.md"}]},
            {"id": "shape", "type": "transform", "operation": "template", "template": "x"}
        ]
    });
    std::fs::write(workflows.join("uses_prompts.json"), definition.to_string()).unwrap();
    let vars = [
        ("WORKFLOWS_DIR", workflows.to_str().unwrap()),
        ("PROMPTS_DIR", prompts.to_str().unwrap()),
    ];
    cli(&["validate"], &vars)
        .assert()
        .success()
        .stdout(contains("ok  uses_prompts v3 ("))
        .stdout(contains(
            "): 3 steps (1 conditional, 1 llm, 1 transform); models openai/gpt-4o-mini\n",
        ))
        .stdout(contains("1 workflow(s) valid, 2 unused prompt file(s)"))
        .stderr(contains(
            "prompts/stale.md: no workflow uses this prompt file",
        ))
        .stderr(contains(
            "prompts/partials/old.md: no workflow uses this prompt file",
        ))
        .stderr(contains("used.md").not())
        .stderr(contains("shared.md").not());

    // An invalid workflow: exit 1, every problem with its path.
    std::fs::write(
        workflows.join("broken.json"),
        r#"{"name": "broken", "steps": [{"id": "a", "type": "llm", "model": "no/such", "prompt": "p"}, {"id": "a", "type": "transform", "operation": "template", "template": "t"}]}"#,
    )
    .unwrap();
    std::fs::write(
        workflows.join("missing_prompt.json"),
        r#"{"name": "missing_prompt", "steps": [{"id": "a", "type": "llm", "model": "openai/gpt-4o-mini", "prompt_file": "gone.md"}]}"#,
    )
    .unwrap();
    cli(&["validate"], &vars)
        .assert()
        .code(1)
        .stderr(contains(
            "steps[0].model: model `no/such` is not in the pricing table",
        ))
        .stderr(contains("steps[1].id: duplicate step id `a`"))
        .stderr(contains(
            "steps[0].prompt_file: prompt file `gone.md` not found",
        ))
        .stderr(contains("2 invalid workflow file(s)"));
    // A folder that cannot be read is bad input.
    cli(&["validate", "--workflows", "no/such/folder"], &vars)
        .assert()
        .code(2)
        .stderr(contains("cannot read no/such/folder"));
}
