//! Tests of the `llmflow` binary, each run as its own process with its own environment.
#![allow(clippy::unwrap_used)] // unwrap is the assertion in tests

mod diagram;
mod dry_run;
mod edit;
mod help;
mod listen;
mod migrate;
mod new;
mod run;
mod support;
mod validate;
