//! How provider calls use connections: over HTTP/2 they share one per lane, at most
//! `llm_http2_streams` calls on each; over HTTP/1.1 each call in flight holds its own.

use futures::future::join_all;
use serde_json::json;

use llmflow_core::llm::{CallCtx, CompletionRequest, Message, OutputFormat, Role};

use super::{Bench, Http, Kind};

/// Sends `n` calls at once through the OpenAI provider; each must succeed.
async fn calls_at_once(bench: &Bench, n: usize) {
    let provider = bench.provider(Kind::OpenAi);
    let request = CompletionRequest {
        model: Kind::OpenAi.model().to_owned(),
        messages: vec![Message {
            role: Role::User,
            content: "EMULATOR_REPLY: ok".into(),
        }],
        temperature: None,
        max_tokens: None,
        format: OutputFormat::Text,
    };
    let cx = CallCtx::default();
    let answers = join_all((0..n).map(|_| provider.complete(&request, &cx))).await;
    for answer in answers {
        assert_eq!(answer.expect("completion").content, "ok");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_calls_share_connections_up_to_the_stream_limit() {
    let bench = Bench::start_with(Http::Two, json!({"llm_http2_streams": 2})).await;
    // Answers come only once all six are in flight, so the overlap is proven, not timed.
    bench.emulator.set_rendezvous(6);
    calls_at_once(&bench, 6).await;
    let stats = bench.emulator.stats();
    assert_eq!((stats.calls, stats.http2_calls), (6, 6));
    assert_eq!(stats.max_in_flight, 6, "all six were in flight at once");
    assert_eq!(stats.connections, 3, "two calls per connection");

    calls_at_once(&bench, 6).await;
    let stats = bench.emulator.stats();
    assert_eq!(stats.http2_calls, 12);
    assert_eq!(stats.connections, 3, "the lanes' connections were reused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_calls_each_hold_a_connection() {
    let bench = Bench::start(Http::One).await;
    bench.emulator.set_rendezvous(6);
    calls_at_once(&bench, 6).await;
    let stats = bench.emulator.stats();
    assert_eq!((stats.calls, stats.http2_calls), (6, 0));
    assert_eq!(stats.max_in_flight, 6);
    assert_eq!(stats.connections, 6, "one connection per call in flight");
}
