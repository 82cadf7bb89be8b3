//! `receive`: a webhook receiver in a process of its own, for fault runs (`scripts/chaos.sh`)
//! that stop and start it. Every delivery is checked with the official Standard Webhooks
//! verifier and appended as one CSV line, `job_id,webhook_id,received_unix_ms,verified,status`,
//! written with a single `write` on a file opened for appending, so that a kill loses at most
//! the line being written and a restarted receiver appends to the same file. A verified delivery
//! is answered 204, anything else 401 (the sender then retries it).

use std::fs::File;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use anyhow::Context;
use serde_json::Value;
use standardwebhooks::Webhook;

use crate::args::ReceiveArgs;

struct Shared {
    verifier: Webhook,
    out: Mutex<File>,
}

/// Serves until SIGINT/SIGTERM.
pub async fn serve(args: &ReceiveArgs) -> anyhow::Result<()> {
    let verifier =
        Webhook::new(&args.webhook_secret).map_err(|e| anyhow::anyhow!("webhook secret: {e:?}"))?;
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&args.out)
        .with_context(|| format!("opening {}", args.out.display()))?;
    let data = web::Data::new(Arc::new(Shared {
        verifier,
        out: Mutex::new(out),
    }));
    HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(web::PayloadConfig::new(8 * 1024 * 1024))
            .default_service(web::post().to(receive))
    })
    .workers(1)
    .backlog(4096)
    .shutdown_timeout(1)
    .bind(args.listen)
    .with_context(|| format!("listening on {}", args.listen))?
    .run()
    .await?;
    Ok(())
}

/// One CSV line (no field of llmflow's ids or statuses holds a comma; others are dropped).
fn line(job_id: &str, webhook_id: &str, at: SystemTime, verified: bool, status: &str) -> String {
    let clean = |s: &str| s.replace([',', '\n', '\r'], "");
    let ms = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
    format!(
        "{},{},{ms},{verified},{}\n",
        clean(job_id),
        clean(webhook_id),
        clean(status)
    )
}

async fn receive(
    req: HttpRequest,
    body: web::Bytes,
    shared: web::Data<Arc<Shared>>,
) -> HttpResponse {
    let at = SystemTime::now();
    let mut headers = http::HeaderMap::new();
    for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        if let Some(value) = req
            .headers()
            .get(name)
            .and_then(|v| http::HeaderValue::from_bytes(v.as_bytes()).ok())
        {
            headers.insert(name, value);
        }
    }
    let verified = shared.verifier.verify(&body, &headers).is_ok();
    let webhook_id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let payload: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let job_id = payload["job_id"].as_str().unwrap_or("");
    let status = payload["status"].as_str().unwrap_or("");
    let text = line(job_id, webhook_id, at, verified, status);
    let written = match shared.out.lock() {
        Ok(mut file) => file.write_all(text.as_bytes()).is_ok(),
        Err(_) => false,
    };
    match (written, verified) {
        (true, true) => HttpResponse::NoContent().finish(),
        (true, false) => HttpResponse::Unauthorized().finish(),
        // Not recorded: the sender tries again.
        (false, _) => HttpResponse::InternalServerError().finish(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_one_csv_record_each() {
        let at = UNIX_EPOCH + std::time::Duration::from_millis(1_700_000_000_123);
        assert_eq!(
            line("j,1", "msg_2\n", at, true, "completed"),
            "j1,msg_2,1700000000123,true,completed\n"
        );
    }
}
