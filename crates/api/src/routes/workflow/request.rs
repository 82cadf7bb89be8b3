//! The body of `POST /api/v1/workflow`: one type that is both what the parser accepts and the
//! OpenAPI schema `SubmitRequest`, so the document cannot drift from the parser.
//!
//! Each field's deserializer checks the field alone, in the words the caller reads; the
//! validation pass in [`SubmitRequest::parse`] checks what needs the whole body.

use rust_decimal::Decimal;
use serde::de::{self, Deserializer};
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use llmflow_core::events;

use crate::body::{self, Fields};
use crate::error::FieldError;

/// Default priority when the caller gives none (0 lowest, 10 highest).
pub const DEFAULT_PRIORITY: i16 = 5;

/// A submission.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitRequest {
    /// A workflow from `GET /api/v1/workflows`.
    #[serde(default, deserialize_with = "workflow_name")]
    #[schema(required = true, min_length = 1)]
    pub workflow_name: String,
    /// Checked against the workflow's input schema.
    #[serde(default, deserialize_with = "body::object")]
    #[schema(value_type = Object, required = true)]
    pub input_data: Value,
    #[serde(default, deserialize_with = "user_id")]
    pub user_id: Option<Uuid>,
    /// Where the result is POSTed (Standard Webhooks signature).
    #[serde(default, deserialize_with = "webhook_url")]
    pub webhook_url: Option<String>,
    /// Signing secret for this job (`whsec_…`); the deployment's default when absent.
    #[serde(default, deserialize_with = "webhook_secret")]
    #[schema(min_length = 1)]
    pub webhook_secret: Option<String>,
    /// 0 (lowest) to 10 (highest); default 5.
    #[serde(default, deserialize_with = "priority")]
    #[schema(minimum = 0, maximum = 10)]
    pub priority: Option<u8>,
    /// Budget in USD: the job fails before a call that would exceed it.
    #[serde(default, deserialize_with = "max_cost_usd")]
    #[schema(value_type = Option<f64>, minimum = 0.000001, exclusive_maximum = 1000000)]
    pub max_cost_usd: Option<Decimal>,
    /// Extra webhook events: `workflow.progress`, `workflow.chunk`.
    #[serde(default, deserialize_with = "webhook_events")]
    pub webhook_events: Option<Vec<WebhookEvent>>,
}

impl SubmitRequest {
    /// Parses and checks a submission body, reporting every problem at once.
    pub fn parse(body: &Value) -> Result<SubmitRequest, Vec<FieldError>> {
        let mut fields = Fields::<SubmitRequest>::parse(body)?;
        for path in body::nul_paths(body) {
            fields.error(&path, "must not contain the NUL character (\\u0000)");
        }
        for required in ["workflow_name", "input_data"] {
            if !fields.sent(required) {
                fields.error(required, "is required");
            }
        }
        let asks_events = fields
            .parsed
            .webhook_events
            .as_ref()
            .is_some_and(|events| !events.is_empty());
        if asks_events && !fields.sent("webhook_url") {
            fields.error("webhook_events", "needs a webhook_url");
        }
        fields.finish()
    }

    /// The priority asked for, or [`DEFAULT_PRIORITY`].
    pub fn priority(&self) -> i16 {
        self.priority.map_or(DEFAULT_PRIORITY, i16::from)
    }

    /// The extra webhook events asked for, each once, in the order first asked.
    pub fn webhook_events(&self) -> Vec<WebhookEvent> {
        let mut events: Vec<WebhookEvent> = Vec::new();
        for event in self.webhook_events.iter().flatten() {
            if !events.contains(event) {
                events.push(*event);
            }
        }
        events
    }
}

/// An extra webhook event a caller may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, utoipa::ToSchema)]
pub enum WebhookEvent {
    #[schema(rename = "workflow.progress")]
    Progress,
    #[schema(rename = "workflow.chunk")]
    Chunk,
}

impl WebhookEvent {
    pub const ALL: [WebhookEvent; 2] = [WebhookEvent::Progress, WebhookEvent::Chunk];

    /// The event's name, as webhooks carry it.
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookEvent::Progress => events::WEBHOOK_PROGRESS,
            WebhookEvent::Chunk => events::WEBHOOK_CHUNK,
        }
    }
}

impl<'de> Deserialize<'de> for WebhookEvent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        const MESSAGE: &str = "must be `workflow.progress` or `workflow.chunk`";
        let name: String = body::expect(deserializer, MESSAGE)?;
        WebhookEvent::ALL
            .into_iter()
            .find(|event| event.as_str() == name)
            .ok_or_else(|| de::Error::custom(MESSAGE))
    }
}

fn workflow_name<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let name: String = body::expect(d, "must be a string")?;
    if name.trim().is_empty() {
        return Err(de::Error::custom("must not be empty"));
    }
    Ok(name)
}

fn user_id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Uuid>, D::Error> {
    let Some(text) = body::expect::<_, Option<String>>(d, "must be a UUID string")? else {
        return Ok(None);
    };
    Uuid::parse_str(&text)
        .map(Some)
        .map_err(|_| de::Error::custom("must be a UUID"))
}

fn webhook_url<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let Some(url) = body::expect::<_, Option<String>>(d, "must be a string")? else {
        return Ok(None);
    };
    match reqwest::Url::parse(&url) {
        Ok(parsed) if matches!(parsed.scheme(), "http" | "https") && parsed.host().is_some() => {
            Ok(Some(url))
        }
        Ok(_) => Err(de::Error::custom("must be an http or https URL")),
        Err(e) => Err(de::Error::custom(format!("invalid URL: {e}"))),
    }
}

fn webhook_secret<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    const MESSAGE: &str = "must be a non-empty string";
    let secret: Option<String> = body::expect(d, MESSAGE)?;
    if secret.as_deref() == Some("") {
        return Err(de::Error::custom(MESSAGE));
    }
    Ok(secret)
}

fn priority<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u8>, D::Error> {
    const MESSAGE: &str = "must be an integer from 0 to 10";
    let priority: Option<u8> = body::expect(d, MESSAGE)?;
    if priority.is_some_and(|p| p > 10) {
        return Err(de::Error::custom(MESSAGE));
    }
    Ok(priority)
}

fn max_cost_usd<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
    let Some(number) = body::expect::<_, Option<serde_json::Number>>(d, "must be a number (USD)")?
    else {
        return Ok(None);
    };
    let text = number.to_string();
    Decimal::from_str_exact(&text)
        .or_else(|_| Decimal::from_scientific(&text))
        .ok()
        .filter(|usd| *usd >= Decimal::new(1, 6) && *usd < Decimal::from(1_000_000))
        .map(Some)
        .ok_or_else(|| de::Error::custom("must be a number from 0.000001 to 999999"))
}

fn webhook_events<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<WebhookEvent>>, D::Error> {
    body::list(d, "must be an array of event names")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(body: Value) -> Vec<String> {
        SubmitRequest::parse(&body)
            .err()
            .unwrap_or_default()
            .into_iter()
            .map(|e| e.field)
            .collect()
    }

    #[test]
    fn the_nul_character_is_refused_where_it_stands() {
        let body = json!({"workflow_name": "x", "input_data": {
            "notes": "a\u{0}b", "tags": ["ok", "\u{0}"], "a\u{0}": 1, "fine": "text"}});
        let mut found = fields(body);
        found.sort();
        assert_eq!(
            found,
            [
                "input_data.a\\u0000",
                "input_data.notes",
                "input_data.tags[1]"
            ]
        );
    }

    #[test]
    fn accepts_a_minimal_body() {
        let s =
            SubmitRequest::parse(&json!({"workflow_name": "x", "input_data": {}})).expect("valid");
        assert_eq!(s.priority(), DEFAULT_PRIORITY);
        assert!(s.webhook_events().is_empty());
    }

    #[test]
    fn reports_every_bad_field() {
        assert_eq!(
            fields(
                json!({"workflow_name": 3, "input_data": [1], "priority": 11, "user_id": "nope",
                          "webhook_url": "ftp://x/", "extra": 1})
            ),
            [
                "extra",
                "input_data",
                "priority",
                "user_id",
                "webhook_url",
                "workflow_name",
            ]
        );
        assert_eq!(fields(json!({"workflow_name": "x"})), ["input_data"]);
        assert_eq!(fields(json!([1])), ["body"]);
        assert_eq!(
            fields(json!({"workflow_name": "x", "input_data": {}, "priority": 2.5})),
            ["priority"]
        );
    }

    #[test]
    fn keeps_the_values_it_was_given() {
        let s = SubmitRequest::parse(&json!({
            "workflow_name": "x", "input_data": {"a": 1}, "priority": 0, "max_cost_usd": 0.25,
            "user_id": "0b9f5c4e-6c7e-4a8e-9a57-8a1f3f0e2d11", "webhook_url": "https://Example.com",
            "webhook_secret": "whsec_x",
            "webhook_events": ["workflow.chunk", "workflow.progress", "workflow.chunk"]
        }))
        .expect("valid");
        assert_eq!(s.priority(), 0);
        assert_eq!(s.max_cost_usd, Some(Decimal::new(25, 2)));
        assert_eq!(s.input_data, json!({"a": 1}));
        assert_eq!(s.webhook_url.as_deref(), Some("https://Example.com"));
        assert_eq!(
            s.webhook_events(),
            [WebhookEvent::Chunk, WebhookEvent::Progress]
        );
    }

    #[test]
    fn every_message_a_submission_can_get() {
        let bodies = [
            json!([1]),
            json!({}),
            json!({"workflow_name": 3, "input_data": [1]}),
            json!({"workflow_name": "  ", "input_data": null}),
            json!({"workflow_name": "x", "input_data": {}, "extra": 1}),
            json!({"workflow_name": "x", "input_data": {}, "user_id": "nope"}),
            json!({"workflow_name": "x", "input_data": {}, "user_id": 5}),
            json!({"workflow_name": "x", "input_data": {}, "webhook_url": "ftp://x/"}),
            json!({"workflow_name": "x", "input_data": {}, "webhook_url": "not a url"}),
            json!({"workflow_name": "x", "input_data": {}, "webhook_url": 5}),
            json!({"workflow_name": "x", "input_data": {}, "webhook_secret": ""}),
            json!({"workflow_name": "x", "input_data": {}, "webhook_secret": 5}),
            json!({"workflow_name": "x", "input_data": {}, "priority": 11}),
            json!({"workflow_name": "x", "input_data": {}, "priority": -1}),
            json!({"workflow_name": "x", "input_data": {}, "priority": 2.5}),
            json!({"workflow_name": "x", "input_data": {}, "priority": "high"}),
            json!({"workflow_name": "x", "input_data": {}, "max_cost_usd": 0}),
            json!({"workflow_name": "x", "input_data": {}, "max_cost_usd": 1000000}),
            json!({"workflow_name": "x", "input_data": {}, "max_cost_usd": "1"}),
            json!({"workflow_name": "x", "input_data": {}, "webhook_events": "workflow.chunk"}),
            json!({"workflow_name": "x", "input_data": {}, "webhook_url": "https://example.com/h",
                   "webhook_events": ["workflow.everything", "workflow.chunk", 3]}),
            json!({"workflow_name": "x", "input_data": {}, "webhook_events": ["workflow.progress"]}),
        ];
        insta::assert_json_snapshot!(body::errors_of(bodies, SubmitRequest::parse));
    }

    #[test]
    fn the_schema_lists_every_field_the_parser_reads() {
        let schema = serde_json::to_value(<SubmitRequest as utoipa::PartialSchema>::schema())
            .expect("schema");
        let properties: Vec<&String> = schema["properties"]
            .as_object()
            .expect("properties")
            .keys()
            .collect();
        assert_eq!(
            properties,
            [
                "input_data",
                "max_cost_usd",
                "priority",
                "user_id",
                "webhook_events",
                "webhook_secret",
                "webhook_url",
                "workflow_name"
            ]
        );
        assert_eq!(schema["required"], json!(["workflow_name", "input_data"]));
        assert_eq!(schema["additionalProperties"], json!(false));
        let events = serde_json::to_value(<WebhookEvent as utoipa::PartialSchema>::schema())
            .expect("schema");
        let names: Vec<&str> = WebhookEvent::ALL.iter().map(|e| e.as_str()).collect();
        assert_eq!(events["enum"], json!(names));
    }
}
