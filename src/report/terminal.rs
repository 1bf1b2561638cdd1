//! The end-of-run table printed in the terminal.

use crate::results::{GroupRates, Summary};
use std::fmt::Write;

/// One row of a terminal latency table: label, p50 … max in ms, count.
pub fn percentile_row(out: &mut String, label: &str, p: &crate::record::Percentiles) {
    let _ = writeln!(
        out,
        "  {:<31} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9}",
        label,
        ms(p.p50),
        ms(p.p90),
        ms(p.p99),
        ms(p.p999),
        ms(p.max),
        p.count
    );
}

pub fn ms(us: u64) -> String {
    if us >= 100_000 {
        format!("{:.0}", us as f64 / 1000.0)
    } else if us >= 10_000 {
        format!("{:.1}", us as f64 / 1000.0)
    } else {
        format!("{:.2}", us as f64 / 1000.0)
    }
}

pub fn pct(r: Option<f64>) -> String {
    match r {
        Some(v) => format!("{:.1} %", v * 100.0),
        None => "—".to_string(),
    }
}

fn group_line(out: &mut String, g: &GroupRates, width: usize) {
    let label = if g.benign { "false pos." } else { "detection" };
    let _ = writeln!(
        out,
        "  {:<width$} {:>10} {:>9}  {:>6} blocked {:>6} passed {:>5} other {:>5} failed",
        g.name,
        label,
        pct(g.rates.rate),
        g.rates.blocked,
        g.rates.passed,
        g.rates.unresolved,
        g.rates.failed + g.rates.unsendable,
    );
}

/// Renders a summary as a plain-text report (no colours, fits 100 columns).
pub fn render(summary: &Summary, dir: &std::path::Path) -> String {
    let mut out = String::new();
    let run = &summary.run;
    let rate = run
        .requested_rate
        .map(|r| format!(", {r:.0} req/s requested"))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "wafload {} → {} ({}, {} loop, mix: {})",
        run.run_id, run.target, run.protocol, run.mode, run.mix
    );
    let _ = writeln!(
        out,
        "sent {} of {} planned in {:.2} s: {:.1} req/s achieved{}",
        summary.sent, summary.planned, summary.duration_s, summary.achieved_rate, rate
    );
    if let Some(reason) = &run.interrupted {
        let _ = writeln!(
            out,
            "STOPPED EARLY: {reason} ({} not sent)",
            summary.not_sent
        );
    }
    let _ = writeln!(out);
    let total: u64 = summary.counts.values().sum::<u64>().max(1);
    let _ = writeln!(out, "  {:<12} {:>9} {:>8}", "class", "requests", "share");
    for class in ["blocked", "passed", "unresolved", "failed", "unsendable"] {
        let n = summary.counts.get(class).copied().unwrap_or(0);
        let _ = writeln!(
            out,
            "  {:<12} {:>9} {:>7.1}%",
            class,
            n,
            n as f64 * 100.0 / total as f64
        );
    }
    if !summary.unsupported.is_empty() {
        let list: Vec<String> = summary
            .unsupported
            .iter()
            .map(|(k, v)| format!("{v} {k}"))
            .collect();
        let _ = writeln!(
            out,
            "  not sent (unsupported placeholder): {}",
            list.join(", ")
        );
    }
    if summary.ext_proc_errors > 0 {
        let _ = writeln!(
            out,
            "  ext_proc errors (Envoy 500): {}",
            summary.ext_proc_errors
        );
    }
    if !summary.errors.is_empty() {
        let list: Vec<String> = summary
            .errors
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let _ = writeln!(out, "  transport errors: {}", list.join(", "));
    }
    let _ = writeln!(out);
    let d = &summary.detection;
    let _ = writeln!(
        out,
        "  detection rate (attacks blocked): {}   ({} of {} resolved)",
        pct(d.attacks.rate),
        d.attacks.blocked,
        d.attacks.blocked + d.attacks.passed
    );
    if let Some(m) = &summary.monitor {
        let _ = writeln!(
            out,
            "  detection source: {} — {} would-block (answered, but marked in {}){}",
            summary.detection_source.as_deref().unwrap_or("responses"),
            m.would_block,
            m.log,
            m.error
                .as_ref()
                .map(|e| format!("; log not used: {e}"))
                .unwrap_or_default()
        );
    }
    let _ = writeln!(
        out,
        "  false-positive rate (benign blocked): {}   ({} of {} resolved)",
        pct(d.benign.rate),
        d.benign.blocked,
        d.benign.blocked + d.benign.passed
    );
    let s = &summary.score;
    let f = |v: Option<f64>| v.map(|x| format!("{x:.1} %")).unwrap_or("—".into());
    let _ = writeln!(
        out,
        "  score: application {}, api {}, overall {}",
        f(s.application),
        f(s.api),
        f(s.overall)
    );
    let width = d
        .by_set
        .iter()
        .map(|g| g.name.len())
        .max()
        .unwrap_or(8)
        .max(8);
    let _ = writeln!(out, "\n  by set:");
    for g in &d.by_set {
        group_line(&mut out, g, width);
    }
    let _ = writeln!(
        out,
        "\n  latency from intended send (ms) {:>8} {:>8} {:>8} {:>8} {:>8} {:>9}",
        "p50", "p90", "p99", "p99.9", "max", "count"
    );
    for class in ["all", "blocked", "passed", "unresolved", "failed"] {
        if let Some(p) = summary.latency.get(class) {
            if p.count == 0 && class != "all" {
                continue;
            }
            percentile_row(&mut out, class, p);
        }
    }
    if let Some(up) = &summary.upstream {
        for (k, p) in up {
            let _ = writeln!(
                out,
                "  {:<31} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9}",
                format!("{k} (from x-envoy-upstream-service-time)"),
                ms(p.p50),
                ms(p.p90),
                ms(p.p99),
                ms(p.p999),
                ms(p.max),
                p.count
            );
        }
    }
    out.push_str(&super::extproc::render(summary));
    let l = &summary.lateness;
    if summary.run.mode == "open" {
        let _ = writeln!(
            out,
            "  sender lateness: {} requests > {} ms late (p50 {} ms, p99 {} ms, max {} ms)",
            l.late,
            l.threshold_us / 1000,
            ms(l.p50_us),
            ms(l.p99_us),
            ms(l.max_us)
        );
    }
    for hint in &summary.hints {
        let _ = writeln!(out, "\n  hint: {hint}");
    }
    let _ = writeln!(out, "\nresults: {}", dir.display());
    out
}
