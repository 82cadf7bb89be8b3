//! Every command's `--help` carries an example, and `llmflow completions` writes scripts that
//! the shells accept.

use predicates::str::contains;

use crate::support::cli;

const COMMANDS: [&str; 9] = [
    "new",
    "edit",
    "validate",
    "diagram",
    "dry-run",
    "run",
    "migrate",
    "listen",
    "completions",
];

#[test]
fn every_help_has_an_example() {
    cli(&["--help"], &[])
        .assert()
        .success()
        .stdout(contains("Example:\n  llmflow "));
    for command in COMMANDS {
        let run = cli(&[command, "--help"], &[]).assert().success();
        let help = String::from_utf8(run.get_output().stdout.clone()).unwrap();
        assert!(
            help.contains("Example:\n  ") || help.contains("Examples:\n  "),
            "{command}: {help}"
        );
        assert!(
            help.contains(&format!("llmflow {command}")),
            "{command}'s example does not run it: {help}"
        );
    }
}

#[test]
fn bash_completes_commands_and_options() {
    let run = cli(&["completions", "bash"], &[]).assert().success();
    let script = String::from_utf8(run.get_output().stdout.clone()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("llmflow.bash");
    std::fs::write(&file, script).unwrap();
    // Load the script into bash and ask its completion function, as the shell does on <Tab>.
    let complete = |words: &str, current: usize| {
        let probe = format!(
            "source {}; COMP_WORDS=({words}); COMP_CWORD={current}; COMP_LINE=\"{words}\"; \
             COMP_POINT=${{#COMP_LINE}}; _llmflow llmflow \"${{COMP_WORDS[$COMP_CWORD]}}\" \
             \"${{COMP_WORDS[$COMP_CWORD-1]}}\"; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            file.display()
        );
        let out = std::process::Command::new("bash")
            .args(["--norc", "--noprofile", "-c", &probe])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let commands = complete("llmflow ''", 1);
    for command in COMMANDS {
        assert!(
            commands.lines().any(|l| l == command),
            "{command} not offered: {commands}"
        );
    }
    let options = complete("llmflow dry-run --", 2);
    assert!(options.lines().any(|l| l == "--input"), "{options}");
    assert!(options.lines().any(|l| l == "--json"), "{options}");
    let formats = complete("llmflow diagram --format ''", 3);
    assert_eq!(
        formats.lines().collect::<Vec<_>>(),
        ["mermaid", "markdown"],
        "{formats}"
    );
}

#[test]
fn zsh_and_fish_scripts_name_every_command() {
    for (shell, marker) in [("zsh", "#compdef llmflow"), ("fish", "complete -c llmflow")] {
        let run = cli(&["completions", shell], &[]).assert().success();
        let script = String::from_utf8(run.get_output().stdout.clone()).unwrap();
        assert!(script.contains(marker), "{shell}: {script}");
        for command in COMMANDS {
            assert!(script.contains(command), "{shell} lacks {command}");
        }
    }
    cli(&["completions", "tcsh"], &[])
        .assert()
        .code(2)
        .stderr(contains("invalid value 'tcsh'"));
}
