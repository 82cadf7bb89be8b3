//! OpenRouter: the OpenAI chat-completions wire format, with `usage.cost` (USD) asked for and
//! recorded as the call's cost.

use secrecy::SecretString;

use super::http::LlmHttp;
use super::openai::{Flavor, OpenAiCompatible};

pub fn new(http: LlmHttp, base_url: &str, api_key: SecretString) -> OpenAiCompatible {
    OpenAiCompatible::new(http, base_url, api_key, Flavor::OpenRouter)
}
