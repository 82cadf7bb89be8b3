//! The llm step's new fields are validated at submit.

use serde_json::{json, Value};

use llmflow_core::pricing::PriceTable;
use llmflow_core::workflow::{LoadedWorkflow, StepKind};

fn compile(step: Value) -> Result<LoadedWorkflow, Vec<String>> {
    let pricing = PriceTable::built_in().expect("pricing");
    LoadedWorkflow::from_definition(json!({"name": "w", "steps": [step]}), &pricing)
        .map_err(|problems| problems.iter().map(ToString::to_string).collect())
}

#[test]
fn fallbacks_and_repair_attempts_compile() {
    let loaded = compile(json!({
        "id": "a", "type": "llm", "provider": "openai", "model": "gpt-4o", "prompt": "x",
        "response_format": "json", "repair_attempts": 2, "stream": true,
        "fallbacks": [{"provider": "anthropic", "model": "claude-3-5-sonnet-20241022"},
                      {"provider": "openrouter", "model": "openai/gpt-4o-mini"}]
    }))
    .expect("valid");
    let StepKind::Llm(step) = &loaded.workflow.steps[0].kind else {
        panic!("an llm step")
    };
    assert_eq!(step.fallbacks.len(), 2);
    assert_eq!(step.fallbacks[0].provider, "anthropic");
    assert_eq!(step.repair_attempts, 2);
    let defaulted = compile(json!({
        "id": "a", "type": "llm", "model": "gpt-4o", "prompt": "x", "response_format": "json"
    }))
    .expect("valid");
    let StepKind::Llm(step) = &defaulted.workflow.steps[0].kind else {
        panic!("an llm step")
    };
    assert_eq!(step.repair_attempts, 1, "one repair by default");
}

#[test]
fn unknown_fallback_provider_and_unpriced_model_are_rejected() {
    let problems = compile(json!({
        "id": "a", "type": "llm", "model": "gpt-4o", "prompt": "x", "repair_attempts": 1,
        "fallbacks": [{"provider": "acme", "model": "gpt-4o"},
                      {"provider": "openai", "model": "gpt-9"},
                      {"provider": "openai"}]
    }))
    .expect_err("invalid");
    let text = problems.join("\n");
    // A fallback without a model is a parse error; fix it and the rest are reported together.
    assert!(!text.is_empty());
    let problems = compile(json!({
        "id": "a", "type": "llm", "model": "gpt-4o", "prompt": "x", "repair_attempts": 1,
        "fallbacks": [{"provider": "acme", "model": "gpt-4o"},
                      {"provider": "openai", "model": "gpt-9"}]
    }))
    .expect_err("invalid");
    let text = problems.join("\n");
    assert!(
        text.contains("steps[0].fallbacks[0].provider: unknown provider `acme`"),
        "{text}"
    );
    assert!(
        text.contains("steps[0].fallbacks[1].model: model `gpt-9` is not in the pricing table"),
        "{text}"
    );
    assert!(
        text.contains("steps[0].repair_attempts: needs `response_format: json`"),
        "{text}"
    );
}
