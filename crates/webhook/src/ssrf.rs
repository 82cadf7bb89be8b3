//! An HTTP client for caller-supplied webhook URLs that cannot be pointed at private
//! infrastructure (SSRF protection), and a classification of its errors.
//!
//! Two checks are needed because reqwest skips the DNS resolver for IP-literal hosts:
//! [`check_url`] refuses literal addresses (call it before every request, including replays),
//! and [`PolicyResolver`] drops disallowed addresses that names resolve to, at connect time, so
//! DNS rebinding cannot slip past an earlier check. Redirects are never followed and proxies are
//! never used, so the address that was checked is the address that is connected to.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::config::{ResolverConfig, ResolverOpts, CLOUDFLARE};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::NetError;
use hickory_resolver::TokioResolver;
use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::Url;

/// `User-Agent` sent with every webhook request.
pub const USER_AGENT: &str = concat!("llmflow-webhook/", env!("CARGO_PKG_VERSION"));

// ---------------------------------------------------------------------------------------------
// Forbidden address ranges
// ---------------------------------------------------------------------------------------------

/// IPv4 ranges no webhook may reach, with the reason reported to the caller. First match wins.
const V4_FORBIDDEN: &[(Ipv4Addr, u8, &str)] = &[
    (Ipv4Addr::new(0, 0, 0, 0), 8, "\"this network\" (0.0.0.0/8)"),
    (Ipv4Addr::new(10, 0, 0, 0), 8, "private (10.0.0.0/8)"),
    (
        Ipv4Addr::new(100, 64, 0, 0),
        10,
        "carrier-grade NAT shared space (100.64.0.0/10)",
    ),
    (Ipv4Addr::new(127, 0, 0, 0), 8, "loopback (127.0.0.0/8)"),
    (
        Ipv4Addr::new(169, 254, 0, 0),
        16,
        "link-local (169.254.0.0/16, includes cloud metadata)",
    ),
    (Ipv4Addr::new(172, 16, 0, 0), 12, "private (172.16.0.0/12)"),
    (
        Ipv4Addr::new(192, 0, 0, 0),
        24,
        "IETF protocol assignments (192.0.0.0/24)",
    ),
    (
        Ipv4Addr::new(192, 0, 2, 0),
        24,
        "documentation (192.0.2.0/24)",
    ),
    (
        Ipv4Addr::new(192, 88, 99, 0),
        24,
        "deprecated 6to4 relay anycast (192.88.99.0/24)",
    ),
    (
        Ipv4Addr::new(192, 168, 0, 0),
        16,
        "private (192.168.0.0/16)",
    ),
    (
        Ipv4Addr::new(198, 18, 0, 0),
        15,
        "benchmarking (198.18.0.0/15)",
    ),
    (
        Ipv4Addr::new(198, 51, 100, 0),
        24,
        "documentation (198.51.100.0/24)",
    ),
    (
        Ipv4Addr::new(203, 0, 113, 0),
        24,
        "documentation (203.0.113.0/24)",
    ),
    (Ipv4Addr::new(224, 0, 0, 0), 4, "multicast (224.0.0.0/4)"),
    (
        Ipv4Addr::new(255, 255, 255, 255),
        32,
        "broadcast (255.255.255.255)",
    ),
    (Ipv4Addr::new(240, 0, 0, 0), 4, "reserved (240.0.0.0/4)"),
];

/// IPv6 ranges no webhook may reach (embedded-IPv4 forms are handled before this table).
const V6_FORBIDDEN: &[(Ipv6Addr, u8, &str)] = &[
    (
        Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 0),
        128,
        "unspecified (::)",
    ),
    (Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 1), 128, "loopback (::1)"),
    (
        Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0),
        48,
        "local-use NAT64 (64:ff9b:1::/48)",
    ),
    (
        Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 0),
        64,
        "discard-only (100::/64)",
    ),
    (
        Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0),
        32,
        "Teredo tunnel (2001::/32)",
    ),
    (
        Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0),
        48,
        "benchmarking (2001:2::/48)",
    ),
    (
        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0),
        32,
        "documentation (2001:db8::/32)",
    ),
    (
        Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0),
        20,
        "documentation (3fff::/20)",
    ),
    (
        Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0),
        7,
        "unique local (fc00::/7)",
    ),
    (
        Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0),
        10,
        "link-local (fe80::/10)",
    ),
    (
        Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0),
        10,
        "deprecated site-local (fec0::/10)",
    ),
    (
        Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0),
        8,
        "multicast (ff00::/8)",
    ),
];

fn in_v4(ip: Ipv4Addr, net: Ipv4Addr, prefix: u8) -> bool {
    let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
    u32::from(ip) & mask == u32::from(net) & mask
}

fn in_v6(ip: Ipv6Addr, net: Ipv6Addr, prefix: u8) -> bool {
    let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
    u128::from(ip) & mask == u128::from(net) & mask
}

fn v4_reason(ip: Ipv4Addr) -> Option<&'static str> {
    V4_FORBIDDEN
        .iter()
        .find(|(net, prefix, _)| in_v4(ip, *net, *prefix))
        .map(|(_, _, why)| *why)
}

/// Low 32 bits of an IPv6 address as IPv4.
fn low_v4(bits: u128) -> Ipv4Addr {
    Ipv4Addr::from((bits & 0xffff_ffff) as u32)
}

fn v6_reason(ip: Ipv6Addr) -> Option<String> {
    let bits = u128::from(ip);
    let hi96 = bits >> 32;
    // Forms that carry an IPv4 address: judged by that address.
    let embedded = if hi96 == 0xffff {
        Some(("IPv4-mapped", low_v4(bits)))
    } else if hi96 == 0xffff_0000 {
        Some(("IPv4-translated (::ffff:0:0:0/96)", low_v4(bits)))
    } else if hi96 == 0x0064_ff9b_0000_0000_0000_0000 {
        Some(("NAT64 (64:ff9b::/96)", low_v4(bits)))
    } else if bits >> 112 == 0x2002 {
        Some((
            "6to4 (2002::/16)",
            Ipv4Addr::from(((bits >> 80) & 0xffff_ffff) as u32),
        ))
    } else {
        None
    };
    if let Some((form, v4)) = embedded {
        return v4_reason(v4).map(|why| format!("{form} form of {v4}, which is {why}"));
    }
    if let Some((_, _, why)) = V6_FORBIDDEN
        .iter()
        .find(|(net, prefix, _)| in_v6(ip, *net, *prefix))
    {
        return Some((*why).to_owned());
    }
    if hi96 == 0 {
        // ::a.b.c.d, deprecated by RFC 4291 and never routed; refused whatever it embeds.
        return Some(format!(
            "deprecated IPv4-compatible form (::/96) of {}",
            low_v4(bits)
        ));
    }
    if bits >> 125 != 0b001 {
        return Some("reserved (outside global unicast 2000::/3)".to_owned());
    }
    None
}

/// Why `ip` may not be a webhook destination, or `None` if it is a public address.
///
/// Embedded-IPv4 IPv6 forms (IPv4-mapped, IPv4-translated, NAT64 `64:ff9b::/96`, 6to4
/// `2002::/16`) are judged by the IPv4 address they carry: with a public IPv4 they are allowed,
/// because that is how IPv6-only networks reach public IPv4 hosts. Deprecated IPv4-compatible
/// `::/96`, Teredo and local-use NAT64 are always refused.
pub fn forbidden_reason(ip: IpAddr) -> Option<String> {
    match ip {
        IpAddr::V4(v4) => v4_reason(v4).map(str::to_owned),
        IpAddr::V6(v6) => v6_reason(v6),
    }
}

/// True if `ip` is loopback, private, link-local, CGNAT, ULA, documentation, benchmarking,
/// multicast, reserved or broadcast, directly or embedded in an IPv6 form (see
/// [`forbidden_reason`]).
pub fn is_forbidden(ip: IpAddr) -> bool {
    forbidden_reason(ip).is_some()
}

// ---------------------------------------------------------------------------------------------
// Policy
// ---------------------------------------------------------------------------------------------

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

/// Which destination addresses webhooks may reach: everything public, plus the allow-listed
/// ranges (for local development and tests on 127.0.0.1). The default allows nothing extra.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressPolicy {
    allowed: Vec<IpNet>,
}

impl AddressPolicy {
    /// A policy that also permits the given ranges even though they are forbidden by default.
    pub fn new(allowed: Vec<IpNet>) -> AddressPolicy {
        AddressPolicy { allowed }
    }

    /// Parses a comma-separated allow-list (`"127.0.0.0/8, ::1/128"`); blank entries are
    /// ignored and a bare IP address means just that address.
    pub fn parse_cidrs(list: &str) -> Result<AddressPolicy, CidrError> {
        let allowed = list
            .split(',')
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
            .collect::<Result<Vec<_>, _>>()?;
        Ok(AddressPolicy { allowed })
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
/// permit; host names pass (the [`PolicyResolver`] checks what they resolve to).
///
/// reqwest does not call the resolver for literal IPs, so call this before every request.
/// The `url` crate has already normalised forms like `http://2130706433/` and `http://0x7f.1/`
/// to `127.0.0.1`.
pub fn check_url(policy: &AddressPolicy, url: &Url) -> Result<(), Blocked> {
    match url.scheme() {
        "http" | "https" => {}
        other => return Err(Blocked::Scheme(other.to_owned())),
    }
    let host = url.host_str().ok_or(Blocked::NoHost)?;
    // IPv6 literals come bracketed; a domain never parses as an address (the `url` crate turns
    // numeric IPv4 spellings into addresses for http and https).
    match host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        Ok(ip) => policy.check(ip),
        Err(_) => Ok(()),
    }
}

// ---------------------------------------------------------------------------------------------
// Resolver
// ---------------------------------------------------------------------------------------------

/// A host name that could not be resolved (as opposed to one that resolved to refused
/// addresses, which is [`Blocked`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("could not resolve webhook host `{host}`: {message}")]
pub struct DnsFailure {
    host: String,
    message: String,
}

impl DnsFailure {
    /// The host name that failed to resolve.
    pub fn host(&self) -> &str {
        &self.host
    }
}

/// Why [`PolicyResolver::lookup`] produced no addresses.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// The name resolved, but only to addresses the policy refuses.
    #[error(transparent)]
    Blocked(Blocked),
    /// The name did not resolve.
    #[error(transparent)]
    Dns(DnsFailure),
}

/// A `reqwest` DNS resolver that resolves with hickory and keeps only the addresses the
/// [`AddressPolicy`] permits, failing with [`Blocked`] when none remain.
///
/// `localhost` and `*.localhost` are answered locally as `127.0.0.1` and `::1` (RFC 6761), then
/// filtered like any other answer, so they work without DNS and are refused by default.
#[derive(Clone)]
pub struct PolicyResolver {
    policy: Arc<AddressPolicy>,
    dns: Result<TokioResolver, Arc<str>>,
}

impl fmt::Debug for PolicyResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PolicyResolver")
            .field("policy", &self.policy)
            .field("dns", &self.dns.as_ref().map(|_| "hickory"))
            .finish()
    }
}

impl PolicyResolver {
    /// Uses the system DNS configuration (`/etc/resolv.conf`), or Cloudflare's public resolvers
    /// if it cannot be read. Never fails: a resolver that cannot be built fails each lookup.
    pub fn new(policy: AddressPolicy) -> PolicyResolver {
        let dns = match TokioResolver::builder_tokio() {
            Ok(builder) => builder.build(),
            Err(err) => {
                tracing::warn!(error = %err, "no system DNS configuration; using Cloudflare DNS");
                TokioResolver::builder_with_config(
                    ResolverConfig::udp_and_tcp(&CLOUDFLARE),
                    TokioRuntimeProvider::default(),
                )
                .build()
            }
        };
        PolicyResolver::from_hickory(policy, dns)
    }

    /// Uses the given DNS servers and options (for example a dedicated resolver in config).
    pub fn with_config(
        policy: AddressPolicy,
        config: ResolverConfig,
        options: ResolverOpts,
    ) -> PolicyResolver {
        let dns = TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
            .with_options(options)
            .build();
        PolicyResolver::from_hickory(policy, dns)
    }

    fn from_hickory(policy: AddressPolicy, dns: Result<TokioResolver, NetError>) -> PolicyResolver {
        let dns = dns.map_err(|err| {
            tracing::error!(error = %err, "could not build the webhook DNS resolver");
            Arc::from(err.to_string())
        });
        PolicyResolver {
            policy: Arc::new(policy),
            dns,
        }
    }

    /// The policy applied to every answer.
    pub fn policy(&self) -> &AddressPolicy {
        &self.policy
    }

    /// Resolves `host` and returns only the permitted addresses (never empty on success).
    pub async fn lookup(&self, host: &str) -> Result<Vec<IpAddr>, LookupError> {
        let answers = self.raw_lookup(host).await.map_err(LookupError::Dns)?;
        let mut permitted = Vec::with_capacity(answers.len());
        let mut rejected = Vec::new();
        for ip in answers {
            match self.policy.check(ip) {
                Ok(()) => permitted.push(ip),
                Err(Blocked::Address { ip, reason }) => rejected.push((ip, reason)),
                Err(other) => rejected.push((ip, other.to_string())),
            }
        }
        if permitted.is_empty() {
            return Err(LookupError::Blocked(Blocked::Host {
                host: host.to_owned(),
                rejected,
            }));
        }
        if !rejected.is_empty() {
            tracing::debug!(host, rejected = %list_rejected(&rejected), "dropped disallowed addresses");
        }
        Ok(permitted)
    }

    /// Every address `host` resolves to, before the policy is applied.
    async fn raw_lookup(&self, host: &str) -> Result<Vec<IpAddr>, DnsFailure> {
        let fail = |message: String| DnsFailure {
            host: host.to_owned(),
            message,
        };
        let bare = host.trim_end_matches('.').to_ascii_lowercase();
        if let Ok(ip) = bare
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            return Ok(vec![ip]);
        }
        if bare == "localhost" || bare.ends_with(".localhost") {
            return Ok(vec![
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(Ipv6Addr::LOCALHOST),
            ]);
        }
        let dns = self
            .dns
            .as_ref()
            .map_err(|err| fail(format!("DNS resolver unavailable: {err}")))?;
        let found = dns
            .lookup_ip(host)
            .await
            .map_err(|err| fail(dns_message(&err)))?;
        let ips: Vec<IpAddr> = found.iter().collect();
        if ips.is_empty() {
            return Err(fail("no address records".to_owned()));
        }
        Ok(ips)
    }
}

/// A short description of a hickory lookup error (its own `Display` dumps the whole query).
fn dns_message(err: &NetError) -> String {
    if err.is_nx_domain() {
        "no such host (NXDOMAIN)".to_owned()
    } else if err.is_no_records_found() {
        "no address records".to_owned()
    } else if matches!(err, NetError::Timeout) {
        "DNS query timed out".to_owned()
    } else {
        err.to_string()
    }
}

type BoxError = Box<dyn StdError + Send + Sync>;

impl Resolve for PolicyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let this = self.clone();
        let host = name.as_str().to_owned();
        let fut = async move {
            match this.lookup(&host).await {
                Ok(ips) => {
                    let addrs: Addrs = Box::new(ips.into_iter().map(|ip| SocketAddr::new(ip, 0)));
                    Ok(addrs)
                }
                // Box the inner errors themselves so `classify` can downcast them.
                Err(LookupError::Blocked(blocked)) => Err(Box::new(blocked) as BoxError),
                Err(LookupError::Dns(dns)) => Err(Box::new(dns) as BoxError),
            }
        };
        Box::pin(fut) as Pin<Box<dyn Future<Output = Result<Addrs, BoxError>> + Send>>
    }
}

/// A webhook HTTP client: resolves through [`PolicyResolver`] (system DNS), never follows
/// redirects, ignores proxy settings, applies both timeouts and sends [`USER_AGENT`].
///
/// Literal-IP URLs bypass the resolver: pair every request with [`check_url`].
pub fn build_client(
    policy: AddressPolicy,
    connect_timeout: Duration,
    request_timeout: Duration,
) -> Result<reqwest::Client, reqwest::Error> {
    build_client_with_resolver(
        PolicyResolver::new(policy),
        connect_timeout,
        request_timeout,
    )
}

/// [`build_client`] with a resolver configured by the caller (for example custom DNS servers).
pub fn build_client_with_resolver(
    resolver: PolicyResolver,
    connect_timeout: Duration,
    request_timeout: Duration,
) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .dns_resolver(Arc::new(resolver))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .connect_timeout(connect_timeout)
        .timeout(request_timeout)
        .user_agent(USER_AGENT)
        .build()
}

// ---------------------------------------------------------------------------------------------
// Error classification
// ---------------------------------------------------------------------------------------------

/// Coarse cause of a failed webhook request, stored with each attempt and shown to users.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ErrorClass {
    /// The host name did not resolve.
    Dns,
    /// The TCP connection failed (refused, unreachable, reset during connect).
    Connect,
    /// The TLS handshake failed (certificate, protocol).
    Tls,
    /// The connect or whole-request timeout fired.
    Timeout,
    /// The SSRF policy refused the destination; nothing was sent.
    Blocked,
    /// Any other HTTP-level failure (malformed response, connection closed mid-response).
    Http,
    /// Reading the response body failed.
    Body,
}

impl ErrorClass {
    /// The lowercase name (`"dns"`, `"connect"`, ...), as stored and serialised.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Dns => "dns",
            ErrorClass::Connect => "connect",
            ErrorClass::Tls => "tls",
            ErrorClass::Timeout => "timeout",
            ErrorClass::Blocked => "blocked",
            ErrorClass::Http => "http",
            ErrorClass::Body => "body",
        }
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error and its causes, outermost first, looking inside `io::Error` wrappers (whose
/// `source()` skips the error they wrap, e.g. rustls errors).
fn chain<'a>(err: &'a (dyn StdError + 'static)) -> Vec<&'a (dyn StdError + 'static)> {
    let mut out = Vec::new();
    let mut next = Some(err);
    while let Some(e) = next {
        out.push(e);
        if out.len() >= 32 {
            break;
        }
        next = match e.downcast_ref::<io::Error>().and_then(io::Error::get_ref) {
            Some(inner) => Some(inner as &(dyn StdError + 'static)),
            None => e.source(),
        };
    }
    out
}

/// Classifies a reqwest error by walking its cause chain: policy refusal, then DNS failure,
/// then timeout, TLS, connect, body, else HTTP.
///
/// A DNS failure wins over a timeout when the resolver itself gave up, since "dns" tells the
/// user more than "timeout".
pub fn classify(err: &reqwest::Error) -> ErrorClass {
    let causes = chain(err);
    if causes.iter().any(|e| e.is::<Blocked>()) {
        return ErrorClass::Blocked;
    }
    // hyper-util wraps resolver errors in a private `ConnectError` that displays "dns error".
    if causes
        .iter()
        .any(|e| e.is::<DnsFailure>() || e.is::<NetError>() || e.to_string() == "dns error")
    {
        return ErrorClass::Dns;
    }
    if err.is_timeout() || causes.iter().any(|e| is_timeout_io(*e)) {
        return ErrorClass::Timeout;
    }
    if causes.iter().any(|e| e.is::<rustls::Error>()) {
        return ErrorClass::Tls;
    }
    if err.is_connect() {
        return ErrorClass::Connect;
    }
    if err.is_body() || err.is_decode() {
        return ErrorClass::Body;
    }
    ErrorClass::Http
}

fn is_timeout_io(e: &(dyn StdError + 'static)) -> bool {
    e.downcast_ref::<io::Error>()
        .is_some_and(|io| io.kind() == io::ErrorKind::TimedOut)
}

/// A one-line description of `err` with its causes (`outer: cause: root`), for attempt records
/// and logs. The URL is reduced to its origin, because paths and queries often carry tokens.
pub fn describe(err: &reqwest::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for e in chain(err) {
        let mut msg = e.to_string();
        if let Some(url) = err.url() {
            let origin = url.origin().ascii_serialization();
            msg = msg.replace(url.as_str(), &origin);
        }
        // Wrappers often repeat their cause (io::Error displays the error it wraps).
        if !msg.is_empty() && !parts.last().is_some_and(|last| last.contains(&msg)) {
            parts.push(msg);
        }
    }
    parts.join(": ")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // unwrap is the assertion in tests
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use hickory_resolver::config::{ConnectionConfig, NameServerConfig};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, UdpSocket};

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    // -- address table ------------------------------------------------------------------------

    #[test]
    fn forbidden_ipv4() {
        for a in [
            "0.0.0.0",
            "0.1.2.3",
            "127.0.0.1",
            "127.255.255.254",
            "10.0.0.1",
            "10.255.255.255",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.0.1",
            "192.168.255.255",
            "169.254.169.254",
            "169.254.0.1",
            "100.64.0.1",
            "100.127.255.255",
            "192.0.0.1",
            "192.0.0.170",
            "192.0.2.1",
            "198.51.100.7",
            "203.0.113.9",
            "198.18.0.1",
            "198.19.255.255",
            "192.88.99.1",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "250.1.2.3",
            "255.255.255.255",
        ] {
            assert!(is_forbidden(ip(a)), "{a} should be forbidden");
        }
        assert_eq!(
            forbidden_reason(ip("255.255.255.255")).unwrap(),
            "broadcast (255.255.255.255)"
        );
        assert!(forbidden_reason(ip("169.254.169.254"))
            .unwrap()
            .contains("link-local"));
    }

    #[test]
    fn public_ipv4_allowed() {
        for a in [
            "8.8.8.8",
            "1.1.1.1",
            "93.184.216.34",
            "9.255.255.255",
            "11.0.0.0",
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "169.253.255.255",
            "192.0.1.0",
            "192.167.255.255",
            "198.17.255.255",
            "198.20.0.0",
            "223.255.255.255",
        ] {
            assert!(!is_forbidden(ip(a)), "{a} should be allowed");
        }
    }

    #[test]
    fn forbidden_ipv6() {
        for a in [
            "::",
            "::1",
            "fe80::1",
            "febf:ffff::1",
            "fc00::1",
            "fd12:3456:789a::1",
            "ff02::1",
            "ff05::1:3",
            "2001:db8::1",
            "2001:db8:ffff::1",
            "3fff::1",
            "100::1",
            "2001::1",
            "2001:2::1",
            "fec0::1",
            "64:ff9b:1::a00:1",
            // embedded IPv4 forms of forbidden addresses
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:0.0.0.0",
            "::ffff:0:10.0.0.1",
            "::127.0.0.1",
            "::10.0.0.1",
            "::8.8.8.8",
            "64:ff9b::7f00:1",
            "64:ff9b::10.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
            "2002:a00:1::1",
            "2002:c0a8:101::1",
            // outside 2000::/3
            "4000::1",
            "::2:0:0:1",
        ] {
            assert!(is_forbidden(ip(a)), "{a} should be forbidden");
        }
        let why = forbidden_reason(ip("64:ff9b::7f00:1")).unwrap();
        assert!(why.contains("NAT64") && why.contains("127.0.0.1"), "{why}");
        let why = forbidden_reason(ip("2002:7f00:1::")).unwrap();
        assert!(why.contains("6to4") && why.contains("127.0.0.1"), "{why}");
        let why = forbidden_reason(ip("::ffff:10.0.0.1")).unwrap();
        assert!(
            why.contains("IPv4-mapped") && why.contains("private"),
            "{why}"
        );
    }

    #[test]
    fn public_ipv6_allowed() {
        for a in [
            "2606:4700::1111",
            "2001:4860:4860::8888",
            "2a00:1450:4001::1",
            // embedded public IPv4: allowed (documented choice)
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert!(!is_forbidden(ip(a)), "{a} should be allowed");
        }
    }

    // -- policy -------------------------------------------------------------------------------

    #[test]
    fn policy_allow_list() {
        let none = AddressPolicy::default();
        assert!(!none.permits(ip("127.0.0.1")));
        assert!(none.permits(ip("8.8.8.8")));

        let local = AddressPolicy::parse_cidrs(" 127.0.0.0/8 , ,::1/128,10.1.2.3,").unwrap();
        assert_eq!(local.allowed().len(), 3);
        assert!(local.permits(ip("127.0.0.1")));
        assert!(local.permits(ip("127.9.9.9")));
        assert!(local.permits(ip("::1")));
        assert!(local.permits(ip("::ffff:127.0.0.1")));
        assert!(local.permits(ip("10.1.2.3")));
        assert!(!local.permits(ip("10.1.2.4")));
        assert!(!local.permits(ip("169.254.169.254")));
        assert!(local.permits(ip("8.8.8.8")));
        assert_eq!(
            AddressPolicy::parse_cidrs("").unwrap(),
            AddressPolicy::default()
        );
        assert_eq!(
            AddressPolicy::new(vec!["127.0.0.0/8".parse().unwrap()]),
            AddressPolicy::parse_cidrs("127.0.0.0/8").unwrap()
        );
    }

    #[test]
    fn policy_parse_errors_name_the_entry() {
        for (list, bad) in [
            ("127.0.0.0/8,nope", "nope"),
            ("10.0.0.0/33", "10.0.0.0/33"),
            ("  300.1.1.1 ", "300.1.1.1"),
            ("::1/129", "::1/129"),
        ] {
            let err = AddressPolicy::parse_cidrs(list).unwrap_err();
            assert_eq!(err.entry, bad);
            assert!(err.to_string().contains(&format!("`{bad}`")), "{err}");
        }
    }

    #[test]
    fn check_url_literals_and_schemes() {
        let none = AddressPolicy::default();
        let check = |u: &str| check_url(&none, &Url::parse(u).unwrap());
        for u in [
            "http://127.0.0.1/",
            "http://2130706433/",
            "http://0x7f.1/",
            "http://0177.0.0.1/",
            "http://127.1/",
            "http://[::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:7f00:1]/",
            "https://169.254.169.254/latest/meta-data/",
            "http://10.0.0.1:8080/",
            "http://[fd00::1]/",
            "http://[64:ff9b::7f00:1]/",
            "http://0/",
        ] {
            assert!(
                matches!(check(u), Err(Blocked::Address { .. })),
                "{u}: {:?}",
                check(u)
            );
        }
        assert_eq!(
            check("ftp://example.com/"),
            Err(Blocked::Scheme("ftp".into()))
        );
        assert_eq!(
            check("file:///etc/passwd"),
            Err(Blocked::Scheme("file".into()))
        );
        assert!(matches!(
            check("gopher://127.0.0.1/"),
            Err(Blocked::Scheme(_))
        ));
        assert_eq!(check("https://example.com/hook"), Ok(()));
        assert_eq!(check("http://8.8.8.8/"), Ok(()));
        assert_eq!(check("http://[2606:4700::1111]/"), Ok(()));
        // Names pass here; the resolver judges them.
        assert_eq!(check("http://localhost/"), Ok(()));

        let msg = check("http://0x7f.1/").unwrap_err().to_string();
        assert!(
            msg.contains("127.0.0.1") && msg.contains("loopback"),
            "{msg}"
        );

        let local = AddressPolicy::parse_cidrs("127.0.0.0/8").unwrap();
        assert_eq!(
            check_url(&local, &Url::parse("http://127.0.0.1:9/").unwrap()),
            Ok(())
        );
    }

    #[test]
    fn error_class_names() {
        let all = [
            (ErrorClass::Dns, "dns"),
            (ErrorClass::Connect, "connect"),
            (ErrorClass::Tls, "tls"),
            (ErrorClass::Timeout, "timeout"),
            (ErrorClass::Blocked, "blocked"),
            (ErrorClass::Http, "http"),
            (ErrorClass::Body, "body"),
        ];
        for (class, name) in all {
            assert_eq!(class.as_str(), name);
            assert_eq!(class.to_string(), name);
            assert_eq!(serde_json::to_value(class).unwrap(), name);
            assert_eq!(
                serde_json::from_value::<ErrorClass>(serde_json::json!(name)).unwrap(),
                class
            );
        }
    }

    // -- real sockets -------------------------------------------------------------------------

    /// A loopback HTTP server that counts connections and answers each with `response`.
    struct Server {
        port: u16,
        accepted: Arc<AtomicUsize>,
    }

    impl Server {
        async fn start(response: &'static str) -> Server {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = listener.local_addr().unwrap().port();
            let accepted = Arc::new(AtomicUsize::new(0));
            let counter = accepted.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((mut sock, _)) = listener.accept().await else {
                        return;
                    };
                    counter.fetch_add(1, Ordering::SeqCst);
                    tokio::spawn(async move {
                        let mut buf = Vec::new();
                        let mut chunk = [0u8; 1024];
                        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                            match sock.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        }
                        if response.is_empty() {
                            // Hang: never answer (for timeout tests).
                            tokio::time::sleep(Duration::from_secs(30)).await;
                            return;
                        }
                        let _ = sock.write_all(response.as_bytes()).await;
                        let _ = sock.shutdown().await;
                    });
                }
            });
            Server { port, accepted }
        }

        fn connections(&self) -> usize {
            self.accepted.load(Ordering::SeqCst)
        }
    }

    const OK: &str = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok";
    const REDIRECT: &str = "HTTP/1.1 302 Found\r\nlocation: http://10.0.0.1/\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";

    /// What the delivery code does: check the URL, then send; errors reduced to their class.
    async fn attempt(
        client: &reqwest::Client,
        policy: &AddressPolicy,
        url: &str,
    ) -> Result<reqwest::Response, ErrorClass> {
        let url = Url::parse(url).unwrap();
        check_url(policy, &url).map_err(|_| ErrorClass::Blocked)?;
        client.get(url).send().await.map_err(|e| classify(&e))
    }

    fn client(policy: &AddressPolicy) -> reqwest::Client {
        build_client(
            policy.clone(),
            Duration::from_secs(2),
            Duration::from_secs(5),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn internal_destinations_are_blocked_without_connecting() {
        let server = Server::start(OK).await;
        let port = server.port;
        let policy = AddressPolicy::default();
        let client = client(&policy);
        for url in [
            format!("http://127.0.0.1:{port}/"),
            format!("http://[::1]:{port}/"),
            format!("http://[::ffff:127.0.0.1]:{port}/"),
            "http://169.254.169.254/latest/meta-data/".to_owned(),
            "http://10.0.0.1/".to_owned(),
            "http://100.64.0.1/".to_owned(),
            format!("http://2130706433:{port}/"),
            format!("http://0x7f.1:{port}/"),
            format!("http://localhost:{port}/"),
            format!("http://LOCALHOST.:{port}/"),
            format!("http://api.localhost:{port}/"),
        ] {
            let res = attempt(&client, &policy, &url).await;
            assert_eq!(res.err(), Some(ErrorClass::Blocked), "{url}");
        }
        assert_eq!(server.connections(), 0);
    }

    #[tokio::test]
    async fn resolver_refuses_localhost_through_reqwest() {
        // No check_url here: the refusal comes from PolicyResolver inside reqwest.
        let server = Server::start(OK).await;
        let client = client(&AddressPolicy::default());
        let url = format!("http://localhost:{}/hook?token=s3cret", server.port);
        let err = client.get(&url).send().await.unwrap_err();
        assert_eq!(classify(&err), ErrorClass::Blocked);
        let text = describe(&err);
        assert!(
            text.contains("localhost") && text.contains("loopback"),
            "{text}"
        );
        assert!(
            !text.contains("s3cret") && !text.contains("/hook"),
            "{text}"
        );
        assert_eq!(server.connections(), 0);
    }

    #[tokio::test]
    async fn allow_listed_loopback_succeeds() {
        let server = Server::start(OK).await;
        let policy = AddressPolicy::parse_cidrs("127.0.0.0/8").unwrap();
        let client = client(&policy);
        for host in ["127.0.0.1", "localhost"] {
            let url = format!("http://{host}:{}/hook", server.port);
            let res = attempt(&client, &policy, &url).await.unwrap();
            assert_eq!(res.status(), 200);
            assert_eq!(res.text().await.unwrap(), "ok");
        }
        assert_eq!(server.connections(), 2);
    }

    #[tokio::test]
    async fn user_agent_is_sent() {
        // A server that echoes the request head back as the body.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 1024];
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = sock.read(&mut chunk).await.unwrap();
                buf.extend_from_slice(&chunk[..n]);
            }
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                buf.len()
            );
            sock.write_all(head.as_bytes()).await.unwrap();
            sock.write_all(&buf).await.unwrap();
        });
        let policy = AddressPolicy::parse_cidrs("127.0.0.1").unwrap();
        let res = attempt(
            &client(&policy),
            &policy,
            &format!("http://127.0.0.1:{port}/"),
        )
        .await
        .unwrap();
        let echoed = res.text().await.unwrap().to_ascii_lowercase();
        assert!(
            echoed.contains(&format!("user-agent: {USER_AGENT}")),
            "{echoed}"
        );
        assert!(USER_AGENT.starts_with("llmflow-webhook/"));
    }

    #[tokio::test]
    async fn redirects_are_not_followed() {
        let server = Server::start(REDIRECT).await;
        let policy = AddressPolicy::parse_cidrs("127.0.0.0/8").unwrap();
        let client = client(&policy);
        let res = attempt(
            &client,
            &policy,
            &format!("http://127.0.0.1:{}/", server.port),
        )
        .await
        .unwrap();
        assert_eq!(res.status(), 302);
        assert_eq!(res.headers()["location"], "http://10.0.0.1/");
        assert_eq!(server.connections(), 1);
    }

    #[tokio::test]
    async fn literal_ips_bypass_the_resolver_so_check_url_is_required() {
        // Documents why `check_url` exists: reqwest does not consult the resolver for IP
        // literals. (Loopback only; no other address is ever contacted.)
        let server = Server::start(OK).await;
        let client = client(&AddressPolicy::default());
        let res = client
            .get(format!("http://127.0.0.1:{}/", server.port))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(server.connections(), 1);
    }

    #[tokio::test]
    async fn connection_refused_is_connect() {
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            l.local_addr().unwrap().port()
        };
        let policy = AddressPolicy::parse_cidrs("127.0.0.0/8").unwrap();
        let url = format!("http://127.0.0.1:{port}/hook?token=s3cret");
        let err = client(&policy).get(&url).send().await.unwrap_err();
        assert_eq!(classify(&err), ErrorClass::Connect);
        let text = describe(&err);
        assert!(text.starts_with("error sending request"), "{text}");
        assert!(text.contains(&format!("http://127.0.0.1:{port}")), "{text}");
        assert!(!text.contains("s3cret"), "{text}");
    }

    #[tokio::test]
    async fn slow_response_is_timeout() {
        let server = Server::start("").await;
        let policy = AddressPolicy::parse_cidrs("127.0.0.0/8").unwrap();
        let client = build_client(
            policy.clone(),
            Duration::from_secs(2),
            Duration::from_millis(300),
        )
        .unwrap();
        let res = attempt(
            &client,
            &policy,
            &format!("http://127.0.0.1:{}/", server.port),
        )
        .await;
        assert_eq!(res.err(), Some(ErrorClass::Timeout));
        assert_eq!(server.connections(), 1);
    }

    #[tokio::test]
    async fn tls_to_plain_http_is_tls() {
        // A plain-HTTP server answers the TLS ClientHello with an HTTP response.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut chunk = [0u8; 512];
            let _ = sock.read(&mut chunk).await;
            let _ = sock.write_all(OK.as_bytes()).await;
        });
        let policy = AddressPolicy::parse_cidrs("127.0.0.0/8").unwrap();
        let url = format!("https://127.0.0.1:{port}/");
        let err = client(&policy).get(&url).send().await.unwrap_err();
        assert_eq!(classify(&err), ErrorClass::Tls, "{}", describe(&err));
    }

    #[tokio::test]
    async fn truncated_body_is_body() {
        let server = Server::start(
            "HTTP/1.1 200 OK\r\ncontent-length: 100\r\nconnection: close\r\n\r\nshort",
        )
        .await;
        let policy = AddressPolicy::parse_cidrs("127.0.0.0/8").unwrap();
        let res = attempt(
            &client(&policy),
            &policy,
            &format!("http://127.0.0.1:{}/", server.port),
        )
        .await
        .unwrap();
        let err = res.text().await.unwrap_err();
        assert_eq!(classify(&err), ErrorClass::Body, "{}", describe(&err));
    }

    #[tokio::test]
    async fn garbage_response_is_http() {
        let server = Server::start("SSH-2.0-OpenSSH_9.6\r\n\r\n").await;
        let policy = AddressPolicy::parse_cidrs("127.0.0.0/8").unwrap();
        let res = attempt(
            &client(&policy),
            &policy,
            &format!("http://127.0.0.1:{}/", server.port),
        )
        .await;
        assert_eq!(res.err(), Some(ErrorClass::Http));
    }

    // -- resolver against a fake DNS server on loopback ---------------------------------------

    /// A UDP DNS server on 127.0.0.1 answering A/AAAA queries from `zone`; other names get
    /// NXDOMAIN. Returns its port.
    async fn fake_dns(zone: HashMap<&'static str, Vec<IpAddr>>) -> u16 {
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = sock.local_addr().unwrap().port();
        tokio::spawn(async move {
            let mut buf = [0u8; 1500];
            loop {
                let Ok((n, peer)) = sock.recv_from(&mut buf).await else {
                    return;
                };
                let query = &buf[..n];
                // Question: labels from offset 12 to a zero byte, then QTYPE and QCLASS.
                let mut pos = 12;
                let mut labels = Vec::new();
                while query[pos] != 0 {
                    let len = query[pos] as usize;
                    labels
                        .push(String::from_utf8_lossy(&query[pos + 1..pos + 1 + len]).to_string());
                    pos += 1 + len;
                }
                let qend = pos + 5;
                let qtype = u16::from_be_bytes([query[pos + 1], query[pos + 2]]);
                let name = labels.join(".").to_ascii_lowercase();
                let answers: Vec<IpAddr> = zone
                    .get(name.as_str())
                    .map(|ips| {
                        ips.iter()
                            .copied()
                            .filter(|ip| {
                                (qtype == 1) == ip.is_ipv4() && (qtype == 1 || qtype == 28)
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let rcode = if zone.contains_key(name.as_str()) {
                    0
                } else {
                    3
                };
                let mut resp = Vec::new();
                resp.extend_from_slice(&query[0..2]);
                resp.extend_from_slice(&[0x81, 0x80 | rcode]);
                resp.extend_from_slice(&[0, 1]);
                resp.extend_from_slice(&(answers.len() as u16).to_be_bytes());
                resp.extend_from_slice(&[0, 0, 0, 0]);
                resp.extend_from_slice(&query[12..qend]);
                for ip in answers {
                    resp.extend_from_slice(&[0xc0, 0x0c]);
                    match ip {
                        IpAddr::V4(v4) => {
                            resp.extend_from_slice(&[0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
                            resp.extend_from_slice(&v4.octets());
                        }
                        IpAddr::V6(v6) => {
                            resp.extend_from_slice(&[0, 28, 0, 1, 0, 0, 0, 60, 0, 16]);
                            resp.extend_from_slice(&v6.octets());
                        }
                    }
                }
                let _ = sock.send_to(&resp, peer).await;
            }
        });
        port
    }

    async fn resolver_with_fake_dns(policy: AddressPolicy) -> PolicyResolver {
        let zone = HashMap::from([
            ("internal.test", vec![ip("10.0.0.1")]),
            ("metadata.test", vec![ip("169.254.169.254"), ip("fd00::1")]),
            ("mixed.test", vec![ip("10.0.0.1"), ip("127.0.0.1")]),
            ("public.test", vec![ip("8.8.8.8"), ip("2606:4700::1111")]),
            ("empty.test", vec![]),
        ]);
        let port = fake_dns(zone).await;
        let mut conn = ConnectionConfig::udp();
        conn.port = port;
        let server = NameServerConfig::new(IpAddr::V4(Ipv4Addr::LOCALHOST), true, vec![conn]);
        let mut opts = ResolverOpts::default();
        opts.timeout = Duration::from_secs(2);
        opts.attempts = 1;
        opts.cache_size = 0;
        PolicyResolver::with_config(
            policy,
            ResolverConfig::from_name_servers(vec![server]),
            opts,
        )
    }

    #[tokio::test]
    async fn resolver_filters_dns_answers() {
        let resolver = resolver_with_fake_dns(AddressPolicy::default()).await;

        let mut public = resolver.lookup("public.test").await.unwrap();
        public.sort();
        assert_eq!(public, vec![ip("8.8.8.8"), ip("2606:4700::1111")]);

        for host in ["internal.test", "metadata.test", "mixed.test"] {
            match resolver.lookup(host).await {
                Err(LookupError::Blocked(Blocked::Host { host: h, rejected })) => {
                    assert_eq!(h, host);
                    assert!(!rejected.is_empty());
                }
                other => panic!("{host}: {other:?}"),
            }
        }
        let msg = resolver
            .lookup("metadata.test")
            .await
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("169.254.169.254") && msg.contains("fd00::1"),
            "{msg}"
        );

        let nx = resolver
            .lookup("nxdomain.test")
            .await
            .unwrap_err()
            .to_string();
        assert_eq!(
            nx,
            "could not resolve webhook host `nxdomain.test`: no such host (NXDOMAIN)"
        );
        assert!(matches!(
            resolver.lookup("empty.test").await,
            Err(LookupError::Dns(_))
        ));
        // localhost never reaches DNS (the fake server does not know it).
        assert!(matches!(
            resolver.lookup("localhost").await,
            Err(LookupError::Blocked(_))
        ));
    }

    #[tokio::test]
    async fn resolver_keeps_only_permitted_answers() {
        let server = Server::start(OK).await;
        let policy = AddressPolicy::parse_cidrs("127.0.0.0/8").unwrap();
        let resolver = resolver_with_fake_dns(policy.clone()).await;
        assert_eq!(
            resolver.lookup("mixed.test").await.unwrap(),
            vec![ip("127.0.0.1")]
        );

        let client =
            build_client_with_resolver(resolver, Duration::from_secs(2), Duration::from_secs(5))
                .unwrap();
        // mixed.test -> {10.0.0.1, 127.0.0.1}: only the allowed loopback address is dialled.
        let res = attempt(
            &client,
            &policy,
            &format!("http://mixed.test:{}/", server.port),
        )
        .await
        .unwrap();
        assert_eq!(res.status(), 200);
        // internal.test -> 10.0.0.1 only: refused before any connection.
        let res = attempt(
            &client,
            &policy,
            &format!("http://internal.test:{}/", server.port),
        )
        .await;
        assert_eq!(res.err(), Some(ErrorClass::Blocked));
        // An unknown name is a DNS failure.
        let err = client
            .get(format!("http://nxdomain.test:{}/", server.port))
            .send()
            .await
            .unwrap_err();
        assert_eq!(classify(&err), ErrorClass::Dns, "{}", describe(&err));
        assert!(
            describe(&err).contains("nxdomain.test"),
            "{}",
            describe(&err)
        );
        assert_eq!(server.connections(), 1);
    }

    #[test]
    fn client_builds_outside_a_runtime() {
        let client = build_client(
            AddressPolicy::default(),
            Duration::from_secs(5),
            Duration::from_secs(15),
        );
        assert!(client.is_ok());
        let resolver = PolicyResolver::new(AddressPolicy::default());
        assert!(format!("{resolver:?}").contains("PolicyResolver"));
    }
}
