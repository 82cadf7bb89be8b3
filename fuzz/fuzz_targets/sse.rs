//! Server-sent events as the providers read them: the body arrives in pieces (the first byte
//! sets their size, so a piece may end inside a line or a UTF-8 character), the events are
//! parsed, and each is fed to the OpenAI and the Anthropic stream decoders.
#![no_main]

use libfuzzer_sys::fuzz_target;
use llmflow_core::llm::wire::{events_of_pieces, AnthropicStream, OpenAiStream};
use llmflow_core::llm::Flavor;

fuzz_target!(|data: &[u8]| {
    let Some((&size, body)) = data.split_first() else {
        return;
    };
    let size = usize::from(size % 64) + 1;
    let pieces: Vec<Vec<u8>> = body.chunks(size).map(<[u8]>::to_vec).collect();
    let mut openai = Some(OpenAiStream::new(Flavor::OpenAi));
    let mut openrouter = Some(OpenAiStream::new(Flavor::OpenRouter));
    let mut anthropic = Some(AnthropicStream::new());
    let mut text = String::new();
    for event in events_of_pieces(pieces) {
        let Ok(event) = event else {
            break;
        };
        for decoder in [&mut openai, &mut openrouter] {
            if let Some(d) = decoder {
                if !matches!(d.feed(&event.data, |t| text.push_str(t)), Ok(false)) {
                    if let Some(d) = decoder.take() {
                        let _ = d.finish();
                    }
                }
            }
        }
        if let Some(d) = &mut anthropic {
            if !matches!(
                d.feed(&event.event, &event.data, |t| text.push_str(t)),
                Ok(false)
            ) {
                if let Some(d) = anthropic.take() {
                    let _ = d.finish();
                }
            }
        }
    }
    for decoder in [openai, openrouter].into_iter().flatten() {
        let _ = decoder.finish();
    }
    if let Some(d) = anthropic {
        let _ = d.finish();
    }
});
