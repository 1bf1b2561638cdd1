//! Overhead: what the WAF adds. The same traffic at the same rate to the WAF path and a
//! baseline path, interleaved in blocks; the difference at p50/p90/p99/p99.9 with 95 %
//! bootstrap intervals. When responses carry `x-envoy-upstream-service-time`, each
//! request's latency is also split into upstream time and gateway + filter time
//! (total − upstream): overhead measured on a single target, without a baseline.

use super::compare::{compare, ArmData, Comparison};
use crate::record::Percentiles;
use hdrhistogram::Histogram;
use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
pub struct Decomposition {
    /// From the header (whole ms as the gateway reports it), µs.
    pub upstream: Percentiles,
    /// Total − upstream per request: gateway + filter (+ network), µs.
    pub gateway: Percentiles,
}

/// Percentiles of the overhead spectrum (chart): finer than the table's four.
pub const SPECTRUM_QUANTILES: [f64; 8] = [0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9995];

#[derive(Clone, Debug, Serialize)]
pub struct OverheadReport {
    pub comparison: Option<Comparison>,
    /// WAF − baseline at `SPECTRUM_QUANTILES`, for the overhead chart.
    pub spectrum: Vec<super::stats::QuantileDiff>,
    /// Decomposition on the WAF path, when the header was present.
    pub decomposition: Option<Decomposition>,
}

pub fn decomposition(
    upstream: &Option<Histogram<u64>>,
    gateway: &Option<Histogram<u64>>,
) -> Option<Decomposition> {
    match (upstream, gateway) {
        (Some(u), Some(g)) => Some(Decomposition {
            upstream: Percentiles::of(u),
            gateway: Percentiles::of(g),
        }),
        _ => None,
    }
}

/// Overhead of `waf` over `baseline` (either may be absent: then only the decomposition).
pub fn overhead(baseline: Option<&ArmData>, waf: &ArmData, seed: u64) -> OverheadReport {
    OverheadReport {
        comparison: baseline.map(|b| compare(b, waf, seed)),
        spectrum: baseline
            .map(|b| {
                super::stats::bootstrap_quantile_diffs(
                    &b.latencies_ms,
                    &waf.latencies_ms,
                    &SPECTRUM_QUANTILES,
                    500,
                    seed ^ 0x5bec,
                )
            })
            .unwrap_or_default(),
        decomposition: decomposition(&waf.upstream, &waf.gateway),
    }
}

pub fn render(r: &OverheadReport) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    if let Some(c) = &r.comparison {
        out.push_str(&super::compare::render(c));
    }
    if let Some(d) = &r.decomposition {
        let ms = crate::report::terminal::ms;
        let _ = writeln!(
            out,
            "\n  from x-envoy-upstream-service-time ({} requests):",
            d.gateway.count
        );
        let _ = writeln!(
            out,
            "  {:<26} {:>8} {:>8} {:>8} {:>8}",
            "", "p50", "p90", "p99", "p99.9"
        );
        for (name, p) in [
            ("upstream (ms)", &d.upstream),
            ("gateway + filter (ms)", &d.gateway),
        ] {
            let _ = writeln!(
                out,
                "  {:<26} {:>8} {:>8} {:>8} {:>8}",
                name,
                ms(p.p50),
                ms(p.p90),
                ms(p.p99),
                ms(p.p999)
            );
        }
        let _ = writeln!(
            out,
            "  (the header has whole milliseconds: each value is exact only to 1 ms)"
        );
    }
    if r.comparison.is_none() && r.decomposition.is_none() {
        out.push_str(
            "no baseline and no x-envoy-upstream-service-time header: nothing to compare\n",
        );
    }
    out
}
