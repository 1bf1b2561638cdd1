//! Results: the on-disk format of a run and its reader. A run folder holds
//! `summary.json` (config, environment, counts, detection, latency), `sources.json`
//! (one label per corpus request), `series.json` (per second), `histograms.hlog`
//! (HdrHistogram interval log, µs) and `requests.jsonl.zst` (one record per request).
//! Every file is written atomically. Later verbs read these; they never re-run.

mod extproc;
pub mod merge;
mod summary;
mod write;

pub use extproc::ExtProcSummary;
pub use summary::*;
pub use write::{
    write_atomic, write_run, HISTOGRAMS_FILE, SERIES_FILE, SOURCES_FILE, SUMMARY_FILE,
};

use crate::error::Error;
use crate::plan::Source;
use std::path::Path;

/// Reads a run's summary. Counts beyond 2^53 are rejected: no run gets near them, so the
/// file was edited or corrupted, and sums of such counts would overflow in the reports.
pub fn load_summary(dir: &Path) -> Result<Summary, Error> {
    let path = dir.join(SUMMARY_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let summary = serde_json::from_str(&text).map_err(|e| Error::Results {
        path: path.clone(),
        message: format!("line {}: {e}", e.line()),
    })?;
    if let Ok(tree) = serde_json::from_str::<serde_json::Value>(&text) {
        if let Some(field) = integer_out_of_range(&tree, "") {
            return Err(Error::Results {
                path,
                message: format!("{field} is out of range (counts and times are at most 2^53)"),
            });
        }
    }
    Ok(summary)
}

/// Largest integer a results file may hold (exact in a double, like JSON readers expect).
const MAX_RESULT_INTEGER: u64 = 1 << 53;

/// The first integer beyond ±2^53, as `path = value`; seeds (any u64) are exempt.
fn integer_out_of_range(value: &serde_json::Value, at: &str) -> Option<String> {
    use serde_json::Value;
    match value {
        Value::Number(n) => {
            let too_big = n.as_u64().is_some_and(|v| v > MAX_RESULT_INTEGER)
                || n.as_i64()
                    .is_some_and(|v| v.unsigned_abs() > MAX_RESULT_INTEGER);
            too_big.then(|| format!("{at} = {n}"))
        }
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| integer_out_of_range(v, &format!("{at}[{i}]"))),
        Value::Object(fields) => fields
            .iter()
            .filter(|(key, _)| key.as_str() != "seed")
            .find_map(|(key, v)| {
                let path = if at.is_empty() {
                    key.clone()
                } else {
                    format!("{at}.{key}")
                };
                integer_out_of_range(v, &path)
            }),
        _ => None,
    }
}

/// Reads a run's sources (labels of corpus requests).
pub fn load_sources(dir: &Path) -> Result<Vec<Source>, Error> {
    let path = dir.join(SOURCES_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::Results {
        path: path.clone(),
        message: format!("line {}: {e}", e.line()),
    })
}

/// Reads a run's per-second series.
pub fn load_series(dir: &Path) -> Result<Vec<SecondSummary>, Error> {
    let path = dir.join(SERIES_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::Results {
        path: path.clone(),
        message: format!("line {}: {e}", e.line()),
    })
}

/// Reads the whole-run histograms of a run, by tag ("all", "blocked", …, "lateness").
pub fn load_histograms(
    dir: &Path,
) -> Result<std::collections::BTreeMap<String, hdrhistogram::Histogram<u64>>, Error> {
    write::read_histograms(&dir.join(HISTOGRAMS_FILE))
}
