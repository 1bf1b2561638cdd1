//! ext_proc phase recording: per-phase round-trip histograms and where decisions fell.
//! Fed only by direct ext_proc mode; HTTP runs leave it empty and write nothing for it.

use super::new_histogram;
use crate::transport::extproc::{ExtProcDetail, VerdictKind};
use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::BTreeMap;

/// Histogram names, in the order they are reported.
pub const PHASE_HISTOGRAMS: [&str; 7] = [
    "request_headers",
    "request_body",
    "request_body_phase",
    "response_headers",
    "response_body",
    "response_body_phase",
    "processor_total",
];

/// Everything recorded about ext_proc exchanges over a run.
#[derive(Clone, Debug)]
pub struct ExtProcRecorded {
    /// One histogram per name in [`PHASE_HISTOGRAMS`] (µs). `request_body` holds one value
    /// per body message; `*_phase` one value per request.
    pub histograms: BTreeMap<&'static str, Histogram<u64>>,
    /// Messages answered, by phase.
    pub round_trips: BTreeMap<&'static str, u64>,
    /// Requests by the phase that ended their exchange.
    pub decided_at: BTreeMap<&'static str, u64>,
    /// Blocks by phase and body message ("request_body#3").
    pub blocked_at: BTreeMap<String, u64>,
    /// Requests by verdict (pass, block, too_large, timeout, error, closed, protocol).
    pub verdicts: BTreeMap<&'static str, u64>,
}

impl Default for ExtProcRecorded {
    fn default() -> Self {
        ExtProcRecorded {
            histograms: PHASE_HISTOGRAMS
                .iter()
                .map(|n| (*n, new_histogram()))
                .collect(),
            round_trips: BTreeMap::new(),
            decided_at: BTreeMap::new(),
            blocked_at: BTreeMap::new(),
            verdicts: BTreeMap::new(),
        }
    }
}

impl ExtProcRecorded {
    fn put(&mut self, name: &'static str, us: u64) {
        if let Some(h) = self.histograms.get_mut(name) {
            h.saturating_record(us.max(1));
        }
    }

    /// Adds another engine thread's figures of the same run.
    pub fn merge(&mut self, other: ExtProcRecorded) {
        for (name, h) in other.histograms {
            match self.histograms.get_mut(name) {
                Some(into) => {
                    let _ = into.add(&h);
                }
                None => {
                    self.histograms.insert(name, h);
                }
            }
        }
        let add_all = |into: &mut BTreeMap<&'static str, u64>,
                       from: BTreeMap<&'static str, u64>| {
            for (k, n) in from {
                *into.entry(k).or_insert(0) += n;
            }
        };
        add_all(&mut self.round_trips, other.round_trips);
        add_all(&mut self.decided_at, other.decided_at);
        add_all(&mut self.verdicts, other.verdicts);
        for (k, n) in other.blocked_at {
            *self.blocked_at.entry(k).or_insert(0) += n;
        }
    }

    pub fn record(&mut self, d: &ExtProcDetail) {
        if let Some(us) = d.request_headers_us {
            self.put("request_headers", us);
            *self.round_trips.entry("request_headers").or_insert(0) += 1;
        }
        for &us in &d.request_body_us {
            self.put("request_body", us);
        }
        if !d.request_body_us.is_empty() {
            *self.round_trips.entry("request_body").or_insert(0) += d.request_body_us.len() as u64;
        }
        if let Some(us) = d.request_body_phase_us {
            self.put("request_body_phase", us);
        }
        if let Some(us) = d.response_headers_us {
            self.put("response_headers", us);
            *self.round_trips.entry("response_headers").or_insert(0) += 1;
        }
        for &us in &d.response_body_us {
            self.put("response_body", us);
        }
        if !d.response_body_us.is_empty() {
            *self.round_trips.entry("response_body").or_insert(0) +=
                d.response_body_us.len() as u64;
        }
        if let Some(us) = d.response_body_phase_us {
            self.put("response_body_phase", us);
        }
        self.put("processor_total", d.total_us);
        *self.decided_at.entry(d.decided.as_str()).or_insert(0) += 1;
        *self.verdicts.entry(d.verdict.as_str()).or_insert(0) += 1;
        if d.verdict == VerdictKind::Block {
            *self.blocked_at.entry(d.decided_label()).or_insert(0) += 1;
        }
    }
}

/// The per-request record's ext_proc part (key `xp_detail` in requests.jsonl.zst).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ExtProcLine {
    /// Phase that decided, with the body message for body phases ("request_body#3").
    pub at: String,
    /// Verdict word.
    pub v: &'static str,
    /// Request headers round trip, µs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rqh: Option<u64>,
    /// Request body round trips, µs, one per message.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rqb: Vec<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rsh: Option<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rsb: Vec<u64>,
    /// Processor time over all phases, µs.
    pub tot: u64,
}

impl ExtProcLine {
    pub fn of(d: &ExtProcDetail) -> Self {
        ExtProcLine {
            at: d.decided_label(),
            v: d.verdict.as_str(),
            rqh: d.request_headers_us,
            rqb: d.request_body_us.clone(),
            rsh: d.response_headers_us,
            rsb: d.response_body_us.clone(),
            tot: d.total_us,
        }
    }
}
