//! `llmflow edit` driven through a real pseudo-terminal: keys go in as a person types them, and
//! the screen is rendered by a terminal parser and read back, each wait bounded by a deadline.

use std::io::ErrorKind;
use std::num::NonZeroU16;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use expectrl::process::unix::WaitStatus;
use expectrl::session::OsSession;
use expectrl::Expect;
use serde_json::Value;

use crate::support::{cli, repo_root};

const ROWS: u16 = 40;
const COLS: u16 = 110;
/// How long the editor may take to show what a test waits for.
const DEADLINE: Duration = Duration::from_secs(30);
const ENTER: &str = "\r";

/// The editor running in a pseudo-terminal, and the screen it has drawn.
struct Terminal {
    session: OsSession,
    screen: vt100::Parser,
}

impl Terminal {
    /// Starts `llmflow edit <file>` in the repository root with a clean environment.
    fn open(file: &Path) -> Terminal {
        let mut command = Command::new(env!("CARGO_BIN_EXE_llmflow"));
        command
            .arg("edit")
            .arg(file)
            .env_clear()
            .env("TERM", "xterm-256color")
            .current_dir(repo_root());
        let mut session = OsSession::spawn(command).unwrap();
        session
            .get_process_mut()
            .set_window_size(COLS, ROWS)
            .unwrap();
        Terminal {
            session,
            screen: vt100::Parser::new(
                NonZeroU16::new(ROWS).unwrap(),
                NonZeroU16::new(COLS).unwrap(),
                0,
            ),
        }
    }

    /// Feeds what the editor wrote so far to the screen; false once it has exited.
    fn pump(&mut self) -> bool {
        let mut buf = [0u8; 8192];
        loop {
            match self.session.try_read(&mut buf) {
                Ok(0) => return false,
                Ok(n) => self.screen.process(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
                // Linux reports the end of a pseudo-terminal whose process exited as EIO.
                Err(_) => return false,
            }
        }
    }

    fn text(&self) -> String {
        self.screen.screen().contents()
    }

    /// Waits until the screen shows `wanted`, and returns the screen. Keys are sent only once
    /// a prompt is on screen: the editor redraws (clearing the screen) before each prompt, and
    /// a prompt takes keys once it is drawn.
    fn wait_for(&mut self, wanted: &str) -> String {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let alive = self.pump();
            let text = self.text();
            if text.contains(wanted) {
                return text;
            }
            assert!(
                alive && Instant::now() < deadline,
                "the screen never showed {wanted:?}; it shows:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn send(&mut self, keys: &str) {
        self.session.send(keys).unwrap();
    }

    /// Types `filter` into the list on screen and chooses the first option it leaves.
    fn pick(&mut self, filter: &str) {
        self.send(filter);
        self.send(ENTER);
    }

    /// Waits for the editor to exit and returns its exit code.
    fn exit_code(&mut self) -> i32 {
        let deadline = Instant::now() + DEADLINE;
        loop {
            self.pump();
            match self.session.get_process().status().unwrap() {
                WaitStatus::StillAlive => {}
                WaitStatus::Exited(_, code) => return code,
                other => panic!("the editor ended with {other:?}"),
            }
            assert!(
                Instant::now() < deadline,
                "the editor did not exit; it shows:\n{}",
                self.text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A copy of a shipped workflow in a folder of its own.
fn copy_of(name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(format!("{name}.json"));
    std::fs::copy(repo_root().join(format!("workflows/{name}.json")), &file).unwrap();
    (dir, file)
}

fn step_ids(definition: &Value) -> Vec<&str> {
    definition["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect()
}

#[test]
fn adds_moves_fixes_and_saves_a_step() {
    let (dir, file) = copy_of("bench_pipeline");
    let original = std::fs::read_to_string(&file).unwrap();
    let mut term = Terminal::open(&file);
    term.wait_for("? What next?");
    assert!(term.text().contains("✓ valid"));

    // Add a transform at the end of the top level, reading the output of `extract`.
    term.pick("Add a step");
    term.wait_for("Where does the new step go?");
    term.pick("top level: after `route`");
    term.wait_for("Kind of step:");
    term.pick("transform");
    term.wait_for("? id:");
    term.pick("headline");
    term.wait_for("? operation:");
    term.pick("template —");
    term.wait_for("? template:");
    term.pick("{{ summary }} (score {{ score }})");
    term.wait_for("input: type it, or reference");
    term.pick("output of step `extract`");
    let screen = term.wait_for("added `headline`");
    assert!(screen.contains("headline"), "{screen}");
    assert!(screen.contains("✓ valid"), "{screen}");
    term.wait_for("? What next?");

    // Move it before `extract`: the problem shows under the step.
    term.pick("Move a step");
    term.wait_for("Move which step?");
    term.pick("headline");
    term.wait_for("Move `headline` to:");
    term.pick("top level: after `analyze`");
    let screen = term.wait_for("moved `headline`");
    assert!(
        screen.contains("✗ input: step `extract` does not run before this point"),
        "{screen}"
    );
    assert!(screen.contains("✗ 1 problem"), "{screen}");
    term.wait_for("? What next?");

    // Fix it: read `analyze`'s answer, which has the same fields.
    term.pick("Edit a step");
    term.wait_for("Which step?");
    term.pick("headline");
    term.wait_for("Step `headline` (its problem is shown above)");
    term.pick("input:");
    term.wait_for("input: type it, or reference");
    term.pick("output of step `analyze`");
    let screen = term.wait_for("changed `headline`.input");
    assert!(screen.contains("✓ valid"), "{screen}");
    term.wait_for("? Step `headline` — which field?");
    term.pick("back");

    // Save, and leave without being asked anything.
    term.wait_for("? What next?");
    term.pick("Save");
    let screen = term.wait_for("the previous file is");
    assert!(screen.contains("· saved"), "{screen}");
    term.wait_for("? What next?");
    term.pick("Quit");
    assert_eq!(term.exit_code(), 0);

    let saved_text = std::fs::read_to_string(&file).unwrap();
    let saved: Value = serde_json::from_str(&saved_text).unwrap();
    assert_eq!(
        step_ids(&saved),
        ["analyze", "headline", "extract", "route"]
    );
    assert_eq!(saved["steps"][1]["type"], "transform");
    assert_eq!(saved["steps"][1]["operation"], "template");
    assert_eq!(saved["steps"][1]["input"], "${steps.analyze.output}");
    // The file keeps its key order: `name` first, `output` last, `id` before `type`.
    assert!(saved_text.starts_with("{\n  \"name\": \"bench_pipeline\",\n  \"version\""));
    assert!(saved_text.find("\"steps\"") < saved_text.find("\"output\""));
    assert!(saved_text.ends_with("}\n"));
    // A new step's keys come in the usual order, whatever order they were asked in.
    assert!(
        saved_text.contains(
            "\"id\": \"headline\",\n      \"type\": \"transform\",\n      \"input\": \
             \"${steps.analyze.output}\",\n      \"operation\": \"template\",\n"
        ),
        "{saved_text}"
    );
    let bak = std::fs::read_to_string(dir.path().join("bench_pipeline.json.bak")).unwrap();
    assert_eq!(bak, original);

    // The saved file passes the same validator as `llmflow validate`.
    let workflows = dir.path().to_str().unwrap();
    cli(&["validate", "--workflows", workflows], &[])
        .assert()
        .success()
        .stdout(predicates::str::contains("ok  bench_pipeline"));
}

#[test]
fn quitting_with_unsaved_changes_asks_first() {
    let (_dir, file) = copy_of("bench_pipeline");
    let original = std::fs::read_to_string(&file).unwrap();
    let mut term = Terminal::open(&file);
    term.wait_for("? What next?");

    term.pick("Remove a step");
    term.wait_for("Remove which step?");
    term.pick("fallback");
    term.wait_for("Remove `fallback`?");
    term.pick("y");
    let screen = term.wait_for("removed `fallback`");
    assert!(screen.contains("unsaved changes"), "{screen}");
    term.wait_for("? What next?");

    // Quit asks; "no" goes back to the editor.
    term.pick("Quit");
    term.wait_for("You have unsaved changes. Quit without saving?");
    term.pick("n");
    term.wait_for("? What next?");

    // Ctrl-C asks too; "yes" leaves the file as it was.
    term.send("\x03");
    term.wait_for("You have unsaved changes. Quit without saving?");
    term.pick("y");
    assert_eq!(term.exit_code(), 0);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), original);
}

#[test]
fn edits_on_error_by_mode_and_renames_with_references() {
    let (_dir, file) = copy_of("bench_pipeline");
    let mut term = Terminal::open(&file);
    term.wait_for("? What next?");

    term.pick("Edit a step");
    term.wait_for("Which step?");
    term.pick("extract");
    term.wait_for("Step `extract` — which field?");
    term.pick("on_error:");
    term.wait_for("? on_error mode:");
    term.pick("retry —");
    term.wait_for("? attempts (in all):");
    // More than the format allows is refused under the prompt, before anything changes.
    term.pick("11");
    term.wait_for("must be between 1 and 10");
    term.send("\x7f\x7f");
    term.pick("3");
    term.wait_for("? backoff_ms:");
    term.pick("200");
    let screen = term.wait_for("changed `extract`.on_error");
    assert!(screen.contains("on_error retry ×3, 200 ms"), "{screen}");
    assert!(screen.contains("✓ valid"), "{screen}");
    term.wait_for("? Step `extract` — which field?");

    // Renaming the step offers to rename what references it.
    term.pick("id:");
    term.wait_for("? id:");
    term.send(&"\x7f".repeat("extract".len()));
    term.pick("fields");
    term.wait_for("reference(s) to `steps.extract` into `steps.fields`?");
    term.pick("y");
    let screen = term.wait_for("renamed `extract` to `fields`");
    assert!(screen.contains("✓ valid"), "{screen}");
    term.wait_for("? Step `fields` — which field?");
    term.pick("back");

    term.wait_for("? What next?");
    term.pick("Save");
    term.wait_for("the previous file is");
    term.wait_for("? What next?");
    term.pick("Quit");
    assert_eq!(term.exit_code(), 0);
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(saved["steps"][1]["id"], "fields");
    assert_eq!(
        saved["steps"][1]["on_error"],
        serde_json::json!({"mode": "retry", "attempts": 3, "backoff_ms": 200})
    );
    assert_eq!(
        saved["steps"][2]["condition"],
        "steps.fields.output.score > 50"
    );
    assert_eq!(saved["output"]["summary"], "${steps.fields.output.summary}");
}

#[test]
fn without_a_terminal_it_says_so() {
    let (_dir, file) = copy_of("bench_pipeline");
    cli(&["edit", file.to_str().unwrap()], &[])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("llmflow edit needs a terminal"));
}

#[test]
fn an_unknown_workflow_is_bad_input() {
    cli(&["edit", "no_such_workflow"], &[])
        .assert()
        .code(2)
        .stderr(predicates::str::contains(
            "unknown workflow `no_such_workflow`",
        ));
}
