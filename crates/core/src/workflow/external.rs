//! `external_api` steps: the validated call (generic HTTP or a named service) and its checks.
//! Executing it (HTTP, cache, rate limit) is the worker's business; this is only the spec.

use std::collections::HashSet;
use std::sync::LazyLock;
use std::time::Duration;

use regex::Regex;
use serde_json::Value;

use super::raw::{HttpMethod, RawExternalApiStep};
use super::{Checker, ValueTemplate, ENV_REFERENCE};
use crate::template::{is_template, Template};

/// The named service for Google Places Text Search (New).
pub const GOOGLE_PLACES_SERVICE: &str = "google_places";
/// Fields asked of Google Places when the step gives no `field_mask`.
pub const DEFAULT_PLACES_FIELD_MASK: &str = "places.id,places.displayName,places.formattedAddress,places.location,places.rating,places.userRatingCount,places.types,places.googleMapsUri,places.businessStatus";
/// Default cache lifetime of `google_places` responses.
pub const DEFAULT_PLACES_CACHE_TTL_SECS: u64 = 3600;
/// Longest a response may be cached.
pub const MAX_CACHE_TTL_SECS: u64 = 30 * 24 * 3600;

/// `https://host[:port]` written out, followed by a path, a query or nothing.
static URL_PREFIX: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^https?://([A-Za-z0-9.\-]+|\[[0-9A-Fa-f:]+\])(:[0-9]{1,5})?([/?#]|$)")
        .unwrap_or_else(|e| unreachable!("static regex: {e}"))
});

/// A URL that starts with a deployment's base URL: `${env.NAME}`, then a path, a query or
/// nothing (`${env.APP_BASE_URL}/api/items`).
static ENV_BASE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^\$\{\s*env\.([A-Za-z_][A-Za-z0-9_]*)\s*\}")
        .unwrap_or_else(|e| unreachable!("static regex: {e}"))
});

/// An HTTP header name (RFC 9110 token).
static HEADER_NAME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[A-Za-z0-9!#$%&'*+.^_`|~\-]+$")
        .unwrap_or_else(|e| unreachable!("static regex: {e}"))
});

/// Header names that carry credentials.
static SECRET_HEADER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)(authorization|api[-_]?key|token|secret|password|cookie|credential)")
        .unwrap_or_else(|e| unreachable!("static regex: {e}"))
});

/// Literal values that look like credentials (`Bearer abc…`, `sk-…`, Google `AIza…` keys).
static INLINE_KEY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)(^(bearer|basic|token)\s+[A-Za-z0-9._~+/=\-]{8,}$|\b(sk|pk|rk)-[A-Za-z0-9_\-]{12,}|\bAIza[0-9A-Za-z_\-]{20,})")
        .unwrap_or_else(|e| unreachable!("static regex: {e}"))
});

/// A validated `external_api` step.
#[derive(Clone, Debug)]
pub struct ExternalApiStep {
    pub call: ExternalCall,
    /// How long a successful response is reused; zero means never cached.
    pub cache_ttl: Duration,
    /// Environment names the step's templates read (all allow-listed).
    pub env: Vec<String>,
}

impl ExternalApiStep {
    /// The service name used for rate limiting and the cache: `google_places`, or
    /// `http:<host>` for generic calls.
    pub fn service(&self) -> String {
        match &self.call {
            ExternalCall::GooglePlaces(_) => GOOGLE_PLACES_SERVICE.to_owned(),
            ExternalCall::Http(http) => match &http.base {
                UrlBase::Written { host } => format!("http:{host}"),
                UrlBase::Env { name } => format!("http:env.{name}"),
            },
        }
    }
}

/// Where a generic call's host comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UrlBase {
    /// Written out in the workflow (`https://api.partner.example/…`): a rendered URL must keep it.
    Written { host: String },
    /// The allow-listed deployment value `env.NAME` (`${env.APP_BASE_URL}/api/…`): an absolute
    /// `http(s)` URL without query; `url` is the rest, appended to it, and the rendered URL must
    /// keep that value's host.
    Env { name: String },
}

#[derive(Clone, Debug)]
pub enum ExternalCall {
    Http(HttpCall),
    GooglePlaces(PlacesCall),
}

/// A generic HTTP request; every string is a template over `input`, `steps` and `env`.
#[derive(Clone, Debug)]
pub struct HttpCall {
    pub method: HttpMethod,
    /// The whole URL, or with an env base the part after it.
    pub url: Template,
    /// Where the host comes from.
    pub base: UrlBase,
    pub query: Vec<(String, Template)>,
    pub headers: Vec<(String, Template)>,
    pub body: Option<ValueTemplate>,
}

/// Google Places Text Search (New).
#[derive(Clone, Debug)]
pub struct PlacesCall {
    pub text_query: Template,
    pub field_mask: String,
    pub max_results: Option<u32>,
    pub language_code: Option<String>,
    pub location_bias: Option<LocationBias>,
}

/// Default radius of a `location_bias` circle, in metres.
pub const DEFAULT_BIAS_RADIUS_M: f64 = 10_000.0;

/// A circle Google Places prefers results in; the centre is rendered at run time.
#[derive(Clone, Debug)]
pub struct LocationBias {
    pub latitude: ValueTemplate,
    pub longitude: ValueTemplate,
    pub radius_m: f64,
}

impl LocationBias {
    /// The centre for `scope`, when both coordinates render to numbers (or numeric text) in
    /// range; `None` sends no bias.
    pub fn centre(&self, scope: &Value) -> Option<(f64, f64)> {
        let number = |t: &ValueTemplate| -> Option<f64> {
            match t.render(scope).ok()?? {
                Value::Number(n) => n.as_f64(),
                Value::String(s) => s.trim().parse().ok(),
                _ => None,
            }
        };
        let (lat, lng) = (number(&self.latitude)?, number(&self.longitude)?);
        ((-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lng)).then_some((lat, lng))
    }
}

impl Checker<'_> {
    pub(super) fn external(
        &mut self,
        s: &RawExternalApiStep,
        path: &str,
        visible: &HashSet<String>,
    ) -> Option<ExternalApiStep> {
        let before = self.problems.len();
        let mut sources: Vec<(String, String)> = Vec::new();
        let call = match s.service.as_deref() {
            Some(GOOGLE_PLACES_SERVICE) => self.places(s, path, &mut sources),
            Some(other) => {
                self.problem(
                    format!("{path}.service"),
                    format!("unknown service `{other}` (known: {GOOGLE_PLACES_SERVICE}; leave it out for a plain HTTP call)"),
                );
                None
            }
            None => self.http(s, path, &mut sources),
        };
        let default_ttl = match s.service.as_deref() {
            Some(GOOGLE_PLACES_SERVICE) => DEFAULT_PLACES_CACHE_TTL_SECS,
            _ => 0,
        };
        let ttl = s.cache_ttl_secs.unwrap_or(default_ttl);
        if ttl > MAX_CACHE_TTL_SECS {
            self.problem(
                format!("{path}.cache_ttl_secs"),
                format!("must be at most {MAX_CACHE_TTL_SECS}"),
            );
        }
        let mut env = Vec::new();
        for (field, source) in &sources {
            for captures in ENV_REFERENCE.captures_iter(source) {
                let Some(name) = captures.get(1).map(|m| m.as_str()) else {
                    continue;
                };
                if !self.env_allowlist.iter().any(|n| n == name) {
                    self.problem(
                        field,
                        format!("`env.{name}` is not allow-listed (WORKFLOW_ENV_ALLOWLIST)"),
                    );
                } else if !env.iter().any(|n| n == name) {
                    env.push(name.to_owned());
                }
            }
            self.step_references(vec![source.clone()], field, visible);
        }
        if self.problems.len() > before {
            return None;
        }
        Some(ExternalApiStep {
            call: call?,
            cache_ttl: Duration::from_secs(ttl),
            env,
        })
    }

    fn template(&mut self, source: &str, field: &str) -> Option<Template> {
        Template::compile(source)
            .map_err(|e| self.problem(field, crate::telemetry::Chain(&e).to_string()))
            .ok()
    }

    fn places(
        &mut self,
        s: &RawExternalApiStep,
        path: &str,
        sources: &mut Vec<(String, String)>,
    ) -> Option<ExternalCall> {
        for (field, given) in [
            ("method", s.method.is_some()),
            ("url", s.url.is_some()),
            ("headers", !s.headers.is_empty()),
            ("body", s.body.is_some()),
        ] {
            if given {
                self.problem(
                    format!("{path}.{field}"),
                    format!(
                        "not used by service `{GOOGLE_PLACES_SERVICE}` (it builds its own request)"
                    ),
                );
            }
        }
        let field = format!("{path}.query");
        let text_query = match &s.query {
            Some(Value::String(q)) if !q.trim().is_empty() => {
                sources.push((field.clone(), q.clone()));
                self.template(q, &field)
            }
            Some(_) => {
                self.problem(&field, "must be the text query, a non-empty string");
                None
            }
            None => {
                self.problem(
                    &field,
                    "is required: the text to search, e.g. \"${input.city} hospitals\"",
                );
                None
            }
        };
        if let Some(n) = s.max_results {
            if !(1..=20).contains(&n) {
                self.problem(format!("{path}.max_results"), "must be between 1 and 20");
            }
        }
        if let Some(mask) = &s.field_mask {
            if mask.trim().is_empty() || is_template(mask) {
                self.problem(
                    format!("{path}.field_mask"),
                    "must be a literal, comma-separated list of fields",
                );
            }
        }
        let location_bias = s.location_bias.as_ref().and_then(|bias| {
            let field = format!("{path}.location_bias");
            let radius_m = bias.radius_m.unwrap_or(DEFAULT_BIAS_RADIUS_M);
            if !(1.0..=50_000.0).contains(&radius_m) {
                self.problem(format!("{field}.radius_m"), "must be between 1 and 50000");
            }
            let mut coordinate = |value: &Value, name: &str| {
                let field = format!("{field}.{name}");
                let compiled = self.value(value, &field)?;
                let mut inner = Vec::new();
                compiled.sources(&mut inner);
                sources.extend(inner.into_iter().map(|s| (field.clone(), s)));
                Some(compiled)
            };
            let latitude = coordinate(&bias.latitude, "latitude");
            let longitude = coordinate(&bias.longitude, "longitude");
            Some(LocationBias {
                latitude: latitude?,
                longitude: longitude?,
                radius_m,
            })
        });
        Some(ExternalCall::GooglePlaces(PlacesCall {
            text_query: text_query?,
            field_mask: s
                .field_mask
                .clone()
                .unwrap_or_else(|| DEFAULT_PLACES_FIELD_MASK.to_owned()),
            max_results: s.max_results,
            language_code: s.language_code.clone(),
            location_bias,
        }))
    }

    fn http(
        &mut self,
        s: &RawExternalApiStep,
        path: &str,
        sources: &mut Vec<(String, String)>,
    ) -> Option<ExternalCall> {
        for (field, given) in [
            ("field_mask", s.field_mask.is_some()),
            ("max_results", s.max_results.is_some()),
            ("language_code", s.language_code.is_some()),
            ("location_bias", s.location_bias.is_some()),
        ] {
            if given {
                self.problem(
                    format!("{path}.{field}"),
                    format!("only for `service: {GOOGLE_PLACES_SERVICE}`"),
                );
            }
        }
        let method = s.method.unwrap_or_default();
        let url_field = format!("{path}.url");
        let (url, base) = match &s.url {
            Some(url) => {
                sources.push((url_field.clone(), url.clone()));
                self.url(url, &url_field)
            }
            None => {
                self.problem(&url_field, "is required (or give a `service`)");
                (None, None)
            }
        };
        let mut query = Vec::new();
        match &s.query {
            None => {}
            Some(Value::Object(map)) => {
                for (name, value) in map {
                    let field = format!("{path}.query.{name}");
                    let text = match value {
                        Value::String(text) => text.clone(),
                        Value::Number(n) => n.to_string(),
                        Value::Bool(b) => b.to_string(),
                        _ => {
                            self.problem(&field, "must be a string, number or boolean");
                            continue;
                        }
                    };
                    self.inline_key(&text, &field);
                    sources.push((field.clone(), text.clone()));
                    if let Some(t) = self.template(&text, &field) {
                        query.push((name.clone(), t));
                    }
                }
            }
            Some(_) => self.problem(
                format!("{path}.query"),
                "must be an object of parameter → value template",
            ),
        }
        let mut headers = Vec::new();
        for (name, value) in &s.headers {
            let field = format!("{path}.headers.{name}");
            if !HEADER_NAME.is_match(name) {
                self.problem(&field, format!("`{name}` is not a valid header name"));
                continue;
            }
            let uses_env = ENV_REFERENCE.is_match(value);
            if SECRET_HEADER.is_match(name) && !uses_env {
                self.problem(
                    &field,
                    "carries a credential: write it as ${env.NAME} (allow-listed), never inline",
                );
            } else {
                self.inline_key(value, &field);
            }
            sources.push((field.clone(), value.clone()));
            if let Some(t) = self.template(value, &field) {
                headers.push((name.clone(), t));
            }
        }
        let body = s.body.as_ref().and_then(|body| {
            let field = format!("{path}.body");
            if method == HttpMethod::Get {
                self.problem(&field, "a GET request has no body (use `method`)");
                return None;
            }
            let compiled = self.value(body, &field)?;
            let mut inner = Vec::new();
            compiled.sources(&mut inner);
            sources.extend(inner.into_iter().map(|s| (field.clone(), s)));
            Some(compiled)
        });
        Some(ExternalCall::Http(HttpCall {
            method,
            url: url?,
            base: base?,
            query,
            headers,
            body,
        }))
    }

    /// The URL template and where its host comes from: written out (`https://host[:port]`
    /// before any template), or an allow-listed `${env.NAME}` base followed by `/`, `?` or
    /// nothing.
    fn url(&mut self, url: &str, field: &str) -> (Option<Template>, Option<UrlBase>) {
        if let Some(captures) = ENV_BASE.captures(url) {
            let (Some(whole), Some(name)) = (captures.get(0), captures.get(1)) else {
                return (None, None);
            };
            let rest = &url[whole.end()..];
            if !(rest.is_empty() || rest.starts_with('/') || rest.starts_with('?')) {
                self.problem(
                    field,
                    "after a `${env.NAME}` base URL comes `/`, `?` or nothing (the host is the env value's)",
                );
                return (None, None);
            }
            let base = UrlBase::Env {
                name: name.as_str().to_owned(),
            };
            return (self.template(rest, field), Some(base));
        }
        let fixed = fixed_prefix(url);
        // With a template after it, the host must be closed by `/`, `?` or `#`.
        let closed = |c: &regex::Captures<'_>| {
            fixed.len() == url.len() || c.get(3).is_some_and(|m| !m.as_str().is_empty())
        };
        match URL_PREFIX.captures(fixed).filter(closed) {
            Some(captures) => {
                let host = captures
                    .get(1)
                    .map(|m| m.as_str().to_ascii_lowercase())
                    .unwrap_or_default();
                (self.template(url, field), Some(UrlBase::Written { host }))
            }
            None => {
                self.problem(
                    field,
                    "must start with http:// or https:// and a host written out, or with an allow-listed ${env.NAME} base URL (templates may only follow the host)",
                );
                (None, None)
            }
        }
    }

    /// A literal that looks like an API key is refused: keys live in the environment.
    fn inline_key(&mut self, value: &str, field: &str) {
        let literal = ENV_REFERENCE.replace_all(value, "");
        if INLINE_KEY.is_match(literal.trim()) {
            self.problem(
                field,
                "looks like an inline credential: write it as ${env.NAME} (allow-listed), never inline",
            );
        }
    }
}

/// The part of a template before any template syntax.
fn fixed_prefix(source: &str) -> &str {
    ["${", "{{", "{%"]
        .iter()
        .filter_map(|marker| source.find(marker))
        .min()
        .map_or(source, |at| &source[..at])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_prefix_stops_at_the_first_template() {
        assert_eq!(
            fixed_prefix("https://api.x.com/v1/${input.id}"),
            "https://api.x.com/v1/"
        );
        assert_eq!(fixed_prefix("https://{{ input.host }}/"), "https://");
        assert!(URL_PREFIX.is_match("https://api.x.com/v1/"));
        assert!(URL_PREFIX.is_match("http://127.0.0.1:8080"));
        assert!(!URL_PREFIX.is_match("https://"));
        assert!(!URL_PREFIX.is_match("https://api.x.com${input.tld}"));
        assert!(!URL_PREFIX.is_match("ftp://x.com/"));
    }

    #[test]
    fn inline_keys_are_recognised() {
        for key in [
            "Bearer abcdef123456789",
            "sk-proj-abcdefghijklmnop",
            "AIzaSyA1234567890abcdefghijklmn",
        ] {
            assert!(INLINE_KEY.is_match(key), "{key}");
        }
        for fine in ["application/json", "en-US", "Bearer ", "llmflow/1.0"] {
            assert!(!INLINE_KEY.is_match(fine), "{fine}");
        }
    }
}
