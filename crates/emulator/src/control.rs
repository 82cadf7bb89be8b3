//! The `/_emulator/*` control endpoints (the HTTP equivalent of the [`crate::Emulator`]
//! methods, for the standalone binary).

use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::script::ScriptStep;
use crate::state::{RuntimeConfig, Shared};

/// The JSON view of the runtime configuration (`GET`/`POST /_emulator/config`).
#[derive(Debug, Serialize)]
struct ConfigView {
    latency_ms: u64,
    stream_chunk_ms: u64,
    error_rate: f64,
}

impl From<RuntimeConfig> for ConfigView {
    fn from(c: RuntimeConfig) -> Self {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        ConfigView {
            latency_ms: ms(c.latency),
            stream_chunk_ms: ms(c.stream_chunk_delay),
            error_rate: c.error_rate,
        }
    }
}

/// A partial configuration update: absent fields keep their value.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigPatch {
    latency_ms: Option<u64>,
    stream_chunk_ms: Option<u64>,
    error_rate: Option<f64>,
}

fn bad_request(message: impl std::fmt::Display) -> HttpResponse {
    HttpResponse::BadRequest().json(json!({"error": message.to_string()}))
}

/// `GET /_emulator/stats`.
async fn stats(shared: web::Data<Arc<Shared>>) -> HttpResponse {
    HttpResponse::Ok().json(shared.stats())
}

/// `POST /_emulator/script`: appends a JSON array of steps (or a single step).
async fn push_script(body: web::Bytes, shared: web::Data<Arc<Shared>>) -> HttpResponse {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        Many(Vec<ScriptStep>),
        One(ScriptStep),
    }
    match serde_json::from_slice::<OneOrMany>(&body) {
        Ok(OneOrMany::Many(steps)) => shared.push_script(steps),
        Ok(OneOrMany::One(step)) => shared.push_script([step]),
        Err(e) => return bad_request(format_args!("invalid script: {e}")),
    }
    HttpResponse::Ok().json(json!({"pending": shared.script_len()}))
}

/// `GET /_emulator/script`: how many steps are still queued.
async fn script_len(shared: web::Data<Arc<Shared>>) -> HttpResponse {
    HttpResponse::Ok().json(json!({"pending": shared.script_len()}))
}

/// `GET /_emulator/config`.
async fn get_config(shared: web::Data<Arc<Shared>>) -> HttpResponse {
    HttpResponse::Ok().json(ConfigView::from(shared.runtime_config()))
}

/// `POST /_emulator/config`: `{"latency_ms"?, "stream_chunk_ms"?, "error_rate"?}`.
async fn set_config(body: web::Bytes, shared: web::Data<Arc<Shared>>) -> HttpResponse {
    let patch: ConfigPatch = match serde_json::from_slice(&body) {
        Ok(patch) => patch,
        Err(e) => return bad_request(format_args!("invalid config: {e}")),
    };
    if let Some(rate) = patch.error_rate {
        if !(0.0..=1.0).contains(&rate) {
            return bad_request("error_rate must be between 0.0 and 1.0");
        }
    }
    let updated = shared.update_config(|c| {
        if let Some(ms) = patch.latency_ms {
            c.latency = Duration::from_millis(ms);
        }
        if let Some(ms) = patch.stream_chunk_ms {
            c.stream_chunk_delay = Duration::from_millis(ms);
        }
        if let Some(rate) = patch.error_rate {
            c.error_rate = rate;
        }
    });
    HttpResponse::Ok().json(ConfigView::from(updated))
}

/// `POST /_emulator/reset`: zeroes the counters and clears the script (configuration stays).
async fn reset(shared: web::Data<Arc<Shared>>) -> HttpResponse {
    shared.reset();
    HttpResponse::Ok().json(shared.stats())
}

/// `GET /_emulator/health`.
async fn health() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Registers the control routes under `/_emulator`.
pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/_emulator")
            .route("/stats", web::get().to(stats))
            .route("/script", web::post().to(push_script))
            .route("/script", web::get().to(script_len))
            .route("/config", web::get().to(get_config))
            .route("/config", web::post().to(set_config))
            .route("/reset", web::post().to(reset))
            .route("/health", web::get().to(health)),
    );
}
