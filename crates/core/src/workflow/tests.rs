use serde_json::json;

use super::*;

fn compile(definition: Value) -> Result<Workflow, Vec<Problem>> {
    let pricing = PriceTable::built_in().expect("pricing");
    LoadedWorkflow::from_definition(definition, &pricing).map(|l| l.workflow)
}

fn fields(problems: &[Problem]) -> Vec<&str> {
    problems.iter().map(|p| p.field.as_str()).collect()
}

#[test]
fn a_valid_workflow_compiles() {
    let wf = compile(json!({
        "name": "demo",
        "input_schema": {"type": "object", "required": ["text"]},
        "steps": [
            {"id": "analyze", "type": "llm", "model": "openai/gpt-4o-mini", "prompt": "About ${input.text}",
             "response_format": "json"},
            {"id": "extract", "type": "transform", "input": "${steps.analyze.output}",
             "operation": "extract_fields", "fields": {"score": "$.score"}},
            {"id": "route", "type": "conditional", "condition": "steps.extract.output.score > 50",
             "then": [{"id": "hi", "type": "transform", "operation": "template", "template": "high"}],
             "else": [{"id": "lo", "type": "transform", "operation": "template", "template": "low"}]}
        ],
        "output": {"score": "${steps.extract.output.score}", "hi": "${steps.hi.output}"}
    }))
    .expect("valid");
    assert_eq!(wf.steps.len(), 3);
    assert_eq!(wf.version, "1");
}

#[test]
fn all_problems_are_reported_with_paths() {
    let problems = compile(json!({
        "name": "",
        "steps": [
            {"id": "a", "type": "llm", "model": "nope/model", "prompt": "x ${steps.b.output}", "temperature": 3},
            {"id": "b", "type": "transform", "operation": "extract_fields", "fields": {"x": "bad"}},
            {"id": "b", "type": "conditional", "condition": "((", "then": []},
            {"id": "c", "type": "llm", "model": "gpt-4o", "timeout_ms": 0}
        ]
    }))
    .expect_err("invalid");
    let got = fields(&problems);
    for expected in [
        "name",
        "steps[0].model",
        "steps[0].temperature",
        "steps[0].prompt",
        "steps[1].fields.x",
        "steps[2].id",
        "steps[2].condition",
        "steps[3].timeout_ms",
        "steps[3].prompt",
    ] {
        assert!(
            got.contains(&expected),
            "missing {expected} in {problems:#?}"
        );
    }
    let forward = problems
        .iter()
        .find(|p| p.field == "steps[0].prompt")
        .expect("forward ref");
    assert!(
        forward.message.contains("does not run before"),
        "{forward:?}"
    );
}

#[test]
fn unknown_fields_and_kinds_name_their_path() {
    let problems = compile(
        json!({"name": "x", "steps": [{"id": "a", "type": "llm", "model": "gpt-4o",
        "prompt": "p", "promt": "typo"}]}),
    )
    .expect_err("unknown field");
    assert_eq!(fields(&problems), ["steps[0]"]);
    assert!(problems[0].message.contains("promt"), "{problems:?}");
    let problems =
        compile(json!({"name": "x", "steps": [{"id": "a", "type": "magic"}]})).expect_err("kind");
    assert!(problems[0].message.contains("magic"), "{problems:?}");
    let problems = compile(
        json!({"name": "x", "steps": [{"id": "a", "type": "transform",
        "operation": "template", "template": "t", "extra": 1}]}),
    )
    .expect_err("unknown transform field");
    assert!(problems[0].message.contains("extra"), "{problems:?}");
}

#[test]
fn input_is_checked_against_the_schema_with_paths() {
    let wf = compile(json!({
        "name": "x",
        "input_schema": {"type": "object", "required": ["text"],
                         "properties": {"text": {"type": "string"}, "n": {"type": "integer"}}},
        "steps": [{"id": "t", "type": "transform", "operation": "template", "template": "x"}]
    }))
    .expect("valid");
    assert!(wf.check_input(&json!({"text": "hi"})).is_empty());
    let problems = wf.check_input(&json!({"n": "seven"}));
    assert_eq!(fields(&problems).len(), 2, "{problems:?}");
    assert!(fields(&problems).contains(&"input_data.n"));
    assert_eq!(fields(&wf.check_input(&json!([1]))), ["input_data"]);
}

#[test]
fn retry_delay_doubles_and_caps() {
    assert_eq!(retry_delay(500, 1), Duration::from_millis(500));
    assert_eq!(retry_delay(500, 3), Duration::from_millis(2000));
    assert_eq!(retry_delay(500, 30), Duration::from_secs(60));
}

#[test]
fn prompt_files_and_includes_are_inlined_and_cycles_refused() {
    let dir = std::env::temp_dir().join(format!("llmflow-prompts-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    std::fs::write(
        dir.join("main.md"),
        "Intro {{include:part.md}} end ${input.x}",
    )
    .expect("write");
    std::fs::write(dir.join("part.md"), "PART").expect("write");
    std::fs::write(dir.join("loop.md"), "{{include:loop2.md}}").expect("write");
    std::fs::write(dir.join("loop2.md"), "{{include:loop.md}}").expect("write");
    let pricing = PriceTable::built_in().expect("pricing");
    let source = |file: &str| json!({"name": "x", "steps": [{"id": "a", "type": "llm", "model": "gpt-4o", "prompt_file": file}]});
    let loaded = LoadedWorkflow::from_source(&source("main.md"), &dir, &pricing).expect("loads");
    assert_eq!(
        loaded.definition["steps"][0]["prompt"],
        json!("Intro PART end ${input.x}")
    );
    assert!(loaded.definition["steps"][0].get("prompt_file").is_none());
    let problems =
        LoadedWorkflow::from_source(&source("loop.md"), &dir, &pricing).expect_err("cycle");
    assert!(problems[0].message.contains("cycle"), "{problems:?}");
    let problems =
        LoadedWorkflow::from_source(&source("missing.md"), &dir, &pricing).expect_err("missing");
    assert_eq!(problems[0].field, "steps[0].prompt_file");
    let problems =
        LoadedWorkflow::from_source(&source("../etc/passwd"), &dir, &pricing).expect_err("escape");
    assert!(problems[0].message.contains("inside"), "{problems:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn every_workflow_in_the_repository_loads_and_validates() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let pricing = PriceTable::built_in().expect("pricing");
    let catalog = Catalog::load(&root.join("workflows"), &root.join("prompts"), &pricing)
        .unwrap_or_else(|errors| {
            panic!(
                "{}",
                errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n")
            )
        });
    let files = std::fs::read_dir(root.join("workflows"))
        .expect("workflows folder")
        .filter_map(Result::ok)
        .filter(|e| {
            e.path().extension().is_some_and(|x| x == "json") && e.file_name() != "schema.json"
        })
        .count();
    assert_eq!(catalog.len(), files);
    assert!(catalog.get("bench_pipeline").is_some());
}
