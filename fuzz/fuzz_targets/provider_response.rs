//! Provider answers: a body read as an OpenAI, OpenRouter and Anthropic completion, and as the
//! error body of a status made from the first two bytes; JSON bodies also as error objects.
#![no_main]

use libfuzzer_sys::fuzz_target;
use llmflow_core::llm::wire::{
    anthropic_error_type, anthropic_response, anthropic_status, openai_response, openai_status,
    openai_stream_error,
};
use llmflow_core::llm::Flavor;

fuzz_target!(|data: &[u8]| {
    let _ = openai_response(data, Flavor::OpenAi);
    let _ = openai_response(data, Flavor::OpenRouter);
    let _ = anthropic_response(data);
    if let [a, b, body @ ..] = data {
        let code = 100 + u16::from_be_bytes([*a, *b]) % 900;
        if let Ok(status) = http::StatusCode::from_u16(code) {
            let body = String::from_utf8_lossy(body);
            let retry_after = Some(std::time::Duration::from_secs(u64::from(*a)));
            let _ = openai_status(status, retry_after, &body).is_retryable();
            let _ = anthropic_status(status, retry_after, &body).kind();
        }
    }
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = openai_stream_error(&value).to_string();
        let _ = anthropic_error_type(&value, None).to_string();
    }
});
