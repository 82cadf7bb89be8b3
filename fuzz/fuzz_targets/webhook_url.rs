//! Webhook URL checks: a URL as a caller submits it, checked against the default policy and an
//! allow-list; the text after the first NUL is also read as a `WEBHOOK_ALLOWED_CIDRS` list.
#![no_main]

use libfuzzer_sys::fuzz_target;
use llmflow_netguard::{check_url, forbidden_reason, parse_cidr_list, AddressPolicy, Url};

fuzz_target!(|data: &[u8]| {
    let (url, cidrs) = match data.iter().position(|&b| b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let Ok(url) = std::str::from_utf8(url) else {
        return;
    };
    let allowed = std::str::from_utf8(cidrs)
        .ok()
        .and_then(|list| parse_cidr_list(list).ok())
        .unwrap_or_default();
    if let Ok(url) = Url::parse(url) {
        let _ = check_url(&AddressPolicy::default(), &url);
        let policy = AddressPolicy::new(allowed);
        if let Err(blocked) = check_url(&policy, &url) {
            let _ = blocked.to_string();
        }
    }
    if let Ok(ip) = url.parse() {
        let _ = forbidden_reason(ip);
    }
});
