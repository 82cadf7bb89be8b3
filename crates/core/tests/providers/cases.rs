//! The cases every provider must pass, each taking the provider `Kind`.

use std::str::FromStr;
use std::time::{Duration, Instant};

use rust_decimal::Decimal;
use serde_json::json;
use tokio::sync::mpsc;

use llmflow_core::llm::chain::{self, CallOptions, Target};
use llmflow_core::llm::retry::RetryPolicy;
use llmflow_core::llm::{CallCtx, CompletionRequest, Message, OutputFormat, ProviderError, Role};
use llmflow_core::pricing::PriceTable;
use llmflow_emulator::{count_tokens, openrouter_cost, ScriptStep};

use super::{Bench, Http, Kind};

const REPLY: &str = "alpha beta gamma delta epsilon zeta eta theta iota kappa";

fn request(kind: Kind, text: &str) -> CompletionRequest {
    CompletionRequest {
        model: kind.model().to_owned(),
        messages: vec![
            Message {
                role: Role::System,
                content: "You are terse.".into(),
            },
            Message {
                role: Role::User,
                content: text.to_owned(),
            },
        ],
        temperature: Some(0.2),
        max_tokens: Some(200),
        format: OutputFormat::Text,
    }
}

fn scripted_reply() -> String {
    format!("Say the words.\nEMULATOR_REPLY: {REPLY}")
}

fn status(status: u16, retry_after: Option<u64>) -> ScriptStep {
    ScriptStep::Status {
        status,
        retry_after,
        body: None,
    }
}

/// Fast retries, so that the tests measure behaviour, not patience.
fn quick_retries(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        base: Duration::from_millis(10),
        cap: Duration::from_millis(50),
        retry_after_cap: Duration::from_secs(10),
    }
}

fn options(retry: RetryPolicy, stream: bool) -> CallOptions<'static> {
    CallOptions {
        retry,
        limiter: None,
        stream,
    }
}

pub async fn plain(kind: Kind, http: Http) {
    let bench = Bench::start(http).await;
    let provider = bench.provider(kind);
    assert_eq!(provider.name(), kind.name());
    let completion = provider
        .complete(&request(kind, &scripted_reply()), &CallCtx::default())
        .await
        .expect("completion");
    assert_eq!(completion.content, REPLY);
    assert_eq!(completion.model, kind.model());
    assert!(!completion.usage_estimated);
    assert!(completion.usage.input_tokens > 0);
    assert_eq!(completion.usage.output_tokens, count_tokens(REPLY));
    assert!(completion.request_id.is_some());
    assert_eq!(
        completion.finish_reason.as_deref(),
        Some(kind.finish_reason())
    );
    assert!(completion
        .rate_limit
        .is_some_and(|h| h.remaining_requests > Some(0)));
    assert_eq!(bench.emulator.stats().calls, 1);

    // Cost: the table prices the usage; OpenRouter also reports its own figure.
    let table = PriceTable::built_in().expect("pricing");
    let price = table.get(kind.model()).expect("priced");
    let expected = (Decimal::from(completion.usage.input_tokens) * price.input
        + Decimal::from(completion.usage.output_tokens) * price.output)
        / Decimal::from(1_000_000);
    assert_eq!(table.cost(kind.model(), completion.usage), Some(expected));
    match kind {
        Kind::OpenRouter => {
            let reported = openrouter_cost(
                kind.model(),
                completion.usage.input_tokens,
                completion.usage.output_tokens,
            );
            let reported = Decimal::from_str(&reported.to_string()).expect("decimal");
            assert_eq!(completion.provider_cost, Some(reported));
        }
        Kind::OpenAi | Kind::Anthropic => assert_eq!(completion.provider_cost, None),
    }
}

pub async fn streamed(kind: Kind, http: Http) {
    let bench = Bench::start(http).await;
    bench
        .emulator
        .set_stream_chunk_delay(Duration::from_millis(5));
    let provider = bench.provider(kind);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let cx = CallCtx {
        chunks: Some(tx),
        ..CallCtx::default()
    };
    let request = request(kind, &scripted_reply());
    let completion = provider.stream(&request, &cx).await.expect("stream");
    drop(cx);
    let mut chunks = Vec::new();
    while let Some(chunk) = rx.recv().await {
        chunks.push(chunk);
    }
    assert!(chunks.len() > 2, "several deltas: {chunks:?}");
    assert_eq!(chunks.concat(), REPLY, "in order: {chunks:?}");
    assert_eq!(completion.content, REPLY);
    assert!(!completion.usage_estimated, "usage from the final event");
    assert_eq!(completion.usage.output_tokens, count_tokens(REPLY));
    let whole = provider
        .complete(&request, &CallCtx::default())
        .await
        .expect("completion");
    assert_eq!(completion.usage, whole.usage, "same usage streamed or not");
    assert_eq!(
        completion.finish_reason.as_deref(),
        Some(kind.finish_reason())
    );
    assert_eq!(completion.finish_reason, whole.finish_reason);
    assert!(completion.request_id.is_some());
    if kind == Kind::OpenRouter {
        assert_eq!(completion.provider_cost, whole.provider_cost);
        assert!(completion.provider_cost.is_some());
    }
}

pub async fn errors_mapped(kind: Kind, http: Http) {
    let bench = Bench::start(http).await;
    let provider = bench.provider(kind);
    let mid_stream_error = match kind {
        Kind::Anthropic => "overloaded",
        Kind::OpenRouter | Kind::OpenAi => "server",
    };
    let table: Vec<(ScriptStep, bool, &str)> = vec![
        (status(401, None), false, "auth"),
        (status(400, None), false, "bad_request"),
        (status(429, Some(2)), false, "rate_limited"),
        (status(500, None), false, "server"),
        (status(529, None), false, "overloaded"),
        (status(429, Some(2)), true, "rate_limited"),
        (status(529, None), true, "overloaded"),
        (ScriptStep::DropMidStream, true, "network"),
        (ScriptStep::DropMidStream, false, "network"),
        (ScriptStep::ErrorMidStream, true, mid_stream_error),
    ];
    for (step, stream, expected) in table {
        bench.emulator.push_script(vec![step.clone()]);
        let request = request(kind, "hello");
        let result = if stream {
            provider.stream(&request, &CallCtx::default()).await
        } else {
            provider.complete(&request, &CallCtx::default()).await
        };
        let error = result.expect_err("scripted failure");
        assert_eq!(error.kind(), expected, "{step:?} stream={stream}: {error}");
        if let ProviderError::RateLimited { retry_after, .. } = &error {
            assert_eq!(*retry_after, Some(Duration::from_secs(2)), "{error}");
        }
    }
}

pub async fn slow_headers_time_out(kind: Kind, http: Http) {
    let bench = Bench::start_with(http, json!({"llm_timeout_secs": 1})).await;
    let provider = bench.provider(kind);
    bench
        .emulator
        .push_script(vec![ScriptStep::SlowHeaders(Duration::from_secs(5))]);
    let error = provider
        .complete(&request(kind, "hello"), &CallCtx::default())
        .await
        .expect_err("times out");
    assert_eq!(error.kind(), "timeout", "{error}");
    assert!(error.is_retryable());
}

pub async fn retry_then_success(kind: Kind, http: Http) {
    let bench = Bench::start(http).await;
    let targets = [Target {
        provider: bench.provider(kind),
        model: kind.model().to_owned(),
    }];
    bench
        .emulator
        .push_script(vec![status(500, None), status(529, None), ScriptStep::Ok]);
    let answer = chain::call(
        &targets,
        &request(kind, &scripted_reply()),
        &CallCtx::default(),
        options(quick_retries(3), false),
    )
    .await
    .expect("third call answers");
    assert_eq!(answer.completion.content, REPLY);
    assert_eq!(answer.calls, 3);
    assert_eq!(bench.emulator.stats().calls, 3);

    // Out of attempts: the last error is returned, a non-retryable one at once.
    bench
        .emulator
        .push_script(vec![status(500, None), status(500, None)]);
    let failure = chain::call(
        &targets,
        &request(kind, "x"),
        &CallCtx::default(),
        options(quick_retries(2), false),
    )
    .await
    .expect_err("fails");
    assert_eq!(failure.error.kind(), "server");
    bench.emulator.push_script(vec![status(400, None)]);
    let before = bench.emulator.stats().calls;
    let failure = chain::call(
        &targets,
        &request(kind, "x"),
        &CallCtx::default(),
        options(quick_retries(3), false),
    )
    .await
    .expect_err("fails");
    assert_eq!(failure.error.kind(), "bad_request");
    assert_eq!(bench.emulator.stats().calls, before + 1, "not retried");
}

pub async fn retry_after_is_honoured_inner(kind: Kind, http: Http, stream: bool) {
    let bench = Bench::start(http).await;
    let targets = [Target {
        provider: bench.provider(kind),
        model: kind.model().to_owned(),
    }];
    bench
        .emulator
        .push_script(vec![status(429, Some(1)), ScriptStep::Ok]);
    let started = Instant::now();
    let answer = chain::call(
        &targets,
        &request(kind, &scripted_reply()),
        &CallCtx::default(),
        options(quick_retries(3), stream),
    )
    .await
    .expect("answers after waiting");
    let elapsed = started.elapsed();
    assert_eq!(answer.completion.content, REPLY);
    assert_eq!(answer.calls, 2);
    assert!(
        elapsed >= Duration::from_secs(1),
        "waited {elapsed:?}, Retry-After said 1 s"
    );
}

pub async fn retry_after_honoured(kind: Kind, http: Http) {
    retry_after_is_honoured_inner(kind, http, false).await;
}

pub async fn fallback_before_first_token(kind: Kind, http: Http) {
    let bench = Bench::start(http).await;
    let other = kind.other();
    let targets = [
        Target {
            provider: bench.provider(kind),
            model: kind.model().to_owned(),
        },
        Target {
            provider: bench.provider(other),
            model: other.model().to_owned(),
        },
    ];
    // The first provider fails before any text (twice: its retries), the fallback answers.
    bench.emulator.push_script(vec![
        status(529, None),
        ScriptStep::Status {
            status: 503,
            retry_after: None,
            body: None,
        },
    ]);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let cx = CallCtx {
        chunks: Some(tx),
        ..CallCtx::default()
    };
    let answer = chain::call(
        &targets,
        &request(kind, &scripted_reply()),
        &cx,
        options(quick_retries(2), true),
    )
    .await
    .expect("the fallback answers");
    drop(cx);
    assert_eq!(answer.provider, other.name());
    assert_eq!(answer.model, other.model());
    assert_eq!(answer.calls, 3);
    let stats = bench.emulator.stats();
    assert_eq!(stats.calls_by_model.get(kind.model()), Some(&2));
    assert_eq!(stats.calls_by_model.get(other.model()), Some(&1));
    let mut chunks = Vec::new();
    while let Some(chunk) = rx.recv().await {
        chunks.push(chunk);
    }
    assert_eq!(
        chunks.concat(),
        REPLY,
        "only the fallback's text was passed on"
    );
}

pub async fn no_fallback_after_first_token(kind: Kind, http: Http) {
    let bench = Bench::start(http).await;
    let other = kind.other();
    let targets = [
        Target {
            provider: bench.provider(kind),
            model: kind.model().to_owned(),
        },
        Target {
            provider: bench.provider(other),
            model: other.model().to_owned(),
        },
    ];
    for step in [ScriptStep::DropMidStream, ScriptStep::ErrorMidStream] {
        bench.emulator.reset();
        bench.emulator.push_script(vec![step.clone()]);
        let (tx, mut rx) = mpsc::unbounded_channel();
        let cx = CallCtx {
            chunks: Some(tx),
            ..CallCtx::default()
        };
        let failure = chain::call(
            &targets,
            &request(kind, &scripted_reply()),
            &cx,
            options(quick_retries(3), true),
        )
        .await
        .expect_err("no second chance after text was passed on");
        drop(cx);
        assert!(failure.streamed, "{step:?}");
        assert!(failure.error.is_retryable(), "{step:?}: {}", failure.error);
        assert_eq!(failure.provider, kind.name());
        assert_eq!(
            bench.emulator.stats().calls,
            1,
            "{step:?}: no retry, no fallback"
        );
        let mut chunks = Vec::new();
        while let Some(chunk) = rx.recv().await {
            chunks.push(chunk);
        }
        assert!(!chunks.is_empty(), "{step:?}: text was passed on");
        assert!(REPLY.starts_with(&chunks.concat()));
    }

    // Without a consumer of chunks nothing was passed on, so the fallback may still answer.
    bench.emulator.reset();
    bench.emulator.push_script(vec![ScriptStep::DropMidStream]);
    let answer = chain::call(
        &targets,
        &request(kind, &scripted_reply()),
        &CallCtx::default(),
        options(quick_retries(1), true),
    )
    .await
    .expect("fallback answers");
    assert_eq!(answer.provider, other.name());
}

pub async fn auth_failure_falls_back(kind: Kind, http: Http) {
    let bench = Bench::start(http).await;
    let other = kind.other();
    let targets = [
        Target {
            provider: bench.provider(kind),
            model: kind.model().to_owned(),
        },
        Target {
            provider: bench.provider(other),
            model: other.model().to_owned(),
        },
    ];
    bench.emulator.push_script(vec![status(401, None)]);
    let answer = chain::call(
        &targets,
        &request(kind, &scripted_reply()),
        &CallCtx::default(),
        options(quick_retries(3), false),
    )
    .await
    .expect("fallback answers");
    assert_eq!(answer.provider, other.name());
    assert_eq!(
        answer.calls, 2,
        "auth is not retried, the fallback is taken at once"
    );
    assert_eq!(answer.completion.content, REPLY);

    // A bad request is the caller's fault: no fallback.
    bench.emulator.push_script(vec![status(400, None)]);
    let failure = chain::call(
        &targets,
        &request(kind, "x"),
        &CallCtx::default(),
        options(quick_retries(3), false),
    )
    .await
    .expect_err("fails");
    assert_eq!(failure.error.kind(), "bad_request");
    assert_eq!(failure.provider, kind.name());
}
