//! How a command ends: the exit code says whether it worked (0), found a failure (1), or was
//! given something it cannot use (2: an unknown workflow, a file that is not JSON, an input that
//! fails the schema, a malformed setting). Clap's own usage errors also exit with 2.

use std::process::ExitCode;

use llmflow_core::config::ConfigError;

/// A command that did not succeed, and why.
#[derive(Debug)]
pub enum CliError {
    /// The command ran and found a failure (invalid workflows, a failed migration).
    Failed(anyhow::Error),
    /// The command was given something it cannot use.
    BadInput(anyhow::Error),
}

impl CliError {
    /// Bad input with a message.
    pub fn bad(message: impl std::fmt::Display) -> CliError {
        CliError::BadInput(anyhow::anyhow!("{message}"))
    }

    pub fn exit_code(&self) -> ExitCode {
        match self {
            CliError::Failed(_) => ExitCode::from(1),
            CliError::BadInput(_) => ExitCode::from(2),
        }
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CliError::Failed(e) | CliError::BadInput(e) => write!(f, "{e:#}"),
        }
    }
}

impl From<anyhow::Error> for CliError {
    fn from(e: anyhow::Error) -> Self {
        CliError::Failed(e)
    }
}

/// A malformed or missing setting is the user's to fix: bad input.
impl From<ConfigError> for CliError {
    fn from(e: ConfigError) -> Self {
        CliError::BadInput(e.into())
    }
}

pub type CliResult = Result<(), CliError>;

/// Writes `text` to standard output. A reader that went away (`llmflow … | head`) is not an
/// error of the command.
pub fn emit(text: &str) -> CliResult {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(CliError::Failed(anyhow::anyhow!(
            "cannot write the output: {e}"
        ))),
    }
}
