//! Tests of the address policy: pure functions, no sockets.
#![allow(clippy::unwrap_used)] // unwrap is the assertion in tests

mod policy;
mod ranges;

fn ip(s: &str) -> std::net::IpAddr {
    s.parse().unwrap()
}
