//! Generates a deterministic JSON instance that satisfies a JSON Schema (the subset used for
//! LLM structured output: `type`, `properties`, `required`, `items`, `enum`, `const`,
//! `minimum`/`maximum` (and exclusive forms), `multipleOf`, `minLength`/`maxLength`,
//! `minItems`/`maxItems`, `uniqueItems`, `format`, `$ref` into the same document, `anyOf`,
//! `oneOf` and `allOf`). `pattern` is not honoured.

use serde_json::{Map, Value};

use crate::content::{fnv1a, mix};
use crate::values::{self, Catalog};

/// Inputs that make the generated instance depend on the prompt.
#[derive(Clone, Debug)]
pub(crate) struct GenContext {
    /// Stable hash of the prompt.
    pub seed: u64,
    /// Forced value for properties named `score` (from `EMULATOR_SCORE:`).
    pub score: Option<i64>,
    /// Text used for properties named `summary`, `description`, `text`, `reason(ing)`.
    pub summary: String,
    /// Items quoted in the prompt: properties named `id` or `*_id` take their ids.
    pub catalog: Catalog,
}

const MAX_DEPTH: usize = 24;

/// Returns an instance of `schema` (the schema is also the root for `$ref` resolution).
pub(crate) fn instance(schema: &Value, ctx: &GenContext) -> Value {
    Generator { root: schema, ctx }.generate(schema, "", "value", 0)
}

struct Generator<'a> {
    root: &'a Value,
    ctx: &'a GenContext,
}

impl Generator<'_> {
    fn rand(&self, path: &str) -> u64 {
        mix(self.ctx.seed, fnv1a(path.as_bytes()))
    }

    fn resolve<'s>(&'s self, node: &'s Value, depth: usize) -> Option<&'s Value> {
        let mut node = node;
        for _ in 0..MAX_DEPTH.saturating_sub(depth) {
            match node.get("$ref").and_then(Value::as_str) {
                Some(reference) => {
                    let pointer = reference.strip_prefix('#')?;
                    node = self.root.pointer(pointer)?;
                }
                None => return Some(node),
            }
        }
        None
    }

    fn generate(&self, node: &Value, path: &str, name: &str, depth: usize) -> Value {
        if depth > MAX_DEPTH {
            return Value::Null;
        }
        let node = match node {
            Value::Bool(_) => return Value::String(format!("{name}-a")),
            _ => match self.resolve(node, depth) {
                Some(n) => n,
                None => return Value::Null,
            },
        };
        if let Some(c) = node.get("const") {
            return c.clone();
        }
        if let Some(Value::Array(options)) = node.get("enum") {
            if !options.is_empty() {
                let len = u64::try_from(options.len()).unwrap_or(1);
                let idx = usize::try_from(self.rand(path) % len).unwrap_or_default();
                return options[idx].clone();
            }
        }
        if let Some(Value::Array(all)) = node.get("allOf") {
            let merged = self.merge_all_of(node, all, depth);
            return self.generate(&merged, path, name, depth + 1);
        }
        for key in ["anyOf", "oneOf"] {
            if let Some(Value::Array(options)) = node.get(key) {
                let pick = options
                    .iter()
                    .find(|o| schema_type(o) != Some("null"))
                    .or_else(|| options.first());
                if let Some(option) = pick {
                    return self.generate(option, path, name, depth + 1);
                }
            }
        }
        match schema_type(node) {
            Some("object") => self.object(node, path, depth),
            Some("array") => self.array(node, path, name, depth),
            Some("integer") => self.integer(node, path, name),
            Some("number") => self.number(node, path, name),
            Some("boolean") => Value::Bool(self.rand(path) & 1 == 0),
            Some("null") => Value::Null,
            _ => self.string(node, path, name),
        }
    }

    fn merge_all_of(&self, node: &Value, all: &[Value], depth: usize) -> Value {
        let mut merged = node.as_object().cloned().unwrap_or_default();
        merged.remove("allOf");
        let mut properties = Map::new();
        let mut required = Vec::new();
        for part in all {
            let Some(Value::Object(part)) = self.resolve(part, depth) else {
                continue;
            };
            for (k, v) in part {
                match (k.as_str(), v) {
                    ("properties", Value::Object(p)) => {
                        properties.extend(p.iter().map(|(k, v)| (k.clone(), v.clone())));
                    }
                    ("required", Value::Array(r)) => required.extend(r.iter().cloned()),
                    _ => {
                        merged.entry(k.clone()).or_insert_with(|| v.clone());
                    }
                }
            }
        }
        if let Some(Value::Object(p)) = node.get("properties") {
            properties.extend(p.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        if !properties.is_empty() {
            merged.insert("properties".into(), Value::Object(properties));
            merged
                .entry("type")
                .or_insert_with(|| Value::String("object".into()));
        }
        if !required.is_empty() {
            merged.insert("required".into(), Value::Array(required));
        }
        Value::Object(merged)
    }

    fn object(&self, node: &Value, path: &str, depth: usize) -> Value {
        let mut out = Map::new();
        if let Some(Value::Object(props)) = node.get("properties") {
            for (key, sub) in props {
                let child = format!("{path}/{key}");
                out.insert(key.clone(), self.generate(sub, &child, key, depth + 1));
            }
        }
        if let Some(Value::Array(required)) = node.get("required") {
            for key in required.iter().filter_map(Value::as_str) {
                if !out.contains_key(key) {
                    let child = format!("{path}/{key}");
                    let sub = node
                        .get("additionalProperties")
                        .filter(|v| v.is_object())
                        .cloned()
                        .unwrap_or(Value::Bool(true));
                    out.insert(key.to_owned(), self.generate(&sub, &child, key, depth + 1));
                }
            }
        }
        Value::Object(out)
    }

    fn array(&self, node: &Value, path: &str, name: &str, depth: usize) -> Value {
        let min = node.get("minItems").and_then(Value::as_u64).unwrap_or(0);
        let max = node
            .get("maxItems")
            .and_then(Value::as_u64)
            .unwrap_or(u64::MAX);
        let wanted = (1 + self.rand(path) % 3).max(min).min(max);
        let prefix: &[Value] = node
            .get("prefixItems")
            .and_then(Value::as_array)
            .map_or(&[], Vec::as_slice);
        let items = node.get("items").cloned().unwrap_or(Value::Bool(true));
        let unique = node.get("uniqueItems").and_then(Value::as_bool) == Some(true);
        let item_name = name.strip_suffix('s').unwrap_or(name);
        let mut out: Vec<Value> = Vec::new();
        let mut attempt: u64 = 0;
        while u64::try_from(out.len()).unwrap_or(u64::MAX) < wanted && attempt < wanted * 8 + 8 {
            let idx = out.len();
            let sub = prefix.get(idx).unwrap_or(&items);
            let child = format!("{path}/{attempt}");
            let value = match self.generate(sub, &child, item_name, depth + 1) {
                Value::String(s) if s == format!("{item_name}-a") => {
                    Value::String(format!("{item_name}-{}", letter(attempt)))
                }
                v => v,
            };
            attempt += 1;
            if unique && out.contains(&value) {
                continue;
            }
            out.push(value);
        }
        Value::Array(out)
    }

    fn integer(&self, node: &Value, path: &str, name: &str) -> Value {
        let num = |k: &str| node.get(k).and_then(Value::as_f64);
        let mut lo = num("minimum").map(|v| v.ceil() as i128);
        let mut hi = num("maximum").map(|v| v.floor() as i128);
        match node.get("exclusiveMinimum") {
            Some(Value::Bool(true)) => lo = lo.map(|v| v + 1),
            Some(v) => {
                if let Some(x) = v.as_f64() {
                    let bound = x.floor() as i128 + 1;
                    lo = Some(lo.map_or(bound, |l| l.max(bound)));
                }
            }
            None => {}
        }
        match node.get("exclusiveMaximum") {
            Some(Value::Bool(true)) => hi = hi.map(|v| v - 1),
            Some(v) => {
                if let Some(x) = v.as_f64() {
                    let bound = x.ceil() as i128 - 1;
                    hi = Some(hi.map_or(bound, |h| h.min(bound)));
                }
            }
            None => {}
        }
        let (lo, hi) = match (lo, hi) {
            (Some(l), Some(h)) => (l, h.max(l)),
            (Some(l), None) => (l, l + 100),
            (None, Some(h)) => (h - 100, h),
            (None, None) => (0, 100),
        };
        if name == "score" {
            if let Some(score) = self.ctx.score {
                return Value::from(i128::from(score).clamp(lo, hi) as i64);
            }
        }
        let step = num("multipleOf")
            .filter(|m| *m >= 1.0 && m.fract() == 0.0)
            .map_or(1, |m| m as i128);
        let first = lo.div_euclid(step) * step + if lo.rem_euclid(step) == 0 { 0 } else { step };
        let count = if first > hi {
            0
        } else {
            (hi - first) / step + 1
        };
        let value = if count <= 0 {
            lo
        } else {
            first + (i128::from(self.rand(path)) % count) * step
        };
        Value::from(i64::try_from(value).unwrap_or_default())
    }

    fn number(&self, node: &Value, path: &str, name: &str) -> Value {
        let num = |k: &str| node.get(k).and_then(Value::as_f64);
        let mut lo = num("minimum");
        let mut hi = num("maximum");
        if let Some(x) = num("exclusiveMinimum") {
            lo = Some(lo.map_or(x, |l| l.max(x)));
        }
        if let Some(x) = num("exclusiveMaximum") {
            hi = Some(hi.map_or(x, |h| h.min(x)));
        }
        let (lo, hi) = match (lo, hi) {
            (Some(l), Some(h)) => (l, h.max(l)),
            (Some(l), None) => (l, l + 100.0),
            (None, Some(h)) => (h - 100.0, h),
            (None, None) => (0.0, 100.0),
        };
        if name == "score" {
            if let Some(score) = self.ctx.score {
                return Value::from((score as f64).clamp(lo, hi));
            }
        }
        // Strictly inside the range (5%..95%), so exclusive bounds hold as well.
        let frac = (self.rand(path) % 901 + 50) as f64 / 1000.0;
        let raw = lo + frac * (hi - lo);
        let rounded = (raw * 100.0).round() / 100.0;
        let value = if rounded > lo && rounded < hi {
            rounded
        } else {
            raw
        };
        Value::from(value)
    }

    fn string(&self, node: &Value, path: &str, name: &str) -> Value {
        let r = self.rand(path);
        let base = match node.get("format").and_then(Value::as_str) {
            Some("date-time") => format!("2024-{:02}-{:02}T12:00:00Z", 1 + r % 12, 1 + r % 28),
            Some("date") => format!("2024-{:02}-{:02}", 1 + r % 12, 1 + r % 28),
            Some("time") => format!("{:02}:{:02}:00Z", r % 24, r % 60),
            Some("email") => format!("user{}@example.com", r % 1000),
            Some("uri" | "url") => format!("https://example.com/{}", r % 1000),
            Some("uuid") => {
                let hex = format!("{:016x}{:016x}", r, mix(r, 7));
                format!(
                    "{}-{}-4{}-8{}-{}",
                    &hex[0..8],
                    &hex[8..12],
                    &hex[13..16],
                    &hex[17..20],
                    &hex[20..32]
                )
            }
            _ => match name {
                "summary" | "description" | "text" | "reason" | "reasoning" | "explanation"
                | "rationale" => self.ctx.summary.clone(),
                "phone" | "phone_number" | "phoneNumber" | "telephone" => values::phone(r),
                _ if name == "id" || name.ends_with("_id") || name.ends_with("Id") => self
                    .ctx
                    .catalog
                    .pick(1, r)
                    .pop()
                    .unwrap_or_else(|| format!("{name}-a")),
                _ => format!("{name}-a"),
            },
        };
        let min = node
            .get("minLength")
            .and_then(Value::as_u64)
            .and_then(|v| usize::try_from(v).ok())
            .unwrap_or(0);
        let max = node
            .get("maxLength")
            .and_then(Value::as_u64)
            .and_then(|v| usize::try_from(v).ok())
            .unwrap_or(usize::MAX);
        let mut s: String = base.chars().take(max).collect();
        let len = s.chars().count();
        if len < min {
            s.extend(std::iter::repeat_n('x', min - len));
        }
        Value::String(s)
    }
}

/// The schema's type: `type` (first non-null entry of a type array), else inferred from
/// `properties` / `items`.
fn schema_type(node: &Value) -> Option<&str> {
    match node.get("type") {
        Some(Value::String(t)) => Some(t.as_str()),
        Some(Value::Array(types)) => types
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .or(Some("null")),
        _ if node.get("properties").is_some() => Some("object"),
        _ if node.get("items").is_some() || node.get("prefixItems").is_some() => Some("array"),
        _ => None,
    }
}

fn letter(i: u64) -> char {
    char::from(b'a' + u8::try_from(i % 26).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx(seed: u64) -> GenContext {
        GenContext {
            seed,
            score: None,
            summary: "a short summary".into(),
            catalog: Catalog::default(),
        }
    }

    fn valid(schema: &Value, value: &Value) -> bool {
        jsonschema::validator_for(schema)
            .map(|v| v.is_valid(value))
            .unwrap_or(false)
    }

    #[test]
    fn satisfies_a_rich_schema_for_many_seeds() {
        let schema = json!({
            "type": "object",
            "$defs": {"tag": {"type": "string", "enum": ["x", "y", "z"]}},
            "properties": {
                "score": {"type": "integer", "minimum": 10, "maximum": 20},
                "ratio": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
                "even": {"type": "integer", "minimum": 1, "maximum": 9, "multipleOf": 2},
                "ok": {"type": "boolean"},
                "name": {"type": "string", "minLength": 12, "maxLength": 14},
                "when": {"type": "string", "format": "date-time"},
                "id": {"type": "string", "format": "uuid"},
                "tags": {"type": "array", "items": {"$ref": "#/$defs/tag"},
                         "minItems": 2, "maxItems": 3, "uniqueItems": true},
                "maybe": {"type": ["string", "null"]},
                "nested": {"anyOf": [{"type": "null"},
                    {"type": "object", "properties": {"n": {"type": "integer", "exclusiveMaximum": 0}},
                     "required": ["n"], "additionalProperties": false}]},
                "merged": {"allOf": [
                    {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
                    {"properties": {"b": {"const": 3}}, "required": ["b"]}]}
            },
            "required": ["score", "ratio", "even", "ok", "name", "when", "id", "tags", "maybe",
                         "nested", "merged"],
            "additionalProperties": false
        });
        for seed in 0..200 {
            let value = instance(&schema, &ctx(seed));
            assert!(valid(&schema, &value), "seed {seed}: {value}");
        }
    }

    #[test]
    fn is_deterministic_and_seed_dependent() {
        let schema = json!({"type": "object", "properties": {"n": {"type": "integer"}}});
        assert_eq!(instance(&schema, &ctx(1)), instance(&schema, &ctx(1)));
        let distinct: std::collections::BTreeSet<String> = (0..20)
            .map(|s| instance(&schema, &ctx(s)).to_string())
            .collect();
        assert!(distinct.len() > 5);
    }

    #[test]
    fn score_directive_is_clamped_into_bounds() {
        let schema = json!({"type": "object", "properties": {
            "score": {"type": "integer", "minimum": 0, "maximum": 100}}});
        let mut c = ctx(3);
        c.score = Some(80);
        assert_eq!(instance(&schema, &c), json!({"score": 80}));
        c.score = Some(500);
        assert_eq!(instance(&schema, &c), json!({"score": 100}));
    }

    #[test]
    fn summary_and_array_strings() {
        let schema = json!({"type": "object", "properties": {
            "summary": {"type": "string"},
            "tags": {"type": "array", "items": {"type": "string"}, "minItems": 3}}});
        let v = instance(&schema, &ctx(9));
        assert_eq!(v["summary"], "a short summary");
        assert_eq!(v["tags"], json!(["tag-a", "tag-b", "tag-c"]));
    }

    #[test]
    fn named_strings_are_realistic_and_ids_come_from_the_catalog() {
        let schema = json!({"type": "object", "properties": {
            "phone": {"type": "string"}, "reasoning": {"type": "string"},
            "picks": {"type": "array", "minItems": 3, "items": {"type": "object",
                "properties": {"bundle_id": {"type": "string"}}, "required": ["bundle_id"]}}}});
        let mut c = ctx(4);
        c.catalog = Catalog::from_prompt("- id: \"a1\"\n- id: \"b2\"\n");
        let v = instance(&schema, &c);
        assert!(
            v["phone"]
                .as_str()
                .is_some_and(|p| p.starts_with("+1 555-01")),
            "{v}"
        );
        assert_eq!(v["reasoning"], "a short summary");
        for pick in v["picks"].as_array().expect("picks") {
            assert!(
                ["a1", "b2"].contains(&pick["bundle_id"].as_str().unwrap_or("")),
                "{v}"
            );
        }
    }

    #[test]
    fn recursive_refs_terminate() {
        let schema = json!({"$ref": "#"});
        assert_eq!(instance(&schema, &ctx(0)), Value::Null);
        let tree = json!({"type": "object", "properties": {"child": {"$ref": "#"}}});
        let _ = instance(&tree, &ctx(0)); // must not overflow the stack
    }
}
