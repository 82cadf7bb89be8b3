//! The webhook client: internal destinations refused without a connection, allow-listed ones
//! reached, no redirects followed, its User-Agent sent.

use std::time::Duration;

use llmflow_netguard::AddressPolicy;
use llmflow_webhook::classify::ErrorClass;
use llmflow_webhook::client::{build_client, USER_AGENT};
use llmflow_webhook::resolver::PolicyResolver;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::http::{attempt, client, serve_once, Server, OK, REDIRECT};

#[tokio::test]
async fn internal_destinations_are_blocked_without_connecting() {
    let server = Server::start(OK).await;
    let port = server.port;
    let policy = AddressPolicy::default();
    let client = client(&policy);
    for url in [
        format!("http://127.0.0.1:{port}/"),
        format!("http://[::1]:{port}/"),
        format!("http://[::ffff:127.0.0.1]:{port}/"),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://10.0.0.1/".to_owned(),
        "http://100.64.0.1/".to_owned(),
        format!("http://2130706433:{port}/"),
        format!("http://0x7f.1:{port}/"),
        format!("http://localhost:{port}/"),
        format!("http://LOCALHOST.:{port}/"),
        format!("http://api.localhost:{port}/"),
    ] {
        let res = attempt(&client, &policy, &url).await;
        assert_eq!(res.err(), Some(ErrorClass::Blocked), "{url}");
    }
    assert_eq!(server.connections(), 0);
}

#[tokio::test]
async fn allow_listed_loopback_succeeds() {
    let server = Server::start(OK).await;
    let policy = AddressPolicy::parse_cidrs("127.0.0.0/8").unwrap();
    let client = client(&policy);
    for host in ["127.0.0.1", "localhost"] {
        let url = format!("http://{host}:{}/hook", server.port);
        let res = attempt(&client, &policy, &url).await.unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.text().await.unwrap(), "ok");
    }
    assert_eq!(server.connections(), 2);
}

#[tokio::test]
async fn user_agent_is_sent() {
    // A server that echoes the request head back as the body.
    let port = serve_once(|mut sock| async move {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 1024];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = sock.read(&mut chunk).await.unwrap();
            buf.extend_from_slice(&chunk[..n]);
        }
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            buf.len()
        );
        sock.write_all(head.as_bytes()).await.unwrap();
        sock.write_all(&buf).await.unwrap();
    })
    .await;
    let policy = AddressPolicy::parse_cidrs("127.0.0.1").unwrap();
    let res = attempt(
        &client(&policy),
        &policy,
        &format!("http://127.0.0.1:{port}/"),
    )
    .await
    .unwrap();
    let echoed = res.text().await.unwrap().to_ascii_lowercase();
    assert!(
        echoed.contains(&format!("user-agent: {USER_AGENT}")),
        "{echoed}"
    );
    assert!(USER_AGENT.starts_with("llmflow-webhook/"));
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let server = Server::start(REDIRECT).await;
    let policy = AddressPolicy::parse_cidrs("127.0.0.0/8").unwrap();
    let client = client(&policy);
    let res = attempt(
        &client,
        &policy,
        &format!("http://127.0.0.1:{}/", server.port),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 302);
    assert_eq!(res.headers()["location"], "http://10.0.0.1/");
    assert_eq!(server.connections(), 1);
}

#[tokio::test]
async fn literal_ips_bypass_the_resolver_so_check_url_is_required() {
    // Documents why `check_url` exists: reqwest does not consult the resolver for IP
    // literals. (Loopback only; no other address is ever contacted.)
    let server = Server::start(OK).await;
    let client = client(&AddressPolicy::default());
    let res = client
        .get(format!("http://127.0.0.1:{}/", server.port))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(server.connections(), 1);
}

#[test]
fn client_builds_outside_a_runtime() {
    let client = build_client(
        AddressPolicy::default(),
        Duration::from_secs(5),
        Duration::from_secs(15),
    );
    assert!(client.is_ok());
    let resolver = PolicyResolver::new(AddressPolicy::default());
    assert!(format!("{resolver:?}").contains("PolicyResolver"));
}
