//! Results: the on-disk format of a run and its reader. A run folder holds
//! `summary.json` (config, environment, counts, detection, latency), `sources.json`
//! (one label per corpus request), `series.json` (per second), `histograms.hlog`
//! (HdrHistogram interval log, µs) and `requests.jsonl.zst` (one record per request).
//! Every file is written atomically. Later verbs read these; they never re-run.

pub mod merge;
mod summary;
mod write;

pub use summary::*;
pub use write::{
    write_atomic, write_run, HISTOGRAMS_FILE, SERIES_FILE, SOURCES_FILE, SUMMARY_FILE,
};

use crate::error::Error;
use crate::plan::Source;
use std::path::Path;

/// Reads a run's summary.
pub fn load_summary(dir: &Path) -> Result<Summary, Error> {
    let path = dir.join(SUMMARY_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::Results {
        path: path.clone(),
        message: format!("line {}: {e}", e.line()),
    })
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
