//! Side-by-side comparison of two sets of runs (A and B): detection, false positives, error
//! rates and latency quantiles, each difference with a 95 % interval, and a plain verdict.
//! Works on results folders only, so it can compare old runs, interleaved blocks or the
//! two arms of an overhead measurement alike.

use super::stats::{bootstrap_quantile_diffs, newcombe_diff, QuantileDiff};
use crate::error::Error;
use crate::record::for_each_record;
use crate::results::{load_histograms, load_sources, load_summary, Summary};
use hdrhistogram::Histogram;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Quantiles compared by default.
pub const QUANTILES: [f64; 4] = [0.5, 0.9, 0.99, 0.999];
/// Bootstrap resamples.
pub const RESAMPLES: usize = 1000;

/// Everything compared about one side, gathered from one or more run folders.
#[derive(Clone, Debug, Default)]
pub struct ArmData {
    pub label: String,
    pub runs: Vec<PathBuf>,
    /// Latency of every sent request (ms from intended send).
    pub latencies_ms: Vec<f64>,
    /// Latency of benign requests only (ms).
    pub benign_latencies_ms: Vec<f64>,
    pub attacks_blocked: u64,
    pub attacks_passed: u64,
    pub benign_blocked: u64,
    pub benign_passed: u64,
    pub sent: u64,
    /// failed + unresolved.
    pub errors: u64,
    /// Sum of the runs' `upstream` and `gateway` histograms (x-envoy-upstream-service-time).
    pub upstream: Option<Histogram<u64>>,
    pub gateway: Option<Histogram<u64>>,
    pub summaries: Vec<Summary>,
}

impl ArmData {
    /// Reads summaries, sources and records of each run folder.
    pub fn from_runs(label: &str, runs: &[PathBuf]) -> Result<ArmData, Error> {
        let mut arm = ArmData {
            label: label.to_string(),
            runs: runs.to_vec(),
            ..ArmData::default()
        };
        for dir in runs {
            arm.add_run(dir)?;
        }
        Ok(arm)
    }

    fn add_run(&mut self, dir: &Path) -> Result<(), Error> {
        let summary = load_summary(dir)?;
        let sources = load_sources(dir)?;
        let d = &summary.detection;
        self.attacks_blocked += d.attacks.blocked;
        self.attacks_passed += d.attacks.passed;
        self.benign_blocked += d.benign.blocked;
        self.benign_passed += d.benign.passed;
        self.sent += summary.sent;
        self.errors += summary.counts.get("failed").copied().unwrap_or(0)
            + summary.counts.get("unresolved").copied().unwrap_or(0);
        let lat = &mut self.latencies_ms;
        let benign = &mut self.benign_latencies_ms;
        for_each_record(dir, |r| {
            if r.n.is_none() {
                return; // unsendable: never sent, no latency
            }
            let ms = r.lat as f64 / 1000.0;
            lat.push(ms);
            if sources.get(r.src as usize).is_some_and(|s| s.benign) {
                benign.push(ms);
            }
        })
        .map_err(|e| Error::io(dir, e))?;
        let hists = load_histograms(dir)?;
        for (name, slot) in [
            ("upstream", &mut self.upstream),
            ("gateway", &mut self.gateway),
        ] {
            if let Some(h) = hists.get(name).filter(|h| !h.is_empty()) {
                match slot {
                    Some(acc) => acc.add(h).map_err(|e| Error::Other(format!("{e:?}")))?,
                    None => *slot = Some(h.clone()),
                }
            }
        }
        self.summaries.push(summary);
        Ok(())
    }

    /// A summary of the whole arm for the SLO gate: latency quantiles from every request,
    /// counts summed over runs.
    pub fn summary_for_slo(&self) -> Summary {
        let mut sorted = self.latencies_ms.clone();
        sorted.sort_by(|a, b| a.total_cmp(b));
        let us = |q: f64| (super::stats::quantile_of(&sorted, q) * 1000.0).round() as u64;
        let mut s = Summary {
            sent: self.sent,
            ..Summary::default()
        };
        if !sorted.is_empty() {
            s.latency.insert(
                "all".into(),
                crate::record::Percentiles {
                    count: sorted.len() as u64,
                    min: us(0.0),
                    mean: sorted.iter().sum::<f64>() * 1000.0 / sorted.len() as f64,
                    p50: us(0.5),
                    p90: us(0.9),
                    p99: us(0.99),
                    p999: us(0.999),
                    max: (sorted[sorted.len() - 1] * 1000.0).round() as u64,
                },
            );
        }
        s.counts.insert("failed".into(), self.errors);
        let rates = |b: u64, p: u64| crate::results::Rates {
            blocked: b,
            passed: p,
            rate: crate::results::rate(b, p),
            ..Default::default()
        };
        s.detection.attacks = rates(self.attacks_blocked, self.attacks_passed);
        s.detection.benign = rates(self.benign_blocked, self.benign_passed);
        let n = self.summaries.len().max(1) as f64;
        s.achieved_rate = self.summaries.iter().map(|x| x.achieved_rate).sum::<f64>() / n;
        s.lateness.late = self.summaries.iter().map(|x| x.lateness.late).sum();
        s
    }

    pub fn detection(&self) -> Option<f64> {
        let n = self.attacks_blocked + self.attacks_passed;
        (n > 0).then(|| self.attacks_blocked as f64 / n as f64)
    }
}

/// A difference of two proportions (B − A) with Newcombe's 95 % interval.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ProportionDiff {
    pub a: Option<f64>,
    pub b: Option<f64>,
    pub diff: Option<f64>,
    pub low: Option<f64>,
    pub high: Option<f64>,
}

fn proportion(k_a: u64, n_a: u64, k_b: u64, n_b: u64) -> ProportionDiff {
    let p = |k: u64, n: u64| (n > 0).then(|| k as f64 / n as f64);
    let d = newcombe_diff(k_a, n_a, k_b, n_b);
    ProportionDiff {
        a: p(k_a, n_a),
        b: p(k_b, n_b),
        diff: d.map(|x| x.0),
        low: d.map(|x| x.1),
        high: d.map(|x| x.2),
    }
}

/// When a latency difference is statistically clear but smaller than this, it is called
/// "no significant difference" (like criterion's noise threshold): max(0.1 ms, 3 % of A).
/// Below that, block-to-block drift on a shared machine is larger than the effect, and no
/// sign-off decision turns on it.
pub fn noise_threshold_ms(a_value: f64) -> f64 {
    (a_value * 0.03).max(0.1)
}

#[derive(Clone, Debug, Serialize)]
pub struct Comparison {
    pub a: String,
    pub b: String,
    pub a_runs: Vec<PathBuf>,
    pub b_runs: Vec<PathBuf>,
    pub a_requests: u64,
    pub b_requests: u64,
    /// B − A at each quantile, all requests (ms).
    pub latency: Vec<QuantileDiff>,
    /// B − A at each quantile, benign requests only (ms).
    pub benign_latency: Vec<QuantileDiff>,
    pub detection: ProportionDiff,
    pub false_positives: ProportionDiff,
    pub errors: ProportionDiff,
    pub verdicts: Vec<String>,
}

fn qname(q: f64) -> String {
    match q {
        q if (q - 0.999).abs() < 1e-9 => "p99.9".into(),
        q => format!("p{}", (q * 100.0).round()),
    }
}

/// One verdict line for a quantile difference, phrased with the two labels.
pub fn latency_verdict(d: &QuantileDiff, a: &str, b: &str) -> String {
    let half = (d.high - d.diff).max(d.diff - d.low).max(0.0);
    let name = qname(d.q);
    if !d.significant() || d.diff.abs() < noise_threshold_ms(d.a) {
        format!(
            "{name}: no significant difference ({b} − {a} = {:+.3} ms, 95 % CI {:+.3} … {:+.3})",
            d.diff, d.low, d.high
        )
    } else if d.diff > 0.0 {
        format!(
            "{name}: {b} is {:.3} ms ± {:.3} ms slower than {a}",
            d.diff, half
        )
    } else {
        format!(
            "{name}: {b} is {:.3} ms ± {:.3} ms faster than {a}",
            -d.diff, half
        )
    }
}

fn proportion_verdict(name: &str, p: &ProportionDiff, a: &str, b: &str) -> Option<String> {
    let (d, l, h) = (p.diff?, p.low?, p.high?);
    Some(if l > 0.0 || h < 0.0 {
        format!(
            "{name}: {b} {} than {a} by {:.1} pp (95 % CI {:+.1} … {:+.1} pp)",
            if d > 0.0 { "higher" } else { "lower" },
            d.abs() * 100.0,
            l * 100.0,
            h * 100.0
        )
    } else {
        format!(
            "{name}: no significant difference ({:.1} % vs {:.1} %)",
            p.a.unwrap_or(0.0) * 100.0,
            p.b.unwrap_or(0.0) * 100.0
        )
    })
}

/// Compares B against A.
pub fn compare(a: &ArmData, b: &ArmData, seed: u64) -> Comparison {
    let latency = bootstrap_quantile_diffs(
        &a.latencies_ms,
        &b.latencies_ms,
        &QUANTILES,
        RESAMPLES,
        seed,
    );
    let benign_latency = bootstrap_quantile_diffs(
        &a.benign_latencies_ms,
        &b.benign_latencies_ms,
        &QUANTILES,
        RESAMPLES,
        seed ^ 0xbe,
    );
    let detection = proportion(
        a.attacks_blocked,
        a.attacks_blocked + a.attacks_passed,
        b.attacks_blocked,
        b.attacks_blocked + b.attacks_passed,
    );
    let false_positives = proportion(
        a.benign_blocked,
        a.benign_blocked + a.benign_passed,
        b.benign_blocked,
        b.benign_blocked + b.benign_passed,
    );
    let errors = proportion(a.errors, a.sent, b.errors, b.sent);
    let mut verdicts: Vec<String> = latency
        .iter()
        .map(|d| latency_verdict(d, &a.label, &b.label))
        .collect();
    verdicts.extend(proportion_verdict(
        "detection",
        &detection,
        &a.label,
        &b.label,
    ));
    verdicts.extend(proportion_verdict(
        "false positives",
        &false_positives,
        &a.label,
        &b.label,
    ));
    verdicts.extend(proportion_verdict("errors", &errors, &a.label, &b.label));
    Comparison {
        a: a.label.clone(),
        b: b.label.clone(),
        a_runs: a.runs.clone(),
        b_runs: b.runs.clone(),
        a_requests: a.sent,
        b_requests: b.sent,
        latency,
        benign_latency,
        detection,
        false_positives,
        errors,
        verdicts,
    }
}

/// The comparison as a terminal table.
pub fn render(c: &Comparison) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "A = {} ({} requests), B = {} ({} requests)\n",
        c.a, c.a_requests, c.b, c.b_requests
    );
    let _ = writeln!(
        out,
        "  {:<18} {:>10} {:>10} {:>10} {:>22}",
        "latency (ms)", "A", "B", "B − A", "95 % CI"
    );
    for d in &c.latency {
        let _ = writeln!(
            out,
            "  {:<18} {:>10.3} {:>10.3} {:>+10.3} {:>10.3} … {:<+9.3}",
            qname(d.q),
            d.a,
            d.b,
            d.diff,
            d.low,
            d.high
        );
    }
    let pct = |v: Option<f64>| {
        v.map(|x| format!("{:.2} %", x * 100.0))
            .unwrap_or("—".into())
    };
    let pp = |v: Option<f64>| {
        v.map(|x| format!("{:+.2}", x * 100.0))
            .unwrap_or("—".into())
    };
    let _ = writeln!(out);
    for (name, p) in [
        ("detection", &c.detection),
        ("false positives", &c.false_positives),
        ("errors", &c.errors),
    ] {
        let _ = writeln!(
            out,
            "  {:<18} {:>10} {:>10} {:>8} pp {:>8} … {:<8} pp",
            name,
            pct(p.a),
            pct(p.b),
            pp(p.diff),
            pp(p.low),
            pp(p.high)
        );
    }
    let _ = writeln!(out);
    for v in &c.verdicts {
        let _ = writeln!(out, "  {v}");
    }
    out
}
