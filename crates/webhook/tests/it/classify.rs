//! Failed requests reduced to their class (`dns`, `connect`, `tls`, `timeout`, `blocked`,
//! `http`, `body`) against real sockets on loopback, and the descriptions recorded with them.

use std::time::Duration;

use llmflow_netguard::AddressPolicy;
use llmflow_webhook::classify::{classify, describe, ErrorClass};
use llmflow_webhook::client::build_client;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::support::http::{attempt, client, serve_once, Server, OK};

#[test]
fn error_class_names() {
    let all = [
        (ErrorClass::Dns, "dns"),
        (ErrorClass::Connect, "connect"),
        (ErrorClass::Tls, "tls"),
        (ErrorClass::Timeout, "timeout"),
        (ErrorClass::Blocked, "blocked"),
        (ErrorClass::Http, "http"),
        (ErrorClass::Body, "body"),
    ];
    for (class, name) in all {
        assert_eq!(class.as_str(), name);
        assert_eq!(class.to_string(), name);
        assert_eq!(serde_json::to_value(class).unwrap(), name);
        assert_eq!(
            serde_json::from_value::<ErrorClass>(serde_json::json!(name)).unwrap(),
            class
        );
    }
}

#[tokio::test]
async fn connection_refused_is_connect() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap().port()
    };
    let policy = AddressPolicy::parse_cidrs("127.0.0.0/8").unwrap();
    let url = format!("http://127.0.0.1:{port}/hook?token=s3cret");
    let err = client(&policy).get(&url).send().await.unwrap_err();
    assert_eq!(classify(&err), ErrorClass::Connect);
    let text = describe(&err);
    assert!(text.starts_with("error sending request"), "{text}");
    assert!(text.contains(&format!("http://127.0.0.1:{port}")), "{text}");
    assert!(!text.contains("s3cret"), "{text}");
}

#[tokio::test]
async fn slow_response_is_timeout() {
    let server = Server::start("").await;
    let policy = AddressPolicy::parse_cidrs("127.0.0.0/8").unwrap();
    let client = build_client(
        policy.clone(),
        Duration::from_secs(2),
        Duration::from_millis(300),
    )
    .unwrap();
    let res = attempt(
        &client,
        &policy,
        &format!("http://127.0.0.1:{}/", server.port),
    )
    .await;
    assert_eq!(res.err(), Some(ErrorClass::Timeout));
    assert_eq!(server.connections(), 1);
}

#[tokio::test]
async fn tls_to_plain_http_is_tls() {
    // A plain-HTTP server answers the TLS ClientHello with an HTTP response.
    let port = serve_once(|mut sock| async move {
        let mut chunk = [0u8; 512];
        let _ = sock.read(&mut chunk).await;
        let _ = sock.write_all(OK.as_bytes()).await;
    })
    .await;
    let policy = AddressPolicy::parse_cidrs("127.0.0.0/8").unwrap();
    let url = format!("https://127.0.0.1:{port}/");
    let err = client(&policy).get(&url).send().await.unwrap_err();
    assert_eq!(classify(&err), ErrorClass::Tls, "{}", describe(&err));
}

#[tokio::test]
async fn truncated_body_is_body() {
    let server =
        Server::start("HTTP/1.1 200 OK\r\ncontent-length: 100\r\nconnection: close\r\n\r\nshort")
            .await;
    let policy = AddressPolicy::parse_cidrs("127.0.0.0/8").unwrap();
    let res = attempt(
        &client(&policy),
        &policy,
        &format!("http://127.0.0.1:{}/", server.port),
    )
    .await
    .unwrap();
    let err = res.text().await.unwrap_err();
    assert_eq!(classify(&err), ErrorClass::Body, "{}", describe(&err));
}

#[tokio::test]
async fn garbage_response_is_http() {
    let server = Server::start("SSH-2.0-OpenSSH_9.6\r\n\r\n").await;
    let policy = AddressPolicy::parse_cidrs("127.0.0.0/8").unwrap();
    let res = attempt(
        &client(&policy),
        &policy,
        &format!("http://127.0.0.1:{}/", server.port),
    )
    .await;
    assert_eq!(res.err(), Some(ErrorClass::Http));
}
