//! A DNS resolver for webhook destinations that keeps only the addresses the address policy
//! permits, at connect time, so DNS rebinding cannot slip past an earlier check.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;

use hickory_resolver::config::{ResolverConfig, ResolverOpts, CLOUDFLARE};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::NetError;
use hickory_resolver::TokioResolver;
use llmflow_netguard::{AddressPolicy, Blocked};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

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
            tracing::debug!(host, ?rejected, "dropped disallowed addresses");
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
