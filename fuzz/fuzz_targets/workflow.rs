//! Workflow definitions as the API receives them: JSON text, parsed and validated; a valid one
//! also checks an input against its schema.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use llmflow_core::pricing::PriceTable;
use llmflow_core::workflow::LoadedWorkflow;

static PRICING: LazyLock<PriceTable> =
    LazyLock::new(|| PriceTable::built_in().expect("the built-in pricing table loads"));

fuzz_target!(|data: &[u8]| {
    let Ok(definition) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let input = definition.get("example_input").cloned().unwrap_or_default();
    if let Ok(loaded) = LoadedWorkflow::from_definition(definition, &PRICING) {
        let _ = loaded.workflow.check_input(&input);
        let _ = loaded.workflow.planned_steps();
    }
});
