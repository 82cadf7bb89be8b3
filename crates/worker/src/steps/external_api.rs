//! `external_api` steps: render the request from the scope (with the allow-listed `env` values
//! the step names, and nothing else of the environment), then call it through the cache and
//! the rate limiter (`crate::external`).

use secrecy::ExposeSecret;
use serde_json::{Map, Value};

use llmflow_core::template::Template;
use llmflow_core::workflow::{ExternalApiStep, ExternalCall, HttpCall, UrlBase};

use super::{StepFailure, StepOutput};
use crate::external::{self, google_places, PreparedRequest};
use crate::Engine;
use llmflow_core::telemetry::Chain;

pub async fn execute(
    state: &Engine,
    step: &ExternalApiStep,
    scope: &Value,
) -> Result<StepOutput, StepFailure> {
    let view = with_env(state, step, scope)?;
    let render = |t: &Template, what: &str| {
        t.render(&view)
            .map_err(|e| StepFailure::new("template", format!("{what}: {}", Chain(&e)), false))
    };
    let (request, places) = match &step.call {
        ExternalCall::GooglePlaces(call) => {
            let text = render(&call.text_query, "query")?;
            let centre = call.location_bias.as_ref().and_then(|b| b.centre(&view));
            (
                google_places::request(&state.config, call, text, centre)?,
                true,
            )
        }
        ExternalCall::Http(call) => (http_request(call, &view)?, false),
    };
    let output = external::call(state, &request, step.cache_ttl).await?;
    let output = if places {
        google_places::normalise(output)
    } else {
        output
    };
    Ok(StepOutput {
        output,
        usage: Vec::new(),
    })
}

/// The scope plus `env` holding only the names this step uses.
fn with_env(state: &Engine, step: &ExternalApiStep, scope: &Value) -> Result<Value, StepFailure> {
    if step.env.is_empty() {
        return Ok(scope.clone());
    }
    let mut env = Map::new();
    for name in &step.env {
        let value = state.config.workflow_env.get(name).ok_or_else(|| {
            StepFailure::new(
                "config",
                format!("environment variable {name} is allow-listed but not set"),
                false,
            )
        })?;
        env.insert(
            name.clone(),
            Value::String(value.expose_secret().to_owned()),
        );
    }
    let mut view = scope.clone();
    if let Some(object) = view.as_object_mut() {
        object.insert("env".to_owned(), Value::Object(env));
    }
    Ok(view)
}

fn http_request(call: &HttpCall, view: &Value) -> Result<PreparedRequest, StepFailure> {
    let render = |t: &Template, what: &str| {
        t.render(view)
            .map_err(|e| StepFailure::new("template", format!("{what}: {}", Chain(&e)), false))
    };
    let (text, host) = match &call.base {
        UrlBase::Written { host } => (render(&call.url, "url")?, host.clone()),
        UrlBase::Env { name } => {
            let value = view
                .pointer(&format!("/env/{name}"))
                .and_then(Value::as_str)
                .unwrap_or_default();
            let (base, host) = env_base(name, value)?;
            (format!("{base}{}", render(&call.url, "url")?), host)
        }
    };
    let mut url = reqwest::Url::parse(&text)
        .map_err(|e| StepFailure::new("template", format!("url: not a URL: {e}"), false))?;
    // The host is fixed by the workflow (or the deployment); a value rendered into the URL
    // cannot move it.
    if url.host_str().map(str::to_ascii_lowercase).as_deref() != Some(host.as_str()) {
        return Err(StepFailure::new(
            "template",
            format!("url: the rendered URL leaves host {host}"),
            false,
        ));
    }
    let service = format!("http:{host}");
    if !call.query.is_empty() {
        let mut pairs = url.query_pairs_mut();
        for (name, template) in &call.query {
            pairs.append_pair(name, &render(template, &format!("query.{name}"))?);
        }
    }
    let mut headers = Vec::new();
    let mut secret_headers = Vec::new();
    for (name, template) in &call.headers {
        let value = render(template, &format!("headers.{name}"))?;
        if template.source().contains("env.") {
            secret_headers.push((name.clone(), value));
        } else {
            headers.push((name.clone(), value));
        }
    }
    let body = match &call.body {
        Some(body) => Some(
            body.render(view)
                .map_err(|e| StepFailure::new("template", format!("body: {e}"), false))?
                .unwrap_or(Value::Null),
        ),
        None => None,
    };
    Ok(PreparedRequest {
        service,
        method: call.method,
        url,
        headers,
        secret_headers,
        body,
    })
}

/// A deployment's base URL (`${env.NAME}`): an absolute `http(s)` URL with a host and without
/// query or fragment, given back without its trailing `/`, with its lowercased host.
fn env_base(name: &str, value: &str) -> Result<(String, String), StepFailure> {
    let invalid = |why: &str| {
        StepFailure::new(
            "config",
            format!("env.{name} must be an http(s) base URL ({why})"),
            false,
        )
    };
    let parsed = reqwest::Url::parse(value.trim()).map_err(|_| invalid("not a URL"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(invalid("not http or https"));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(invalid("it has a query or fragment"));
    }
    let host = parsed
        .host_str()
        .map(str::to_ascii_lowercase)
        .ok_or_else(|| invalid("no host"))?;
    Ok((value.trim().trim_end_matches('/').to_owned(), host))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn env_call(rest: &str) -> HttpCall {
        HttpCall {
            method: llmflow_core::workflow::HttpMethod::Get,
            url: Template::compile(rest).expect("template"),
            base: UrlBase::Env {
                name: "APP_BASE_URL".into(),
            },
            query: Vec::new(),
            headers: Vec::new(),
            body: None,
        }
    }

    #[test]
    fn env_base_urls_are_joined_and_keep_their_host() {
        let view = |base: &str| json!({"input": {"id": "a b"}, "env": {"APP_BASE_URL": base}});
        let call = env_call("/api/items/{{ input.id }}");
        let request = http_request(&call, &view("http://App.example:3000/")).expect("request");
        assert_eq!(
            request.url.as_str(),
            "http://app.example:3000/api/items/a%20b"
        );
        assert_eq!(request.service, "http:app.example");
        let nested = http_request(&call, &view("https://app.example/base")).expect("request");
        assert_eq!(
            nested.url.as_str(),
            "https://app.example/base/api/items/a%20b"
        );
        for bad in [
            "",
            "app.example",
            "ftp://app.example",
            "http://app.example/?q=1",
        ] {
            let error = http_request(&call, &view(bad)).expect_err(bad);
            assert_eq!(error.kind, "config", "{bad}");
        }
        // A rendered value cannot move the host.
        let sneaky = env_call("{{ input.id }}");
        let error = http_request(&sneaky, &json!({"input": {"id": "@evil.example/"}, "env": {"APP_BASE_URL": "http://app.example"}}))
            .expect_err("moves the host");
        assert_eq!(error.kind, "template");
    }
}
