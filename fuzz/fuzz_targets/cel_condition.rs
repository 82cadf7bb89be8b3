//! Conditions (CEL): the text before the first NUL is the expression, the rest the JSON scope;
//! the same expression also runs as a `filter` transform over an array.
#![no_main]

use libfuzzer_sys::fuzz_target;
use llmflow_core::transform::TransformSpec;
use llmflow_core::workflow::Condition;
use serde_json::json;

fuzz_target!(|data: &[u8]| {
    let (source, scope) = match data.iter().position(|&b| b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let Ok(source) = std::str::from_utf8(source) else {
        return;
    };
    let scope: serde_json::Value = serde_json::from_slice(scope).unwrap_or_else(
        |_| json!({"input": {"lang": "en", "n": 3}, "steps": {"a": {"output": {"score": 72.5}}}}),
    );
    if let Ok(condition) = Condition::compile(source) {
        let _ = condition.evaluate(&scope);
    }
    let filter = TransformSpec::Filter {
        condition: source.to_owned(),
    };
    if let Ok(transform) = filter.compile() {
        let _ = transform.apply(&json!([scope, 1, "two", null, [3.5]]));
    }
});
