//! Terminal lines for direct ext_proc runs: per-phase processor latency and decisions.

use super::terminal::percentile_row;
use crate::results::Summary;
use std::fmt::Write;

/// The ext_proc block of the terminal report; empty for other runs.
pub fn render(summary: &Summary) -> String {
    let mut out = String::new();
    let Some(x) = &summary.ext_proc else {
        return out;
    };
    let _ = writeln!(
        out,
        "\n  ext_proc phase round trips (ms) {:>8} {:>8} {:>8} {:>8} {:>8} {:>9}",
        "p50", "p90", "p99", "p99.9", "max", "count"
    );
    for name in crate::record::extproc::PHASE_HISTOGRAMS {
        if let Some(p) = x.phases.get(name) {
            percentile_row(&mut out, name, p);
        }
    }
    let list = |m: &std::collections::BTreeMap<String, u64>| {
        m.iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = writeln!(out, "  ext_proc verdicts: {}", list(&x.verdicts));
    let _ = writeln!(out, "  decided at: {}", list(&x.decided_at));
    if !x.blocked_at.is_empty() {
        let _ = writeln!(out, "  blocked at: {}", list(&x.blocked_at));
    }
    out
}
