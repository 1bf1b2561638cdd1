//! The `ext_proc` part of `summary.json`: per-phase latency of the external processor and
//! where its decisions fell. Present only for direct ext_proc runs.

use crate::record::extproc::{ExtProcRecorded, PHASE_HISTOGRAMS};
use crate::record::Percentiles;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ExtProcSummary {
    /// The emulated filter settings (body modes, chunk size, timeouts, processor URL).
    #[serde(default)]
    pub settings: serde_json::Value,
    /// µs per phase: `request_headers`, `request_body` (one value per body message),
    /// `request_body_phase` (first body message → last reply), the same for responses, and
    /// `processor_total` (all phases of one request). Empty phases are left out.
    #[serde(default)]
    pub phases: BTreeMap<String, Percentiles>,
    /// Messages answered, by phase.
    #[serde(default)]
    pub round_trips: BTreeMap<String, u64>,
    /// Requests by the phase that ended their exchange.
    #[serde(default)]
    pub decided_at: BTreeMap<String, u64>,
    /// Blocks by phase and body message (`request_body#3` = the third body chunk).
    #[serde(default)]
    pub blocked_at: BTreeMap<String, u64>,
    /// Requests by verdict: pass, block, too_large, timeout, error, closed, protocol.
    #[serde(default)]
    pub verdicts: BTreeMap<String, u64>,
}

impl ExtProcSummary {
    pub fn of(r: &ExtProcRecorded) -> Self {
        let phases = PHASE_HISTOGRAMS
            .iter()
            .filter_map(|name| {
                let h = r.histograms.get(name)?;
                (!h.is_empty()).then(|| (name.to_string(), Percentiles::of(h)))
            })
            .collect();
        let strings =
            |m: &BTreeMap<&'static str, u64>| m.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        ExtProcSummary {
            settings: serde_json::Value::Null,
            phases,
            round_trips: strings(&r.round_trips),
            decided_at: strings(&r.decided_at),
            blocked_at: r.blocked_at.clone(),
            verdicts: strings(&r.verdicts),
        }
    }
}
