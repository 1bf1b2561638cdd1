//! Small, well-known statistics used by reports and comparisons: Wilson score intervals for
//! proportions, Newcombe's interval for a difference of proportions, and a seeded
//! percentile bootstrap for differences of latency quantiles.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// z for a two-sided 95 % interval.
pub const Z95: f64 = 1.959_963_984_540_054;

/// Wilson score interval for `k` successes out of `n` (95 %). `None` when n = 0.
pub fn wilson(k: u64, n: u64) -> Option<(f64, f64)> {
    if n == 0 {
        return None;
    }
    let n_f = n as f64;
    let p = k as f64 / n_f;
    let z2 = Z95 * Z95;
    let denom = 1.0 + z2 / n_f;
    let centre = (p + z2 / (2.0 * n_f)) / denom;
    let half = Z95 * (p * (1.0 - p) / n_f + z2 / (4.0 * n_f * n_f)).sqrt() / denom;
    Some(((centre - half).max(0.0), (centre + half).min(1.0)))
}

/// Newcombe's hybrid score interval (method 10) for p_b − p_a, 95 %.
pub fn newcombe_diff(k_a: u64, n_a: u64, k_b: u64, n_b: u64) -> Option<(f64, f64, f64)> {
    let (l1, u1) = wilson(k_a, n_a)?;
    let (l2, u2) = wilson(k_b, n_b)?;
    let p1 = k_a as f64 / n_a as f64;
    let p2 = k_b as f64 / n_b as f64;
    let d = p2 - p1;
    let lower = d - ((p2 - l2).powi(2) + (u1 - p1).powi(2)).sqrt();
    let upper = d + ((u2 - p2).powi(2) + (p1 - l1).powi(2)).sqrt();
    Some((d, lower, upper))
}

/// The q-quantile of a sample (nearest rank, as HdrHistogram reports percentiles).
pub fn quantile_of(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn quantile_unsorted(values: &mut [f64], q: f64) -> f64 {
    let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
    let (_, v, _) = values.select_nth_unstable_by(rank - 1, |a, b| a.total_cmp(b));
    *v
}

/// A difference b − a at one quantile with its 95 % bootstrap interval.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct QuantileDiff {
    pub q: f64,
    pub a: f64,
    pub b: f64,
    pub diff: f64,
    pub low: f64,
    pub high: f64,
}

impl QuantileDiff {
    /// The interval excludes zero.
    pub fn significant(&self) -> bool {
        self.low > 0.0 || self.high < 0.0
    }
}

/// Most samples per side the bootstrap resamples; larger samples are thinned by a seeded
/// uniform draw first (the interval gets a little wider, never narrower).
pub const BOOTSTRAP_MAX_SAMPLES: usize = 50_000;

/// Percentile bootstrap (B resamples, seeded) of quantile(b) − quantile(a) for each q.
pub fn bootstrap_quantile_diffs(
    a: &[f64],
    b: &[f64],
    quantiles: &[f64],
    resamples: usize,
    seed: u64,
) -> Vec<QuantileDiff> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let thin = |v: &[f64], rng: &mut ChaCha8Rng| -> Vec<f64> {
        if v.len() <= BOOTSTRAP_MAX_SAMPLES {
            v.to_vec()
        } else {
            (0..BOOTSTRAP_MAX_SAMPLES)
                .map(|_| v[rng.gen_range(0..v.len())])
                .collect()
        }
    };
    let a_s = thin(a, &mut rng);
    let b_s = thin(b, &mut rng);
    let mut sorted_a = a.to_vec();
    sorted_a.sort_by(|x, y| x.total_cmp(y));
    let mut sorted_b = b.to_vec();
    sorted_b.sort_by(|x, y| x.total_cmp(y));
    if a_s.is_empty() || b_s.is_empty() {
        return Vec::new();
    }
    let mut diffs: Vec<Vec<f64>> = vec![Vec::with_capacity(resamples); quantiles.len()];
    let mut buf_a = vec![0.0; a_s.len()];
    let mut buf_b = vec![0.0; b_s.len()];
    for _ in 0..resamples {
        for x in buf_a.iter_mut() {
            *x = a_s[rng.gen_range(0..a_s.len())];
        }
        for x in buf_b.iter_mut() {
            *x = b_s[rng.gen_range(0..b_s.len())];
        }
        for (i, &q) in quantiles.iter().enumerate() {
            let qa = quantile_unsorted(&mut buf_a, q);
            let qb = quantile_unsorted(&mut buf_b, q);
            diffs[i].push(qb - qa);
        }
    }
    quantiles
        .iter()
        .zip(diffs.iter_mut())
        .map(|(&q, d)| {
            d.sort_by(|x, y| x.total_cmp(y));
            let qa = quantile_of(&sorted_a, q);
            let qb = quantile_of(&sorted_b, q);
            QuantileDiff {
                q,
                a: qa,
                b: qb,
                diff: qb - qa,
                low: quantile_of(d, 0.025),
                high: quantile_of(d, 0.975),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_matches_published_values() {
        // Newcombe (1998) table I: 81/263 → 0.2553–0.3662.
        let (l, u) = wilson(81, 263).unwrap();
        assert!(
            (l - 0.2553).abs() < 1e-4 && (u - 0.3662).abs() < 1e-4,
            "{l} {u}"
        );
        // 0 of 10 → [0, 0.2775]; 10 of 10 → [0.7225, 1].
        let (l, u) = wilson(0, 10).unwrap();
        assert!(l.abs() < 1e-12 && (u - 0.2775).abs() < 1e-4);
        let (l, u) = wilson(10, 10).unwrap();
        assert!((l - 0.7225).abs() < 1e-4 && (u - 1.0).abs() < 1e-12);
        assert_eq!(wilson(0, 0), None);
    }

    #[test]
    fn newcombe_matches_published_example() {
        // Newcombe (1998) example (56/70 vs 48/80), method 10: d = 0.2, CI 0.0524 to 0.3339
        // for p1 − p2; we compute p_b − p_a with a = 48/80, b = 56/70.
        let (d, l, u) = newcombe_diff(48, 80, 56, 70).unwrap();
        assert!((d - 0.2).abs() < 1e-9);
        assert!(
            (l - 0.0524).abs() < 1e-3 && (u - 0.3339).abs() < 1e-3,
            "{l} {u}"
        );
    }

    #[test]
    fn bootstrap_finds_a_shift_and_covers_it() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let a: Vec<f64> = (0..4000).map(|_| 1.0 + rng.gen::<f64>()).collect();
        let b: Vec<f64> = (0..4000).map(|_| 3.0 + rng.gen::<f64>()).collect();
        let d = bootstrap_quantile_diffs(&a, &b, &[0.5, 0.99], 500, 7);
        assert!((d[0].diff - 2.0).abs() < 0.05, "{d:?}");
        assert!(d[0].low <= 2.0 && 2.0 <= d[0].high + 0.05);
        assert!(d[0].significant());
    }

    #[test]
    fn bootstrap_of_identical_distributions_is_not_significant_most_of_the_time() {
        let mut hits = 0;
        for seed in 0..20u64 {
            let mut rng = ChaCha8Rng::seed_from_u64(100 + seed);
            let a: Vec<f64> = (0..2000).map(|_| rng.gen::<f64>()).collect();
            let b: Vec<f64> = (0..2000).map(|_| rng.gen::<f64>()).collect();
            let d = bootstrap_quantile_diffs(&a, &b, &[0.5], 400, seed);
            if d[0].significant() {
                hits += 1;
            }
        }
        assert!(hits <= 3, "{hits} of 20 falsely significant at 95 %");
    }
}
