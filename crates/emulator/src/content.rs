//! Deterministic reply content shared by every provider format: token counting, the stable
//! prompt hash, the `EMULATOR_REPLY:` / `EMULATOR_SCORE:` / `EMULATOR_LATENCY_MS:` directives and the text / JSON reply
//! shapes.

use serde_json::{json, Value};

use crate::markdown;
use crate::schema;
use crate::values::Catalog;

/// Directive line that makes the emulator reply with exactly the rest of the line.
pub const REPLY_DIRECTIVE: &str = "EMULATOR_REPLY:";
/// Directive line that sets the `score` of generated JSON replies.
pub const SCORE_DIRECTIVE: &str = "EMULATOR_SCORE:";
/// Directive line that sets this call's latency in milliseconds, instead of the configured one.
pub const LATENCY_DIRECTIVE: &str = "EMULATOR_LATENCY_MS:";

/// The emulator's deterministic token estimate: `ceil(chars / 4)` (Unicode scalar values).
pub fn count_tokens(text: &str) -> u64 {
    let chars = u64::try_from(text.chars().count()).unwrap_or(u64::MAX);
    chars.div_ceil(4)
}

/// 64-bit FNV-1a hash: stable across runs, platforms and processes.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// SplitMix64 finaliser: derives well-spread numbers from a seed and a salt.
pub(crate) fn mix(seed: u64, salt: u64) -> u64 {
    let mut z = seed ^ salt.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Who wrote a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    System,
    User,
    Assistant,
    Other,
}

/// A provider-neutral view of the request's text.
#[derive(Clone, Debug, Default)]
pub(crate) struct Conversation {
    pub messages: Vec<(Role, String)>,
}

/// The reply format a request asked for.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Format<'a> {
    Text,
    JsonObject,
    JsonSchema(&'a Value),
}

impl Conversation {
    pub fn push(&mut self, role: Role, text: String) {
        self.messages.push((role, text));
    }

    /// Prompt tokens: [`count_tokens`] over all message text.
    pub fn prompt_tokens(&self) -> u64 {
        let chars: usize = self.messages.iter().map(|(_, t)| t.chars().count()).sum();
        u64::try_from(chars).unwrap_or(u64::MAX).div_ceil(4)
    }

    /// Text of the last user message (empty if there is none).
    pub fn last_user(&self) -> &str {
        self.messages
            .iter()
            .rev()
            .find(|(role, _)| *role == Role::User)
            .map_or("", |(_, t)| t.as_str())
    }

    /// Whether any system or user text mentions JSON (case-sensitive word "JSON").
    pub fn asks_for_json(&self) -> bool {
        self.messages
            .iter()
            .filter(|(role, _)| matches!(role, Role::System | Role::User))
            .any(|(_, t)| t.contains("JSON"))
    }

    /// A JSON Schema written into the system or user text after `JSON Schema:` (how a request
    /// to the Messages API, which has no response-format switch, asks for structured output).
    pub fn schema_in_text(&self) -> Option<Value> {
        const MARKER: &str = "JSON Schema:";
        self.messages
            .iter()
            .filter(|(role, _)| matches!(role, Role::System | Role::User))
            .find_map(|(_, text)| {
                let at = text.find(MARKER)? + MARKER.len();
                let mut values = serde_json::Deserializer::from_str(text[at..].trim_start())
                    .into_iter::<Value>();
                values.next()?.ok().filter(Value::is_object)
            })
    }

    /// The value of the latest `NAME: value` directive line, searching messages newest first.
    fn directive(&self, name: &str) -> Option<&str> {
        self.messages.iter().rev().find_map(|(_, text)| {
            text.lines()
                .rev()
                .find_map(|line| line.trim_start().strip_prefix(name))
                .map(str::trim)
        })
    }

    /// The `EMULATOR_REPLY:` text, if any.
    pub fn reply_directive(&self) -> Option<String> {
        self.directive(REPLY_DIRECTIVE).map(str::to_owned)
    }

    /// The `EMULATOR_SCORE:` value, if any and numeric.
    pub fn score_directive(&self) -> Option<i64> {
        self.directive(SCORE_DIRECTIVE)?.parse().ok()
    }

    /// The `EMULATOR_LATENCY_MS:` value, if any and numeric.
    pub fn latency_directive(&self) -> Option<std::time::Duration> {
        self.directive(LATENCY_DIRECTIVE)?
            .parse()
            .ok()
            .map(std::time::Duration::from_millis)
    }

    /// Stable hash of the last user message.
    pub fn seed(&self) -> u64 {
        fnv1a(self.last_user().as_bytes())
    }

    /// The first `n` words of the last user message, without directive lines.
    pub fn first_words(&self, n: usize) -> String {
        let words: Vec<&str> = self
            .last_user()
            .lines()
            .filter(|l| {
                let l = l.trim_start();
                !l.starts_with(REPLY_DIRECTIVE)
                    && !l.starts_with(SCORE_DIRECTIVE)
                    && !l.starts_with(LATENCY_DIRECTIVE)
            })
            .flat_map(str::split_whitespace)
            .take(n)
            .collect();
        words.join(" ")
    }

    /// The score for generated JSON: the `EMULATOR_SCORE:` directive or `0..=100` from the hash.
    pub fn score(&self) -> i64 {
        self.score_directive()
            .unwrap_or_else(|| i64::try_from(mix(self.seed(), 1) % 101).unwrap_or_default())
    }

    /// Generates the reply text for the requested format (see the crate documentation).
    pub fn reply(&self, format: Format<'_>) -> String {
        if let Some(text) = self.reply_directive() {
            return text;
        }
        match format {
            Format::Text => self.text_reply(),
            Format::JsonObject => self.json_object_reply().to_string(),
            Format::JsonSchema(schema) => {
                let ctx = schema::GenContext {
                    seed: self.seed(),
                    score: self.score_directive(),
                    summary: self.summary(),
                    catalog: Catalog::from_prompt(self.last_user()),
                };
                schema::instance(schema, &ctx).to_string()
            }
        }
    }

    /// The request's gist for generated prose: its first sentence (at most 20 words).
    fn subject(&self) -> String {
        let words = self.first_words(20);
        let sentence = words.split(['.', ':', '\n']).next().unwrap_or("").trim();
        if sentence.is_empty() {
            "the request".to_owned()
        } else {
            sentence.to_owned()
        }
    }

    fn summary(&self) -> String {
        let summary = self.first_words(12);
        if summary.is_empty() {
            "empty prompt".to_owned()
        } else {
            summary
        }
    }

    fn text_reply(&self) -> String {
        if let Some(sections) = markdown::requested_sections(self.last_user()) {
            let catalog = Catalog::from_prompt(self.last_user());
            return markdown::render(&sections, self.seed(), &self.subject(), &catalog);
        }
        let words = self.first_words(20);
        let words = if words.is_empty() {
            "(empty prompt)".to_owned()
        } else {
            words
        };
        format!(
            "Emulated reply to: {words} — this is a deterministic answer from llmflow-emulator."
        )
    }

    /// The `json_object` reply shape: `{"summary", "score", "tags"}`.
    pub fn json_object_reply(&self) -> Value {
        json!({
            "summary": self.summary(),
            "score": self.score(),
            "tags": ["tag-a", "tag-b"],
        })
    }
}

/// Extracts text from a message `content` that is a string, an array of parts/blocks (their
/// `text` fields, plus nested `content` of tool results), or null.
pub(crate) fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|part| match part {
                Value::String(s) => Some(s.clone()),
                Value::Object(obj) => obj
                    .get("text")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .or_else(|| obj.get("content").map(content_text)),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// Splits a reply into stream deltas of about three words each (whitespace kept, so the
/// deltas concatenate to the original). Text with too few words is cut into character runs
/// so that a stream still has several deltas.
pub(crate) fn split_chunks(text: &str) -> Vec<String> {
    const WORDS_PER_CHUNK: usize = 3;
    let mut chunks = Vec::new();
    let mut current = String::new();
    let mut words = 0;
    let mut prev_ws = true;
    for ch in text.chars() {
        let ws = ch.is_whitespace();
        if !ws && prev_ws {
            if words == WORDS_PER_CHUNK {
                chunks.push(std::mem::take(&mut current));
                words = 0;
            }
            words += 1;
        }
        current.push(ch);
        prev_ws = ws;
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    if chunks.len() >= 3 {
        return chunks;
    }
    let chars: Vec<char> = text.chars().collect();
    let size = chars.len().div_ceil(4).max(1);
    chars.chunks(size).map(|c| c.iter().collect()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv(user: &str) -> Conversation {
        let mut c = Conversation::default();
        c.push(Role::System, "You are terse.".into());
        c.push(Role::User, user.into());
        c
    }

    #[test]
    fn tokens_are_ceil_chars_over_four() {
        assert_eq!(count_tokens(""), 0);
        assert_eq!(count_tokens("abcd"), 1);
        assert_eq!(count_tokens("abcde"), 2);
        assert_eq!(count_tokens("ééééé"), 2);
        assert_eq!(conv("abc").prompt_tokens(), 5); // 14 + 3 chars
    }

    #[test]
    fn fnv_matches_reference_vectors() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn directives_win() {
        let c = conv("Rate this.\nEMULATOR_REPLY: {\"score\": 80}\n");
        assert_eq!(c.reply(Format::Text), "{\"score\": 80}");
        let c = conv("Rate this.\n  EMULATOR_SCORE: 42");
        assert_eq!(c.json_object_reply()["score"], 42);
        assert_eq!(c.json_object_reply()["summary"], "Rate this.");
    }

    #[test]
    fn json_object_reply_is_deterministic() {
        let a = conv("one two three four five six seven eight nine ten eleven twelve thirteen");
        let b = conv("one two three four five six seven eight nine ten eleven twelve thirteen");
        assert_eq!(a.reply(Format::JsonObject), b.reply(Format::JsonObject));
        let v = a.json_object_reply();
        assert_eq!(
            v["summary"],
            "one two three four five six seven eight nine ten eleven twelve"
        );
        let score = v["score"].as_i64().expect("integer score");
        assert!((0..=100).contains(&score));
        assert_eq!(v["tags"], json!(["tag-a", "tag-b"]));
    }

    #[test]
    fn prompts_listing_sections_get_markdown_with_them() {
        let prompt = "Write the plan for Lyon.\n\nAnswer in Markdown with exactly these sections:\n\
                      # Summary\nOne paragraph.\n# Bundles\nA table with the columns \"Bundle ID\", \
                      \"Name\", \"Priority\" (1-5).\n\nCatalog:\n- id: \"b-water\", name: \"Water\"\n\
                      - id: \"b-light\", name: \"Light\"\n- id: \"b-food\", name: \"Food\"\n";
        let reply = conv(prompt).reply(Format::Text);
        assert_eq!(reply, conv(prompt).reply(Format::Text), "deterministic");
        assert!(
            reply.starts_with("# Summary\n\nSummary, in answer to: Write the plan for Lyon."),
            "{reply}"
        );
        assert!(reply.contains("| Bundle ID | Name | Priority |"), "{reply}");
        for (id, name) in [
            ("b-water", "Water"),
            ("b-light", "Light"),
            ("b-food", "Food"),
        ] {
            assert!(reply.contains(&format!("| {id} | {name} |")), "{reply}");
        }
    }

    #[test]
    fn a_schema_written_in_the_system_text_is_found() {
        let mut c = Conversation::default();
        c.push(
            Role::System,
            "Be brief.\n\nAnswer with a single JSON object and nothing else, matching this JSON Schema: {\"type\":\"object\",\"required\":[\"approach\"],\"properties\":{\"approach\":{\"enum\":[\"vertical\"]}}}".into(),
        );
        c.push(Role::User, "Which approach?".into());
        let schema = c.schema_in_text().expect("schema");
        assert_eq!(
            c.reply(Format::JsonSchema(&schema)),
            "{\"approach\":\"vertical\"}"
        );
        assert!(conv("no schema here").schema_in_text().is_none());
    }

    #[test]
    fn text_reply_mentions_prompt() {
        let r = conv("Tell me about cats").reply(Format::Text);
        assert!(
            r.starts_with("Emulated reply to: Tell me about cats"),
            "{r}"
        );
    }

    #[test]
    fn chunks_concatenate_to_original() {
        for text in [
            "Emulated reply to: a b c d e f g h",
            "{\"a\":1,\"b\":2}",
            "x",
            "",
            "héllo wörld ünïcode",
        ] {
            let chunks = split_chunks(text);
            assert_eq!(chunks.concat(), text);
            if text.chars().count() >= 4 {
                assert!(chunks.len() >= 3, "{text:?} -> {chunks:?}");
            }
        }
    }

    #[test]
    fn content_text_handles_parts() {
        let v = json!([{"type": "text", "text": "a"}, {"type": "image_url"}, {"type": "text", "text": "b"}]);
        assert_eq!(content_text(&v), "a\nb");
        assert_eq!(content_text(&Value::Null), "");
    }
}
