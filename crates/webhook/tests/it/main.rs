//! Tests of the webhook sender alone: delivery against the real PostgreSQL and Redis (rows
//! written and pushed as the worker writes and pushes them, receiving HTTP servers as the app,
//! no API or worker running), and the SSRF-safe client against real sockets on loopback.
#![allow(clippy::unwrap_used)] // unwrap is the assertion in tests

mod classify;
mod client;
mod delivery;
mod groups;
mod resolver;
mod support;
