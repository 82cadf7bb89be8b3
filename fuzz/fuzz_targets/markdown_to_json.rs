//! The `markdown_to_json` transform over arbitrary Markdown, with each section-key style, as a
//! string input and as a field of an object.
#![no_main]

use libfuzzer_sys::fuzz_target;
use llmflow_core::transform::{MarkdownToJson, SectionKeyStyle};
use serde_json::json;

fuzz_target!(|data: &[u8]| {
    let Some((&style, text)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let style = if style % 2 == 0 {
        SectionKeyStyle::SnakeCase
    } else {
        SectionKeyStyle::Text
    };
    if let Ok(transform) = MarkdownToJson::compile(None, style) {
        let _ = transform.apply(&json!(text));
    }
    if let Ok(transform) = MarkdownToJson::compile(Some("$.body"), style) {
        let _ = transform.apply(&json!({"body": text}));
    }
});
