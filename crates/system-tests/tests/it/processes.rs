//! Worker processes for the tests that need more than one: this test binary started again with
//! only [`worker_process`] selected, so the process is always built from the same source as the
//! test (the `llmflow-worker` file in a shared build directory may come from another checkout).

use std::process::{Child, Command, ExitStatus, Stdio};

use secrecy::ExposeSecret;

use crate::support::TestApp;

/// Set in the environment of a worker process this test binary starts of itself.
const WORKER_PROCESS_ENV: &str = "LLMFLOW_IT_WORKER_PROCESS";

/// What `llmflow-worker`'s `main` does — configuration from the environment, the worker run
/// until SIGTERM/SIGINT, then a graceful stop — in a separate OS process: this test binary
/// started again with only this entry selected (always built from the same source as the test).
/// The process exits 0 when the stop returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a worker process started by the tests that need one"]
async fn worker_process() {
    if std::env::var_os(WORKER_PROCESS_ENV).is_none() {
        return;
    }
    let config = llmflow_core::config::Config::load().expect("worker configuration");
    llmflow_core::telemetry::init(config.log_format);
    let state = llmflow_worker::WorkerState::connect(config)
        .await
        .expect("worker state");
    llmflow_worker::run_until(state, llmflow_core::signal::shutdown_signal()).await;
}

/// A worker process; killed when dropped if it still runs.
pub struct WorkerProcess {
    child: Child,
}

impl WorkerProcess {
    pub fn spawn(app: &TestApp, settings: &[(&str, &str)]) -> WorkerProcess {
        let config = &app.config;
        let exe = std::env::current_exe().expect("test binary path");
        let mut command = Command::new(exe);
        command
            .args(["--ignored", "--exact", "processes::worker_process"])
            .env_clear()
            .env(WORKER_PROCESS_ENV, "1")
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", config.database_url.expose_secret())
            .env("REDIS_URL", config.redis_url.expose_secret())
            .env("REDIS_NAMESPACE", &config.redis_namespace)
            .env("OPENROUTER_API_KEY", "emulator-key")
            .env("OPENROUTER_BASE_URL", app.emulator.openrouter_base_url())
            .env("WORKFLOWS_DIR", &config.workflows_dir)
            .env("PROMPTS_DIR", &config.prompts_dir)
            .env("WORKER_CONCURRENCY", "500")
            .env("QUEUE_POLL_MS", "50")
            .env("DATABASE_POOL_SIZE", "8")
            .env("METRICS_ADDR", "")
            .env("MAINTENANCE_CRON", "")
            .env("CLAIM_TIMEOUT_SECS", "600")
            .env("RECONCILE_INTERVAL_SECS", "2")
            .env("LOG_FORMAT", "pretty")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (name, value) in settings {
            command.env(name, value);
        }
        WorkerProcess {
            child: command.spawn().expect("start a worker process"),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(status.success(), "kill -TERM failed");
    }

    /// SIGKILL, and the exit reaped.
    pub fn kill(&mut self) {
        self.child.kill().expect("kill -9");
        let _ = self.child.wait();
    }

    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("worker process status")
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
