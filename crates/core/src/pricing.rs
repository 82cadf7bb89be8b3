//! Model prices and the cost of one LLM call, in `Decimal` (never floats).

use std::collections::BTreeMap;
use std::path::Path;

use rust_decimal::Decimal;
use serde::Deserialize;

/// The table compiled into every binary; `PRICING_FILE` replaces it.
const BUILT_IN: &str = include_str!("../pricing.toml");

const PER_MILLION: Decimal = Decimal::from_parts(1_000_000, 0, 0, false, 0);

/// Prices of one model, USD per million tokens.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelPrice {
    pub input: Decimal,
    pub output: Decimal,
    pub cached_input: Option<Decimal>,
}

/// Token counts of one call, as the provider reported them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TokenUsage {
    /// All input tokens, cached ones included.
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// The part of `input_tokens` served from the provider's prompt cache.
    pub cached_input_tokens: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTable {
    models: BTreeMap<String, ModelPrice>,
}

/// The pricing table, keyed by the model name as workflows write it.
#[derive(Clone, Debug)]
pub struct PriceTable {
    models: BTreeMap<String, ModelPrice>,
}

#[derive(Debug, thiserror::Error)]
pub enum PricingError {
    #[error("cannot read pricing file {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid pricing table {origin}: {source}")]
    Parse {
        origin: String,
        #[source]
        source: toml::de::Error,
    },
    #[error("pricing table {origin}: model `{model}` has a negative price")]
    Negative { origin: String, model: String },
}

impl PriceTable {
    /// The table shipped in the repository (`crates/core/pricing.toml`).
    pub fn built_in() -> Result<PriceTable, PricingError> {
        Self::parse(BUILT_IN, "built-in")
    }

    /// `PRICING_FILE` when given, else the built-in table.
    pub fn load(path: Option<&Path>) -> Result<PriceTable, PricingError> {
        match path {
            None => Self::built_in(),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| PricingError::Read {
                    path: path.display().to_string(),
                    source,
                })?;
                Self::parse(&text, &path.display().to_string())
            }
        }
    }

    pub fn parse(text: &str, origin: &str) -> Result<PriceTable, PricingError> {
        let raw: RawTable = toml::from_str(text).map_err(|source| PricingError::Parse {
            origin: origin.to_owned(),
            source,
        })?;
        for (model, price) in &raw.models {
            let prices = [Some(price.input), Some(price.output), price.cached_input];
            if prices.into_iter().flatten().any(|p| p.is_sign_negative()) {
                return Err(PricingError::Negative {
                    origin: origin.to_owned(),
                    model: model.clone(),
                });
            }
        }
        Ok(PriceTable { models: raw.models })
    }

    pub fn get(&self, model: &str) -> Option<&ModelPrice> {
        self.models.get(model)
    }

    pub fn contains(&self, model: &str) -> bool {
        self.models.contains_key(model)
    }

    pub fn models(&self) -> impl Iterator<Item = &str> {
        self.models.keys().map(String::as_str)
    }

    /// Cost of one call at full precision; `None` when the model is not in the table.
    /// Round only when storing or showing (`round_usd`).
    pub fn cost(&self, model: &str, usage: TokenUsage) -> Option<Decimal> {
        self.get(model).map(|price| price.cost(usage))
    }
}

impl ModelPrice {
    pub fn cost(&self, usage: TokenUsage) -> Decimal {
        let cached = usage.cached_input_tokens.min(usage.input_tokens);
        let fresh = usage.input_tokens - cached;
        let cached_price = self.cached_input.unwrap_or(self.input);
        (Decimal::from(fresh) * self.input
            + Decimal::from(cached) * cached_price
            + Decimal::from(usage.output_tokens) * self.output)
            / PER_MILLION
    }
}

/// Money as stored and shown: six decimal places, banker's rounding avoided (half away from zero).
pub fn round_usd(value: Decimal) -> Decimal {
    value.round_dp_with_strategy(6, rust_decimal::RoundingStrategy::MidpointAwayFromZero)
}

/// A USD amount for JSON: a number with at most six decimals (computed and stored as Decimal).
pub fn usd_json(value: Decimal) -> serde_json::Value {
    round_usd(value)
        .normalize()
        .to_string()
        .parse::<serde_json::Number>()
        .map(serde_json::Value::Number)
        .unwrap_or(serde_json::Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn dec(s: &str) -> Decimal {
        Decimal::from_str(s).expect("decimal literal")
    }

    #[test]
    fn built_in_table_has_the_seed_models_and_prices() {
        let table = PriceTable::built_in().expect("built-in table parses");
        for (model, input, output) in [
            ("anthropic/claude-3.5-sonnet", "3", "15"),
            ("claude-3-5-sonnet-20241022", "3", "15"),
            ("anthropic/claude-opus-4", "15", "75"),
            ("anthropic/claude-3-haiku", "0.25", "1.25"),
            ("openai/gpt-4o", "2.5", "10"),
            ("gpt-4o", "2.5", "10"),
            ("openai/gpt-4o-mini", "0.15", "0.6"),
            ("gpt-4o-mini", "0.15", "0.6"),
        ] {
            let price = table.get(model).unwrap_or_else(|| panic!("{model} priced"));
            assert_eq!(price.input, dec(input), "{model}");
            assert_eq!(price.output, dec(output), "{model}");
        }
    }

    #[test]
    fn cost_is_exact_decimal() {
        let table = PriceTable::built_in().expect("built-in table parses");
        let usage = TokenUsage {
            input_tokens: 1234,
            output_tokens: 567,
            cached_input_tokens: 0,
        };
        // 1234 × 0.15 / 1e6 + 567 × 0.60 / 1e6 = 0.0001851 + 0.0003402
        assert_eq!(
            table.cost("openai/gpt-4o-mini", usage),
            Some(dec("0.0005253"))
        );
        assert_eq!(round_usd(dec("0.0005253")), dec("0.000525"));
        assert_eq!(table.cost("no/such-model", usage), None);
    }

    #[test]
    fn cached_input_is_billed_at_the_cached_price() {
        let table = PriceTable::built_in().expect("built-in table parses");
        let usage = TokenUsage {
            input_tokens: 1_000_000,
            output_tokens: 0,
            cached_input_tokens: 400_000,
        };
        // 600k × 3.00 + 400k × 0.30 per million
        assert_eq!(
            table.cost("claude-3-5-sonnet-20241022", usage),
            Some(dec("1.92"))
        );
    }

    #[test]
    fn rejects_negative_and_unknown_fields() {
        assert!(PriceTable::parse("[models.x]\ninput = \"-1\"\noutput = \"1\"", "t").is_err());
        assert!(
            PriceTable::parse("[models.x]\ninput = \"1\"\noutput = \"1\"\nfoo = 1", "t").is_err()
        );
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// USD per million tokens with up to six decimal places, up to 1,000.
        fn prices() -> impl Strategy<Value = ModelPrice> {
            let usd = || (0i64..=1_000_000_000).prop_map(|micros| Decimal::new(micros, 6));
            (usd(), usd(), proptest::option::of(usd())).prop_map(|(input, output, cached_input)| {
                ModelPrice {
                    input,
                    output,
                    cached_input,
                }
            })
        }

        /// Up to a trillion tokens a call, the cached part within the input.
        fn usages() -> impl Strategy<Value = TokenUsage> {
            (
                0u64..=1_000_000_000_000,
                0u64..=1_000_000_000_000,
                0.0f64..=1.0,
            )
                .prop_map(|(input_tokens, output_tokens, share)| TokenUsage {
                    input_tokens,
                    output_tokens,
                    cached_input_tokens: (input_tokens as f64 * share) as u64,
                })
        }

        fn sum(a: TokenUsage, b: TokenUsage) -> TokenUsage {
            TokenUsage {
                input_tokens: a.input_tokens + b.input_tokens,
                output_tokens: a.output_tokens + b.output_tokens,
                cached_input_tokens: a.cached_input_tokens + b.cached_input_tokens,
            }
        }

        proptest! {
            /// No call costs less than nothing, before or after rounding.
            #[test]
            fn never_negative(price in prices(), usage in usages()) {
                let cost = price.cost(usage);
                prop_assert!(!cost.is_sign_negative() || cost.is_zero(), "{cost}");
                prop_assert!(!round_usd(cost).is_sign_negative() || round_usd(cost).is_zero());
            }

            /// Exact decimals: two calls cost exactly what one call with their summed tokens
            /// costs, and a million times the cost is the integer sum of tokens times prices.
            #[test]
            fn exact_in_decimals(price in prices(), a in usages(), b in usages()) {
                prop_assert_eq!(price.cost(a) + price.cost(b), price.cost(sum(a, b)));
                let cached = Decimal::from(a.cached_input_tokens);
                let fresh = Decimal::from(a.input_tokens - a.cached_input_tokens);
                let expected = fresh * price.input
                    + cached * price.cached_input.unwrap_or(price.input)
                    + Decimal::from(a.output_tokens) * price.output;
                prop_assert_eq!(price.cost(a) * PER_MILLION, expected);
            }

            /// More tokens never cost less, and rounding moves a cost by at most half a
            /// millionth of a dollar.
            #[test]
            fn monotone_and_rounded_closely(price in prices(), a in usages(), b in usages()) {
                prop_assert!(price.cost(a) <= price.cost(sum(a, b)));
                let cost = price.cost(a);
                prop_assert!((round_usd(cost) - cost).abs() <= Decimal::new(5, 7));
            }

            /// Every model of the built-in table prices every usage at zero or more.
            #[test]
            fn built_in_prices_are_never_negative(index in any::<prop::sample::Index>(), usage in usages()) {
                let table = PriceTable::built_in().expect("built-in table parses");
                let models: Vec<&str> = table.models().collect();
                let model = models[index.index(models.len())];
                let cost = table.cost(model, usage).expect("listed model");
                prop_assert!(cost >= Decimal::ZERO, "{model}: {cost}");
            }
        }
    }
}
