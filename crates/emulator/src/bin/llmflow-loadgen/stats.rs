//! Percentiles of a set of durations.

use serde::Serialize;

/// p50, p99 and max of a sample, in milliseconds (0 when the sample is empty).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Summary {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

/// The `q`-quantile (0–1) of sorted values by the nearest-rank method.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Summarises values in milliseconds.
pub fn summarize(mut values: Vec<f64>) -> Summary {
    values.sort_by(f64::total_cmp);
    Summary {
        p50: quantile(&values, 0.50),
        p99: quantile(&values, 0.99),
        max: values.last().copied().unwrap_or(0.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_quantiles() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        let s = summarize(values.into_iter().rev().collect());
        assert_eq!((s.p50, s.p99, s.max), (50.0, 99.0, 100.0));
        assert_eq!(summarize(vec![7.0]).p99, 7.0);
        assert_eq!(summarize(Vec::new()), Summary::default());
    }
}
