//! The coarse cause of a failed webhook request, found by walking the error's typed causes,
//! and a one-line description of it that does not leak the URL's path or query.

use std::error::Error as StdError;
use std::fmt;
use std::io;

use llmflow_netguard::Blocked;

use crate::resolver::DnsFailure;

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
    // hyper-util wraps resolver errors in its own `ConnectError`, whose source is the error
    // `PolicyResolver` returned, so the typed cause is in the chain.
    if causes.iter().any(|e| e.is::<DnsFailure>()) {
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
    let origin = err
        .url()
        .map(|url| (url.as_str(), url.origin().ascii_serialization()));
    join_causes(err, |msg| match &origin {
        Some((url, origin)) => msg.replace(url, origin),
        None => msg,
    })
}

/// Any error with its causes on one line (`outer: cause: root`), for logs.
pub(crate) fn describe_chain(err: &(dyn StdError + 'static)) -> String {
    join_causes(err, |msg| msg)
}

fn join_causes(err: &(dyn StdError + 'static), rewrite: impl Fn(String) -> String) -> String {
    let mut parts: Vec<String> = Vec::new();
    for e in chain(err) {
        let msg = rewrite(e.to_string());
        // Wrappers often repeat their cause (io::Error displays the error it wraps).
        if !msg.is_empty() && !parts.last().is_some_and(|last| last.contains(&msg)) {
            parts.push(msg);
        }
    }
    parts.join(": ")
}
