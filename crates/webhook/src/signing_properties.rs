//! Properties of the signatures, checked against the reference `standardwebhooks` crate: every
//! signed message verifies, and a message changed in any byte never does.

use proptest::prelude::*;

use super::*;

/// A message: the key bytes, the message id, and the body.
fn messages() -> impl Strategy<Value = (Vec<u8>, String, Vec<u8>)> {
    (
        proptest::collection::vec(any::<u8>(), 1..64),
        prop_oneof![
            Just(()).prop_map(|()| new_message_id()),
            "[A-Za-z0-9_.:-]{1,40}",
        ],
        // Bodies are JSON text: UTF-8, as the reference verifier requires.
        prop_oneof![any::<String>(), "[ -~\n]{0,300}"].prop_map(String::into_bytes),
    )
}

fn verifier(key: &[u8]) -> standardwebhooks::Webhook {
    standardwebhooks::Webhook::from_bytes(key.to_vec()).expect("a non-empty key")
}

fn signed(key: &[u8], id: &str, body: &[u8]) -> WebhookHeaders {
    let key = SigningKey::from_bytes(key.to_vec()).expect("a non-empty key");
    WebhookHeaders::now(&[key], id, body)
}

fn header_map(headers: &WebhookHeaders) -> HeaderMap {
    headers.to_header_map().expect("header-safe values")
}

proptest! {
    #[test]
    fn every_signed_message_verifies((key, id, body) in messages()) {
        let headers = signed(&key, &id, &body);
        prop_assert!(verifier(&key).verify(&body, &header_map(&headers)).is_ok());
    }

    /// Any changed body byte, or a byte added or removed, fails verification.
    #[test]
    fn a_changed_body_never_verifies(
        (key, id, body) in messages(),
        at in any::<prop::sample::Index>(),
        flip in 1u8..=255,
        extra in any::<u8>(),
    ) {
        let headers = header_map(&signed(&key, &id, &body));
        let check = verifier(&key);
        if !body.is_empty() {
            // An ASCII byte becomes another ASCII byte, so the body stays text.
            let mut changed = body.clone();
            let i = at.index(body.len());
            changed[i] = if changed[i].is_ascii() {
                (changed[i] + flip % 127 + 1) % 128
            } else {
                changed[i] ^ flip
            };
            prop_assert!(check.verify(&changed, &headers).is_err());
            prop_assert!(check.verify(&body[..body.len() - 1], &headers).is_err());
        }
        let mut longer = body.clone();
        longer.push(extra);
        prop_assert!(check.verify(&longer, &headers).is_err());
    }

    /// A changed byte of the message id, the signature, or the key fails verification too.
    #[test]
    fn a_changed_id_signature_or_key_never_verifies(
        (key, id, body) in messages(),
        at in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let headers = signed(&key, &id, &body);
        let check = verifier(&key);

        let mut id_bytes = headers.id.clone().into_bytes();
        let i = at.index(id_bytes.len());
        id_bytes[i] = id_bytes[i].wrapping_add(flip) % 128;
        if let Ok(changed_id) = String::from_utf8(id_bytes) {
            let changed = WebhookHeaders { id: changed_id, ..headers.clone() };
            if changed.id != headers.id {
                if let Ok(map) = changed.to_header_map() {
                    prop_assert!(check.verify(&body, &map).is_err());
                }
            }
        }

        // The signature's base64 digest (after `v1,`), one character replaced by another
        // base64 digit. The last digit before the `=` padding is left alone: two of its bits
        // carry nothing, so some changes of it decode to the same digest.
        let digest_start = "v1,".len();
        let mut signature = headers.signature.clone().into_bytes();
        let digits = signature.len() - digest_start - 2;
        let i = digest_start + at.index(digits);
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let current = alphabet.iter().position(|&c| c == signature[i]).unwrap_or(0);
        signature[i] = alphabet[(current + usize::from(flip)) % 64];
        if signature != headers.signature.as_bytes() {
            let changed = WebhookHeaders {
                signature: String::from_utf8(signature).expect("ASCII"),
                ..headers.clone()
            };
            prop_assert!(check.verify(&body, &header_map(&changed)).is_err());
        }

        let mut other_key = key.clone();
        let i = at.index(other_key.len());
        other_key[i] ^= flip;
        let other = verifier(&other_key);
        prop_assert!(other.verify(&body, &header_map(&headers)).is_err());
    }
}
