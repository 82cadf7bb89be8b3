//! Tests of the webhook sender against real sockets on loopback.
#![allow(clippy::unwrap_used)] // unwrap is the assertion in tests

mod classify;
mod client;
mod resolver;
mod support;
