//! The worker process refuses a malformed setting at start, naming it, instead of running
//! without what the setting controls.

use std::process::Command;

/// Runs `llmflow-worker` with only these settings (and valid-looking service URLs that are
/// never reached: configuration is checked first).
fn worker_with(settings: &[(&str, &str)]) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_llmflow-worker"));
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("DATABASE_URL", "postgres://postgres@127.0.0.1:1/none")
        .env("REDIS_URL", "redis://127.0.0.1:1");
    for (name, value) in settings {
        command.env(name, value);
    }
    command.output().expect("the worker binary runs")
}

#[test]
fn a_malformed_maintenance_cron_stops_the_worker_with_its_name() {
    for bad in ["every night", "0 0 0 30 2 *"] {
        let output = worker_with(&[("MAINTENANCE_CRON", bad)]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !output.status.success(),
            "{bad}: the worker started: {stderr}"
        );
        assert!(
            stderr.contains("MAINTENANCE_CRON") && stderr.contains(bad),
            "{bad}: {stderr}"
        );
    }
}
