//! `/metrics` after real jobs, checked against what PostgreSQL recorded. A test binary of its
//! own: the metrics recorder is one per process, and no other test may add to its counts.

#[path = "../it/support.rs"]
#[allow(unused_imports, dead_code)]
mod support;

use std::time::Duration;

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use tokio_util::sync::CancellationToken;

use llmflow_core::db::schema::{llm_job_steps as steps, llm_provider_usage as usage};

use support::TestApp;

/// One sample of the Prometheus text format: name, labels, value.
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("sample line");
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let labels = labels
                .split("\",")
                .filter(|p| !p.is_empty())
                .map(|pair| {
                    let (k, v) = pair.split_once('=').expect("label pair");
                    (k.to_owned(), v.trim_matches('"').to_owned())
                })
                .collect();
            Sample {
                name: name.to_owned(),
                labels,
                value: value.parse().expect("sample value"),
            }
        })
        .collect()
}

/// The sum over the samples of `name` carrying every label of `with`.
fn total(samples: &[Sample], name: &str, with: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            with.iter()
                .all(|(k, v)| s.labels.iter().any(|(lk, lv)| lk == k && lv == v))
        })
        .map(|s| s.value)
        .sum()
}

async fn scrape(http: &reqwest::Client, url: &str) -> String {
    let response = http.get(url).send().await.expect("scrape");
    assert_eq!(response.status(), 200, "{url}");
    let kind = response.headers()["content-type"]
        .to_str()
        .expect("content type")
        .to_owned();
    assert!(kind.starts_with("text/plain; version=0.0.4"), "{kind}");
    response.text().await.expect("body")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_after_real_jobs_match_the_record() {
    let app = TestApp::spawn().await;
    let stop = CancellationToken::new();
    let (worker_addr, _listener) = llmflow_core::metrics::serve("127.0.0.1:0", stop.clone())
        .await
        .expect("metrics listener");
    let first = app.submit_bench("metrics one", true).await;
    let second = app.submit_bench("metrics two", true).await;
    for job in [&first, &second] {
        app.wait_for_status(job, "completed", Duration::from_secs(30))
            .await;
    }
    support::wait_until(
        "both webhooks delivered",
        Duration::from_secs(30),
        || async { (app.receiver.requests().len() >= 2).then_some(()) },
    )
    .await;

    let mut conn = app.conn().await;
    let rows: Vec<(String, String, i32, i32, Decimal)> = usage::table
        .select((
            usage::provider,
            usage::model,
            usage::input_tokens,
            usage::output_tokens,
            usage::cost_usd,
        ))
        .load(&mut conn)
        .await
        .expect("usage rows");
    assert!(!rows.is_empty());
    let step_rows: i64 = steps::table
        .count()
        .get_result(&mut conn)
        .await
        .expect("steps");

    // The webhook sender records the attempt after the receiver answered: wait for it.
    let api = format!("{}/metrics", app.address);
    let text = support::wait_until(
        "the webhook attempts counted",
        Duration::from_secs(20),
        || async {
            let text = scrape(&app.http, &api).await;
            let samples = parse(&text);
            (total(
                &samples,
                "llmflow_webhook_attempts_total",
                &[("outcome", "delivered")],
            ) == 2.0)
                .then_some(text)
        },
    )
    .await;
    let samples = parse(&text);
    let bench = [("workflow", "bench_pipeline")];
    assert_eq!(total(&samples, "llmflow_jobs_submitted_total", &bench), 2.0);
    assert_eq!(total(&samples, "llmflow_jobs_started_total", &bench), 2.0);
    assert_eq!(
        total(
            &samples,
            "llmflow_jobs_finished_total",
            &[("workflow", "bench_pipeline"), ("outcome", "completed")]
        ),
        2.0
    );
    assert_eq!(
        total(&samples, "llmflow_job_queue_wait_seconds_count", &bench),
        2.0
    );
    assert_eq!(
        total(&samples, "llmflow_job_run_duration_seconds_count", &bench),
        2.0
    );
    assert!(total(&samples, "llmflow_job_run_duration_seconds_sum", &bench) > 0.0);
    // Histograms have buckets (not summaries), in seconds.
    assert!(samples
        .iter()
        .any(|s| s.name == "llmflow_job_run_duration_seconds_bucket"
            && s.labels.iter().any(|(k, v)| k == "le" && v == "+Inf")));
    assert_eq!(
        total(&samples, "llmflow_step_duration_seconds_count", &bench),
        step_rows as f64,
        "one observation per recorded step"
    );
    for band in ["high", "normal", "low"] {
        assert!(
            samples.iter().any(|s| s.name == "llmflow_queue_depth"
                && s.labels == vec![("band".to_owned(), band.to_owned())]),
            "queue depth of band {band}"
        );
    }
    assert_eq!(total(&samples, "llmflow_jobs_in_flight", &[]), 0.0);
    assert_eq!(
        total(&samples, "llmflow_workers_live", &[("kind", "worker")]),
        1.0
    );
    assert_eq!(
        total(&samples, "llmflow_workers_live", &[("kind", "webhook")]),
        1.0
    );

    // LLM calls: token sums and counts, and the cost, equal the usage rows.
    for (kind, pick) in [("input", 2usize), ("output", 3usize)] {
        let tokens: i64 = rows
            .iter()
            .map(|r| i64::from(if pick == 2 { r.2 } else { r.3 }))
            .sum();
        let with = [("gen_ai_token_type", kind)];
        assert_eq!(
            total(&samples, "gen_ai_client_token_usage_sum", &with),
            tokens as f64,
            "{kind} tokens"
        );
        assert_eq!(
            total(&samples, "gen_ai_client_token_usage_count", &with),
            rows.len() as f64
        );
    }
    let (provider, model) = (&rows[0].0, &rows[0].1);
    let labelled = [
        ("gen_ai_provider_name", provider.as_str()),
        ("gen_ai_request_model", model.as_str()),
        ("gen_ai_token_type", "input"),
    ];
    assert!(total(&samples, "gen_ai_client_token_usage_count", &labelled) >= 1.0);
    let cost: f64 = rows.iter().map(|r| r.4.to_f64().expect("cost")).sum();
    assert!((total(&samples, "llmflow_llm_cost_usd_total", &[]) - cost).abs() < 1e-9);
    assert_eq!(
        total(
            &samples,
            "gen_ai_client_operation_duration_seconds_count",
            &[]
        ),
        rows.len() as f64
    );
    assert_eq!(total(&samples, "llmflow_llm_errors_total", &[]), 0.0);

    // Webhooks: two terminal deliveries, each timed from the job's end.
    assert_eq!(
        total(
            &samples,
            "llmflow_webhook_delivery_latency_seconds_count",
            &[("event_type", "workflow.completed")]
        ),
        2.0
    );
    assert_eq!(
        total(&samples, "llmflow_webhook_dead_letters_total", &[]),
        0.0
    );

    // No label names a job, a user or a URL.
    for sample in &samples {
        for (key, _) in &sample.labels {
            assert!(
                !["job_id", "user_id", "url", "webhook_url", "delivery_id"].contains(&key.as_str()),
                "{} has label {key}",
                sample.name
            );
        }
    }
    // Counters end in `_total`; each metric is described.
    for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
        let parts: Vec<&str> = line.split(' ').collect();
        if parts[3] == "counter" {
            assert!(parts[2].ends_with("_total"), "{line}");
        }
        assert!(
            text.contains(&format!("# HELP {} ", parts[2])),
            "{} has no help text",
            parts[2]
        );
    }

    // The worker's and webhook sender's listener serves the same recorder.
    let worker = scrape(&app.http, &format!("http://{worker_addr}/metrics")).await;
    assert!(worker.contains("gen_ai_client_token_usage_bucket"));
    let missing = app
        .http
        .get(format!("http://{worker_addr}/other"))
        .send()
        .await
        .expect("send");
    assert_eq!(missing.status(), 404);
    stop.cancel();
}
