//! Small, exact statistics on counts. Detection rates are proportions of a few hundred
//! requests, so a rate without an interval over-states what a run showed; the Wilson
//! score interval stays inside [0, 1] and behaves at 0 % and 100 %, unlike the normal
//! approximation.

use serde::{Deserialize, Serialize};

/// The standard normal quantile for a two-sided 95 % interval (Φ⁻¹(0.975)).
pub const Z_95: f64 = 1.959_963_984_540_054;

/// A proportion with its confidence interval, all in 0..=1.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Proportion {
    pub successes: u64,
    pub trials: u64,
    pub rate: f64,
    pub low: f64,
    pub high: f64,
}

/// Wilson score interval for `successes` out of `trials` at normal quantile `z`;
/// `None` when there were no trials (nothing to estimate).
pub fn wilson(successes: u64, trials: u64, z: f64) -> Option<Proportion> {
    if trials == 0 || successes > trials {
        return None;
    }
    let n = trials as f64;
    let p = successes as f64 / n;
    let z2 = z * z;
    let denominator = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denominator;
    let half = z / denominator * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    // At 0 and n the bound is exactly 0 or 1; clamp away rounding noise.
    let low = if successes == 0 {
        0.0
    } else {
        (centre - half).max(0.0)
    };
    let high = if successes == trials {
        1.0
    } else {
        (centre + half).min(1.0)
    };
    Some(Proportion {
        successes,
        trials,
        rate: p,
        low,
        high,
    })
}

/// Wilson 95 % interval.
pub fn wilson95(successes: u64, trials: u64) -> Option<Proportion> {
    wilson(successes, trials, Z_95)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 0.000_05
    }

    /// Newcombe (1998), "Two-sided confidence intervals for the single proportion",
    /// Statistics in Medicine 17:857–872, table I, method 3 (score, no continuity
    /// correction): published to four decimals.
    #[test]
    fn matches_newcombe_1998_table() {
        for (k, n, lo, hi) in [
            (81, 263, 0.2553, 0.3662),
            (15, 148, 0.0624, 0.1605),
            (0, 20, 0.0, 0.1611),
            (1, 29, 0.0061, 0.1718),
        ] {
            let p = wilson95(k, n).unwrap();
            assert!(close(p.low, lo) && close(p.high, hi), "{k}/{n}: {p:?}");
        }
    }

    #[test]
    fn edges_stay_in_unit_interval() {
        assert!(wilson95(0, 0).is_none());
        assert!(wilson95(3, 2).is_none());
        let all = wilson95(10, 10).unwrap();
        assert_eq!(all.high, 1.0);
        assert!(close(all.low, 0.7225));
        let none = wilson95(0, 10).unwrap();
        assert_eq!(none.low, 0.0);
        assert!(close(none.high, 0.2775));
        let one = wilson95(1, 1).unwrap();
        assert!(one.low > 0.0 && one.high == 1.0);
    }
}
