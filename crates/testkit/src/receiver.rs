//! Receiving HTTP servers that play the app: a scripted webhook consumer that records every
//! request, the simpler recording receiver built on it, and a listener that only counts
//! connections.

use std::collections::VecDeque;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::wait_until;

/// A listener on a free port of 127.0.0.1, for a server started in the test, and its address.
pub fn local_listener() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a local port");
    let addr = listener.local_addr().expect("local address");
    (listener, addr)
}

/// What the receiver answers to one request.
#[derive(Clone, Debug)]
pub enum Reply {
    Status(u16),
    Full {
        status: u16,
        headers: Vec<(&'static str, String)>,
        body: String,
    },
    /// Never answers (holds the request open).
    Stall,
}

#[derive(Clone, Debug)]
pub struct Hit {
    pub at: DateTime<Utc>,
    /// The request's method and path with query (`GET /api/items?x=1`).
    pub request_line: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Hit {
    pub fn header(&self, name: &str) -> &str {
        find_header(&self.headers, name).unwrap_or_else(|| panic!("{name} header missing"))
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
}

fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Verifies one request with the official `standardwebhooks` crate and `secret` alone.
pub fn verifies(hit: &Hit, body: &[u8], secret: &str) -> bool {
    let mut headers = http::HeaderMap::new();
    for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        headers.insert(name, hit.header(name).parse().expect("header value"));
    }
    standardwebhooks::Webhook::new(secret)
        .expect("secret")
        .verify(body, &headers)
        .is_ok()
}

/// A webhook consumer that answers from a script (then 200) and records every request.
#[derive(Clone)]
pub struct Scripted {
    hits: Arc<Mutex<Vec<Hit>>>,
    script: Arc<Mutex<VecDeque<Reply>>>,
    pub url: String,
}

impl Scripted {
    pub async fn spawn(script: Vec<Reply>) -> Scripted {
        Self::spawn_at("/hooks", script)
    }

    /// Serves on a free local port; `url` names `path` on it (any path is answered).
    fn spawn_at(path: &str, script: Vec<Reply>) -> Scripted {
        let (listener, addr) = local_listener();
        let this = Scripted {
            hits: Arc::default(),
            script: Arc::new(Mutex::new(script.into())),
            url: format!("http://{addr}{path}"),
        };
        let state = this.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(web::Data::new(state.clone()))
                .default_service(web::to(answer))
        })
        .workers(1)
        .listen(listener)
        .expect("listen")
        .run();
        tokio::spawn(server);
        this
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.hits.lock().expect("lock").clone()
    }

    pub async fn wait_hits(&self, n: usize, deadline: Duration) -> Vec<Hit> {
        wait_until(&format!("{n} webhook requests"), deadline, || async {
            let hits = self.hits();
            (hits.len() >= n).then_some(hits)
        })
        .await
    }

    /// Adds replies to the end of the script.
    fn extend_script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.script.lock().expect("lock").extend(replies);
    }
}

async fn answer(req: HttpRequest, body: web::Bytes, state: web::Data<Scripted>) -> HttpResponse {
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    state.hits.lock().expect("lock").push(Hit {
        at: Utc::now(),
        request_line: format!("{} {}", req.method(), req.uri()),
        headers,
        body: body.to_vec(),
    });
    let reply = state.script.lock().expect("lock").pop_front();
    let (status, headers, body) = match reply {
        None => (200, Vec::new(), "ok".to_owned()),
        Some(Reply::Status(status)) => (status, Vec::new(), "no".to_owned()),
        Some(Reply::Full {
            status,
            headers,
            body,
        }) => (status, headers, body),
        Some(Reply::Stall) => {
            std::future::pending::<()>().await;
            unreachable!("pending never completes")
        }
    };
    let mut response =
        HttpResponse::build(actix_web::http::StatusCode::from_u16(status).expect("status"));
    for (name, value) in headers {
        response.insert_header((name, value));
    }
    response.body(body)
}

/// What the recording receiver got.
#[derive(Clone, Debug)]
pub struct Received {
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("webhook body is JSON")
    }
}

/// A webhook consumer at `/hooks/llmflow`: records every request and answers with the queued
/// statuses (then 200), always with the body `ok`.
#[derive(Clone)]
pub struct Receiver {
    server: Scripted,
    pub url: String,
}

impl Receiver {
    pub async fn spawn() -> Receiver {
        let server = Scripted::spawn_at("/hooks/llmflow", Vec::new());
        Receiver {
            url: server.url.clone(),
            server,
        }
    }

    pub fn requests(&self) -> Vec<Received> {
        self.server
            .hits()
            .into_iter()
            .map(|hit| Received {
                headers: hit.headers,
                body: hit.body,
            })
            .collect()
    }

    pub fn reply_with(&self, statuses: &[u16]) {
        self.server
            .extend_script(statuses.iter().map(|&status| Reply::Full {
                status,
                headers: Vec::new(),
                body: "ok".to_owned(),
            }));
    }
}

/// A TCP listener that counts connections and closes them.
pub struct Counter {
    pub addr: SocketAddr,
    connections: Arc<AtomicUsize>,
}

impl Counter {
    pub async fn spawn(ip: &str) -> Counter {
        let listener = tokio::net::TcpListener::bind((ip, 0))
            .await
            .expect("bind counter");
        let addr = listener.local_addr().expect("addr");
        let connections = Arc::new(AtomicUsize::new(0));
        let count = connections.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                drop(socket);
            }
        });
        Counter { addr, connections }
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}
