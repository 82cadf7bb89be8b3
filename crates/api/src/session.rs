//! The dashboard's session cookie: `v1.<expires>.<signature>`, the signature an HMAC-SHA256 of
//! the expiry under the admin key. Nothing else is stored: changing the admin key ends every
//! session, and the key itself never leaves the login form's POST body.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The cookie's name.
pub const COOKIE: &str = "llmflow_session";
/// How long a session lasts.
pub const LIFETIME: chrono::Duration = chrono::Duration::hours(12);

fn mac(key: &str, expires: i64) -> Hmac<Sha256> {
    // HMAC takes a key of any length.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(b"llmflow-dashboard-session:v1:");
    mac.update(expires.to_string().as_bytes());
    mac
}

/// A session value valid until `now + LIFETIME`.
pub fn issue(key: &str, now: DateTime<Utc>) -> String {
    let expires = (now + LIFETIME).timestamp();
    let tag = mac(key, expires).finalize().into_bytes();
    format!("v1.{expires}.{}", URL_SAFE_NO_PAD.encode(tag))
}

/// The value was issued under `key` and has not expired (compared in constant time).
pub fn verify(key: &str, value: &str, now: DateTime<Utc>) -> bool {
    let mut parts = value.splitn(3, '.');
    let (Some("v1"), Some(expires), Some(tag)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let (Ok(expires), Ok(tag)) = (expires.parse::<i64>(), URL_SAFE_NO_PAD.decode(tag)) else {
        return false;
    };
    expires > now.timestamp() && mac(key, expires).verify_slice(&tag).is_ok()
}

/// An HMAC of `message` under `key`, hex: binds a bulk preview to what it counted.
pub fn sign(key: &str, message: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(b"llmflow-bulk:v1:");
    mac.update(message);
    URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_verifies_under_its_key_until_it_expires() {
        let now = Utc::now();
        let value = issue("admin-key", now);
        assert!(verify("admin-key", &value, now));
        assert!(!verify("other-key", &value, now));
        assert!(!verify("admin-key", &value, now + LIFETIME));
        let (head, tag) = value.rsplit_once('.').expect("three parts");
        let later = head.replace("v1.", "v1.9");
        assert!(!verify("admin-key", &format!("{later}.{tag}"), now));
        for junk in [
            "",
            "v1",
            "v1..",
            "v2.1.x",
            "v1.abc.def",
            "v1.99999999999.%%%",
        ] {
            assert!(!verify("admin-key", junk, now), "{junk}");
        }
    }
}
