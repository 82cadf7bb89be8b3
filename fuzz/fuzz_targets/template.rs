//! Prompt templates: the text before the first NUL is the template, the rest the JSON context
//! it is rendered with.
#![no_main]

use libfuzzer_sys::fuzz_target;
use llmflow_core::template::{self, Template};

fuzz_target!(|data: &[u8]| {
    let (source, context) = split(data);
    let Ok(source) = std::str::from_utf8(source) else {
        return;
    };
    let _ = template::is_template(source);
    let context: serde_json::Value = serde_json::from_slice(context)
        .unwrap_or_else(|_| serde_json::json!({"input": {"text": "hello", "n": [1, 2, 3]}}));
    if let Some(path) = template::whole_reference(source) {
        let _ = template::lookup(&context, path);
    }
    if let Ok(compiled) = Template::compile(source) {
        let _ = compiled.render(&context);
    }
});

fn split(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[]),
    }
}
