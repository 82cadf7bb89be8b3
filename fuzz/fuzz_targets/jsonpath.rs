//! JSONPath in the `extract_fields` transform: the text before the first NUL is the query, the
//! rest the JSON document it runs on.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use llmflow_core::transform::TransformSpec;
use serde_json::json;

fuzz_target!(|data: &[u8]| {
    let (query, document) = match data.iter().position(|&b| b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let Ok(query) = std::str::from_utf8(query) else {
        return;
    };
    let document: serde_json::Value = serde_json::from_slice(document)
        .unwrap_or_else(|_| json!({"a": {"b": [1, {"c": "d"}, 2.5]}, "e": null}));
    let spec = TransformSpec::ExtractFields {
        fields: BTreeMap::from([("x".to_owned(), query.to_owned())]),
    };
    if let Ok(transform) = spec.compile() {
        let _ = transform.apply(&document);
    }
});
