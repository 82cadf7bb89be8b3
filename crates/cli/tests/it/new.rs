//! `llmflow new`: every template scaffolds a workflow and prompt file that validate, dry-run and
//! draw; existing files and unusable names are refused.

use predicates::str::contains;

use crate::support::cli;

#[test]
fn every_template_scaffolds_a_valid_workflow() {
    let dir = tempfile::tempdir().unwrap();
    let workflows = dir.path().join("workflows");
    let prompts = dir.path().join("prompts");
    let vars = [
        ("WORKFLOWS_DIR", workflows.to_str().unwrap()),
        ("PROMPTS_DIR", prompts.to_str().unwrap()),
    ];
    let input = dir.path().join("input.json");
    for (template, input_json) in [
        ("llm", r#"{"text": "Some text."}"#),
        ("pipeline", r#"{"text": "Some text."}"#),
        ("places", r#"{"city": "Porto"}"#),
    ] {
        let name = format!("my_{template}");
        cli(&["new", &name, "--template", template], &vars)
            .assert()
            .success()
            .stdout(contains(format!(
                "created {}",
                workflows.join(format!("{name}.json")).display()
            )));
        let prompt = std::fs::read_to_string(prompts.join(format!("{name}.md"))).unwrap();
        assert!(prompt.contains("input."), "{prompt}");
        let definition: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(workflows.join(format!("{name}.json"))).unwrap(),
        )
        .unwrap();
        assert_eq!(definition["name"], name.as_str());
        std::fs::write(&input, input_json).unwrap();
        cli(
            &["dry-run", &name, "--input", input.to_str().unwrap()],
            &vars,
        )
        .assert()
        .success()
        .stdout(contains(format!("{name} v1.0.0: valid")));
        cli(&["diagram", &name, "--format", "mermaid"], &vars)
            .assert()
            .success()
            .stdout(contains("flowchart TD"));
    }
    cli(&["validate"], &vars)
        .assert()
        .success()
        .stdout(contains("ok  my_llm v1.0.0"))
        .stdout(contains("ok  my_pipeline v1.0.0"))
        .stdout(contains("ok  my_places v1.0.0"));
}

#[test]
fn refuses_to_overwrite_or_to_write_something_invalid() {
    let dir = tempfile::tempdir().unwrap();
    let workflows = dir.path().join("w");
    let prompts = dir.path().join("p");
    let vars = [
        ("WORKFLOWS_DIR", workflows.to_str().unwrap()),
        ("PROMPTS_DIR", prompts.to_str().unwrap()),
    ];
    cli(&["new", "once"], &vars).assert().success();
    cli(&["new", "once", "--template", "pipeline"], &vars)
        .assert()
        .code(2)
        .stderr(contains("once.json already exists"));
    cli(&["new", "../escape"], &vars)
        .assert()
        .code(2)
        .stderr(contains("not a usable workflow name"));
    // A model without a price: nothing is written.
    cli(&["new", "unpriced", "--model", "no/such-model"], &vars)
        .assert()
        .code(2)
        .stderr(contains(
            "model `no/such-model` is not in the pricing table",
        ));
    assert!(!workflows.join("unpriced.json").exists());
    assert!(!prompts.join("unpriced.md").exists());
    cli(&["new", "x", "--template", "nope"], &vars)
        .assert()
        .code(2)
        .stderr(contains("invalid value 'nope'"));
}
