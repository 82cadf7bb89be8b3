//! Cost estimates before anything is called: used by the API's dry run (`/workflow/validate`)
//! and by the worker's budget check (`max_cost_usd`).
//!
//! Tokens are estimated as characters / 4 (rounded up) of the rendered system and user prompts;
//! the answer is assumed to be between 0 tokens (min), half of `max_tokens` (expected) and
//! `max_tokens` (max). A step without `max_tokens` is assumed to allow [`DEFAULT_MAX_TOKENS`].
//! Prices come from the pricing table.

use rust_decimal::Decimal;
use serde_json::Value;

use crate::pricing::{PriceTable, TokenUsage};
use crate::workflow::LlmStep;

/// Characters per token assumed by the estimate.
pub const CHARS_PER_TOKEN: usize = 4;

/// Output tokens assumed for a step that sets no `max_tokens`.
pub const DEFAULT_MAX_TOKENS: u32 = 1024;

/// Estimated tokens of a text.
pub fn tokens_of(chars: usize) -> u64 {
    chars.div_ceil(CHARS_PER_TOKEN) as u64
}

/// The estimate of one LLM call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallEstimate {
    pub input_tokens: u64,
    pub max_output_tokens: u64,
    /// Prompt only, an empty answer.
    pub min_usd: Decimal,
    /// Prompt and half of `max_tokens`.
    pub expected_usd: Decimal,
    /// Prompt and all of `max_tokens`.
    pub max_usd: Decimal,
    /// Whether the rendered prompt was used (false: the template source, because the prompt
    /// refers to values not known before the run).
    pub rendered: bool,
}

/// Characters of the step's prompts rendered over `scope`; the template sources' length when
/// rendering needs values that are not there yet (outputs of earlier steps).
pub fn prompt_chars(step: &LlmStep, scope: &Value) -> (usize, bool) {
    let mut rendered = true;
    let mut chars = 0;
    for template in step.system.iter().chain(std::iter::once(&step.prompt)) {
        match template.render(scope) {
            Ok(text) => chars += text.chars().count(),
            Err(_) => {
                rendered = false;
                chars += template.source().chars().count();
            }
        }
    }
    (chars, rendered)
}

/// Estimates one call of `step` over `scope`; `None` when the model is not in the table.
pub fn estimate_call(pricing: &PriceTable, step: &LlmStep, scope: &Value) -> Option<CallEstimate> {
    let price = pricing.get(&step.model)?;
    let (chars, rendered) = prompt_chars(step, scope);
    let input_tokens = tokens_of(chars);
    let max_output_tokens = u64::from(step.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS));
    let cost = |output_tokens: u64| {
        price.cost(TokenUsage {
            input_tokens,
            output_tokens,
            cached_input_tokens: 0,
        })
    };
    Some(CallEstimate {
        input_tokens,
        max_output_tokens,
        min_usd: cost(0),
        expected_usd: cost(max_output_tokens / 2),
        max_usd: cost(max_output_tokens),
        rendered,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_up() {
        assert_eq!(tokens_of(0), 0);
        assert_eq!(tokens_of(1), 1);
        assert_eq!(tokens_of(8), 2);
        assert_eq!(tokens_of(9), 3);
    }
}
