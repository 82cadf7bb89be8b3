//! Standard Webhooks v1 signatures: keys, the `webhook-signature` value, the three headers and
//! message ids. See `/work/shared/notes/webhooks.md` for the rules this follows.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, InvalidHeaderValue};
use secrecy::{ExposeSecret, SecretSlice};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Header carrying the delivery id (the receiver's idempotency key; same on every retry).
pub const HEADER_ID: &str = "webhook-id";
/// Header carrying the integer Unix seconds at which this attempt was signed.
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";
/// Header carrying the space-separated `v1,<base64>` signatures.
pub const HEADER_SIGNATURE: &str = "webhook-signature";

/// Prefix that marks a base64-encoded secret, as shown to users (`whsec_<base64>`).
const SECRET_PREFIX: &str = "whsec_";

/// Standard base64 alphabet; padding may be present or omitted (some tools strip `=`).
const SECRET_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why a webhook secret was rejected. Messages never contain the secret itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The secret (or the part after `whsec_`) is empty.
    #[error("webhook secret is empty")]
    Empty,
    /// The part after `whsec_` is not valid standard base64.
    #[error("webhook secret after `whsec_` is not valid base64: {0}")]
    InvalidBase64(String),
}

/// An HMAC-SHA256 key for signing webhooks; the bytes are zeroed on drop and never printed.
///
/// Parsing rule ([`SigningKey::parse`]): a secret starting with `whsec_` is the standard-alphabet
/// base64 of the key bytes (padding optional) and must decode to at least one byte; any other
/// non-empty string is used as its raw UTF-8 bytes, unchanged (no trimming, no decoding).
#[derive(Clone)]
pub struct SigningKey {
    bytes: SecretSlice<u8>,
}

impl SigningKey {
    /// Parses a secret by the rule documented on [`SigningKey`].
    pub fn parse(secret: &str) -> Result<SigningKey, KeyError> {
        let bytes = match secret.strip_prefix(SECRET_PREFIX) {
            Some(encoded) => SECRET_BASE64
                .decode(encoded)
                .map_err(|err| KeyError::InvalidBase64(describe_base64_error(&err)))?,
            None => secret.as_bytes().to_vec(),
        };
        if bytes.is_empty() {
            return Err(KeyError::Empty);
        }
        Ok(SigningKey {
            bytes: SecretSlice::from(bytes),
        })
    }

    /// Wraps raw key bytes (for keys that come from a database rather than a `whsec_` string).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<SigningKey, KeyError> {
        if bytes.is_empty() {
            return Err(KeyError::Empty);
        }
        Ok(SigningKey {
            bytes: SecretSlice::from(bytes),
        })
    }

    /// Renders the key as `whsec_<base64>`, the form shown to the receiver's developer once.
    pub fn to_whsec(&self) -> String {
        format!(
            "{SECRET_PREFIX}{}",
            STANDARD.encode(self.bytes.expose_secret())
        )
    }

    /// One `v1,<base64>` signature of `"{msg_id}.{timestamp}.{body}"` with this key.
    fn signature(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac = match HmacSha256::new_from_slice(self.bytes.expose_secret()) {
            Ok(mac) => mac,
            // RFC 2104: HMAC takes keys of any length (long keys are hashed first).
            Err(_) => unreachable!("HMAC-SHA256 accepts keys of any length"),
        };
        mac.update(msg_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

/// Describes a base64 error by position only; `DecodeError`'s own message includes the byte.
fn describe_base64_error(err: &base64::DecodeError) -> String {
    match err {
        base64::DecodeError::InvalidByte(offset, _) => {
            format!("invalid character at offset {offset}")
        }
        base64::DecodeError::InvalidLength(len) => format!("invalid length {len}"),
        base64::DecodeError::InvalidLastSymbol(offset, _) => {
            format!("invalid last character at offset {offset}")
        }
        base64::DecodeError::InvalidPadding => "invalid padding".to_owned(),
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey(<redacted>)")
    }
}

/// The `webhook-signature` value: one `v1,<base64>` per key, space-separated, in key order.
///
/// Pass the current key first and, during rotation, the previous key second, so receivers holding
/// either key accept the message. An empty `keys` slice gives an empty string, which no receiver
/// accepts; callers must supply at least one key.
pub fn sign(keys: &[SigningKey], msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    keys.iter()
        .map(|key| key.signature(msg_id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The three Standard Webhooks headers for one attempt; build a fresh one per attempt and replay,
/// because verifiers reject timestamps more than 300 s from their clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookHeaders {
    /// `webhook-id`: the delivery id, identical on every retry and replay.
    pub id: String,
    /// `webhook-timestamp`: Unix seconds of this attempt.
    pub timestamp: i64,
    /// `webhook-signature`: the output of [`sign`].
    pub signature: String,
}

impl WebhookHeaders {
    /// Signs `body` for `msg_id` at `timestamp` (Unix seconds) with every key in `keys`.
    pub fn new(keys: &[SigningKey], msg_id: &str, timestamp: i64, body: &[u8]) -> WebhookHeaders {
        WebhookHeaders {
            id: msg_id.to_owned(),
            timestamp,
            signature: sign(keys, msg_id, timestamp, body),
        }
    }

    /// Like [`WebhookHeaders::new`] with the current system time as the timestamp.
    pub fn now(keys: &[SigningKey], msg_id: &str, body: &[u8]) -> WebhookHeaders {
        WebhookHeaders::new(keys, msg_id, unix_now(), body)
    }

    /// The `(name, value)` pairs in the order `webhook-id`, `webhook-timestamp`,
    /// `webhook-signature`.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, String)> {
        [
            (HEADER_ID, self.id.clone()),
            (HEADER_TIMESTAMP, self.timestamp.to_string()),
            (HEADER_SIGNATURE, self.signature.clone()),
        ]
        .into_iter()
    }

    /// The headers as a reqwest/http `HeaderMap`; fails only if the id holds characters that
    /// are not allowed in a header value (ids from [`new_message_id`] never do).
    pub fn to_header_map(&self) -> Result<HeaderMap, InvalidHeaderValue> {
        let mut map = HeaderMap::with_capacity(3);
        for (name, value) in self.iter() {
            map.insert(
                HeaderName::from_static(name),
                HeaderValue::from_str(&value)?,
            );
        }
        Ok(map)
    }
}

/// Current Unix time in whole seconds (0 if the clock is before 1970).
fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// KSUID epoch (2014-05-13T16:53:20Z) in Unix seconds.
const KSUID_EPOCH: u64 = 1_400_000_000;
/// Base62 digits in KSUID order: `0-9`, `A-Z`, `a-z`.
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// A 160-bit KSUID is always 27 base62 characters (zero-padded).
const KSUID_LEN: usize = 27;

/// A new delivery id: `msg_` followed by a 27-character KSUID (base62 of a 4-byte big-endian
/// timestamp in seconds since 2014-05-13 and 16 random bytes), the same shape Svix uses.
///
/// Ids sort by creation second and carry 128 random bits, so they are unguessable and unique.
pub fn new_message_id() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    // The 32-bit KSUID clock runs until 2150; saturate rather than wrap after that.
    let ts = u32::try_from(secs.saturating_sub(KSUID_EPOCH)).unwrap_or(u32::MAX);
    let payload: [u8; 16] = rand::random();
    let mut raw = [0u8; 20];
    raw[..4].copy_from_slice(&ts.to_be_bytes());
    raw[4..].copy_from_slice(&payload);
    format!("msg_{}", ksuid_base62(&raw))
}

/// Encodes 20 bytes as 27 base62 digits, most significant first (KSUID string encoding).
fn ksuid_base62(raw: &[u8; 20]) -> String {
    // Repeated division of the big-endian number (in base-2^32 limbs) by 62.
    let mut limbs: Vec<u32> = raw
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let mut digits = [b'0'; KSUID_LEN];
    for slot in digits.iter_mut().rev() {
        let mut rem: u64 = 0;
        for limb in limbs.iter_mut() {
            let acc = (rem << 32) | u64::from(*limb);
            // acc < 62 * 2^32, so the quotient fits in u32.
            *limb = u32::try_from(acc / 62).unwrap_or(u32::MAX);
            rem = acc % 62;
        }
        // rem < 62 by construction.
        *slot = BASE62[usize::try_from(rem).unwrap_or(0)];
    }
    digits.iter().map(|&b| char::from(b)).collect()
}

#[cfg(test)]
#[path = "signing_properties.rs"]
mod properties;

#[cfg(test)]
#[allow(clippy::unwrap_used)] // unwrap is the assertion in tests
mod tests {
    use super::*;

    const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const MSG_ID: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
    const TIMESTAMP: i64 = 1_649_367_553;
    const BODY: &[u8] = br#"{"email":"test@example.com","username":"test_user"}"#;
    const EXPECTED: &str = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";

    fn key(secret: &str) -> SigningKey {
        SigningKey::parse(secret).unwrap()
    }

    fn header_map(headers: &WebhookHeaders) -> HeaderMap {
        headers.to_header_map().unwrap()
    }

    /// Decodes a 27-char KSUID back into its 20 bytes (test-only inverse of `ksuid_base62`).
    fn ksuid_decode(s: &str) -> [u8; 20] {
        let mut limbs = [0u32; 5];
        for ch in s.bytes() {
            let digit = BASE62.iter().position(|&b| b == ch).unwrap() as u64;
            let mut carry = digit;
            for limb in limbs.iter_mut().rev() {
                let acc = u64::from(*limb) * 62 + carry;
                *limb = acc as u32;
                carry = acc >> 32;
            }
            assert_eq!(carry, 0, "overflow decoding {s}");
        }
        let mut out = [0u8; 20];
        for (i, limb) in limbs.iter().enumerate() {
            out[i * 4..i * 4 + 4].copy_from_slice(&limb.to_be_bytes());
        }
        out
    }

    #[test]
    fn known_answer_vector() {
        assert_eq!(sign(&[key(SECRET)], MSG_ID, TIMESTAMP, BODY), EXPECTED);
        let headers = WebhookHeaders::new(&[key(SECRET)], MSG_ID, TIMESTAMP, BODY);
        assert_eq!(headers.signature, EXPECTED);
        assert_eq!(headers.id, MSG_ID);
        assert_eq!(headers.timestamp, TIMESTAMP);
    }

    #[test]
    fn known_answer_matches_reference_crate() {
        let reference = standardwebhooks::Webhook::new(SECRET).unwrap();
        assert_eq!(reference.sign(MSG_ID, TIMESTAMP, BODY).unwrap(), EXPECTED);
    }

    #[test]
    fn header_pairs_in_order() {
        let headers = WebhookHeaders::new(&[key(SECRET)], MSG_ID, TIMESTAMP, BODY);
        let pairs: Vec<_> = headers.iter().collect();
        assert_eq!(
            pairs,
            vec![
                ("webhook-id", MSG_ID.to_owned()),
                ("webhook-timestamp", "1649367553".to_owned()),
                ("webhook-signature", EXPECTED.to_owned()),
            ]
        );
        let map = header_map(&headers);
        assert_eq!(map.len(), 3);
        assert_eq!(map["webhook-timestamp"], "1649367553");
    }

    #[test]
    fn fresh_header_verifies_with_standardwebhooks() {
        let headers = WebhookHeaders::now(&[key(SECRET)], &new_message_id(), BODY);
        let verifier = standardwebhooks::Webhook::new(SECRET).unwrap();
        verifier.verify(BODY, &header_map(&headers)).unwrap();

        // A different body or a stale timestamp must not verify.
        assert!(verifier
            .verify(br#"{"email":"x"}"#, &header_map(&headers))
            .is_err());
        let stale = WebhookHeaders::new(&[key(SECRET)], &headers.id, unix_now() - 301, BODY);
        assert!(verifier.verify(BODY, &header_map(&stale)).is_err());
    }

    #[test]
    fn rotation_either_key_verifies() {
        let current_secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let previous_secret = SECRET;
        let keys = [key(current_secret), key(previous_secret)];
        let headers = WebhookHeaders::now(&keys, &new_message_id(), BODY);

        let parts: Vec<&str> = headers.signature.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert!(parts.iter().all(|p| p.starts_with("v1,")));
        assert_eq!(
            parts[0],
            sign(&keys[..1], &headers.id, headers.timestamp, BODY)
        );

        let map = header_map(&headers);
        for secret in [current_secret, previous_secret] {
            standardwebhooks::Webhook::new(secret)
                .unwrap()
                .verify(BODY, &map)
                .unwrap();
        }
        let stranger = standardwebhooks::Webhook::new("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
        assert!(stranger.unwrap().verify(BODY, &map).is_err());
    }

    #[test]
    fn raw_secret_uses_utf8_bytes() {
        let raw = "not-base64 secret ✓";
        let headers = WebhookHeaders::now(&[key(raw)], &new_message_id(), BODY);
        standardwebhooks::Webhook::from_bytes(raw.as_bytes().to_vec())
            .unwrap()
            .verify(BODY, &header_map(&headers))
            .unwrap();
        // Same bytes, however they were given, give the same signature.
        let via_bytes = SigningKey::from_bytes(raw.as_bytes().to_vec()).unwrap();
        assert_eq!(
            sign(&[via_bytes], MSG_ID, TIMESTAMP, BODY),
            sign(&[key(raw)], MSG_ID, TIMESTAMP, BODY)
        );
        // A whsec_ secret and its raw decoded bytes are the same key.
        let decoded = STANDARD.decode("C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap();
        let k = SigningKey::from_bytes(decoded).unwrap();
        assert_eq!(
            sign(std::slice::from_ref(&k), MSG_ID, TIMESTAMP, BODY),
            EXPECTED
        );
        assert_eq!(k.to_whsec(), SECRET);
    }

    #[test]
    fn unpadded_base64_accepted() {
        // 23 bytes -> base64 needs one `=`; accept it with or without.
        let padded = format!("whsec_{}", STANDARD.encode([7u8; 23]));
        assert!(padded.ends_with('='));
        let unpadded = padded.trim_end_matches('=');
        assert_eq!(
            sign(&[key(&padded)], MSG_ID, TIMESTAMP, BODY),
            sign(&[key(unpadded)], MSG_ID, TIMESTAMP, BODY)
        );
    }

    #[test]
    fn bad_secrets_are_errors() {
        assert!(matches!(
            SigningKey::parse("whsec_not*base64!"),
            Err(KeyError::InvalidBase64(_))
        ));
        // URL-safe alphabet is not the standard alphabet.
        assert!(matches!(
            SigningKey::parse("whsec_ab-_"),
            Err(KeyError::InvalidBase64(_))
        ));
        assert_eq!(SigningKey::parse("whsec_").unwrap_err(), KeyError::Empty);
        assert_eq!(SigningKey::parse("").unwrap_err(), KeyError::Empty);
        assert_eq!(
            SigningKey::from_bytes(Vec::new()).unwrap_err(),
            KeyError::Empty
        );
        // The error message does not echo the secret.
        let err = SigningKey::parse("whsec_sup3r$ecret")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "webhook secret after `whsec_` is not valid base64: invalid character at offset 5"
        );
    }

    #[test]
    fn debug_does_not_print_key() {
        let k = key("whsec_c2VjcmV0LWtleS1ieXRlcw==");
        let shown = format!("{k:?} {:?}", vec![k.clone()]);
        assert!(!shown.contains("c2VjcmV0"), "{shown}");
        assert!(!shown.contains("secret-key-bytes"), "{shown}");
        assert!(!shown.contains("115"), "{shown}"); // no byte list either ('s' = 115)
        assert!(shown.contains("redacted"));
    }

    #[test]
    fn empty_key_list_signs_nothing() {
        assert_eq!(sign(&[], MSG_ID, TIMESTAMP, BODY), "");
    }

    #[test]
    fn message_ids_are_ksuids() {
        let a = new_message_id();
        let b = new_message_id();
        assert_ne!(a, b);
        for id in [&a, &b] {
            let ksuid = id.strip_prefix("msg_").unwrap();
            assert_eq!(ksuid.len(), 27, "{id}");
            assert!(ksuid.bytes().all(|c| c.is_ascii_alphanumeric()), "{id}");
            let raw = ksuid_decode(ksuid);
            let ts = u64::from(u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]));
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_secs();
            assert!((now - (ts + KSUID_EPOCH)) <= 2, "{id} has timestamp {ts}");
        }
    }

    #[test]
    fn ksuid_encoding_matches_reference_values() {
        // From the segmentio/ksuid README.
        let raw: [u8; 20] = [
            0x06, 0x69, 0xF7, 0xEF, 0xB5, 0xA1, 0xCD, 0x34, 0xB5, 0xF9, 0x9D, 0x11, 0x54, 0xFB,
            0x68, 0x53, 0x34, 0x5C, 0x97, 0x35,
        ];
        assert_eq!(ksuid_base62(&raw), "0ujtsYcgvSTl8PAuAdqWYSMnLOv");
        assert_eq!(ksuid_decode("0ujtsYcgvSTl8PAuAdqWYSMnLOv"), raw);
        assert_eq!(ksuid_base62(&[0; 20]), "000000000000000000000000000");
        assert_eq!(ksuid_base62(&[0xFF; 20]), "aWgEPTl1tmebfsQzFP4bxwgy80V");
        // The Standard Webhooks example id is a KSUID minted seconds before its timestamp.
        let svix = ksuid_decode("27UH4WbU6Z5A5EzD8u03UvzRbpk");
        let ts = u64::from(u32::from_be_bytes([svix[0], svix[1], svix[2], svix[3]]));
        let diff = (TIMESTAMP as u64).abs_diff(ts + KSUID_EPOCH);
        assert!(diff < 86_400, "svix example KSUID time off by {diff} s");
    }
}
