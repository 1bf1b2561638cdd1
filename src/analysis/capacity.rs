//! Capacity search: step the open-loop rate up geometrically until the SLO breaks, then
//! bisect between the last good and the first bad rate. Each step is a short bounded run;
//! the whole search has a time budget. Detection is tracked at every step, because a WAF
//! that starts letting attacks through under load (fails open) is the finding that matters.

use super::slo::{Slo, SloReport};
use crate::error::Error;
use crate::profile::Profile;
use crate::run::{run, RunOptions};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

#[derive(Clone, Debug)]
pub struct CapacityOptions {
    pub slo: Slo,
    pub start_rate: f64,
    pub max_rate: f64,
    /// Multiplier between steps while searching upwards.
    pub factor: f64,
    pub step: Duration,
    pub budget: Duration,
    /// Stop bisecting when (bad − good) / good is below this.
    pub precision: f64,
    /// A step fails when the load generator sent less than this share of the asked rate.
    pub min_achieved: f64,
    /// Detection falling more than this (absolute) below the first step is flagged.
    pub fail_open_drop: f64,
}

impl CapacityOptions {
    pub fn new(slo: Slo) -> Self {
        CapacityOptions {
            slo,
            start_rate: 100.0,
            max_rate: 100_000.0,
            factor: 2.0,
            step: Duration::from_secs(5),
            budget: Duration::from_secs(300),
            precision: 0.05,
            min_achieved: 0.95,
            fail_open_drop: 0.05,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Step {
    pub rate: f64,
    pub achieved: f64,
    pub sent: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub errors: f64,
    pub detection: Option<f64>,
    pub false_positives: Option<f64>,
    pub ok: bool,
    pub failing: Vec<String>,
    pub slo: SloReport,
    pub dir: PathBuf,
}

#[derive(Clone, Debug, Serialize)]
pub struct CapacityReport {
    pub slo: String,
    pub steps: Vec<Step>,
    /// Highest rate at which every SLO term held.
    pub sustainable_rate: Option<f64>,
    /// Lowest rate at which a term failed.
    pub first_failing_rate: Option<f64>,
    /// Plain-language finding when detection dropped under load.
    pub fail_open: Option<String>,
    pub budget_exhausted: bool,
    pub interrupted: bool,
    pub elapsed_s: f64,
}

/// Runs the search; every step's results folder lands under `out/steps/`.
pub async fn search(
    profile: &Profile,
    options: &CapacityOptions,
    out: &Path,
    progress: bool,
    cancel: CancellationToken,
) -> Result<CapacityReport, Error> {
    let started = Instant::now();
    let mut steps: Vec<Step> = Vec::new();
    let mut good: Option<f64> = None;
    let mut bad: Option<f64> = None;
    let mut rate = options.start_rate;
    let mut budget_exhausted = false;
    let mut interrupted = false;
    loop {
        if cancel.is_cancelled() {
            interrupted = true;
            break;
        }
        // Next rate: climb until the first failure, then bisect.
        if let Some(b) = bad {
            let g = good.unwrap_or(0.0);
            if g > 0.0 && (b - g) / g <= options.precision {
                break;
            }
            if g == 0.0 && b <= options.start_rate {
                break; // even the first step failed
            }
            rate = if g == 0.0 {
                b / options.factor
            } else {
                (g + b) / 2.0
            };
        }
        if rate > options.max_rate {
            break;
        }
        // One step costs its duration plus a little set-up; respect the budget.
        if started.elapsed() + options.step + Duration::from_millis(500) > options.budget {
            budget_exhausted = true;
            break;
        }
        let step = run_step(
            profile,
            options,
            rate,
            out,
            steps.len() + 1,
            progress,
            cancel.clone(),
        )
        .await?;
        if progress {
            eprintln!(
                "  {:>9.1} req/s → achieved {:>9.1}, p99 {:>8.2} ms, errors {:>6.2} %, detection {} — {}",
                step.rate,
                step.achieved,
                step.p99_ms,
                step.errors * 100.0,
                step.detection.map(|d| format!("{:.1} %", d * 100.0)).unwrap_or("—".into()),
                if step.ok { "ok".to_string() } else { format!("FAIL {}", step.failing.join(", ")) }
            );
        }
        if step.ok {
            good = Some(good.map_or(rate, |g: f64| g.max(rate)));
            if bad.is_none() {
                rate *= options.factor;
            }
        } else {
            bad = Some(bad.map_or(rate, |b: f64| b.min(rate)));
        }
        steps.push(step);
    }
    let fail_open = fail_open_finding(&steps, options.fail_open_drop);
    Ok(CapacityReport {
        slo: options
            .slo
            .terms
            .iter()
            .map(|t| t.text.clone())
            .collect::<Vec<_>>()
            .join(","),
        sustainable_rate: good,
        first_failing_rate: bad,
        fail_open,
        steps,
        budget_exhausted,
        interrupted,
        elapsed_s: started.elapsed().as_secs_f64(),
    })
}

async fn run_step(
    profile: &Profile,
    options: &CapacityOptions,
    rate: f64,
    out: &Path,
    index: usize,
    progress: bool,
    cancel: CancellationToken,
) -> Result<Step, Error> {
    let mut p = profile.clone();
    p.rate = Some(rate);
    p.stages.clear();
    p.duration = Some(options.step);
    p.requests = None;
    p.max = false;
    let dir = out.join("steps").join(format!("{index:02}-{rate:.0}rps"));
    let run_options = RunOptions {
        origin: "capacity step".into(),
        out: Some(dir.clone()),
        progress: false,
        shard: Default::default(),
        start_at: None,
    };
    if progress {
        eprint!("step {index}: ");
    }
    let outcome = run(&p, &run_options, cancel).await?;
    let s = &outcome.summary;
    let slo = options.slo.evaluate(s);
    let mut failing: Vec<String> = slo.failing().iter().map(|t| t.term.clone()).collect();
    if s.achieved_rate < rate * options.min_achieved {
        failing.push(format!(
            "achieved {:.0} req/s < {:.0} % of {:.0} (sender could not keep the rate: connection cap reached)",
            s.achieved_rate,
            options.min_achieved * 100.0,
            rate
        ));
    }
    let all = &s.latency["all"];
    let errors = if s.sent > 0 {
        (s.counts.get("failed").copied().unwrap_or(0)
            + s.counts.get("unresolved").copied().unwrap_or(0)) as f64
            / s.sent as f64
    } else {
        0.0
    };
    Ok(Step {
        rate,
        achieved: s.achieved_rate,
        sent: s.sent,
        p50_ms: all.p50 as f64 / 1000.0,
        p99_ms: all.p99 as f64 / 1000.0,
        errors,
        detection: s.detection.attacks.rate,
        false_positives: s.detection.benign.rate,
        ok: failing.is_empty(),
        failing,
        slo,
        dir: outcome.dir,
    })
}

/// Detection at each step against the lowest-rate step: a drop beyond `drop` is reported
/// at the first (lowest) rate where it happens.
pub fn fail_open_finding(steps: &[Step], drop: f64) -> Option<String> {
    let mut by_rate: Vec<&Step> = steps.iter().filter(|s| s.detection.is_some()).collect();
    by_rate.sort_by(|a, b| a.rate.total_cmp(&b.rate));
    let first = by_rate.first()?;
    let reference = first.detection?;
    let fallen = by_rate
        .iter()
        .find(|s| s.detection.is_some_and(|d| d < reference - drop))?;
    Some(format!(
        "detection fell from {:.1} % at {:.0} req/s to {:.1} % at {:.0} req/s: the WAF lets attacks through under load (fails open)",
        reference * 100.0,
        first.rate,
        fallen.detection.unwrap_or(0.0) * 100.0,
        fallen.rate
    ))
}

pub fn render(r: &CapacityReport) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(out, "capacity search, SLO {}", r.slo);
    let _ = writeln!(
        out,
        "  {:>10} {:>10} {:>9} {:>9} {:>8} {:>10} {:>8}  result",
        "rate", "achieved", "p50 ms", "p99 ms", "errors", "detection", "fp"
    );
    let mut steps: Vec<&Step> = r.steps.iter().collect();
    steps.sort_by(|a, b| a.rate.total_cmp(&b.rate));
    let pct = |v: Option<f64>| {
        v.map(|x| format!("{:.1} %", x * 100.0))
            .unwrap_or("—".into())
    };
    for s in steps {
        let _ = writeln!(
            out,
            "  {:>10.1} {:>10.1} {:>9.2} {:>9.2} {:>7.2}% {:>10} {:>8}  {}",
            s.rate,
            s.achieved,
            s.p50_ms,
            s.p99_ms,
            s.errors * 100.0,
            pct(s.detection),
            pct(s.false_positives),
            if s.ok {
                "ok".to_string()
            } else {
                format!("FAIL: {}", s.failing.join("; "))
            }
        );
    }
    match r.sustainable_rate {
        Some(g) => {
            let _ = writeln!(out, "\nhighest sustainable rate: {g:.1} req/s");
        }
        None => {
            let _ = writeln!(out, "\nno step met the SLO");
        }
    }
    if let Some(b) = r.first_failing_rate {
        let _ = writeln!(out, "lowest failing rate: {b:.1} req/s");
    }
    if let Some(f) = &r.fail_open {
        let _ = writeln!(out, "FINDING: {f}");
    }
    if r.budget_exhausted {
        let _ = writeln!(
            out,
            "(time budget exhausted: the bracket may be wider than the precision asked)"
        );
    }
    let _ = writeln!(
        out,
        "search took {:.1} s over {} steps",
        r.elapsed_s,
        r.steps.len()
    );
    out
}
