//! Integration tests: a real `Emulator` on a loopback port, driven with reqwest.

mod anthropic;
mod control;
mod openai;
mod places;

use std::future::Future;
use std::time::{Duration, Instant};

use llmflow_emulator::{Emulator, EmulatorConfig, EmulatorStats};
use serde_json::Value;

/// Starts an emulator with the default configuration.
pub async fn emulator() -> Emulator {
    emulator_with(EmulatorConfig::default()).await
}

/// Starts an emulator with the given configuration.
pub async fn emulator_with(config: EmulatorConfig) -> Emulator {
    Emulator::spawn(config).await.expect("emulator starts")
}

/// A plain client (no timeout).
pub fn client() -> reqwest::Client {
    reqwest::Client::new()
}

/// Polls `cond` on the emulator's stats until it holds or `deadline` passes.
pub async fn wait_for_stats(
    emulator: &Emulator,
    deadline: Duration,
    cond: impl Fn(&EmulatorStats) -> bool,
) -> EmulatorStats {
    let start = Instant::now();
    loop {
        let stats = emulator.stats();
        if cond(&stats) || start.elapsed() > deadline {
            return stats;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Runs `fut` and returns its output with the elapsed time.
pub async fn timed<T>(fut: impl Future<Output = T>) -> (T, Duration) {
    let start = Instant::now();
    let out = fut.await;
    (out, start.elapsed())
}

/// One server-sent event.
#[derive(Debug, Clone, PartialEq)]
pub struct Sse {
    pub event: Option<String>,
    pub data: String,
}

impl Sse {
    /// The data parsed as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data).expect("event data is JSON")
    }
}

/// Parses a complete `text/event-stream` body.
pub fn parse_sse(body: &str) -> Vec<Sse> {
    body.split("\n\n")
        .filter(|block| !block.trim().is_empty())
        .map(|block| {
            let mut event = None;
            let mut data = Vec::new();
            for line in block.lines() {
                if let Some(name) = line.strip_prefix("event: ") {
                    event = Some(name.to_owned());
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data.push(d);
                }
            }
            Sse {
                event,
                data: data.join("\n"),
            }
        })
        .collect()
}

/// Reads a streaming body chunk by chunk until it ends or fails; returns the text received and
/// whether it failed.
pub async fn read_until_error(response: reqwest::Response) -> (String, bool) {
    use futures::StreamExt;
    let mut stream = response.bytes_stream();
    let mut text = String::new();
    while let Some(item) = stream.next().await {
        match item {
            Ok(bytes) => text.push_str(&String::from_utf8_lossy(&bytes)),
            Err(_) => return (text, true),
        }
    }
    (text, false)
}
