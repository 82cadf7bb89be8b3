//! The settings written as text — comma-separated lists, a cron expression, JSON — turned into
//! their types once, when the configuration is loaded (`#[serde(deserialize_with)]`). Each
//! refuses a malformed value with a message naming the entry at fault; `Config::load` adds the
//! variable's name.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

use ipnet::IpNet;
use serde::de::{self, Deserializer, Visitor};

use crate::llm::limits::LimitsConfig;
use crate::ratelimit::Rate;

/// A setting's text. figment reads an environment variable that looks like a number or a
/// boolean as one (`WEBHOOK_RETRY_SCHEDULE=5`), so those are taken back as text.
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
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_u128<E: de::Error>(self, v: u128) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_i128<E: de::Error>(self, v: i128) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
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

/// `tier=requests_per_minute,…` (`RATE_LIMITS`); empty: no limits.
pub(super) fn rate_tiers<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, Rate>, D::Error> {
    parsed(deserializer, |text| {
        let mut tiers = BTreeMap::new();
        for part in entries(text) {
            let (tier, limit) = part
                .split_once('=')
                .filter(|(tier, _)| !tier.trim().is_empty())
                .ok_or_else(|| format!("`{part}` is not tier=requests_per_minute"))?;
            let limit: u64 = limit
                .trim()
                .parse()
                .map_err(|_| format!("`{part}`: the limit must be a whole number"))?;
            if limit == 0 {
                return Err(format!("`{part}`: the limit must be at least 1"));
            }
            unique(&mut tiers, tier.trim(), Rate::per_minute(limit))?;
        }
        Ok(tiers)
    })
}

/// `service=calls/seconds,…` (`EXTERNAL_API_RATE_LIMITS`).
pub(super) fn service_rates<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, Rate>, D::Error> {
    parsed(deserializer, |text| {
        let mut rates = BTreeMap::new();
        for entry in entries(text) {
            let parsed = entry.split_once('=').and_then(|(service, rate)| {
                let (calls, secs) = rate.split_once('/')?;
                let calls: u64 = calls.trim().parse().ok().filter(|n| *n > 0)?;
                let secs: u64 = secs.trim().parse().ok().filter(|n| *n > 0)?;
                Some((service.trim(), Rate::new(calls, Duration::from_secs(secs))))
            });
            match parsed {
                Some((service, rate)) if !service.is_empty() => {
                    unique(&mut rates, service, rate)?;
                }
                _ => return Err(format!("`{entry}` is not `service=calls/seconds`")),
            }
        }
        Ok(rates)
    })
}

/// Adds `name` to a map of rates, refusing a name listed twice.
fn unique(rates: &mut BTreeMap<String, Rate>, name: &str, rate: Rate) -> Result<(), String> {
    match rates.insert(name.to_owned(), rate) {
        None => Ok(()),
        Some(_) => Err(format!("`{name}` is listed twice")),
    }
}

/// CIDRs or single addresses, comma-separated (`WEBHOOK_ALLOWED_CIDRS`); blank entries are
/// ignored and a bare address means just that address.
pub(super) fn cidrs<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<IpNet>, D::Error> {
    parsed(deserializer, |text| {
        entries(text)
            .map(|entry| {
                entry
                    .parse::<IpNet>()
                    .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        format!(
                            "invalid allow-list entry `{entry}`: expected a CIDR such as \
                             127.0.0.0/8 or an IP address"
                        )
                    })
            })
            .collect()
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
        cron::Schedule::from_str(expression)
            .map(Some)
            .map_err(|e| format!("`{expression}` is not a cron expression with seconds: {e}"))
    })
}
