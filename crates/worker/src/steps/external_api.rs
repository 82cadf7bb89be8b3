//! `external_api` steps: render the request from the scope (with the allow-listed `env` values
//! the step names, and nothing else of the environment), then call it through the cache and
//! the rate limiter (`crate::external`).

use secrecy::ExposeSecret;
use serde_json::{Map, Value};

use llmflow_core::template::Template;
use llmflow_core::workflow::{ExternalApiStep, ExternalCall, HttpCall};

use super::{StepFailure, StepOutput};
use crate::external::{self, google_places, PreparedRequest};
use crate::WorkerState;

pub async fn execute(
    state: &WorkerState,
    step: &ExternalApiStep,
    scope: &Value,
) -> Result<StepOutput, StepFailure> {
    let view = with_env(state, step, scope)?;
    let render = |t: &Template, what: &str| {
        t.render(&view)
            .map_err(|e| StepFailure::new("template", format!("{what}: {e}"), false))
    };
    let (request, places) = match &step.call {
        ExternalCall::GooglePlaces(call) => {
            let text = render(&call.text_query, "query")?;
            (google_places::request(&state.config, call, text)?, true)
        }
        ExternalCall::Http(call) => (http_request(call, &view, &step.service())?, false),
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
fn with_env(
    state: &WorkerState,
    step: &ExternalApiStep,
    scope: &Value,
) -> Result<Value, StepFailure> {
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

fn http_request(
    call: &HttpCall,
    view: &Value,
    service: &str,
) -> Result<PreparedRequest, StepFailure> {
    let render = |t: &Template, what: &str| {
        t.render(view)
            .map_err(|e| StepFailure::new("template", format!("{what}: {e}"), false))
    };
    let text = render(&call.url, "url")?;
    let mut url = reqwest::Url::parse(&text)
        .map_err(|e| StepFailure::new("template", format!("url: not a URL: {e}"), false))?;
    // The host is fixed by the workflow; a value rendered into the URL cannot move it.
    if url.host_str().map(str::to_ascii_lowercase).as_deref() != Some(call.host.as_str()) {
        return Err(StepFailure::new(
            "template",
            format!("url: the rendered URL leaves host {}", call.host),
            false,
        ));
    }
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
        service: service.to_owned(),
        method: call.method,
        url,
        headers,
        secret_headers,
        body,
    })
}
