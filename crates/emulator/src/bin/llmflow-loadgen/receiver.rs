//! The webhook consumer of a run: an HTTP server that checks each delivery's Standard Webhooks
//! signature with the official verifier and records when each job's webhook arrived.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde_json::Value;
use standardwebhooks::Webhook;

/// What arrived.
#[derive(Debug, Default)]
pub struct Received {
    /// First arrival of a correctly signed webhook, by job id.
    pub arrivals: HashMap<String, Instant>,
    /// Correctly signed webhooks for a job already seen (retries of a delivery we acknowledged).
    pub duplicates: u64,
    /// Deliveries whose signature did not verify, or without a job id.
    pub rejected: u64,
    /// Signed webhooks reporting a job that did not complete.
    pub not_completed: u64,
    /// The `error_message` of the first few jobs that did not complete.
    pub failure_samples: Vec<String>,
}

/// How many failure messages a run keeps.
const FAILURE_SAMPLES: usize = 5;

struct Shared {
    verifier: Option<Webhook>,
    received: Mutex<Received>,
}

/// A running receiver; stops when dropped.
pub struct Receiver {
    shared: Arc<Shared>,
    handle: ServerHandle,
    pub addr: SocketAddr,
}

impl Receiver {
    /// Listens on `addr`. Without a secret every delivery is counted as rejected.
    pub fn start(addr: SocketAddr, secret: Option<&str>) -> anyhow::Result<Receiver> {
        let verifier = secret
            .map(Webhook::new)
            .transpose()
            .map_err(|e| anyhow::anyhow!("webhook secret: {e:?}"))?;
        let shared = Arc::new(Shared {
            verifier,
            received: Mutex::new(Received::default()),
        });
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let data = web::Data::new(shared.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::PayloadConfig::new(8 * 1024 * 1024))
                .default_service(web::post().to(receive))
        })
        .workers(1)
        .backlog(4096)
        .max_connections(100_000)
        .disable_signals()
        .shutdown_timeout(1)
        .listen(listener)?
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Ok(Receiver {
            shared,
            handle,
            addr,
        })
    }

    /// Webhooks received so far (first arrivals).
    pub fn count(&self) -> usize {
        self.shared
            .received
            .lock()
            .map(|r| r.arrivals.len())
            .unwrap_or(0)
    }

    /// Stops the server and hands over what arrived.
    pub async fn finish(self) -> Received {
        self.handle.stop(false).await;
        let mut received = self
            .shared
            .received
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        std::mem::take(&mut *received)
    }
}

async fn receive(
    req: HttpRequest,
    body: web::Bytes,
    shared: web::Data<Arc<Shared>>,
) -> HttpResponse {
    let now = Instant::now();
    let verified = shared.verifier.as_ref().is_some_and(|verifier| {
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
        verifier.verify(&body, &headers).is_ok()
    });
    let payload: Option<Value> = serde_json::from_slice(&body).ok();
    let job_id = payload
        .as_ref()
        .and_then(|p| p["job_id"].as_str())
        .map(str::to_owned);
    let completed = payload
        .as_ref()
        .is_some_and(|p| p["status"].as_str() == Some("completed"));
    let failure = payload
        .as_ref()
        .map(|p| format!("{}: {}", p["status"], p["error_message"]))
        .unwrap_or_default();
    let Ok(mut received) = shared.received.lock() else {
        return HttpResponse::InternalServerError().finish();
    };
    match (verified, job_id) {
        (true, Some(job_id)) => {
            let fresh = !received.arrivals.contains_key(&job_id);
            if fresh {
                received.arrivals.insert(job_id, now);
            }
            match (fresh, completed) {
                (false, _) => received.duplicates += 1,
                (true, false) => {
                    received.not_completed += 1;
                    if received.failure_samples.len() < FAILURE_SAMPLES {
                        received.failure_samples.push(failure);
                    }
                }
                (true, true) => {}
            }
            HttpResponse::NoContent().finish()
        }
        _ => {
            received.rejected += 1;
            HttpResponse::Unauthorized().finish()
        }
    }
}
