//! A graceful stop (what `llmflow-api` does on SIGTERM/SIGINT): the listener closes at once, and
//! a request already in flight still gets its answer.

use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::API_KEY;

/// Reads one HTTP/1.1 response head from `stream`.
async fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = stream.read(&mut byte).await.expect("read response");
        assert_eq!(
            n,
            1,
            "connection closed mid-response: {:?}",
            String::from_utf8_lossy(&head)
        );
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// Reads and discards a body of `Content-Length` bytes.
async fn skip_body(stream: &mut TcpStream, head: &str) {
    let length = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().to_owned())
        })
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).await.expect("read body");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_finishes_requests_in_flight_and_accepts_no_more() {
    let env = llmflow_testkit::TestEnv::start(json!({"shutdown_grace_secs": 20})).await;
    let state = llmflow_api::build_state(env.config.clone())
        .await
        .expect("api state");
    let (listener, addr) = llmflow_testkit::local_listener();
    let server = llmflow_api::run(state, listener).expect("api server");
    let handle = server.handle();
    let served = tokio::spawn(server);

    // A connection the server has surely accepted: one request answered on it already.
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let health = format!("GET /api/v1/health HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    stream.write_all(health.as_bytes()).await.expect("send");
    let head = read_head(&mut stream).await;
    skip_body(&mut stream, &head).await;

    // A submit in flight: its head read by the server, which answered `100 Continue` and now
    // waits for the body.
    let body =
        json!({"workflow_name": "bench_pipeline", "input_data": {"text": "in flight"}}).to_string();
    let request = format!(
        "POST /api/v1/workflow HTTP/1.1\r\nHost: {addr}\r\nX-API-Key: {API_KEY}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        body.len()
    );
    stream
        .write_all(request.as_bytes())
        .await
        .expect("send head");
    let interim = read_head(&mut stream).await;
    assert!(interim.starts_with("HTTP/1.1 100"), "{interim}");

    let stopping = tokio::spawn(handle.stop(true));
    llmflow_testkit::wait_until(
        "the listener to refuse new connections",
        Duration::from_secs(10),
        || async { TcpStream::connect(addr).await.is_err().then_some(()) },
    )
    .await;
    assert!(
        !stopping.is_finished(),
        "the stop waits for the request in flight"
    );

    stream
        .write_all(body.as_bytes())
        .await
        .expect("send the body");
    let head = read_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 202"), "{head}");
    drop(stream);
    tokio::time::timeout(Duration::from_secs(10), stopping)
        .await
        .expect("the stop ends once the request is answered")
        .expect("stop task");
    tokio::time::timeout(Duration::from_secs(10), served)
        .await
        .expect("the server returns")
        .expect("server task")
        .expect("server result");
}
