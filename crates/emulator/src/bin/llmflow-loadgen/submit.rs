//! A run: optional probe of the bare emulator round trip, the submissions, the wait for webhooks.

use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use futures::StreamExt;
use serde_json::{json, Map, Value};

use crate::args::RunArgs;
use crate::receiver::Receiver;
use crate::stats::summarize;

/// The text of every job; the score directive, when asked for, follows on its own line.
const TEXT: &str = "Ship the quarterly report by Friday, and book the review meeting with finance \
                    for Monday morning so the numbers can be signed off before the board call.";

/// The JSON body of one submission.
pub fn job_body(args: &RunArgs, webhook_url: Option<&str>) -> Value {
    let text = match args.score {
        Some(score) => format!("{TEXT}\nEMULATOR_SCORE: {score}"),
        None => TEXT.to_owned(),
    };
    let mut body = json!({"workflow_name": args.workflow, "input_data": {"text": text}});
    if let Some(url) = webhook_url {
        body["webhook_url"] = json!(url);
    }
    body
}

/// One submission's outcome.
struct Submitted {
    /// When it was sent (the start of its job's end-to-end time).
    sent: Instant,
    /// When it was first sent, as wall-clock time (for `--accepted-out`).
    sent_at: SystemTime,
    /// From its due time (open loop) or its send (closed loop) to the answer.
    latency: Duration,
    job_id: Option<String>,
}

/// When submission `i` is due at `rate` per second.
fn due(started: Instant, i: usize, rate: f64) -> Instant {
    started + Duration::from_secs_f64(i as f64 / rate)
}

/// What one submission needs.
struct Submitter<'a> {
    client: &'a reqwest::Client,
    url: &'a str,
    body: &'a Value,
    api_key: &'a str,
    /// Retried submissions carry a key of this run, so a retry of an accepted one is the same job.
    run_id: &'a str,
    /// How long a failed submission is sent again (0: never).
    retry_secs: u64,
}

/// Whether a failed submission is worth sending again: the API was unreachable or failing
/// (stopped, restarting, its database away), or asked to slow down.
fn retryable(outcome: &Result<reqwest::Response, reqwest::Error>) -> bool {
    match outcome {
        Ok(r) => r.status().is_server_error() || r.status().as_u16() == 429,
        Err(e) => !e.is_builder() && !e.is_decode(),
    }
}

/// Milliseconds since the Unix epoch.
fn unix_ms(at: SystemTime) -> u128 {
    at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis())
}

impl Submitter<'_> {
    /// Sends submission `i` now (again while it fails retryably, within `retry_secs`); its
    /// latency counts from `due`.
    async fn submit(&self, i: usize, due: Instant) -> Submitted {
        let sent = Instant::now();
        let sent_at = SystemTime::now();
        let retry_until = sent + Duration::from_secs(self.retry_secs);
        let response = loop {
            let mut request = self.client.post(self.url).header("X-API-Key", self.api_key);
            if self.retry_secs > 0 {
                request = request.header("Idempotency-Key", format!("{}-{i}", self.run_id));
            }
            let response = request.json(self.body).send().await;
            if !retryable(&response) || Instant::now() >= retry_until {
                break response;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        let job_id = match response {
            Ok(r) if r.status().as_u16() == 202 => r
                .json::<Value>()
                .await
                .ok()
                .and_then(|v| v["job_id"].as_str().map(str::to_owned)),
            Ok(r) => {
                warn(&format!("submit answered {}", r.status()));
                None
            }
            Err(e) => {
                warn(&format!("submit failed: {e}"));
                None
            }
        };
        Submitted {
            sent,
            sent_at,
            latency: due.min(sent).elapsed(),
            job_id,
        }
    }
}

/// What the open loop saw besides the submissions.
#[derive(Default)]
struct OpenLoop {
    /// Most submissions awaiting their answer at once.
    max_in_flight: usize,
    /// Largest delay between a submission's due time and its send (the load generator's own lag).
    max_lag_ms: f64,
}

/// Sends `jobs` submissions at `rate` per second, each at its due time whatever the answers
/// before it are doing: they run side by side, unbounded.
async fn open_loop(
    submitter: &Submitter<'_>,
    jobs: usize,
    rate: f64,
    started: Instant,
) -> (Vec<Submitted>, OpenLoop) {
    let mut pending = futures::stream::FuturesUnordered::new();
    let mut done = Vec::with_capacity(jobs);
    let mut seen = OpenLoop::default();
    let mut next = 0;
    while next < jobs || !pending.is_empty() {
        let wake = (next < jobs).then(|| due(started, next, rate));
        tokio::select! {
            biased;
            _ = sleep_until_some(wake) => {
                // Every submission already due goes out now, with its own due time.
                let now = Instant::now();
                while next < jobs && due(started, next, rate) <= now {
                    let at = due(started, next, rate);
                    seen.max_lag_ms = seen.max_lag_ms.max(ms(now.saturating_duration_since(at)));
                    pending.push(submitter.submit(next, at));
                    next += 1;
                }
                seen.max_in_flight = seen.max_in_flight.max(pending.len());
            }
            Some(submitted) = pending.next(), if !pending.is_empty() => done.push(submitted),
        }
    }
    (done, seen)
}

/// Sleeps until `at`, or forever without one.
async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => futures::future::pending().await,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn round(value: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (value * f).round() / f
}

/// Runs the scenario and returns its measurements as a flat JSON object.
pub async fn run(args: &RunArgs) -> anyhow::Result<Map<String, Value>> {
    if args.open_loop && !(args.rate > 0.0 && args.rate.is_finite()) {
        anyhow::bail!("--open-loop needs a --rate above 0");
    }
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency as usize)
        .timeout(Duration::from_secs(60))
        .build()?;
    let mut out = Map::new();
    out.insert("scenario".into(), json!(args.scenario));
    out.insert("workflow".into(), json!(args.workflow));
    out.insert("jobs".into(), json!(args.jobs));
    out.insert("concurrency".into(), json!(args.concurrency));
    if args.rate > 0.0 {
        out.insert("offered_rate".into(), json!(args.rate));
    }
    if let Some(emulator) = &args.emulator {
        client
            .post(format!("{emulator}/_emulator/reset"))
            .send()
            .await
            .context("resetting the emulator's counters")?;
    }

    let receiver = match args.webhook_listen {
        Some(addr) => Some(Receiver::start(addr, args.webhook_secret.as_deref())?),
        None => None,
    };
    let webhook_url = receiver
        .as_ref()
        .map(|r| format!("http://{}/hooks/{}", r.addr, args.scenario))
        .or_else(|| args.webhook_url.clone());
    let run_id = uuid::Uuid::now_v7().simple().to_string();
    let body = job_body(args, webhook_url.as_deref());
    let url = format!("{}/api/v1/workflow", args.api.trim_end_matches('/'));

    let started = Instant::now();
    // The bare round trip is timed beside the jobs, paced like them, so that it meets the same
    // conditions (a busy or idle machine) as the worker's calls.
    let probing = async {
        match (&args.emulator, args.probe) {
            (Some(emulator), n) if n > 0 => Some(probe(&client, emulator, n, args.rate).await),
            _ => None,
        }
    };
    let submitter = Submitter {
        client: &client,
        url: &url,
        body: &body,
        api_key: &args.api_key,
        run_id: &run_id,
        retry_secs: args.retry_secs,
    };
    let submitter = &submitter;
    let submitting = async {
        if args.open_loop {
            open_loop(submitter, args.jobs, args.rate, started).await
        } else {
            let submissions = futures::stream::iter(0..args.jobs)
                .map(|i| async move {
                    if args.rate > 0.0 {
                        tokio::time::sleep_until(due(started, i, args.rate).into()).await;
                    }
                    submitter.submit(i, Instant::now()).await
                })
                .buffer_unordered(args.concurrency as usize)
                .collect::<Vec<Submitted>>()
                .await;
            (submissions, OpenLoop::default())
        }
    };
    let ((submissions, open), probed) = tokio::join!(submitting, probing);
    let submit_elapsed = started.elapsed();
    if args.open_loop {
        out.insert("open_loop".into(), json!(true));
        out.insert("submits_max_in_flight".into(), json!(open.max_in_flight));
        out.insert("send_lag_max_ms".into(), json!(round(open.max_lag_ms, 2)));
    }
    if let Some(probed) = probed {
        let (p50, p99) = probed?;
        out.insert("probe_p50_us".into(), json!(round(p50, 0)));
        out.insert("probe_p99_us".into(), json!(round(p99, 0)));
    }
    if let Some(marker) = &args.submitted_marker {
        std::fs::write(marker, b"submitted\n")
            .with_context(|| format!("writing {}", marker.display()))?;
    }
    if let Some(path) = &args.accepted_out {
        let mut file = std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        );
        for s in &submissions {
            if let Some(job_id) = &s.job_id {
                writeln!(file, "{job_id},{}", unix_ms(s.sent_at))?;
            }
        }
        file.flush()
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let accepted: HashMap<String, Instant> = submissions
        .iter()
        .filter_map(|s| s.job_id.clone().map(|id| (id, s.sent)))
        .collect();
    let latency = summarize(submissions.iter().map(|s| ms(s.latency)).collect());
    let submit_errors = args.jobs - accepted.len();
    out.insert("submitted".into(), json!(accepted.len()));
    out.insert("submit_errors".into(), json!(submit_errors));
    out.insert("submit_p50_ms".into(), json!(round(latency.p50, 2)));
    out.insert("submit_p99_ms".into(), json!(round(latency.p99, 2)));
    out.insert("submit_max_ms".into(), json!(round(latency.max, 2)));
    out.insert(
        "submit_rate".into(),
        json!(round(
            accepted.len() as f64 / submit_elapsed.as_secs_f64(),
            1
        )),
    );

    if let Some(receiver) = receiver {
        // Wait until every accepted job has reported, or nothing new arrived for a while.
        let idle_limit = Duration::from_secs(args.idle_timeout_secs);
        let (mut last_count, mut last_change) = (receiver.count(), Instant::now());
        while receiver.count() < accepted.len() && last_change.elapsed() < idle_limit {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let count = receiver.count();
            if count != last_count {
                (last_count, last_change) = (count, Instant::now());
            }
        }
        let received = receiver.finish().await;
        let mut e2e = Vec::with_capacity(accepted.len());
        let mut last_arrival = started;
        for (job_id, sent) in &accepted {
            if let Some(arrived) = received.arrivals.get(job_id) {
                e2e.push(ms(arrived.saturating_duration_since(*sent)));
                last_arrival = last_arrival.max(*arrived);
            }
        }
        let unknown = received
            .arrivals
            .keys()
            .filter(|id| !accepted.contains_key(*id))
            .count();
        let e2e_elapsed = last_arrival.saturating_duration_since(started);
        let summary = summarize(e2e.clone());
        out.insert("webhooks".into(), json!(e2e.len()));
        out.insert("webhooks_missing".into(), json!(accepted.len() - e2e.len()));
        out.insert("webhooks_rejected".into(), json!(received.rejected));
        out.insert("webhooks_duplicate".into(), json!(received.duplicates));
        out.insert("webhooks_unknown_job".into(), json!(unknown));
        out.insert("jobs_not_completed".into(), json!(received.not_completed));
        if !received.failure_samples.is_empty() {
            out.insert("failures".into(), json!(received.failure_samples));
        }
        out.insert(
            "e2e_throughput".into(),
            json!(round(
                e2e.len() as f64 / e2e_elapsed.as_secs_f64().max(1e-9),
                1
            )),
        );
        out.insert("e2e_p50_ms".into(), json!(round(summary.p50, 1)));
        out.insert("e2e_p99_ms".into(), json!(round(summary.p99, 1)));
        out.insert("e2e_max_ms".into(), json!(round(summary.max, 1)));
        out.insert(
            "e2e_seconds".into(),
            json!(round(e2e_elapsed.as_secs_f64(), 2)),
        );
        let errors = submit_errors as u64
            + (accepted.len() - e2e.len()) as u64
            + received.rejected
            + received.not_completed;
        out.insert("errors".into(), json!(errors));
    } else {
        out.insert("errors".into(), json!(submit_errors));
    }

    if let Some(emulator) = &args.emulator {
        let stats: Value = client
            .get(format!("{emulator}/_emulator/stats"))
            .send()
            .await
            .context("reading the emulator's counters")?
            .json()
            .await?;
        // The probes are calls too.
        let calls = stats["calls"].as_u64().unwrap_or(0);
        out.insert(
            "llm_calls".into(),
            json!(calls.saturating_sub(args.probe as u64)),
        );
        out.insert("llm_max_in_flight".into(), stats["max_in_flight"].clone());
    }
    Ok(out)
}

/// Times `n` sequential chat completions sent straight to the emulator, shaped like the
/// worker's (JSON answer): the bare round trip an LLM step cannot be faster than. µs p50/p99.
/// Times `n` direct calls to the emulator, `rate` per second (back to back when 0).
async fn probe(
    client: &reqwest::Client,
    emulator: &str,
    n: usize,
    rate: f64,
) -> anyhow::Result<(f64, f64)> {
    let url = format!("{emulator}/v1/chat/completions");
    let body = json!({
        "model": "openai/gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "You are a precise analyst. Answer only with JSON."},
            {"role": "user", "content": TEXT},
        ],
        "response_format": {"type": "json_object"},
        "max_tokens": 300,
    });
    let mut times = Vec::with_capacity(n);
    let started = Instant::now();
    for i in 0..n {
        if rate > 0.0 {
            let due = started + Duration::from_secs_f64(i as f64 / rate);
            tokio::time::sleep_until(due.into()).await;
        }
        let sent = Instant::now();
        let reply = client
            .post(&url)
            .bearer_auth("emulator")
            .json(&body)
            .send()
            .await
            .context("probing the emulator")?;
        let _ = reply.bytes().await?;
        times.push(sent.elapsed().as_secs_f64() * 1e6);
    }
    let s = summarize(times);
    Ok((s.p50, s.p99))
}

/// Errors of single submissions go to standard error (the JSON stays on its own stream).
fn warn(message: &str) {
    eprintln!("llmflow-loadgen: {message}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::{Cli, Command};
    use clap::Parser;

    #[test]
    fn job_bodies_carry_the_score_directive_and_webhook() {
        let cli = Cli::try_parse_from([
            "llmflow-loadgen",
            "run",
            "--scenario",
            "s",
            "--api-key",
            "k",
            "--jobs",
            "1",
            "--score",
            "80",
        ])
        .expect("valid");
        let Command::Run(args) = cli.command else {
            panic!("not a run")
        };
        let body = job_body(&args, Some("http://127.0.0.1:9/hooks/s"));
        let text = body["input_data"]["text"].as_str().expect("text");
        assert!(text.ends_with("\nEMULATOR_SCORE: 80"), "{text}");
        assert_eq!(body["webhook_url"], "http://127.0.0.1:9/hooks/s");
        assert_eq!(body["workflow_name"], "bench_pipeline");
    }
}
