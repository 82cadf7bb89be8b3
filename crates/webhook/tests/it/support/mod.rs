//! What the webhook sender's tests share.

pub mod dns;
pub mod http;

use std::net::IpAddr;

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}
