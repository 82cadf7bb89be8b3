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
    // The default WORKFLOW_ENV_ALLOWLIST: the app's base URL that `mission_generation` calls.
    let env = ["APP_BASE_URL".to_owned()];
    let checks = Checks::new(&pricing).with_env(&env);
    let catalog = Catalog::load_checked(&root.join("workflows"), &root.join("prompts"), checks)
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
    for name in [
        "bench_pipeline",
        "emergency_contacts",
        "mission_generation",
        "dev_framework",
    ] {
        assert!(catalog.get(name).is_some(), "{name}");
    }
}

fn compile_with_env(definition: Value, env: &[&str]) -> Result<Workflow, Vec<Problem>> {
    let pricing = PriceTable::built_in().expect("pricing");
    let env: Vec<String> = env.iter().map(|s| (*s).to_owned()).collect();
    LoadedWorkflow::from_definition_checked(definition, Checks::new(&pricing).with_env(&env))
        .map(|l| l.workflow)
}

fn template_step(id: &str, template: &str) -> Value {
    json!({"id": id, "type": "transform", "operation": "template", "template": template})
}

#[test]
fn parallel_branches_see_what_ran_before_and_not_each_other() {
    let wf = compile(json!({
        "name": "p",
        "steps": [
            template_step("first", "x"),
            {"id": "fan", "type": "parallel", "fail_fast": false, "branches": {
                "a": [template_step("a1", "${steps.first.output}"), template_step("a2", "${steps.a1.output}")],
                "b": [template_step("b1", "${steps.first.output}")]
            }},
            template_step("after", "${steps.a2.output} ${steps.b1.output} ${steps.fan.output.a}")
        ]
    }))
    .expect("valid");
    match &wf.steps[1].kind {
        StepKind::Parallel {
            branches,
            fail_fast,
        } => {
            assert!(!fail_fast);
            assert_eq!(branches.len(), 2);
            assert_eq!(branches[0].0, "a");
            assert_eq!(branches[0].1.len(), 2);
        }
        other => panic!("not parallel: {other:?}"),
    }
    let problems = compile(json!({
        "name": "p",
        "steps": [
            {"id": "fan", "type": "parallel", "on_error": {"mode": "retry", "attempts": 2}, "branches": {
                "a": [template_step("a1", "${steps.b1.output}"), template_step("dup", "x")],
                "b": [template_step("b1", "x"), template_step("dup", "y")],
                "c": [],
                "bad-name": [template_step("z", "${steps.after.output}")]
            }},
            template_step("after", "x")
        ]
    }))
    .expect_err("invalid");
    let got = fields(&problems);
    for expected in [
        "steps[0].on_error.mode",
        "steps[0].branches.a[0].template",
        "steps[0].branches.b[1].id",
        "steps[0].branches.c",
        "steps[0].branches.bad-name",
        "steps[0].branches.bad-name[0].template",
    ] {
        assert!(
            got.contains(&expected),
            "{expected} missing from {problems:#?}"
        );
    }
    let sibling = problems
        .iter()
        .find(|p| p.field == "steps[0].branches.a[0].template")
        .expect("sibling reference");
    assert!(sibling.message.contains("does not run before"), "{sibling}");
}

#[test]
fn external_api_steps_are_checked() {
    let wf = compile_with_env(
        json!({
            "name": "e",
            "steps": [
                {"id": "places", "type": "external_api", "service": "google_places",
                 "query": "${input.city} hospitals", "max_results": 5},
                {"id": "partner", "type": "external_api", "method": "POST",
                 "url": "https://api.partner.example/v1/items/${input.id}",
                 "query": {"limit": 10, "q": "${input.city}"},
                 "headers": {"Authorization": "Bearer ${env.PARTNER_TOKEN}", "Accept": "application/json"},
                 "body": {"places": "${steps.places.output.places}"}, "cache_ttl_secs": 60}
            ]
        }),
        &["PARTNER_TOKEN"],
    )
    .expect("valid");
    match &wf.steps[1].kind {
        StepKind::ExternalApi(step) => {
            assert_eq!(step.env, ["PARTNER_TOKEN"]);
            assert_eq!(step.service(), "http:api.partner.example");
            assert_eq!(step.cache_ttl, Duration::from_secs(60));
        }
        other => panic!("not external: {other:?}"),
    }
    match &wf.steps[0].kind {
        StepKind::ExternalApi(step) => {
            assert_eq!(
                step.cache_ttl,
                Duration::from_secs(3600),
                "places default TTL"
            );
        }
        other => panic!("not external: {other:?}"),
    }

    let problems = compile_with_env(
        json!({
            "name": "e",
            "steps": [
                {"id": "a", "type": "external_api", "url": "https://${input.host}/x"},
                {"id": "b", "type": "external_api", "url": "https://api.x.com${input.path}"},
                {"id": "c", "type": "external_api", "url": "https://api.x.com/",
                 "headers": {"X-Api-Key": "abc123", "X-Other": "sk-abcdefghijklmnopqrstu"}},
                {"id": "d", "type": "external_api", "url": "https://api.x.com/",
                 "headers": {"Authorization": "Bearer ${env.NOT_ALLOWED}"}, "body": {"a": 1}},
                {"id": "e", "type": "external_api", "service": "google_places", "query": {"q": "x"},
                 "url": "https://x.com/", "max_results": 50},
                {"id": "f", "type": "external_api", "service": "yelp"},
                {"id": "g", "type": "external_api", "url": "https://api.x.com/${steps.later.output}",
                 "timeout_ms": 99999999, "cache_ttl_secs": 99999999},
                {"id": "h", "type": "llm", "model": "openai/gpt-4o-mini", "prompt": "key: ${env.PARTNER_TOKEN}"},
                template_step("later", "x")
            ]
        }),
        &["PARTNER_TOKEN"],
    )
    .expect_err("invalid");
    let got = fields(&problems);
    for expected in [
        "steps[0].url",
        "steps[1].url",
        "steps[2].headers.X-Api-Key",
        "steps[2].headers.X-Other",
        "steps[3].headers.Authorization",
        "steps[3].body",
        "steps[4].query",
        "steps[4].url",
        "steps[4].max_results",
        "steps[5].service",
        "steps[6].url",
        "steps[6].timeout_ms",
        "steps[6].cache_ttl_secs",
        "steps[7].prompt",
    ] {
        assert!(
            got.contains(&expected),
            "{expected} missing from {problems:#?}"
        );
    }
    let env_problem = problems
        .iter()
        .find(|p| p.field == "steps[3].headers.Authorization")
        .expect("env problem");
    assert!(
        env_problem.message.contains("WORKFLOW_ENV_ALLOWLIST"),
        "{env_problem}"
    );
}

#[test]
fn an_allow_listed_env_base_url_may_start_a_url() {
    let wf = compile_with_env(
        json!({"name": "e", "steps": [
            {"id": "catalog", "type": "external_api", "url": "${env.APP_BASE_URL}/api/items/${input.id}"}
        ]}),
        &["APP_BASE_URL"],
    )
    .expect("valid");
    match &wf.steps[0].kind {
        StepKind::ExternalApi(step) => {
            assert_eq!(step.env, ["APP_BASE_URL"]);
            match &step.call {
                ExternalCall::Http(call) => {
                    assert_eq!(
                        call.base,
                        UrlBase::Env {
                            name: "APP_BASE_URL".into()
                        }
                    );
                    assert_eq!(call.url.source(), "/api/items/${input.id}");
                }
                other => panic!("not http: {other:?}"),
            }
        }
        other => panic!("not external: {other:?}"),
    }
    let problems = compile_with_env(
        json!({"name": "e", "steps": [
            {"id": "a", "type": "external_api", "url": "${env.APP_BASE_URL}${input.path}"},
            {"id": "b", "type": "external_api", "url": "${env.OTHER}/x"},
            {"id": "c", "type": "external_api", "url": "${input.base}/x"}
        ]}),
        &["APP_BASE_URL"],
    )
    .expect_err("invalid");
    let got = fields(&problems);
    assert_eq!(
        got,
        ["steps[0].url", "steps[1].url", "steps[2].url"],
        "{problems:#?}"
    );
    assert!(
        problems[1].message.contains("not allow-listed"),
        "{problems:#?}"
    );
}

#[test]
fn the_language_schema_compiles_and_every_workflow_file_satisfies_it() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../workflows");
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("schema.json")).expect("schema.json"),
    )
    .expect("schema.json is JSON");
    let validator = jsonschema::draft202012::new(&schema).expect("schema.json compiles");
    let mut checked = 0;
    for entry in std::fs::read_dir(&root)
        .expect("workflows folder")
        .flatten()
    {
        let path = entry.path();
        if path.extension().is_none_or(|x| x != "json") || entry.file_name() == "schema.json" {
            continue;
        }
        let definition: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("JSON");
        let errors: Vec<String> = validator
            .iter_errors(&definition)
            .map(|e| format!("{}: {e}", e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{}: {errors:#?}", path.display());
        checked += 1;
    }
    assert!(checked >= 2, "only {checked} workflow files checked");
    // The schema rejects what validation rejects at the shape level.
    for bad in [
        json!({"name": "x", "steps": [{"id": "a", "type": "nope"}]}),
        json!({"name": "x", "steps": [{"id": "a", "type": "llm", "model": "m", "prompt": "p", "colour": 1}]}),
        json!({"name": "x", "steps": [{"id": "a", "type": "transform", "operation": "sort", "order": "up"}]}),
        json!({"name": "x", "steps": [{"id": "a", "type": "parallel", "branches": {"b": []}}]}),
        json!({"name": "x", "steps": [{"id": "a", "type": "external_api", "method": "GET"}]}),
    ] {
        assert!(!validator.is_valid(&bad), "{bad}");
    }
}

#[test]
fn the_readme_markdown_and_template_examples_hold() {
    let apply = |spec: Value, input: Value| {
        let spec: crate::transform::TransformSpec = serde_json::from_value(spec).expect("spec");
        spec.compile()
            .expect("compiles")
            .apply(&input)
            .expect("applies")
    };
    let markdown = "Call 112 first.\n# Emergency contacts\n| Service | Number |\n| --- | --- |\n| Ambulance | 15 |\n| Police | 17 |\n# What to do\n- Stay calm\n- Give your address\n";
    assert_eq!(
        apply(
            json!({"operation": "markdown_to_json", "section_key_style": "snake_case"}),
            json!(markdown)
        ),
        json!({"content": "Call 112 first.",
               "emergency_contacts": [{"Service": "Ambulance", "Number": "15"}, {"Service": "Police", "Number": "17"}],
               "what_to_do": ["Stay calm", "Give your address"]})
    );
    assert_eq!(
        apply(
            json!({"operation": "template", "template": "{\"n\": {{ items | length }}}", "parse_json": true}),
            json!({"items": [1, 2]})
        ),
        json!({"n": 2})
    );
}

#[test]
fn planned_steps_count_parallel_branches_but_not_conditional_ones() {
    let wf = compile(json!({
        "name": "p",
        "steps": [
            template_step("a", "x"),
            {"id": "gate", "type": "conditional", "condition": "true",
             "then": [template_step("b", "x"), template_step("c", "x")]},
            {"id": "fan", "type": "parallel", "branches": {
                "l": [template_step("d", "x")],
                "r": [template_step("e", "x"), template_step("f", "x")]}},
            template_step("g", "x")
        ]
    }))
    .expect("valid");
    // a, gate, fan and its three, g: the conditional's two count once it is taken.
    assert_eq!(wf.planned_steps(), 7);
    match &wf.steps[1].kind {
        StepKind::Conditional { then, .. } => assert_eq!(certain_steps(then), 2),
        other => panic!("not conditional: {other:?}"),
    }
}

#[test]
fn places_location_bias_is_checked_and_rendered() {
    let wf = compile(json!({
        "name": "near",
        "steps": [{"id": "near", "type": "external_api", "service": "google_places",
                   "query": "hospitals in ${input.city}",
                   "location_bias": {"latitude": "${input.lat}", "longitude": "${input.lng}"}}]
    }))
    .expect("valid");
    let StepKind::ExternalApi(step) = &wf.steps[0].kind else {
        panic!("not external");
    };
    let ExternalCall::GooglePlaces(call) = &step.call else {
        panic!("not places");
    };
    let bias = call.location_bias.as_ref().expect("bias");
    assert_eq!(bias.radius_m, DEFAULT_BIAS_RADIUS_M);
    let scope = |input: Value| json!({"input": input, "steps": {}});
    assert_eq!(
        bias.centre(&scope(json!({"lat": 45.76, "lng": "4.83"}))),
        Some((45.76, 4.83))
    );
    assert_eq!(bias.centre(&scope(json!({"lat": 45.76}))), None, "absent");
    assert_eq!(
        bias.centre(&scope(json!({"lat": 95, "lng": 4}))),
        None,
        "out of range"
    );

    let problems = compile(json!({
        "name": "near",
        "steps": [
            {"id": "a", "type": "external_api", "service": "google_places", "query": "x",
             "location_bias": {"latitude": "${steps.later.output}", "longitude": 4, "radius_m": 0}},
            {"id": "b", "type": "external_api", "url": "https://api.x.com/",
             "location_bias": {"latitude": 1, "longitude": 2}},
            template_step("later", "x")
        ]
    }))
    .expect_err("invalid");
    let got = fields(&problems);
    for expected in [
        "steps[0].location_bias.radius_m",
        "steps[0].location_bias.latitude",
        "steps[1].location_bias",
    ] {
        assert!(
            got.contains(&expected),
            "{expected} missing from {problems:#?}"
        );
    }
}

#[test]
fn used_prompt_files_follow_includes_into_branches() {
    let dir = std::env::temp_dir().join(format!("llmflow-prompts-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(dir.join("partials")).expect("dir");
    std::fs::write(dir.join("top.md"), "A {{include:partials/a.md}}").expect("write");
    std::fs::write(dir.join("partials/a.md"), "{{ include: partials/b.md }}").expect("write");
    std::fs::write(dir.join("partials/b.md"), "b").expect("write");
    std::fs::write(dir.join("unused.md"), "u").expect("write");
    let raw: RawWorkflow = serde_json::from_value(json!({
        "name": "p",
        "steps": [{"id": "g", "type": "parallel", "branches": {"x": [
            {"id": "s", "type": "llm", "model": "openai/gpt-4o-mini", "prompt_file": "./top.md"}
        ]}}]
    }))
    .expect("raw");
    let used: Vec<String> = used_prompt_files(&raw, &dir)
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    assert_eq!(used, ["partials/a.md", "partials/b.md", "top.md"]);
    std::fs::remove_dir_all(&dir).expect("clean up");
}
