//! The fields each kind of step takes, and the prompt that edits each: lists of the valid
//! choices (providers, priced models, operations, prompt files, steps to reference), numbers
//! within their limits, JSON for structured values, and `on_error` by mode.

use llmflow_core::workflow::{MAX_RETRY_ATTEMPTS, MAX_TIMEOUT_MS};

use super::ask::{self, Asked};
use super::doc::Node;

/// Step kinds, with what each does (the `type` of a step).
pub const KINDS: [(&str, &str); 5] = [
    ("llm", "call a model with a prompt"),
    (
        "transform",
        "reshape data: extract fields, fill a template, filter, map, …",
    ),
    ("conditional", "take `then` or `else` by a CEL condition"),
    ("parallel", "run named branches at the same time"),
    ("external_api", "call an HTTP API or Google Places"),
];

/// Transform operations, with what each does.
pub const OPERATIONS: [(&str, &str); 10] = [
    ("extract_fields", "pick fields with JSONPath"),
    ("template", "render a minijinja template"),
    ("filter", "keep array items matching a CEL condition"),
    ("map", "turn each array item into something else"),
    ("join", "join array items into one string"),
    ("sort", "sort an array"),
    ("unique", "keep the first item per key"),
    ("regex_extract", "match a regular expression"),
    ("markdown_to_json", "turn Markdown headings into JSON"),
    ("merge", "merge objects into one"),
];

/// How a field's value is asked for.
#[derive(Clone, Debug)]
pub enum Kind {
    /// A line of text.
    Text,
    /// Text that may reference `${input.…}` and `${steps.<id>.output}`.
    Template,
    /// One of a fixed list.
    Choice(Vec<String>),
    Bool,
    /// A whole number in a range.
    Whole(u64, u64),
    /// A decimal in a range.
    Decimal(f64, f64),
    /// Any JSON value.
    Json,
}

#[derive(Clone, Debug)]
pub struct Field {
    pub key: &'static str,
    pub kind: Kind,
    pub required: bool,
}

fn field(key: &'static str, kind: Kind, required: bool) -> Field {
    Field {
        key,
        kind,
        required,
    }
}

fn choice(items: &[&str]) -> Kind {
    Kind::Choice(items.iter().map(|s| (*s).to_owned()).collect())
}

/// What the prompts offer: the deployment's providers, priced models and prompt files.
pub struct Choices {
    pub providers: Vec<String>,
    pub models: Vec<String>,
    pub prompt_files: Vec<String>,
}

/// The fields of a transform operation, beside `operation` and `input`.
pub fn operation_fields(operation: &str) -> Vec<Field> {
    match operation {
        "extract_fields" => vec![field("fields", Kind::Json, true)],
        "template" => vec![
            field("template", Kind::Text, true),
            field("parse_json", Kind::Bool, false),
        ],
        "filter" => vec![field("condition", Kind::Text, true)],
        "map" => vec![
            field("template", Kind::Text, false),
            field("parse_json", Kind::Bool, false),
            field("field", Kind::Text, false),
            field("fields", Kind::Json, false),
        ],
        "join" => vec![
            field("separator", Kind::Text, false),
            field("field", Kind::Text, false),
        ],
        "sort" => vec![
            field("by", Kind::Text, false),
            field("order", choice(&["asc", "desc"]), false),
        ],
        "unique" => vec![field("by", Kind::Text, false)],
        "regex_extract" => vec![
            field("pattern", Kind::Text, true),
            field("field", Kind::Text, false),
            field("all", Kind::Bool, false),
        ],
        "markdown_to_json" => vec![
            field("field", Kind::Text, false),
            field("section_key_style", choice(&["text", "snake_case"]), false),
        ],
        "merge" => vec![
            field("strategy", choice(&["deep", "shallow"]), false),
            field("arrays", choice(&["replace", "concat"]), false),
        ],
        _ => Vec::new(),
    }
}

/// The fields a step of this kind takes (besides `id`, `type` and `on_error`).
pub fn step_fields(step: &Node, choices: &Choices) -> Vec<Field> {
    let timeout = field("timeout_ms", Kind::Whole(1, MAX_TIMEOUT_MS), false);
    let mut fields = match step.get_str("type") {
        Some("llm") => vec![
            field("provider", Kind::Choice(choices.providers.clone()), false),
            field("model", Kind::Choice(choices.models.clone()), true),
            field("prompt", Kind::Template, false),
            field(
                "prompt_file",
                Kind::Choice(choices.prompt_files.clone()),
                false,
            ),
            field("system", Kind::Template, false),
            field("temperature", Kind::Decimal(0.0, 2.0), false),
            field("max_tokens", Kind::Whole(1, 200_000), false),
            field("response_format", choice(&["text", "json"]), false),
            field("json_schema", Kind::Json, false),
            field("stream", Kind::Bool, false),
            field("fallbacks", Kind::Json, false),
            field("repair_attempts", Kind::Whole(0, 5), false),
        ],
        Some("transform") => {
            let operations: Vec<&str> = OPERATIONS.iter().map(|(name, _)| *name).collect();
            let mut fields = vec![
                field("input", Kind::Template, false),
                field("operation", choice(&operations), true),
            ];
            fields.extend(operation_fields(step.get_str("operation").unwrap_or("")));
            fields
        }
        Some("conditional") => vec![field("condition", Kind::Template, true)],
        Some("parallel") => vec![field("fail_fast", Kind::Bool, false)],
        Some("external_api") => vec![
            field("service", choice(&["google_places"]), false),
            field(
                "method",
                choice(&["GET", "POST", "PUT", "PATCH", "DELETE"]),
                false,
            ),
            field("url", Kind::Template, false),
            // Google Places takes a text query; a generic call an object of parameters.
            if step.get_str("service").is_some() {
                field("query", Kind::Template, false)
            } else {
                field("query", Kind::Json, false)
            },
            field("headers", Kind::Json, false),
            field("body", Kind::Json, false),
            field("cache_ttl_secs", Kind::Whole(0, 31_536_000), false),
            field("field_mask", Kind::Text, false),
            field("max_results", Kind::Whole(1, 20), false),
            field("language_code", Kind::Text, false),
            field("location_bias", Kind::Json, false),
        ],
        _ => Vec::new(),
    };
    fields.push(timeout);
    fields
}

/// A value as one short line for menus.
pub fn short(node: &Node) -> String {
    let text = match node {
        Node::String(s) => s.replace('\n', "⏎"),
        other => other.to_compact(),
    };
    clip(&text, 60)
}

/// Cuts text to `max` characters, marking the cut.
pub fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let kept: String = text.chars().take(max.saturating_sub(1)).collect();
        format!("{kept}…")
    }
}

/// What can be referenced from a step: its earlier steps' outputs and the input's fields.
pub struct References {
    pub steps: Vec<String>,
    pub input_fields: Vec<String>,
}

/// Asks for a field's new value: `None` removes the field (only offered for optional ones).
pub fn ask_value(field: &Field, current: Option<&Node>, refs: &References) -> Asked<Option<Node>> {
    let message = format!("{}:", field.key);
    let optional = !field.required;
    match &field.kind {
        Kind::Choice(options) => {
            let mut labels = options.clone();
            if optional {
                labels.push("(not set)".to_owned());
            }
            let start = current
                .and_then(Node::as_str)
                .and_then(|c| options.iter().position(|o| o == c))
                .unwrap_or(0);
            let picked = ask::choose(&message, &labels, start)?;
            Ok(options.get(picked).map(|o| Node::str(o.as_str())))
        }
        Kind::Bool => {
            let mut labels = vec!["true".to_owned(), "false".to_owned()];
            if optional {
                labels.push("(not set)".to_owned());
            }
            let start = usize::from(matches!(current, Some(Node::Bool(false))));
            let picked = ask::choose(&message, &labels, start)?;
            Ok((picked < 2).then_some(Node::Bool(picked == 0)))
        }
        Kind::Whole(min, max) => {
            let now = current.and_then(|n| match n {
                Node::Number(n) => n.as_u64(),
                _ => None,
            });
            if optional && now.is_some() && remove_instead(field)? {
                return Ok(None);
            }
            let help = format!("a whole number from {min} to {max}, Esc to go back");
            let n = ask::whole(&message, now, *min, *max, &help)?;
            Ok(Some(Node::Number(n.into())))
        }
        Kind::Decimal(min, max) => {
            let now = current.and_then(|n| match n {
                Node::Number(n) => n.as_f64(),
                _ => None,
            });
            if optional && now.is_some() && remove_instead(field)? {
                return Ok(None);
            }
            let n = ask::decimal(&message, now, *min, *max)?;
            Ok(serde_json::Number::from_f64(n).map(Node::Number))
        }
        Kind::Json => {
            let initial = current.map(Node::to_compact).unwrap_or_default();
            ask::json(&message, &initial, optional)
        }
        Kind::Text => ask_text(&message, current, optional, None),
        Kind::Template => {
            let mut labels = vec!["✎ type it".to_owned()];
            let mut values = vec![String::new()];
            for id in &refs.steps {
                labels.push(format!("the output of step `{id}`"));
                values.push(format!("${{steps.{id}.output}}"));
            }
            for name in &refs.input_fields {
                labels.push(format!("the input field `{name}`"));
                values.push(format!("${{input.{name}}}"));
            }
            if labels.len() == 1 {
                return ask_text(&message, current, optional, None);
            }
            let unset = labels.len();
            if optional {
                labels.push("(not set)".to_owned());
            }
            let picked = ask::choose(&format!("{}: type it, or reference", field.key), &labels, 0)?;
            if picked == 0 {
                return ask_text(&message, current, optional, None);
            }
            if picked == unset {
                return Ok(None);
            }
            let value = values.get(picked).cloned().unwrap_or_default();
            // A condition is CEL, which names values without `${…}`.
            if field.key == "condition" {
                let bare = value.trim_start_matches("${").trim_end_matches('}');
                return ask_text(&message, current, optional, Some(bare));
            }
            Ok(Some(Node::String(value)))
        }
    }
}

/// For an optional number that is set: keep editing it, or remove it?
fn remove_instead(field: &Field) -> Asked<bool> {
    let options = [
        format!("change {}", field.key),
        "(remove this field)".to_owned(),
    ];
    Ok(ask::choose(&format!("{}:", field.key), &options, 0)? == 1)
}

fn ask_text(
    message: &str,
    current: Option<&Node>,
    optional: bool,
    start: Option<&str>,
) -> Asked<Option<Node>> {
    let initial = start
        .map(str::to_owned)
        .or_else(|| current.and_then(Node::as_str).map(str::to_owned))
        .unwrap_or_default();
    let help = if optional {
        "Enter to keep, empty to remove the field, Esc to go back"
    } else {
        "Enter to keep, Esc to go back"
    };
    let typed = ask::text(message, &initial, help, move |input| {
        (!optional && input.trim().is_empty()).then(|| "a value is required".to_owned())
    })?;
    Ok((!typed.is_empty()).then(|| Node::String(typed)))
}

/// Asks for `on_error`: the mode, then what that mode needs. `None` is the default (fail).
pub fn ask_on_error(current: Option<&Node>) -> Asked<Option<Node>> {
    let modes = [
        "fail — the job fails (the default)".to_owned(),
        "continue — record the error, output null, go on".to_owned(),
        "default — record the error, use a value you give as the output".to_owned(),
        "retry — try again, waiting longer each time".to_owned(),
    ];
    let now = current.and_then(|n| n.get_str("mode")).unwrap_or("fail");
    let start = ["fail", "continue", "default", "retry"]
        .iter()
        .position(|m| *m == now)
        .unwrap_or(0);
    let picked = ask::choose("on_error mode:", &modes, start)?;
    let mut node = Node::Object(Default::default());
    match picked {
        0 => return Ok(None),
        1 => node.set("mode", Node::str("continue")),
        2 => {
            node.set("mode", Node::str("default"));
            let initial = current
                .and_then(|n| n.get("value"))
                .map(Node::to_compact)
                .unwrap_or_default();
            let value = ask::json("value used as the output:", &initial, false)?;
            node.set("value", value.unwrap_or(Node::Null));
        }
        _ => {
            node.set("mode", Node::str("retry"));
            let number = |key: &str| {
                current.and_then(|n| match n.get(key) {
                    Some(Node::Number(n)) => n.as_u64(),
                    _ => None,
                })
            };
            let attempts = ask::whole(
                "attempts (in all):",
                number("attempts").or(Some(3)),
                1,
                u64::from(MAX_RETRY_ATTEMPTS),
                "how many tries in all, the first included",
            )?;
            let backoff = ask::whole(
                "backoff_ms:",
                number("backoff_ms").or(Some(1000)),
                0,
                MAX_TIMEOUT_MS,
                "wait before the second try; doubles after each try",
            )?;
            node.set("attempts", Node::Number(attempts.into()));
            node.set("backoff_ms", Node::Number(backoff.into()));
        }
    }
    Ok(Some(node))
}

/// `on_error` as a short phrase (`retry ×3, 500 ms`).
pub fn on_error_label(node: Option<&Node>) -> String {
    let Some(node) = node else {
        return "fail (default)".to_owned();
    };
    match node.get_str("mode") {
        Some("retry") => {
            let attempts = node
                .get("attempts")
                .map(Node::to_compact)
                .unwrap_or_default();
            let backoff = node
                .get("backoff_ms")
                .map(Node::to_compact)
                .unwrap_or_else(|| "1000".to_owned());
            format!("retry ×{attempts}, {backoff} ms")
        }
        Some("default") => format!(
            "default {}",
            node.get("value").map(short).unwrap_or_default()
        ),
        Some(mode) => mode.to_owned(),
        None => node.to_compact(),
    }
}

#[cfg(test)]
mod tests {
    use llmflow_core::transform::TransformSpec;
    use serde_json::json;

    use super::*;

    /// Every listed operation is one the workflow format knows, and its required fields are
    /// what it needs to parse.
    #[test]
    fn operations_are_the_formats_own() {
        for (name, _) in OPERATIONS {
            let mut spec = json!({ "operation": name });
            for f in operation_fields(name).iter().filter(|f| f.required) {
                let value = match f.kind {
                    Kind::Json => json!({"a": "$.a"}),
                    _ => json!("x"),
                };
                spec[f.key] = value;
            }
            let parsed: Result<TransformSpec, _> = serde_json::from_value(spec);
            match parsed {
                Ok(spec) => assert_eq!(spec.operation(), name),
                Err(e) => panic!("{name}: {e}"),
            }
        }
    }
}
