//! Runs the `llmflow` binary with a clean environment: only the variables a test gives.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// How long a started process may take to say it is ready.
const READY_DEADLINE: Duration = Duration::from_secs(30);

/// `llmflow` with `args`, no inherited environment but `vars`, in the repository root.
pub fn llmflow(args: &[&str], vars: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_llmflow"));
    command
        .args(args)
        .env_clear()
        .envs(vars.iter().copied())
        .current_dir(repo_root())
        .kill_on_drop(true);
    command
}

/// What a finished `llmflow` run said.
pub struct Ran {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `llmflow` with `args` and only `vars` in its environment, to the end.
pub async fn run(args: &[&str], vars: &[(&str, &str)]) -> Ran {
    let out = llmflow(args, vars).output().await.unwrap();
    Ran {
        success: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A running `llmflow listen` on a free port; the process ends when this is dropped.
pub struct Listener {
    pub url: String,
    _child: Child,
}

impl Listener {
    /// Starts `llmflow listen --address 127.0.0.1:0` with `args` and `vars`, and waits for the
    /// line naming the bound address.
    pub async fn start(args: &[&str], vars: &[(&str, &str)]) -> Listener {
        let mut all = vec!["listen", "--address", "127.0.0.1:0"];
        all.extend_from_slice(args);
        let mut child = llmflow(&all, vars)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = tokio::time::timeout(READY_DEADLINE, lines.next_line())
            .await
            .expect("llmflow listen did not start in time")
            .unwrap()
            .expect("llmflow listen exited before listening");
        let url = first
            .strip_prefix("listening for webhooks on ")
            .unwrap_or_else(|| panic!("unexpected first line: {first}"))
            .to_owned();
        // Keep reading what the receiver prints, so that it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Listener { url, _child: child }
    }
}

/// `llmflow` as an `assert_cmd` command: no inherited environment but `vars`, in the
/// repository root.
pub fn cli(args: &[&str], vars: &[(&str, &str)]) -> assert_cmd::Command {
    let mut command = assert_cmd::Command::cargo_bin("llmflow").unwrap();
    command
        .args(args)
        .env_clear()
        .envs(vars.iter().copied())
        .current_dir(repo_root());
    command
}

/// Runs Mermaid's own parser (`scripts/mermaid/check.mjs` under Node) over `files`, installing
/// its locked packages first when they are missing; panics with the parser's message when a
/// diagram does not parse.
pub fn mermaid_parses(files: &[PathBuf]) {
    let dir = mermaid_checker();
    let out = std::process::Command::new("node")
        .arg(dir.join("check.mjs"))
        .args(files)
        .output()
        .expect("node must be installed to check Mermaid diagrams");
    assert!(
        out.status.success(),
        "Mermaid did not parse: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `scripts/mermaid` with its locked packages installed (`npm ci` when they are missing).
pub fn mermaid_checker() -> PathBuf {
    // Once per test binary: tests running side by side must not install over each other.
    static INSTALLED: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    INSTALLED.get_or_init(install_mermaid_checker).clone()
}

fn install_mermaid_checker() -> PathBuf {
    let dir = repo_root().join("scripts/mermaid");
    if !dir.join("node_modules/mermaid").is_dir() || !dir.join("node_modules/.bin/tsc").exists() {
        let status = std::process::Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--silent"])
            .current_dir(&dir)
            .status()
            .expect("npm must be installed to check Mermaid diagrams");
        assert!(status.success(), "npm ci in scripts/mermaid failed");
    }
    dir
}
