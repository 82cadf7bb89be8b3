//! The settings written as text — comma-separated lists, a cron expression, JSON — turned into
//! their types once, when the configuration is loaded (`#[serde(deserialize_with)]`). Each
//! refuses a malformed value with a message naming the entry at fault; `Config::load` adds the
//! variable's name.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use ipnet::IpNet;
use serde::de::{self, Deserializer, Visitor};

use crate::llm::limits::LimitsConfig;
use crate::ratelimit::Rate;

/// Visitor methods that take a scalar as the text it was written as.
macro_rules! as_text {
    ($($method:ident: $type:ty),* $(,)?) => {$(
        fn $method<E: de::Error>(self, v: $type) -> Result<Text, E> {
            Ok(Text(v.to_string()))
        }
    )*};
}

/// A setting's text. The file, or settings built in code, may give a number or a boolean
/// where text is expected (`webhook_retry_schedule = 5` in TOML): it is taken as written.
struct Text(String);

impl<'de> de::Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Text, D::Error> {
        struct TextVisitor;
        impl Visitor<'_> for TextVisitor {
            type Value = Text;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("text")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text, E> {
                Ok(Text(v.to_owned()))
            }
            as_text!(visit_bool: bool, visit_u64: u64, visit_u128: u128, visit_i64: i64,
                visit_i128: i128, visit_f64: f64);
        }
        deserializer.deserialize_any(TextVisitor)
    }
}

/// Reads the setting's text and parses it with `parse`; its error message becomes the
/// deserialisation error.
fn parsed<'de, D, T>(
    deserializer: D,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
{
    let Text(text) = de::Deserialize::deserialize(deserializer)?;
    parse(&text).map_err(de::Error::custom)
}

/// The non-blank entries of a comma-separated list, trimmed.
fn entries(text: &str) -> impl Iterator<Item = &str> {
    text.split(',').map(str::trim).filter(|e| !e.is_empty())
}

/// `name=rate,…`, each rate read by `rate(entry, text after "=")`; `form` names the shape of an
/// entry for the error. A name listed twice is refused.
fn named_rates(
    text: &str,
    form: &str,
    rate: impl Fn(&str, &str) -> Result<Rate, String>,
) -> Result<BTreeMap<String, Rate>, String> {
    let mut rates = BTreeMap::new();
    for entry in entries(text) {
        let (name, value) = entry
            .split_once('=')
            .map(|(name, value)| (name.trim(), value.trim()))
            .filter(|(name, _)| !name.is_empty())
            .ok_or_else(|| format!("`{entry}` is not {form}"))?;
        if rates.insert(name.to_owned(), rate(entry, value)?).is_some() {
            return Err(format!("`{name}` is listed twice"));
        }
    }
    Ok(rates)
}

/// `tier=requests_per_minute,…` (`RATE_LIMITS`); empty: no limits.
pub(super) fn rate_tiers<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, Rate>, D::Error> {
    parsed(deserializer, |text| {
        named_rates(text, "tier=requests_per_minute", |entry, limit| {
            let limit: u64 = limit
                .parse()
                .map_err(|_| format!("`{entry}`: the limit must be a whole number"))?;
            if limit == 0 {
                return Err(format!("`{entry}`: the limit must be at least 1"));
            }
            Ok(Rate::per_minute(limit))
        })
    })
}

/// `service=calls/seconds,…` (`EXTERNAL_API_RATE_LIMITS`).
pub(super) fn service_rates<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, Rate>, D::Error> {
    const FORM: &str = "`service=calls/seconds`";
    parsed(deserializer, |text| {
        named_rates(text, FORM, |entry, rate| {
            let whole = |n: &str| n.trim().parse::<u64>().ok().filter(|n| *n > 0);
            rate.split_once('/')
                .and_then(|(calls, secs)| Some((whole(calls)?, whole(secs)?)))
                .map(|(calls, secs)| Rate::new(calls, Duration::from_secs(secs)))
                .ok_or_else(|| format!("`{entry}` is not {FORM}"))
        })
    })
}

/// CIDRs or single addresses, comma-separated (`WEBHOOK_ALLOWED_CIDRS`), read by the address
/// policy's own parser: blank entries are ignored and a bare address means just that address.
pub(super) fn cidrs<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<IpNet>, D::Error> {
    parsed(deserializer, |text| {
        llmflow_netguard::parse_cidr_list(text).map_err(|e| e.to_string())
    })
}

/// Whole seconds, comma-separated (`WEBHOOK_RETRY_SCHEDULE`: `5,15,45`; spaces allowed; empty:
/// none). Every entry counts: `5,,45` names the empty one.
pub(super) fn seconds_list<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<Duration>, D::Error> {
    parsed(deserializer, |text| {
        if text.trim().is_empty() {
            return Ok(Vec::new());
        }
        text.split(',')
            .map(str::trim)
            .map(|entry| {
                entry
                    .parse::<u64>()
                    .map(Duration::from_secs)
                    .map_err(|_| format!("retry delay `{entry}` is not a whole number of seconds"))
            })
            .collect()
    })
}

/// Names of environment variables, comma-separated (`WORKFLOW_ENV_ALLOWLIST`).
pub(super) fn env_names<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<String>, D::Error> {
    parsed(deserializer, |text| {
        entries(text)
            .map(|name| {
                let valid = name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    && !name.starts_with(|c: char| c.is_ascii_digit());
                if valid {
                    Ok(name.to_owned())
                } else {
                    Err(format!("`{name}` is not an environment variable name"))
                }
            })
            .collect()
    })
}

/// Web origins, comma-separated (`CORS_ALLOWED_ORIGINS`): each `scheme://host[:port]`, without
/// a path or a trailing slash, as browsers send it in `Origin`.
pub(super) fn origins<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    parsed(deserializer, |text| {
        entries(text)
            .map(|origin| {
                let (scheme, rest) = origin.split_once("://").unwrap_or(("", ""));
                let valid = matches!(scheme, "http" | "https")
                    && !rest.is_empty()
                    && !rest.contains(['/', '?', '#', ' ', '*']);
                if valid {
                    Ok(origin.to_owned())
                } else {
                    Err(format!(
                        "`{origin}` is not an origin such as https://app.example.com"
                    ))
                }
            })
            .collect()
    })
}

/// The provider limits as JSON (`LLM_LIMITS`); empty: none.
pub(super) fn llm_limits<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<LimitsConfig, D::Error> {
    parsed(deserializer, |text| {
        LimitsConfig::parse(text).map_err(|e| e.to_string())
    })
}

/// A cron expression with seconds (`MAINTENANCE_CRON`); empty: never.
pub(super) fn cron_schedule<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<cron::Schedule>, D::Error> {
    parsed(deserializer, |text| {
        let expression = text.trim();
        if expression.is_empty() {
            return Ok(None);
        }
        let schedule = cron::Schedule::from_str(expression)
            .map_err(|e| format!("`{expression}` is not a cron expression with seconds: {e}"))?;
        // A valid expression for a date that never comes (`0 0 0 30 2 *`) would disable
        // maintenance without a word.
        if schedule.upcoming(chrono::Utc).next().is_none() {
            return Err(format!("`{expression}` never fires"));
        }
        Ok(Some(schedule))
    })
}
