//! Criterion benchmarks of the pure paths every job goes through: workflow validation, template
//! rendering, JSONPath extraction and markdown_to_json. Run with `cargo bench -p llmflow-core`.

use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::{json, Value};

use llmflow_core::pricing::PriceTable;
use llmflow_core::template::Template;
use llmflow_core::transform::{MarkdownToJson, SectionKeyStyle, TransformSpec};
use llmflow_core::workflow::LoadedWorkflow;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn workflow_validation(c: &mut Criterion) {
    let text = std::fs::read_to_string(repo().join("workflows/bench_pipeline.json"))
        .expect("workflows/bench_pipeline.json");
    let source: Value = serde_json::from_str(&text).expect("JSON");
    let prompts = repo().join("prompts");
    let pricing = PriceTable::load(None).expect("pricing table");
    c.bench_function(
        "workflow validation (bench_pipeline, prompts inlined)",
        |b| {
            b.iter(|| {
                LoadedWorkflow::from_source(std::hint::black_box(&source), &prompts, &pricing)
                    .expect("valid workflow")
            })
        },
    );
    let definition = LoadedWorkflow::from_source(&source, &prompts, &pricing)
        .expect("valid workflow")
        .definition;
    c.bench_function(
        "workflow validation (stored definition, as the worker loads it)",
        |b| {
            b.iter(|| {
                LoadedWorkflow::from_definition(std::hint::black_box(definition.clone()), &pricing)
                    .expect("valid workflow")
            })
        },
    );
}

fn scope() -> Value {
    json!({
        "input": {"text": "Ship the quarterly report by Friday and book the review with finance."},
        "steps": {
            "analyze": {"output": {"summary": "The quarterly report ships Friday.", "score": 80,
                                    "tags": ["finance", "deadline"]}},
            "extract": {"output": {"summary": "The quarterly report ships Friday.", "score": 80,
                                    "tags": ["finance", "deadline"]}}
        }
    })
}

fn template_rendering(c: &mut Criterion) {
    let template = Template::compile(
        "Low-priority ({{ steps.extract.output.score }}): {{ steps.extract.output.summary }}\n\
         {% for tag in steps.extract.output.tags %}#{{ tag }} {% endfor %}\n\
         Text:\n\"\"\"\n{{ input.text }}\n\"\"\"",
    )
    .expect("template");
    let scope = scope();
    c.bench_function("template rendering (minijinja, loop over tags)", |b| {
        b.iter(|| {
            template
                .render(std::hint::black_box(&scope))
                .expect("render")
        })
    });
}

fn jsonpath_extraction(c: &mut Criterion) {
    let spec: TransformSpec = serde_json::from_value(json!({
        "operation": "extract_fields",
        "fields": {"summary": "$.summary", "score": "$.score", "tags": "$.tags",
                   "first_tag": "$.tags[0]", "deep": "$.meta.source.name"}
    }))
    .expect("spec");
    let transform = spec.compile().expect("compiles");
    let input = json!({
        "summary": "The quarterly report ships Friday.", "score": 80,
        "tags": ["finance", "deadline", "report"],
        "meta": {"source": {"name": "email", "received": "2026-11-21"}}
    });
    c.bench_function("JSONPath extraction (extract_fields, 5 paths)", |b| {
        b.iter(|| {
            transform
                .apply(std::hint::black_box(&input))
                .expect("apply")
        })
    });
}

fn markdown_to_json(c: &mut Criterion) {
    let mut markdown =
        String::from("# Quarterly report\n\nIntro paragraph with **bold** text.\n\n");
    for section in 1..=8 {
        markdown.push_str(&format!(
            "## Section {section}\n\nSome prose about item {section}, with a [link](https://example.com).\n\n\
             - first point\n- second point\n- third point\n\n### Detail {section}\n\n1. one\n2. two\n\n"
        ));
    }
    let transform = MarkdownToJson::compile(None, SectionKeyStyle::SnakeCase).expect("compiles");
    let input = Value::String(markdown);
    c.bench_function("markdown_to_json (8 sections, lists, ~1.6 KB)", |b| {
        b.iter(|| {
            transform
                .apply(std::hint::black_box(&input))
                .expect("apply")
        })
    });
}

criterion_group!(
    benches,
    workflow_validation,
    template_rendering,
    jsonpath_extraction,
    markdown_to_json
);
criterion_main!(benches);
