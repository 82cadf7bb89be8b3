//! The editor's prompts (built on `inquire`): lists filtered by what is typed, text with
//! checks shown under the prompt, and how Esc and Ctrl-C end a prompt.

use inquire::error::InquireError;
use inquire::validator::Validation;
use inquire::{Confirm, CustomType, Select, Text};

use super::doc::Node;
use crate::error::CliError;

/// Why a prompt gave no answer.
pub enum Stop {
    /// Esc: leave this action, back to the menu before it.
    Back,
    /// Ctrl-C: the author wants out (asked first when there are unsaved changes).
    Quit,
    /// The terminal failed.
    Fail(CliError),
}

pub type Asked<T> = Result<T, Stop>;

fn answer<T>(result: Result<T, InquireError>) -> Asked<T> {
    match result {
        Ok(value) => Ok(value),
        Err(InquireError::OperationCanceled) => Err(Stop::Back),
        Err(InquireError::OperationInterrupted) => Err(Stop::Quit),
        Err(InquireError::NotTTY) => Err(Stop::Fail(CliError::bad(
            "llmflow edit needs a terminal: run it in an interactive shell",
        ))),
        Err(e) => Err(Stop::Fail(CliError::Failed(anyhow::anyhow!(
            "the terminal failed: {e}"
        )))),
    }
}

/// Keeps the options that contain what was typed (any case), in their own order: lists here
/// are small and ordered on purpose, so a fuzzy ranking would only reshuffle them.
fn contains(input: &str, _option: &String, text: &str, index: usize) -> Option<i64> {
    text.to_lowercase()
        .contains(&input.to_lowercase())
        .then_some(-(index as i64))
}

const LIST_HELP: &str = "↑↓ to move, type to filter, Enter to choose, Esc to go back";

/// Picks one of `options`; the answer is its index.
pub fn choose(message: &str, options: &[String], start: usize) -> Asked<usize> {
    choose_with_help(message, options, start, LIST_HELP)
}

pub fn choose_with_help(
    message: &str,
    options: &[String],
    start: usize,
    help: &str,
) -> Asked<usize> {
    let picked = answer(
        Select::new(message, options.to_vec())
            .with_scorer(&contains)
            .with_starting_cursor(start.min(options.len().saturating_sub(1)))
            .with_page_size(12)
            .with_help_message(help)
            .raw_prompt(),
    )?;
    Ok(picked.index)
}

/// A line of text, starting from `initial`; `check` says what is wrong with an answer.
pub fn text(
    message: &str,
    initial: &str,
    help: &str,
    check: impl Fn(&str) -> Option<String> + Clone + 'static,
) -> Asked<String> {
    answer(
        Text::new(message)
            .with_initial_value(initial)
            .with_help_message(help)
            .with_validator(move |input: &str| {
                Ok(match check(input) {
                    Some(message) => Validation::Invalid(message.into()),
                    None => Validation::Valid,
                })
            })
            .prompt(),
    )
}

/// A JSON value typed on one line; empty gives `None` (when `optional`).
pub fn json(message: &str, initial: &str, optional: bool) -> Asked<Option<Node>> {
    let help = if optional {
        "JSON on one line; empty to remove the field, Esc to go back"
    } else {
        "JSON on one line, Esc to go back"
    };
    let typed = text(message, initial, help, move |input| {
        if input.trim().is_empty() {
            return (!optional).then(|| "a value is required".to_owned());
        }
        Node::parse(input).err().map(|e| format!("not JSON: {e}"))
    })?;
    if typed.trim().is_empty() {
        return Ok(None);
    }
    Node::parse(&typed)
        .map(Some)
        .map_err(|e| Stop::Fail(CliError::Failed(anyhow::anyhow!("JSON checked above: {e}"))))
}

/// A whole number in `min..=max`.
pub fn whole(message: &str, current: Option<u64>, min: u64, max: u64, help: &str) -> Asked<u64> {
    number(message, current, (min, max), help, "type a whole number")
}

/// A decimal number in `min..=max`.
pub fn decimal(message: &str, current: Option<f64>, min: f64, max: f64) -> Asked<f64> {
    number(
        message,
        current,
        (min, max),
        "a number, Esc to go back",
        "type a number, like 0.7",
    )
}

/// A number in `range` (both ends included), typed and checked as it is typed.
fn number<T>(message: &str, current: Option<T>, range: (T, T), help: &str, error: &str) -> Asked<T>
where
    T: Copy + PartialOrd + std::fmt::Display + std::str::FromStr + 'static,
{
    let (min, max) = range;
    let mut prompt = CustomType::<T>::new(message)
        .with_help_message(help)
        .with_error_message(error)
        .with_validator(move |n: &T| {
            Ok(if min <= *n && *n <= max {
                Validation::Valid
            } else {
                Validation::Invalid(format!("must be between {min} and {max}").into())
            })
        });
    if let Some(current) = current {
        prompt = prompt.with_default(current);
    }
    answer(prompt.prompt())
}

/// Yes or no.
pub fn confirm(message: &str, default: bool) -> Asked<bool> {
    answer(Confirm::new(message).with_default(default).prompt())
}
