//! Latency summaries from HDR histograms, shared by every component.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// A histogram of durations in nanoseconds, 1 ns to 1 hour, 3 significant digits.
pub fn latency_histogram() -> Histogram<u64> {
    // Constant, valid bounds: `new_with_bounds` fails only for invalid ones.
    Histogram::new_with_bounds(1, 3_600_000_000_000, 3)
        .expect("1 ns to 1 h at 3 significant figures is a valid histogram")
}

/// Records `duration` in a [`latency_histogram`] (saturating at its bounds).
pub fn record(histogram: &mut Histogram<u64>, duration: Duration) {
    let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
    histogram.saturating_record(nanos.max(1));
}

/// Percentiles of a latency distribution, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct LatencySummary {
    /// How many samples.
    pub count: u64,
    /// The mean.
    pub mean: f64,
    /// The median.
    pub p50: f64,
    /// The 95th percentile.
    pub p95: f64,
    /// The 99th percentile.
    pub p99: f64,
    /// The largest sample.
    pub max: f64,
}

impl LatencySummary {
    /// The summary of a nanosecond histogram (all zero when it is empty).
    pub fn of(histogram: &Histogram<u64>) -> LatencySummary {
        if histogram.is_empty() {
            return LatencySummary::default();
        }
        let seconds = |nanos: u64| nanos as f64 / 1e9;
        LatencySummary {
            count: histogram.len(),
            mean: histogram.mean() / 1e9,
            p50: seconds(histogram.value_at_quantile(0.50)),
            p95: seconds(histogram.value_at_quantile(0.95)),
            p99: seconds(histogram.value_at_quantile(0.99)),
            max: seconds(histogram.max()),
        }
    }

    /// The summary of a list of durations.
    pub fn of_durations(samples: &[Duration]) -> LatencySummary {
        let mut histogram = latency_histogram();
        for sample in samples {
            record(&mut histogram, *sample);
        }
        LatencySummary::of(&histogram)
    }
}

/// The median and the relative interquartile range (IQR / median) of `values`: the noise
/// figure of [`Measurement::noise`](crate::report::Measurement::noise). `None` when empty.
pub fn median_and_spread(values: &[f64]) -> Option<(f64, f64)> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let quantile = |q: f64| {
        let position = q * (sorted.len() - 1) as f64;
        let (low, high) = (position.floor() as usize, position.ceil() as usize);
        let weight = position - low as f64;
        sorted[low] * (1.0 - weight) + sorted[high] * weight
    };
    let median = quantile(0.5);
    let spread = if median == 0.0 {
        0.0
    } else {
        (quantile(0.75) - quantile(0.25)) / median.abs()
    };
    Some((median, spread))
}

/// A histogram of values as plot points: `buckets` equal-width buckets between the smallest
/// and largest value, each `(lower edge, count)`.
pub fn histogram_points(values: &[f64], buckets: usize) -> Vec<(f64, f64)> {
    let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    let (Some(low), Some(high)) = (
        finite.iter().copied().reduce(f64::min),
        finite.iter().copied().reduce(f64::max),
    ) else {
        return Vec::new();
    };
    let buckets = buckets.max(1);
    let width = if high > low {
        (high - low) / buckets as f64
    } else {
        1.0
    };
    let mut counts = vec![0u64; buckets];
    for value in finite {
        let index = (((value - low) / width) as usize).min(buckets - 1);
        counts[index] += 1;
    }
    counts
        .into_iter()
        .enumerate()
        .map(|(index, count)| (low + index as f64 * width, count as f64))
        .collect()
}
