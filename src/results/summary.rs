//! `summary.json`: what a user signs off on. Built from the recorder's numbers and the
//! plan's labels; detection tables are recomputed from counts, never averaged.

use crate::classify::Class;
use crate::plan::{Plan, Source};
use crate::record::{micros, Percentiles, Recorded, LATE_THRESHOLD_US};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const SUMMARY_FORMAT: u32 = 1;

/// Counts of each class, and the rate that matters: blocked / (blocked + passed).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Rates {
    pub blocked: u64,
    pub passed: u64,
    pub unresolved: u64,
    pub failed: u64,
    pub unsendable: u64,
    /// blocked / (blocked + passed); `None` when nothing was resolved.
    pub rate: Option<f64>,
}

impl Rates {
    pub fn add(&mut self, counts: &[u64; 5]) {
        self.blocked += counts[Class::Blocked.index()];
        self.passed += counts[Class::Passed.index()];
        self.unresolved += counts[Class::Unresolved.index()];
        self.failed += counts[Class::Failed.index()];
        self.unsendable += counts[Class::Unsendable.index()];
        self.rate = rate(self.blocked, self.passed);
    }

    pub fn total(&self) -> u64 {
        self.blocked + self.passed + self.unresolved + self.failed + self.unsendable
    }
}

pub fn rate(blocked: u64, passed: u64) -> Option<f64> {
    let n = blocked + passed;
    (n > 0).then(|| blocked as f64 / n as f64)
}

/// Rates of one group (a set, a case, a placeholder, …).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GroupRates {
    pub name: String,
    pub benign: bool,
    #[serde(flatten)]
    pub rates: Rates,
}

/// Detection on attacks and false positives on benign traffic, by every label.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    /// All attack requests.
    pub attacks: Rates,
    /// All benign requests: `rate` here is the false-positive rate.
    pub benign: Rates,
    pub by_set: Vec<GroupRates>,
    /// Key "set/case".
    pub by_case: Vec<GroupRates>,
    /// Attacks only.
    pub by_placeholder: Vec<GroupRates>,
    /// Attacks only.
    pub by_encoder: Vec<GroupRates>,
    /// Attacks only; key "placeholder × encoder" — the delivery-path matrix.
    pub by_delivery: Vec<GroupRates>,
}

/// A gotestwaf-like score in percent: application = mean of attack detection on non-API
/// sets and the benign pass rate; API = detection on API sets; overall = mean of those
/// present.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Score {
    pub application: Option<f64>,
    pub api: Option<f64>,
    pub overall: Option<f64>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Lateness {
    /// Requests sent more than `threshold_us` after their intended time.
    pub late: u64,
    pub threshold_us: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Environment {
    pub hostname: String,
    pub os: String,
    pub kernel: String,
    pub cpus: usize,
    pub wafload_version: String,
}

impl Environment {
    pub fn detect() -> Self {
        let read = |p: &str| {
            std::fs::read_to_string(p)
                .map(|s| s.trim().to_string())
                .unwrap_or_default()
        };
        let os = read("/etc/os-release")
            .lines()
            .find_map(|l| l.strip_prefix("PRETTY_NAME="))
            .map(|s| s.trim_matches('"').to_string())
            .unwrap_or_else(|| std::env::consts::OS.to_string());
        Environment {
            hostname: read("/proc/sys/kernel/hostname"),
            os,
            kernel: read("/proc/sys/kernel/osrelease"),
            cpus: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            wafload_version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }
}

/// Facts about the run that are not measurements.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    pub run_id: String,
    /// Request ids are `<request_id_prefix>-<slot>`.
    pub request_id_prefix: String,
    pub request_id_header: String,
    pub started_at: String,
    pub finished_at: String,
    /// Why the run stopped early, when it did ("interrupted (SIGINT)", "target unreachable").
    pub interrupted: Option<String>,
    pub target: String,
    /// Protocol actually spoken ("h1", "h2").
    pub protocol: String,
    /// "open" (scheduled rate) or "closed" (as fast as possible).
    pub mode: String,
    pub requested_rate: Option<f64>,
    pub mix: String,
    pub corpus: Vec<String>,
    pub seed: u64,
    /// "I/N" for one shard of a distributed run; absent for a whole run.
    pub shard: Option<String>,
    /// Wall-clock time of schedule zero (ms since the Unix epoch): merge aligns series on it.
    #[serde(default)]
    pub start_unix_ms: u64,
    /// Unsendable corpus requests recorded by this run (shard 0 records them).
    #[serde(default)]
    pub unsendable: u64,
    /// Shards merged into this result ("merge" only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub merged_from: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub format: u32,
    pub run: RunInfo,
    pub environment: Environment,
    /// The resolved profile the run used.
    pub profile: serde_json::Value,
    /// Slots scheduled plus unsendable corpus requests.
    pub planned: u64,
    pub sent: u64,
    pub not_sent: u64,
    pub counts: BTreeMap<String, u64>,
    pub unsupported: BTreeMap<String, u64>,
    pub statuses: BTreeMap<String, u64>,
    pub errors: BTreeMap<String, u64>,
    pub ext_proc_errors: u64,
    /// Seconds from the first intended send to the last response.
    pub duration_s: f64,
    /// Sent requests per second over the send window.
    pub achieved_rate: f64,
    pub lateness: Lateness,
    /// Latency in µs from the intended send time, by class and "all".
    pub latency: BTreeMap<String, Percentiles>,
    /// Present when responses carried x-envoy-upstream-service-time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<BTreeMap<String, Percentiles>>,
    pub detection: Detection,
    pub score: Score,
    pub hints: Vec<String>,
    pub records: u64,
    pub response_body_bytes: u64,
    /// Where blocks were read from: "responses", or the WAF log in monitoring mode
    /// ("waf log (modsecurity preset)").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detection_source: Option<String>,
    /// What the WAF log added (monitoring mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitor: Option<crate::classify::monitor::MonitorSummary>,
    /// Requests that declared the verdict the WAF should give (imported traffic), and
    /// whether it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expectations: Option<Expectations>,
    /// Direct ext_proc runs: per-phase processor latency and where decisions fell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ext_proc: Option<super::ExtProcSummary>,
}

/// "Expected verdict met" counts for requests that carry an expected verdict.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Expectations {
    /// Requests that declared a verdict and got a resolved answer (blocked or passed).
    pub resolved: u64,
    pub met: u64,
    pub missed: u64,
    /// Failed, unresolved or unsendable: neither met nor missed.
    pub unresolved: u64,
    /// Per traffic source and expected verdict.
    pub by_source: Vec<ExpectationGroup>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExpectationGroup {
    pub source: String,
    pub expected: crate::traffic::Verdict,
    pub met: u64,
    pub missed: u64,
    pub unresolved: u64,
}

/// Expected-verdict counts from per-source counts; `None` when no source declared one.
pub fn expectations_of(sources: &[Source], per_source: &[[u64; 5]]) -> Option<Expectations> {
    use crate::traffic::Verdict;
    let mut groups: BTreeMap<(String, &'static str), ExpectationGroup> = BTreeMap::new();
    for (s, c) in sources.iter().zip(per_source) {
        let Some(expected) = s.expected else { continue };
        let (met, missed) = match expected {
            Verdict::Pass => (c[Class::Passed.index()], c[Class::Blocked.index()]),
            Verdict::Block => (c[Class::Blocked.index()], c[Class::Passed.index()]),
        };
        let key = (
            s.set.clone(),
            if expected == Verdict::Pass {
                "pass"
            } else {
                "block"
            },
        );
        let g = groups.entry(key).or_insert_with(|| ExpectationGroup {
            source: s.set.clone(),
            expected,
            met: 0,
            missed: 0,
            unresolved: 0,
        });
        g.met += met;
        g.missed += missed;
        g.unresolved += c.iter().sum::<u64>() - met - missed;
    }
    if groups.is_empty() {
        return None;
    }
    let by_source: Vec<ExpectationGroup> = groups.into_values().collect();
    let met = by_source.iter().map(|g| g.met).sum();
    let missed = by_source.iter().map(|g| g.missed).sum();
    Some(Expectations {
        resolved: met + missed,
        met,
        missed,
        unresolved: by_source.iter().map(|g| g.unresolved).sum(),
        by_source,
    })
}

/// What the summary needs to know about the requests themselves.
pub struct Labels<'a> {
    pub sources: &'a [Source],
    /// Notes from building the plan (skipped OpenAPI parts, import remarks).
    pub notes: &'a [String],
    /// Corpus requests not sent because their placeholder is unsupported, by name.
    pub unsupported: BTreeMap<String, u64>,
}

impl<'a> Labels<'a> {
    pub fn of_plan(plan: &'a Plan) -> Self {
        Labels {
            sources: &plan.sources,
            notes: &plan.notes,
            unsupported: plan.unsupported.iter().cloned().collect(),
        }
    }
}

/// Per-second numbers (by intended send second) for the time-series charts.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SecondSummary {
    pub t: u64,
    pub sent: u64,
    pub completed: u64,
    pub blocked: u64,
    pub passed: u64,
    pub unresolved: u64,
    pub failed: u64,
    pub ext_proc_errors: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

pub fn series_of(recorded: &Recorded) -> Vec<SecondSummary> {
    recorded
        .series
        .iter()
        .enumerate()
        .map(|(t, s)| {
            let (_, p50_us, p99_us, max_us) = s.stats();
            SecondSummary {
                t: t as u64,
                sent: s.sent,
                completed: s.completed,
                blocked: s.by_class[Class::Blocked.index()],
                passed: s.by_class[Class::Passed.index()],
                unresolved: s.by_class[Class::Unresolved.index()],
                failed: s.by_class[Class::Failed.index()],
                ext_proc_errors: s.ext_proc_errors,
                p50_us,
                p99_us,
                max_us,
            }
        })
        .collect()
}

/// Group rates by a key function, in first-seen order of sorted keys.
fn group_by(
    sources: &[Source],
    per_source: &[[u64; 5]],
    filter: impl Fn(&Source) -> bool,
    key: impl Fn(&Source) -> String,
) -> Vec<GroupRates> {
    let mut groups: BTreeMap<String, GroupRates> = BTreeMap::new();
    for (source, counts) in sources.iter().zip(per_source) {
        if !filter(source) {
            continue;
        }
        let g = groups.entry(key(source)).or_insert_with(|| GroupRates {
            name: key(source),
            benign: source.benign,
            rates: Rates::default(),
        });
        g.rates.add(counts);
    }
    groups.into_values().collect()
}

/// Detection tables recomputed from per-source counts.
pub fn detection_of(sources: &[Source], per_source: &[[u64; 5]]) -> Detection {
    let mut attacks = Rates::default();
    let mut benign = Rates::default();
    for (s, c) in sources.iter().zip(per_source) {
        if s.benign {
            benign.add(c);
        } else {
            attacks.add(c);
        }
    }
    Detection {
        attacks,
        benign,
        by_set: group_by(sources, per_source, |_| true, |s| s.set.clone()),
        by_case: group_by(
            sources,
            per_source,
            |_| true,
            |s| format!("{}/{}", s.set, s.case),
        ),
        by_placeholder: group_by(
            sources,
            per_source,
            |s| !s.benign,
            |s| s.placeholder.clone(),
        ),
        by_encoder: group_by(sources, per_source, |s| !s.benign, |s| s.encoder.clone()),
        by_delivery: group_by(
            sources,
            per_source,
            |s| !s.benign,
            |s| format!("{} × {}", s.placeholder, s.encoder),
        ),
    }
}

pub fn score_of(sources: &[Source], per_source: &[[u64; 5]]) -> Score {
    let mut app = Rates::default();
    let mut api = Rates::default();
    let mut benign = Rates::default();
    for (s, c) in sources.iter().zip(per_source) {
        if s.benign {
            benign.add(c);
        } else if s.api {
            api.add(c);
        } else {
            app.add(c);
        }
    }
    let pct = |r: Option<f64>| r.map(|v| (v * 1000.0).round() / 10.0);
    let true_negative = benign.rate.map(|fp| 1.0 - fp);
    let application = match (app.rate, true_negative) {
        (Some(a), Some(t)) => Some((a + t) / 2.0),
        (a, t) => a.or(t),
    };
    let overall = match (application, api.rate) {
        (Some(a), Some(b)) => Some((a + b) / 2.0),
        (a, b) => a.or(b),
    };
    Score {
        application: pct(application),
        api: pct(api.rate),
        overall: pct(overall),
    }
}

/// Plain-language hints a platform engineer can act on.
pub fn hints_of(summary: &Summary) -> Vec<String> {
    let mut hints = Vec::new();
    if summary.ext_proc_errors > 0 {
        hints.push(format!(
            "{} responses were Envoy ext_proc errors: {}",
            summary.ext_proc_errors,
            crate::classify::EXT_PROC_HINT
        ));
    }
    let a = &summary.detection.attacks;
    if a.blocked == 0 && a.passed > 0 {
        hints.push("no attack was blocked: the WAF is in monitoring mode or not in the request path; detection will read 0 % unless it is taken from the WAF's logs".to_string());
    }
    let failed = summary.counts.get("failed").copied().unwrap_or(0);
    if summary.sent > 0 && failed * 10 > summary.sent {
        hints.push(format!(
            "{failed} of {} requests failed without a response (see errors); if the WAF resets attack connections, set classify.reset_is_block",
            summary.sent
        ));
    }
    if summary.lateness.late * 100 > summary.sent.max(1) && summary.run.mode == "open" {
        hints.push(format!(
            "{} requests were sent more than {} ms late: the connection cap was reached or the load generator is saturated; latency includes that wait",
            summary.lateness.late,
            summary.lateness.threshold_us / 1000
        ));
    }
    hints
}

impl Summary {
    /// Assembles the summary from the plan and the recorder's numbers.
    pub fn build(
        run: RunInfo,
        profile: serde_json::Value,
        labels: Labels<'_>,
        recorded: &Recorded,
        sent: u64,
        not_sent: u64,
    ) -> Summary {
        let class_counts = recorded.class_counts();
        let counts: BTreeMap<String, u64> = Class::ALL
            .iter()
            .map(|c| (c.as_str().to_string(), class_counts[c.index()]))
            .collect();
        let mut latency = BTreeMap::new();
        latency.insert("all".to_string(), Percentiles::of(&recorded.all));
        for c in [
            Class::Blocked,
            Class::Passed,
            Class::Unresolved,
            Class::Failed,
        ] {
            latency.insert(
                c.as_str().to_string(),
                Percentiles::of(&recorded.by_class[c.index()]),
            );
        }
        let upstream = (!recorded.upstream.is_empty()).then(|| {
            let mut m = BTreeMap::new();
            m.insert("upstream".to_string(), Percentiles::of(&recorded.upstream));
            m.insert("gateway".to_string(), Percentiles::of(&recorded.gateway));
            m
        });
        let window = match (recorded.first_intended, recorded.last_done) {
            (Some(a), Some(b)) if b > a => b - a,
            _ => std::time::Duration::ZERO,
        };
        // Achieved rate: open loop, (n - 1) intervals between the first and last actual
        // send; closed loop, requests over the time from first send to last answer.
        let achieved_rate = match (recorded.first_sent, recorded.last_sent, recorded.last_done) {
            (Some(first), Some(last), _) if run.mode == "open" && last > first && sent > 1 => {
                (sent - 1) as f64 / (last - first).as_secs_f64()
            }
            (Some(first), _, Some(done)) if done > first => {
                sent as f64 / (done - first).as_secs_f64()
            }
            _ => 0.0,
        };
        let lateness = Lateness {
            late: recorded.late,
            threshold_us: LATE_THRESHOLD_US,
            p50_us: quantile(&recorded.lateness, 0.5),
            p99_us: quantile(&recorded.lateness, 0.99),
            max_us: if recorded.lateness.is_empty() {
                0
            } else {
                recorded.lateness.max()
            },
        };
        let unsendable = run.unsendable;
        let mut summary = Summary {
            format: SUMMARY_FORMAT,
            run,
            environment: Environment::detect(),
            profile,
            planned: sent + not_sent + unsendable,
            sent,
            not_sent,
            counts,
            unsupported: labels.unsupported.clone(),
            statuses: recorded
                .statuses
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            errors: recorded.errors.clone(),
            ext_proc_errors: recorded.ext_proc_errors,
            duration_s: (window.as_secs_f64() * 1000.0).round() / 1000.0,
            achieved_rate: (achieved_rate * 100.0).round() / 100.0,
            lateness,
            latency,
            upstream,
            detection: detection_of(labels.sources, &recorded.per_source),
            score: score_of(labels.sources, &recorded.per_source),
            hints: Vec::new(),
            records: recorded.records_written,
            response_body_bytes: recorded.body_bytes,
            ext_proc: recorded.ext_proc.as_deref().map(super::ExtProcSummary::of),
            detection_source: None,
            monitor: None,
            expectations: expectations_of(labels.sources, &recorded.per_source),
        };
        summary.hints = hints_of(&summary);
        if let Some(e) = &summary.expectations {
            for g in e.by_source.iter().filter(|g| g.missed > 0) {
                summary.hints.push(match g.expected {
                    crate::traffic::Verdict::Block => format!(
                        "{} of {} requests from {} expected to be blocked passed",
                        g.missed,
                        g.met + g.missed,
                        g.source
                    ),
                    crate::traffic::Verdict::Pass => format!(
                        "{} of {} requests from {} expected to pass were blocked (false positives)",
                        g.missed,
                        g.met + g.missed,
                        g.source
                    ),
                });
            }
        }
        const MAX_NOTES: usize = 20;
        summary
            .hints
            .extend(labels.notes.iter().take(MAX_NOTES).cloned());
        if labels.notes.len() > MAX_NOTES {
            summary.hints.push(format!(
                "… and {} more input notes",
                labels.notes.len() - MAX_NOTES
            ));
        }
        let _ = micros;
        summary
    }

    pub fn count(&self, class: Class) -> u64 {
        self.counts.get(class.as_str()).copied().unwrap_or(0)
    }
}

fn quantile(h: &hdrhistogram::Histogram<u64>, q: f64) -> u64 {
    if h.is_empty() {
        0
    } else {
        h.value_at_quantile(q)
    }
}
