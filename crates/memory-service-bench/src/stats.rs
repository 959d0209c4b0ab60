//! Summaries of samples: median and percentiles, min and max. Pure functions on
//! plain numbers (the caller picks the unit), so they are unit-tested here and
//! every benchmark reports the same way. Percentiles interpolate linearly
//! between the closest ranks (numpy's default), so the median of an even count
//! is the mean of the middle two.

use serde::Serialize;

/// The summary of one series of samples, in the caller's unit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Summary {
    /// How many samples.
    pub n: usize,
    /// The 50th percentile.
    pub median: f64,
    /// The 90th percentile.
    pub p90: f64,
    /// The 99th percentile (meaningful only for long series).
    pub p99: f64,
    /// The smallest sample.
    pub min: f64,
    /// The largest sample.
    pub max: f64,
}

impl Summary {
    /// Summarizes `samples` (any order). `None` when there are none, or when
    /// one is NaN (a bug upstream we would rather see than average away).
    pub fn of(samples: &[f64]) -> Option<Summary> {
        if samples.is_empty() || samples.iter().any(|s| s.is_nan()) {
            return None;
        }
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        Some(Summary {
            n: sorted.len(),
            median: percentile(&sorted, 50.0),
            p90: percentile(&sorted, 90.0),
            p99: percentile(&sorted, 99.0),
            min: sorted[0],
            max: sorted[sorted.len() - 1],
        })
    }
}

/// The `p`-th percentile (0..=100) of `sorted` (ascending, non-empty), by
/// linear interpolation between the closest ranks.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    assert!(!sorted.is_empty(), "percentile of no samples");
    assert!((0.0..=100.0).contains(&p), "percentile {p} out of 0..=100");
    let rank = p / 100.0 * (sorted.len() - 1) as f64;
    let lo = rank.floor() as usize;
    let hi = rank.ceil() as usize;
    let frac = rank - lo as f64;
    sorted[lo] + (sorted[hi] - sorted[lo]) * frac
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn one_to_ten() {
        let s = Summary::of(&[7.0, 1.0, 10.0, 3.0, 2.0, 9.0, 4.0, 6.0, 5.0, 8.0]).unwrap();
        assert_eq!(s.n, 10);
        assert!(close(s.median, 5.5), "{s:?}");
        assert!(close(s.p90, 9.1), "{s:?}");
        assert!(close(s.p99, 9.91), "{s:?}");
        assert_eq!((s.min, s.max), (1.0, 10.0));
    }

    #[test]
    fn odd_count_median_is_the_middle_sample() {
        let s = Summary::of(&[3.0, 100.0, 1.0]).unwrap();
        assert_eq!(s.median, 3.0);
    }

    #[test]
    fn one_sample_is_every_percentile() {
        let s = Summary::of(&[4.2]).unwrap();
        assert_eq!((s.median, s.p90, s.p99, s.min, s.max), (4.2, 4.2, 4.2, 4.2, 4.2));
    }

    #[test]
    fn ends_are_min_and_max() {
        let sorted = [1.0, 2.0, 50.0];
        assert_eq!(percentile(&sorted, 0.0), 1.0);
        assert_eq!(percentile(&sorted, 100.0), 50.0);
    }

    #[test]
    fn no_samples_or_nan_give_none() {
        assert_eq!(Summary::of(&[]), None);
        assert_eq!(Summary::of(&[1.0, f64::NAN]), None);
    }
}
