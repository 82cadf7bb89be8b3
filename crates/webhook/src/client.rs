//! The HTTP client for caller-supplied webhook URLs, which cannot be pointed at private
//! infrastructure (SSRF protection).
//!
//! Two checks are needed because reqwest skips the DNS resolver for IP-literal hosts:
//! [`check_url`](llmflow_netguard::check_url) refuses literal addresses (call it before every
//! request, including replays), and [`PolicyResolver`] drops disallowed addresses that names
//! resolve to. Redirects are never followed and proxies are never used, so the address that was
//! checked is the address that is connected to.

use std::sync::Arc;
use std::time::Duration;

use llmflow_netguard::AddressPolicy;

use crate::resolver::PolicyResolver;

/// `User-Agent` sent with every webhook request.
pub const USER_AGENT: &str = concat!("llmflow-webhook/", env!("CARGO_PKG_VERSION"));

/// A webhook HTTP client: resolves through [`PolicyResolver`] (system DNS), never follows
/// redirects, ignores proxy settings, applies both timeouts and sends [`USER_AGENT`].
///
/// Literal-IP URLs bypass the resolver: pair every request with
/// [`check_url`](llmflow_netguard::check_url).
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
