//! What every exporter draws from: a results folder read back once (summary, sources,
//! series, histograms) plus one streaming pass over the request records, reduced to
//! per-source tallies. Exporters (HTML, Markdown, JSON, charts) only format these views;
//! the numbers are computed here, once, so every format prints the same figures.

use crate::error::Error;
use crate::plan::Source;
use crate::record::{for_each_record, RECORDS_FILE};
use crate::results::{
    load_histograms, load_series, load_sources, load_summary, GroupRates, Rates, SecondSummary,
    Summary,
};
use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A proportion with its Wilson 95 % interval, all in 0..=1, as every format prints it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Proportion {
    pub successes: u64,
    pub trials: u64,
    pub rate: f64,
    pub low: f64,
    pub high: f64,
}

/// `successes` of `trials` with its Wilson 95 % interval (`analysis::stats::wilson`);
/// `None` when there were no trials. Bounds are exact at 0 and at `trials`.
pub fn wilson95(successes: u64, trials: u64) -> Option<Proportion> {
    if successes > trials {
        return None;
    }
    let (low, high) = crate::analysis::stats::wilson(successes, trials)?;
    Some(Proportion {
        successes,
        trials,
        rate: successes as f64 / trials as f64,
        low: if successes == 0 { 0.0 } else { low },
        high: if successes == trials { 1.0 } else { high },
    })
}

/// How much of the per-request detail a report shows. The caps keep a report of a
/// million-request run small enough to open and attach; every table says what it left out.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Evasion rows (distinct attack requests that passed) in the whole table.
    pub evasions: usize,
    /// Evasion rows per case, so one leaky case cannot hide all others.
    pub evasions_per_case: usize,
    /// Rows of benign requests that were blocked (false positives).
    pub false_positives: usize,
    /// Characters shown of a payload, target, header value or body before cutting.
    pub text: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            evasions: 250,
            evasions_per_case: 20,
            false_positives: 60,
            text: 1024,
        }
    }
}

/// What the records say about one source (corpus request).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SourceTally {
    pub passed: u64,
    pub blocked: u64,
    /// Slot of the first passed request (request id suffix), to find it in WAF logs.
    pub first_passed: Option<u64>,
    pub first_passed_status: Option<u16>,
    pub first_blocked: Option<u64>,
    pub first_blocked_status: Option<u16>,
}

/// A results folder, loaded for reporting.
pub struct ReportData {
    pub dir: PathBuf,
    pub summary: Summary,
    pub sources: Vec<Source>,
    pub series: Vec<SecondSummary>,
    pub histograms: BTreeMap<String, Histogram<u64>>,
    /// Per-source tallies from `requests.jsonl.zst`; `None` when the run kept no records.
    pub tallies: Option<Vec<SourceTally>>,
    /// Records read (and skipped because their source index was out of range).
    pub records_read: u64,
    pub records_skipped: u64,
    /// Why the records could not be read, when they could not (a damaged file): the
    /// report is still built from the other files, without the request tables.
    pub records_error: Option<String>,
}

impl ReportData {
    /// Reads a results folder. Only the records file is optional (the evasion tables
    /// need it); everything else a finished run always writes.
    pub fn load(dir: &Path) -> Result<ReportData, Error> {
        let summary = load_summary(dir)?;
        let sources = load_sources(dir)?;
        let series = load_series(dir)?;
        let histograms = load_histograms(dir)?;
        let mut data = ReportData {
            dir: dir.to_path_buf(),
            summary,
            sources,
            series,
            histograms,
            tallies: None,
            records_read: 0,
            records_skipped: 0,
            records_error: None,
        };
        if dir.join(RECORDS_FILE).exists() {
            if let Err(e) = data.read_records() {
                data.records_error = Some(e.to_string());
            }
        }
        Ok(data)
    }

    fn read_records(&mut self) -> Result<(), Error> {
        let mut tallies = vec![SourceTally::default(); self.sources.len()];
        let mut skipped = 0u64;
        let path = self.dir.join(RECORDS_FILE);
        let read = for_each_record(&self.dir, |r| {
            let Some(t) = tallies.get_mut(r.src as usize) else {
                skipped += 1;
                return;
            };
            match r.cls.as_str() {
                "passed" => {
                    t.passed += 1;
                    if t.first_passed.is_none() || r.n < t.first_passed {
                        t.first_passed = r.n;
                        t.first_passed_status = r.st;
                    }
                }
                "blocked" => {
                    t.blocked += 1;
                    if t.first_blocked.is_none() || r.n < t.first_blocked {
                        t.first_blocked = r.n;
                        t.first_blocked_status = r.st;
                    }
                }
                _ => {}
            }
        })
        .map_err(|e| Error::Results {
            path: path.clone(),
            message: e.to_string(),
        })?;
        self.records_read = read;
        self.records_skipped = skipped;
        self.tallies = Some(tallies);
        Ok(())
    }

    /// The request id a WAF log shows for a slot.
    pub fn request_id(&self, slot: u64) -> String {
        format!("{}-{}", self.summary.run.request_id_prefix, slot)
    }
}

/// One row of a detection table: counts and the blocked share with its 95 % interval.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RateRow {
    pub name: String,
    pub benign: bool,
    pub blocked: u64,
    pub passed: u64,
    /// Unresolved, failed and unsendable: not counted in the rate.
    pub other: u64,
    /// blocked ÷ (blocked + passed) with its Wilson 95 % interval; detection rate for
    /// attacks, false-positive rate for benign traffic.
    pub rate: Option<Proportion>,
}

impl RateRow {
    pub fn of(name: &str, benign: bool, r: &Rates) -> RateRow {
        RateRow {
            name: name.to_string(),
            benign,
            blocked: r.blocked,
            passed: r.passed,
            other: r.unresolved + r.failed + r.unsendable,
            rate: wilson95(r.blocked, r.blocked + r.passed),
        }
    }

    fn of_group(g: &GroupRates) -> RateRow {
        RateRow::of(&g.name, g.benign, &g.rates)
    }

    pub fn resolved(&self) -> u64 {
        self.blocked + self.passed
    }
}

/// A set with its cases, for the grouped detection chart and tables.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SetRows {
    pub set: RateRow,
    /// Case rows; `name` is the case alone (without "set/").
    pub cases: Vec<RateRow>,
}

/// Detection by every label, with intervals.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DetectionView {
    pub attacks: RateRow,
    pub benign: RateRow,
    pub attack_sets: Vec<SetRows>,
    pub benign_sets: Vec<SetRows>,
    pub by_placeholder: Vec<RateRow>,
    pub by_encoder: Vec<RateRow>,
}

pub fn detection(summary: &Summary) -> DetectionView {
    let d = &summary.detection;
    let mut sets: BTreeMap<&str, SetRows> = BTreeMap::new();
    for g in &d.by_set {
        sets.insert(
            &g.name,
            SetRows {
                set: RateRow::of_group(g),
                cases: Vec::new(),
            },
        );
    }
    for g in &d.by_case {
        // Keys are "set/case"; match the longest known set name rather than splitting at
        // a '/', which a set name could contain.
        let (set, case) = d
            .by_set
            .iter()
            .filter_map(|s| {
                g.name
                    .strip_prefix(s.name.as_str())
                    .and_then(|rest| rest.strip_prefix('/'))
                    .map(|case| (s.name.as_str(), case))
            })
            .max_by_key(|(set, _)| set.len())
            .unwrap_or_else(|| g.name.split_once('/').unwrap_or(("", &g.name)));
        let entry = sets.entry(set).or_insert_with(|| SetRows {
            set: RateRow::of(set, g.benign, &Rates::default()),
            cases: Vec::new(),
        });
        entry.cases.push(RateRow::of(case, g.benign, &g.rates));
    }
    let (benign_sets, attack_sets): (Vec<SetRows>, Vec<SetRows>) =
        sets.into_values().partition(|s| s.set.benign);
    DetectionView {
        attacks: RateRow::of("all attacks", false, &d.attacks),
        benign: RateRow::of("all benign", true, &d.benign),
        attack_sets,
        benign_sets,
        by_placeholder: d.by_placeholder.iter().map(RateRow::of_group).collect(),
        by_encoder: d.by_encoder.iter().map(RateRow::of_group).collect(),
    }
}

/// Placeholder × encoder block rates of attacks: which delivery paths evade the WAF.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MatrixView {
    pub placeholders: Vec<String>,
    pub encoders: Vec<String>,
    /// `cells[p][e]`; `None` where the corpus has no such request.
    pub cells: Vec<Vec<Option<RateRow>>>,
}

pub fn matrix(summary: &Summary) -> MatrixView {
    let mut placeholders: Vec<String> = Vec::new();
    let mut encoders: Vec<String> = Vec::new();
    let mut found: Vec<(String, String, RateRow)> = Vec::new();
    for g in &summary.detection.by_delivery {
        let Some((p, e)) = g.name.rsplit_once(" × ") else {
            continue;
        };
        if !placeholders.iter().any(|x| x == p) {
            placeholders.push(p.to_string());
        }
        if !encoders.iter().any(|x| x == e) {
            encoders.push(e.to_string());
        }
        found.push((p.to_string(), e.to_string(), RateRow::of_group(g)));
    }
    placeholders.sort();
    encoders.sort();
    let mut cells = vec![vec![None; encoders.len()]; placeholders.len()];
    for (p, e, row) in found {
        let pi = placeholders.iter().position(|x| *x == p).unwrap_or(0);
        let ei = encoders.iter().position(|x| *x == e).unwrap_or(0);
        cells[pi][ei] = Some(row);
    }
    MatrixView {
        placeholders,
        encoders,
        cells,
    }
}

/// One point of a latency percentile spectrum.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct SpectrumPoint {
    pub quantile: f64,
    pub latency_us: u64,
}

/// Latency at quantiles spaced evenly on the 1/(1-q) log axis (20 per decade) from p0
/// to p99.999, stopping once a quantile is beyond what the sample count can resolve;
/// the last point is the maximum.
pub fn spectrum(h: &Histogram<u64>) -> Vec<SpectrumPoint> {
    let mut points = Vec::new();
    if h.is_empty() {
        return points;
    }
    let count = h.len() as f64;
    for step in 0..=100u32 {
        let x = 10f64.powf(step as f64 / 20.0);
        let q = 1.0 - 1.0 / x;
        if x > count {
            break;
        }
        points.push(SpectrumPoint {
            quantile: q,
            latency_us: h.value_at_quantile(q),
        });
    }
    let last_q = points.last().map(|p| p.quantile).unwrap_or(0.0);
    let top = (1.0 - 1.0 / count.max(1.0)).max(last_q).min(0.99999);
    if top > last_q {
        points.push(SpectrumPoint {
            quantile: top,
            latency_us: h.max(),
        });
    } else if let Some(p) = points.last_mut() {
        // The last resolvable quantile is the top sample: draw it at the maximum.
        p.latency_us = h.max();
    }
    points
}

/// The spectrum of one class.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SpectrumLine {
    pub class: String,
    pub count: u64,
    pub points: Vec<SpectrumPoint>,
}

/// Spectra of the classes the report plots, in drawing order; empty classes left out.
pub fn spectra(data: &ReportData) -> Vec<SpectrumLine> {
    ["all", "blocked", "passed", "unresolved", "failed"]
        .iter()
        .filter_map(|name| {
            let h = data.histograms.get(*name)?;
            (!h.is_empty()).then(|| SpectrumLine {
                class: name.to_string(),
                count: h.len(),
                points: spectrum(h),
            })
        })
        .collect()
}

/// Class and status counts for the breakdown chart.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BreakdownView {
    /// (class, count) in a fixed order, ext_proc 500s last.
    pub classes: Vec<(String, u64)>,
    /// Total requests (the share denominator).
    pub total: u64,
    /// HTTP statuses and transport errors, most frequent first.
    pub statuses: Vec<(String, u64)>,
}

pub fn breakdown(summary: &Summary) -> BreakdownView {
    let mut classes: Vec<(String, u64)> =
        ["blocked", "passed", "unresolved", "failed", "unsendable"]
            .iter()
            .map(|c| (c.to_string(), summary.counts.get(*c).copied().unwrap_or(0)))
            .collect();
    let total = classes.iter().map(|(_, n)| n).sum();
    classes.push(("ext_proc 500s".to_string(), summary.ext_proc_errors));
    let mut statuses: Vec<(String, u64)> = summary
        .statuses
        .iter()
        .map(|(k, v)| (format!("HTTP {k}"), *v))
        .chain(
            summary
                .errors
                .iter()
                .map(|(k, v)| (format!("error: {k}"), *v)),
        )
        .collect();
    statuses.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    BreakdownView {
        classes,
        total,
        statuses,
    }
}

/// A request shown in the evasion or false-positive table.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ListedRequest {
    /// Index into sources.json.
    pub source: usize,
    /// How many times this request got the listed class.
    pub times: u64,
    /// Request id of the first such request (`<prefix>-<slot>`).
    pub request_id: Option<String>,
    pub status: Option<u16>,
}

/// Listed requests of one case.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ListedCase {
    /// "set/case".
    pub case: String,
    /// Distinct requests of this case with the class, and how many times in all.
    pub distinct: u64,
    pub times: u64,
    pub rows: Vec<ListedRequest>,
    /// Distinct requests not shown because of the caps.
    pub omitted: u64,
}

/// A capped table of requests grouped by case.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Listing {
    /// False when the run kept no request records (the table cannot be built).
    pub available: bool,
    pub cases: Vec<ListedCase>,
    pub shown: u64,
    pub omitted: u64,
}

/// Attack requests that passed (the evasions), grouped by case, the leakiest cases first.
pub fn evasions(data: &ReportData, limits: &Limits) -> Listing {
    listing(
        data,
        |s, t| {
            (!s.benign && t.passed > 0).then_some((t.passed, t.first_passed, t.first_passed_status))
        },
        limits.evasions,
        limits.evasions_per_case,
    )
}

/// Benign requests that were blocked (false positives), grouped by case.
pub fn false_positives(data: &ReportData, limits: &Limits) -> Listing {
    listing(
        data,
        |s, t| {
            (s.benign && t.blocked > 0).then_some((
                t.blocked,
                t.first_blocked,
                t.first_blocked_status,
            ))
        },
        limits.false_positives,
        limits.false_positives,
    )
}

fn listing(
    data: &ReportData,
    pick: impl Fn(&Source, &SourceTally) -> Option<(u64, Option<u64>, Option<u16>)>,
    max_rows: usize,
    max_per_case: usize,
) -> Listing {
    let Some(tallies) = &data.tallies else {
        return Listing {
            available: false,
            cases: Vec::new(),
            shown: 0,
            omitted: 0,
        };
    };
    let mut by_case: BTreeMap<String, Vec<ListedRequest>> = BTreeMap::new();
    for (i, (source, tally)) in data.sources.iter().zip(tallies).enumerate() {
        if let Some((times, slot, status)) = pick(source, tally) {
            by_case
                .entry(format!("{}/{}", source.set, source.case))
                .or_default()
                .push(ListedRequest {
                    source: i,
                    times,
                    request_id: slot.map(|n| data.request_id(n)),
                    status,
                });
        }
    }
    let mut cases: Vec<ListedCase> = by_case
        .into_iter()
        .map(|(case, mut rows)| {
            rows.sort_by(|a, b| b.times.cmp(&a.times).then(a.source.cmp(&b.source)));
            ListedCase {
                case,
                distinct: rows.len() as u64,
                times: rows.iter().map(|r| r.times).sum(),
                rows,
                omitted: 0,
            }
        })
        .collect();
    cases.sort_by(|a, b| b.distinct.cmp(&a.distinct).then(a.case.cmp(&b.case)));
    // Round-robin over cases so the cap leaves every leaky case at least a few rows.
    let mut budget = max_rows;
    let mut keep = vec![0usize; cases.len()];
    let mut progressed = true;
    while budget > 0 && progressed {
        progressed = false;
        for (k, case) in keep.iter_mut().zip(&cases) {
            if budget > 0 && *k < case.rows.len().min(max_per_case) {
                *k += 1;
                budget -= 1;
                progressed = true;
            }
        }
    }
    let mut shown = 0u64;
    let mut omitted = 0u64;
    for (case, k) in cases.iter_mut().zip(keep) {
        case.omitted = (case.rows.len() - k) as u64;
        case.rows.truncate(k);
        shown += k as u64;
        omitted += case.omitted;
    }
    Listing {
        available: true,
        cases,
        shown,
        omitted,
    }
}

/// Latency figures by class for the summary table, in µs (from summary.json).
pub fn latency_rows(summary: &Summary) -> Vec<(String, crate::record::Percentiles)> {
    ["all", "blocked", "passed", "unresolved", "failed"]
        .iter()
        .filter_map(|c| {
            let p = summary.latency.get(*c)?;
            (p.count > 0 || *c == "all").then(|| (c.to_string(), p.clone()))
        })
        .collect()
}

/// Formats a share as "95.0 %" (one decimal, the precision the report promises).
pub fn percent(v: f64) -> String {
    format!("{:.1} %", v * 100.0)
}

/// Formats an interval as "88.8–97.8 %".
pub fn interval(p: &Proportion) -> String {
    format!("{:.1}–{:.1} %", p.low * 100.0, p.high * 100.0)
}

/// Microseconds as milliseconds with sensible precision.
pub fn ms(us: u64) -> String {
    crate::report::terminal::ms(us)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 0.000_05
    }

    /// Newcombe (1998), "Two-sided confidence intervals for the single proportion",
    /// Statistics in Medicine 17:857–872, table I, method 3 (score, no continuity
    /// correction), published to four decimals.
    #[test]
    fn wilson_matches_newcombe_1998_and_is_exact_at_the_edges() {
        for (k, n, lo, hi) in [
            (81, 263, 0.2553, 0.3662),
            (15, 148, 0.0624, 0.1605),
            (0, 20, 0.0, 0.1611),
            (1, 29, 0.0061, 0.1718),
        ] {
            let p = wilson95(k, n).unwrap();
            assert!(close(p.low, lo) && close(p.high, hi), "{k}/{n}: {p:?}");
        }
        assert!(wilson95(0, 0).is_none() && wilson95(3, 2).is_none());
        let all = wilson95(10, 10).unwrap();
        assert!(all.high == 1.0 && close(all.low, 0.7225));
        assert_eq!(wilson95(0, 10).unwrap().low, 0.0);
    }

    #[test]
    fn spectrum_stops_at_resolvable_quantiles_and_ends_at_max() {
        let mut h = crate::record::new_histogram();
        for v in 1..=1000u64 {
            h.record(v).unwrap();
        }
        let s = spectrum(&h);
        assert_eq!(s[0].quantile, 0.0);
        let last = s.last().unwrap();
        assert!((last.quantile - 0.999).abs() < 1e-9, "{last:?}");
        assert_eq!(last.latency_us, h.max());
        assert!(s.windows(2).all(|w| w[0].quantile < w[1].quantile));
        assert!(s.windows(2).all(|w| w[0].latency_us <= w[1].latency_us));
    }
}
