//! External HTTP APIs called by `external_api` steps: one HTTP client, the response cache
//! (memory, then PostgreSQL) and the per-service rate limiter (Redis). A request arrives here
//! fully rendered; `steps/external_api.rs` builds it from the step. Without the shared
//! services (a local run) the cache is this process's memory alone and calls are not limited.

pub mod cache;
pub mod google_places;
pub mod ratelimit;

use std::time::Duration;

use reqwest::redirect::Policy;
use serde_json::{json, Value};

use apalis_redis::ConnectionManager;

use llmflow_core::config::Config;
use llmflow_core::db::PgPool;
use llmflow_core::workflow::{definition_hash, HttpMethod};

use crate::steps::StepFailure;
use crate::Engine;

/// Largest response body read.
pub const MAX_RESPONSE_BYTES: usize = 10 * 1024 * 1024;
/// Longest error body quoted in a step's error.
const ERROR_EXCERPT: usize = 300;

/// A rendered request, ready to send.
#[derive(Clone, Debug)]
pub struct PreparedRequest {
    /// `google_places`, or `http:<host>`: the rate-limit and cache service name.
    pub service: String,
    pub method: HttpMethod,
    pub url: reqwest::Url,
    /// Headers that are part of the cache key.
    pub headers: Vec<(String, String)>,
    /// Headers carrying credentials: sent, but neither logged nor part of the cache key.
    pub secret_headers: Vec<(String, String)>,
    pub body: Option<Value>,
}

impl PreparedRequest {
    /// The cache key: SHA-256 of the request without its credentials.
    pub fn cache_key(&self) -> String {
        definition_hash(&json!({
            "service": self.service,
            "method": self.method.as_str(),
            "url": self.url.as_str(),
            "headers": self.headers,
            "body": self.body,
        }))
    }
}

/// Shared by every job of a worker process.
pub struct ExternalApis {
    client: reqwest::Client,
    pub memory: cache::MemoryCache,
    pub limiter: ratelimit::RateLimiter,
    /// The cache table and the rate limiter's budgets, shared with every worker.
    shared: Option<Shared>,
}

/// The services every worker shares.
struct Shared {
    pool: PgPool,
    redis: ConnectionManager,
}

impl ExternalApis {
    pub fn new(config: &Config) -> Result<ExternalApis, reqwest::Error> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(120))
            // The host written in the workflow is the host called: redirects are not followed.
            .redirect(Policy::none())
            .user_agent(concat!("llmflow/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(ExternalApis {
            client,
            memory: cache::MemoryCache::default(),
            limiter: ratelimit::RateLimiter::new(
                &config.redis_namespace,
                config.external_api_rate_limits.clone(),
            ),
            shared: None,
        })
    }

    /// With the cache table in PostgreSQL and the rate limits in Redis (a worker).
    pub fn shared(mut self, pool: PgPool, redis: ConnectionManager) -> ExternalApis {
        self.shared = Some(Shared { pool, redis });
        self
    }
}

/// Sends `request` (or answers it from the cache when `ttl` is not zero).
pub async fn call(
    state: &Engine,
    request: &PreparedRequest,
    ttl: Duration,
) -> Result<Value, StepFailure> {
    let shared = state.external.shared.as_ref();
    let key = (!ttl.is_zero()).then(|| request.cache_key());
    if let Some(key) = &key {
        if let Some(hit) = state.external.memory.get(key) {
            tracing::debug!(service = %request.service, "external call answered from memory");
            return Ok(hit);
        }
        let found = match shared {
            Some(shared) => stored(shared, key).await,
            None => Ok(None),
        };
        match found {
            Ok(Some((value, left))) => {
                state.external.memory.insert(key, value.clone(), left);
                tracing::debug!(service = %request.service, "external call answered from the cache table");
                return Ok(value);
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "external cache lookup failed; calling"),
        }
    }
    if let Some(shared) = shared {
        let mut redis = shared.redis.clone();
        state
            .external
            .limiter
            .acquire(&mut redis, &request.service)
            .await;
    }
    let value = send(&state.external.client, request).await?;
    if let Some(key) = &key {
        state.external.memory.insert(key, value.clone(), ttl);
        let Some(shared) = shared else {
            return Ok(value);
        };
        let stored = async {
            let mut conn = shared
                .pool
                .get()
                .await
                .map_err(llmflow_core::db::DbError::from)?;
            cache::store(&mut conn, key, &request.service, &value, ttl).await
        };
        if let Err(e) = stored.await {
            tracing::warn!(error = %e, "storing an external response in the cache failed");
        }
    }
    Ok(value)
}

async fn stored(
    shared: &Shared,
    key: &str,
) -> Result<Option<(Value, Duration)>, llmflow_core::db::DbError> {
    let mut conn = shared.pool.get().await?;
    Ok(cache::lookup(&mut conn, key)
        .await?
        .map(|(value, expires)| {
            let left = (expires - chrono::Utc::now()).to_std().unwrap_or_default();
            (value, left)
        }))
}

/// One HTTP exchange. 2xx gives the JSON body (or `{status, content_type, text}` for a body
/// that is not JSON); anything else is an error of kind `http` naming the status.
async fn send(client: &reqwest::Client, request: &PreparedRequest) -> Result<Value, StepFailure> {
    let method = match request.method {
        HttpMethod::Get => reqwest::Method::GET,
        HttpMethod::Post => reqwest::Method::POST,
        HttpMethod::Put => reqwest::Method::PUT,
        HttpMethod::Patch => reqwest::Method::PATCH,
        HttpMethod::Delete => reqwest::Method::DELETE,
    };
    let mut builder = client.request(method, request.url.clone());
    for (name, value) in request.headers.iter().chain(&request.secret_headers) {
        builder = builder.header(name.as_str(), value.as_str());
    }
    if let Some(body) = &request.body {
        builder = builder.json(body);
    }
    let mut response = builder.send().await.map_err(|e| {
        // Never the URL in a message: its query may hold a credential.
        let e = e.without_url();
        let kind = if e.is_timeout() { "timeout" } else { "network" };
        StepFailure::new(kind, format!("{} call failed: {e}", request.service), true)
    })?;
    let status = response.status();
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                    return Err(StepFailure::new(
                        "http",
                        format!("response larger than {MAX_RESPONSE_BYTES} bytes"),
                        false,
                    ));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(e) => {
                return Err(StepFailure::new(
                    "network",
                    format!("reading the response failed: {}", e.without_url()),
                    true,
                ))
            }
        }
    }
    if !status.is_success() {
        let text = String::from_utf8_lossy(&body);
        let excerpt: String = text.chars().take(ERROR_EXCERPT).collect();
        let retryable = status.is_server_error() || matches!(status.as_u16(), 408 | 425 | 429);
        return Err(StepFailure::new(
            "http",
            format!("HTTP {}: {excerpt}", status.as_u16()),
            retryable,
        ));
    }
    Ok(response_value(status.as_u16(), &content_type, &body))
}

/// The step output of a successful response.
pub fn response_value(status: u16, content_type: &str, body: &[u8]) -> Value {
    if let Ok(value) = serde_json::from_slice::<Value>(body) {
        return value;
    }
    json!({
        "status": status,
        "content_type": content_type,
        "text": String::from_utf8_lossy(body),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_bodies_are_values_and_text_is_wrapped() {
        assert_eq!(
            response_value(200, "application/json", br#"{"a":1}"#),
            json!({"a": 1})
        );
        assert_eq!(
            response_value(200, "text/plain", b"ok"),
            json!({"status": 200, "content_type": "text/plain", "text": "ok"})
        );
        assert_eq!(
            response_value(204, "", b""),
            json!({"status": 204, "content_type": "", "text": ""})
        );
    }

    #[test]
    fn cache_keys_ignore_credentials() {
        let request = |secret: &str| PreparedRequest {
            service: "google_places".into(),
            method: HttpMethod::Post,
            url: reqwest::Url::parse("http://127.0.0.1:1/v1/places:searchText").expect("url"),
            headers: vec![("X-Goog-FieldMask".into(), "places.id".into())],
            secret_headers: vec![("X-Goog-Api-Key".into(), secret.into())],
            body: Some(json!({"textQuery": "Lyon hospitals"})),
        };
        assert_eq!(request("a").cache_key(), request("b").cache_key());
        let mut other = request("a");
        other.body = Some(json!({"textQuery": "Paris hospitals"}));
        assert_ne!(other.cache_key(), request("a").cache_key());
    }
}
