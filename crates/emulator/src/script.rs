//! Scripted behaviour: a FIFO of [`ScriptStep`]s, one consumed per LLM provider call.
//!
//! Steps can be pushed in-process with [`crate::Emulator::push_script`] or over HTTP with
//! `POST /_emulator/script`, whose body is a JSON array of steps in this form:
//!
//! ```json
//! [
//!   "ok",
//!   {"type": "status", "status": 429, "retry_after": 2},
//!   {"type": "status", "status": 500, "body": {"error": {"message": "boom"}}},
//!   {"type": "delay", "ms": 250},
//!   {"type": "content", "text": "{\"score\": 80}"},
//!   {"type": "slow_headers", "ms": 1000},
//!   "drop_mid_stream",
//!   "error_mid_stream",
//!   "hang"
//! ]
//! ```
//!
//! Unit steps may be written either as a bare string or as `{"type": "<name>"}`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One scripted answer for the next LLM provider call (`/v1/chat/completions` or
/// `/v1/messages`). Steps are consumed first-in first-out, one per call; when the script is
/// empty the emulator falls back to its normal behaviour (configured latency and error rate).
///
/// Google Places calls never consume script steps.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(from = "StepWire", into = "StepWire")]
pub enum ScriptStep {
    /// A normal reply (no error injection for this call).
    Ok,
    /// Answer with this HTTP status. `retry_after` (seconds) sets the `Retry-After` header
    /// (and the provider's rate-limit reset headers); `body` replaces the provider-appropriate
    /// default error body. A 2xx status without a body is a normal reply.
    Status {
        /// HTTP status code to answer with.
        status: u16,
        /// Value of the `Retry-After` header, in seconds.
        retry_after: Option<u64>,
        /// Exact JSON body to send instead of the provider's default error body.
        body: Option<serde_json::Value>,
    },
    /// Wait this long (on top of the configured latency), then give the normal reply.
    Delay(Duration),
    /// Normal reply whose content is exactly this text.
    Content(String),
    /// Wait this long before sending the response headers, then give the normal reply.
    SlowHeaders(Duration),
    /// Streaming requests: send the first chunks (role and two content deltas), then close the
    /// connection abruptly without the terminating events. Non-streaming requests: close the
    /// connection without any response.
    DropMidStream,
    /// Streaming requests: send the first chunks, then a provider error event (`event: error`
    /// with `overloaded_error` for Anthropic, a `data: {"error": …}` chunk for OpenAI), then end
    /// the stream. Non-streaming requests answer 500 with the provider's error body.
    ErrorMidStream,
    /// Never answer; the call stays in flight until the client gives up.
    Hang,
}

/// The JSON shape of a [`ScriptStep`] (see the module documentation).
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum StepWire {
    Bare(UnitStep),
    Tagged(TaggedStep),
}

#[derive(Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum UnitStep {
    Ok,
    DropMidStream,
    ErrorMidStream,
    Hang,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum TaggedStep {
    Ok,
    Status {
        status: u16,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        body: Option<serde_json::Value>,
    },
    Delay {
        ms: u64,
    },
    Content {
        text: String,
    },
    SlowHeaders {
        ms: u64,
    },
    DropMidStream,
    ErrorMidStream,
    Hang,
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl From<StepWire> for ScriptStep {
    fn from(wire: StepWire) -> Self {
        match wire {
            StepWire::Bare(UnitStep::Ok) | StepWire::Tagged(TaggedStep::Ok) => ScriptStep::Ok,
            StepWire::Bare(UnitStep::DropMidStream)
            | StepWire::Tagged(TaggedStep::DropMidStream) => ScriptStep::DropMidStream,
            StepWire::Bare(UnitStep::ErrorMidStream)
            | StepWire::Tagged(TaggedStep::ErrorMidStream) => ScriptStep::ErrorMidStream,
            StepWire::Bare(UnitStep::Hang) | StepWire::Tagged(TaggedStep::Hang) => ScriptStep::Hang,
            StepWire::Tagged(TaggedStep::Status {
                status,
                retry_after,
                body,
            }) => ScriptStep::Status {
                status,
                retry_after,
                body,
            },
            StepWire::Tagged(TaggedStep::Delay { ms }) => {
                ScriptStep::Delay(Duration::from_millis(ms))
            }
            StepWire::Tagged(TaggedStep::Content { text }) => ScriptStep::Content(text),
            StepWire::Tagged(TaggedStep::SlowHeaders { ms }) => {
                ScriptStep::SlowHeaders(Duration::from_millis(ms))
            }
        }
    }
}

impl From<ScriptStep> for StepWire {
    fn from(step: ScriptStep) -> Self {
        let tagged = match step {
            ScriptStep::Ok => TaggedStep::Ok,
            ScriptStep::Status {
                status,
                retry_after,
                body,
            } => TaggedStep::Status {
                status,
                retry_after,
                body,
            },
            ScriptStep::Delay(d) => TaggedStep::Delay { ms: millis(d) },
            ScriptStep::Content(text) => TaggedStep::Content { text },
            ScriptStep::SlowHeaders(d) => TaggedStep::SlowHeaders { ms: millis(d) },
            ScriptStep::DropMidStream => TaggedStep::DropMidStream,
            ScriptStep::ErrorMidStream => TaggedStep::ErrorMidStream,
            ScriptStep::Hang => TaggedStep::Hang,
        };
        StepWire::Tagged(tagged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bare_and_tagged_steps() {
        let steps: Vec<ScriptStep> = serde_json::from_str(
            r#"["ok", "hang", {"type":"drop_mid_stream"},
                {"type":"status","status":429,"retry_after":3},
                {"type":"delay","ms":20}, {"type":"content","text":"hi"},
                {"type":"slow_headers","ms":5}, "error_mid_stream"]"#,
        )
        .expect("valid script");
        assert_eq!(
            steps,
            vec![
                ScriptStep::Ok,
                ScriptStep::Hang,
                ScriptStep::DropMidStream,
                ScriptStep::Status {
                    status: 429,
                    retry_after: Some(3),
                    body: None
                },
                ScriptStep::Delay(Duration::from_millis(20)),
                ScriptStep::Content("hi".into()),
                ScriptStep::SlowHeaders(Duration::from_millis(5)),
                ScriptStep::ErrorMidStream,
            ]
        );
    }

    #[test]
    fn round_trips_through_json() {
        let step = ScriptStep::Status {
            status: 500,
            retry_after: None,
            body: Some(serde_json::json!({"x": 1})),
        };
        let text = serde_json::to_string(&step).expect("serialize");
        let back: ScriptStep = serde_json::from_str(&text).expect("deserialize");
        assert_eq!(back, step);
    }

    #[test]
    fn rejects_unknown_steps() {
        assert!(serde_json::from_str::<ScriptStep>(r#""explode""#).is_err());
        assert!(serde_json::from_str::<ScriptStep>(r#"{"type":"delay"}"#).is_err());
    }
}
