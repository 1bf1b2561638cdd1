//! `summary.md`: the headline numbers for a pull-request or change-request comment.
//! Same figures as the HTML report (both come from `report::model`); payloads are left
//! out on purpose (a comment is no place for XSS strings), only counts by case.

use super::escape::markdown as md;
use super::model::{
    detection, evasions, interval, latency_rows, ms, percent, Limits, RateRow, ReportData,
};
use std::fmt::Write;

fn rate(r: &RateRow) -> (String, String) {
    match &r.rate {
        Some(p) => (percent(p.rate), interval(p)),
        None => ("—".into(), "—".into()),
    }
}

fn row(out: &mut String, name: &str, r: &RateRow) {
    let (v, ci) = rate(r);
    let _ = writeln!(
        out,
        "| {} | {v} | {ci} | {} | {} | {} |",
        name, r.blocked, r.passed, r.other
    );
}

/// Renders the Markdown summary.
pub fn render(data: &ReportData, limits: &Limits) -> String {
    let s = &data.summary;
    let d = detection(s);
    let mut out = String::new();
    let _ = writeln!(out, "## wafload report: {}\n", md(&s.run.run_id));
    let _ = writeln!(
        out,
        "Target {} ({}, {} loop, mix: {}); {} of {} planned requests sent in {:.2} s ({:.1} req/s).\n",
        md(&super::html::redact_url(&s.run.target)),
        md(&s.run.protocol),
        md(&s.run.mode),
        md(&s.run.mix),
        s.sent,
        s.planned,
        s.duration_s,
        s.achieved_rate
    );
    if let Some(reason) = &s.run.interrupted {
        let _ = writeln!(
            out,
            "> **Stopped early:** {} ({} not sent)\n",
            md(reason),
            s.not_sent
        );
    }
    let _ = writeln!(
        out,
        "| | rate | 95 % interval (Wilson) | blocked | passed | other |\n|---|---:|---:|---:|---:|---:|"
    );
    row(&mut out, "**detection** (attacks)", &d.attacks);
    row(&mut out, "**false positives** (benign)", &d.benign);
    for set in d.attack_sets.iter().chain(&d.benign_sets) {
        let label = if set.set.benign {
            format!("{} (benign)", md(&set.set.name))
        } else {
            md(&set.set.name)
        };
        row(&mut out, &label, &set.set);
    }
    let score = |v: Option<f64>| v.map(|x| format!("{x:.1} %")).unwrap_or("—".into());
    let _ = writeln!(
        out,
        "\nScore: overall {}, application {}, API {}.\n",
        score(s.score.overall),
        score(s.score.application),
        score(s.score.api)
    );
    let _ = writeln!(
        out,
        "| latency (ms, from intended send) | p50 | p90 | p99 | p99.9 | max | count |\n|---|---:|---:|---:|---:|---:|---:|"
    );
    for (class, p) in latency_rows(s) {
        let _ = writeln!(
            out,
            "| {class} | {} | {} | {} | {} | {} | {} |",
            ms(p.p50),
            ms(p.p90),
            ms(p.p99),
            ms(p.p999),
            ms(p.max),
            p.count
        );
    }
    let counts: Vec<String> = ["blocked", "passed", "unresolved", "failed", "unsendable"]
        .iter()
        .map(|c| format!("{} {c}", s.counts.get(*c).copied().unwrap_or(0)))
        .collect();
    let _ = writeln!(
        out,
        "\nClasses: {}; ext_proc 500s: {}.",
        counts.join(", "),
        s.ext_proc_errors
    );
    let ev = evasions(data, limits);
    if ev.available && !ev.cases.is_empty() {
        let _ = writeln!(
            out,
            "\n**Evasions** (attack requests that passed), by case:\n\n| case | distinct requests | times passed |\n|---|---:|---:|"
        );
        for case in ev.cases.iter().take(20) {
            let _ = writeln!(
                out,
                "| {} | {} | {} |",
                md(&case.case),
                case.distinct,
                case.times
            );
        }
        if ev.cases.len() > 20 {
            let _ = writeln!(out, "\n{} more cases in report.html.", ev.cases.len() - 20);
        }
    } else if !ev.available {
        let _ = writeln!(out, "\nNo request records: evasions cannot be listed.");
    } else {
        let _ = writeln!(out, "\nNo attack request passed.");
    }
    for hint in &s.hints {
        let _ = writeln!(out, "\n> hint: {}", md(hint));
    }
    let _ = writeln!(
        out,
        "\nThe exact requests that passed are in report.html (section \"evasions\")."
    );
    out
}
