//! A loopback HTTP server that counts connections, and what the delivery code does with a
//! webhook client: check the URL, then send.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use llmflow_netguard::{check_url, AddressPolicy, Url};
use llmflow_webhook::classify::{classify, ErrorClass};
use llmflow_webhook::client::build_client;
use std::future::Future;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use tokio::net::{TcpListener, TcpStream};

/// A loopback HTTP server that counts connections and answers each with `response`.
pub struct Server {
    pub port: u16,
    accepted: Arc<AtomicUsize>,
}

impl Server {
    pub async fn start(response: &'static str) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    if response.is_empty() {
                        // Hang: never answer (for timeout tests).
                        return std::future::pending().await;
                    }
                    let _ = sock.write_all(response.as_bytes()).await;
                    let _ = sock.shutdown().await;
                });
            }
        });
        Server { port, accepted }
    }

    pub fn connections(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

/// A loopback server that hands its first connection to `serve`; returns its port.
pub async fn serve_once<F, Fut>(serve: F) -> u16
where
    F: FnOnce(TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (sock, _) = listener.accept().await.unwrap();
        serve(sock).await;
    });
    port
}

pub const OK: &str = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok";
pub const REDIRECT: &str = "HTTP/1.1 302 Found\r\nlocation: http://10.0.0.1/\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";

/// What the delivery code does: check the URL, then send; errors reduced to their class.
pub async fn attempt(
    client: &reqwest::Client,
    policy: &AddressPolicy,
    url: &str,
) -> Result<reqwest::Response, ErrorClass> {
    let url = Url::parse(url).unwrap();
    check_url(policy, &url).map_err(|_| ErrorClass::Blocked)?;
    client.get(url).send().await.map_err(|e| classify(&e))
}

pub fn client(policy: &AddressPolicy) -> reqwest::Client {
    build_client(
        policy.clone(),
        Duration::from_secs(2),
        Duration::from_secs(5),
    )
    .unwrap()
}
