//! The allow-list that opens chosen ranges, and the check every caller-supplied URL passes.

use std::net::IpAddr;

use ipnet::IpNet;
use url::{Host, Url};

use crate::ranges::forbidden_reason;

/// A webhook destination that was refused, with the address or host and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Blocked {
    /// The URL scheme is not `http` or `https`.
    #[error("webhook URL scheme `{0}` is not allowed (only http and https)")]
    Scheme(String),
    /// The URL has no host.
    #[error("webhook URL has no host")]
    NoHost,
    /// A literal address (or the only address tried) is not allowed.
    #[error("webhook address {ip} is not allowed: {reason}")]
    Address {
        /// The refused address.
        ip: IpAddr,
        /// Which forbidden range it is in.
        reason: String,
    },
    /// Every address the host resolved to is not allowed.
    #[error("webhook host `{host}` resolves only to addresses that are not allowed: {}", list_rejected(.rejected))]
    Host {
        /// The host name as given in the URL.
        host: String,
        /// Each refused address with its reason.
        rejected: Vec<(IpAddr, String)>,
    },
}

fn list_rejected(rejected: &[(IpAddr, String)]) -> String {
    rejected
        .iter()
        .map(|(ip, why)| format!("{ip} is {why}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// An allow-list entry that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid allow-list entry `{entry}`: expected a CIDR such as 127.0.0.0/8 or an IP address")]
pub struct CidrError {
    /// The offending entry, trimmed.
    pub entry: String,
}

/// Parses a comma-separated allow-list (`"127.0.0.0/8, ::1/128"`) into ranges; blank entries
/// are ignored and a bare IP address means just that address.
pub fn parse_cidr_list(list: &str) -> Result<Vec<IpNet>, CidrError> {
    list.split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            entry
                .parse::<IpNet>()
                .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| CidrError {
                    entry: entry.to_owned(),
                })
        })
        .collect()
}

/// Which destination addresses webhooks may reach: everything public, plus the allow-listed
/// ranges (for local development and tests on 127.0.0.1). The default allows nothing extra.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressPolicy {
    allowed: Vec<IpNet>,
}

impl From<Vec<IpNet>> for AddressPolicy {
    fn from(allowed: Vec<IpNet>) -> AddressPolicy {
        AddressPolicy::new(allowed)
    }
}

impl AddressPolicy {
    /// A policy that also permits the given ranges even though they are forbidden by default.
    pub fn new(allowed: Vec<IpNet>) -> AddressPolicy {
        AddressPolicy { allowed }
    }

    /// Parses a comma-separated allow-list (see [`parse_cidr_list`]).
    pub fn parse_cidrs(list: &str) -> Result<AddressPolicy, CidrError> {
        parse_cidr_list(list).map(AddressPolicy::new)
    }

    /// The allow-listed ranges.
    pub fn allowed(&self) -> &[IpNet] {
        &self.allowed
    }

    /// True if a webhook may connect to `ip`: it is allow-listed (directly or as an IPv4-mapped
    /// IPv6 address) or it is not forbidden.
    pub fn permits(&self, ip: IpAddr) -> bool {
        self.check(ip).is_ok()
    }

    /// Like [`AddressPolicy::permits`], with the reason when it does not.
    pub fn check(&self, ip: IpAddr) -> Result<(), Blocked> {
        let canonical = ip.to_canonical();
        if self
            .allowed
            .iter()
            .any(|net| net.contains(&ip) || net.contains(&canonical))
        {
            return Ok(());
        }
        match forbidden_reason(ip) {
            None => Ok(()),
            Some(reason) => Err(Blocked::Address { ip, reason }),
        }
    }
}

/// Refuses URLs whose scheme is not http(s) or whose host is a literal IP the policy does not
/// permit; host names pass (whoever connects must check what they resolve to).
///
/// HTTP clients do not consult a resolver for literal IPs, so call this before every request.
/// The `url` crate has already normalised forms like `http://2130706433/` and `http://0x7f.1/`
/// to `127.0.0.1`.
pub fn check_url(policy: &AddressPolicy, url: &Url) -> Result<(), Blocked> {
    match url.scheme() {
        "http" | "https" => {}
        other => return Err(Blocked::Scheme(other.to_owned())),
    }
    match url.host().ok_or(Blocked::NoHost)? {
        Host::Domain(_) => Ok(()),
        Host::Ipv4(ip) => policy.check(IpAddr::V4(ip)),
        Host::Ipv6(ip) => policy.check(IpAddr::V6(ip)),
    }
}
