//! Writing a run folder atomically, and reading the histogram log back.

use super::summary::{series_of, Summary};
use crate::error::Error;
use crate::plan::Source;
use crate::record::Recorded;
use hdrhistogram::serialization::interval_log::{
    IntervalLogIterator, IntervalLogWriterBuilder, LogEntry, Tag,
};
use hdrhistogram::serialization::{Deserializer, V2Serializer};
use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, SystemTime};

pub const SUMMARY_FILE: &str = "summary.json";
pub const SOURCES_FILE: &str = "sources.json";
pub const SERIES_FILE: &str = "series.json";
pub const HISTOGRAMS_FILE: &str = "histograms.hlog";

/// Writes `bytes` to `path` via a temporary file in the same folder and a rename, so a
/// reader sees the old file or the new one, never half of one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| Error::io(dir, e))?;
    tmp.write_all(bytes).map_err(|e| Error::io(path, e))?;
    tmp.as_file().sync_all().map_err(|e| Error::io(path, e))?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}

fn json_atomic<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), Error> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|e| Error::Other(e.to_string()))?;
    bytes.push(b'\n');
    write_atomic(path, &bytes)
}

/// Writes summary, sources, series and histograms of a finished (or interrupted) run.
pub fn write_run(
    dir: &Path,
    summary: &Summary,
    sources: &[Source],
    recorded: &Recorded,
    started: SystemTime,
) -> Result<(), Error> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    json_atomic(&dir.join(super::SOURCES_FILE), &sources)?;
    json_atomic(&dir.join(super::SERIES_FILE), &series_of(recorded))?;
    write_atomic(
        &dir.join(HISTOGRAMS_FILE),
        &histogram_log(recorded, started)?,
    )?;
    // The summary goes last: its presence means the folder is complete.
    json_atomic(&dir.join(SUMMARY_FILE), summary)
}

/// HdrHistogram interval log (V2, base64): one whole-run interval per tag, then one
/// interval per second tagged "second" (for merging runs on wall-clock time).
fn histogram_log(recorded: &Recorded, started: SystemTime) -> Result<Vec<u8>, Error> {
    let mut buf = Vec::new();
    let mut serializer = V2Serializer::new();
    let err = |e: String| Error::Other(format!("writing histogram log: {e}"));
    {
        let mut writer = IntervalLogWriterBuilder::new()
            .add_comment("wafload latency histograms, values in microseconds")
            .add_comment("tags: all blocked passed unresolved failed lateness upstream gateway; 'second' = per-second 'all'")
            .with_base_time(started)
            .with_start_time(started)
            .begin_log_with(&mut buf, &mut serializer)
            .map_err(|e| err(e.to_string()))?;
        let whole = recorded
            .last_done
            .unwrap_or_default()
            .max(Duration::from_millis(1));
        let classes = ["blocked", "passed", "unresolved", "failed"];
        let mut tagged: Vec<(&str, &Histogram<u64>)> = vec![("all", &recorded.all)];
        for (i, name) in classes.iter().enumerate() {
            tagged.push((name, &recorded.by_class[i]));
        }
        tagged.push(("lateness", &recorded.lateness));
        tagged.push(("upstream", &recorded.upstream));
        tagged.push(("gateway", &recorded.gateway));
        if let Some(x) = &recorded.ext_proc {
            // Tags "ext_proc.request_headers", … so phase histograms can be merged later.
            for (name, h) in &x.histograms {
                if !h.is_empty() {
                    tagged.push((EXT_PROC_TAGS[tag_index(name)], h));
                }
            }
        }
        for (name, h) in tagged {
            writer
                .write_histogram(h, Duration::ZERO, whole, Tag::new(name))
                .map_err(|e| err(format!("{e:?}")))?;
        }
        for (t, s) in recorded.series.iter().enumerate() {
            writer
                .write_histogram(
                    &s.histogram(),
                    Duration::from_secs(t as u64),
                    Duration::from_secs(1),
                    Tag::new("second"),
                )
                .map_err(|e| err(format!("{e:?}")))?;
        }
    }
    Ok(buf)
}

/// hlog tags of the ext_proc phase histograms, same order as `PHASE_HISTOGRAMS`.
const EXT_PROC_TAGS: [&str; 7] = [
    "ext_proc.request_headers",
    "ext_proc.request_body",
    "ext_proc.request_body_phase",
    "ext_proc.response_headers",
    "ext_proc.response_body",
    "ext_proc.response_body_phase",
    "ext_proc.processor_total",
];

fn tag_index(name: &str) -> usize {
    crate::record::extproc::PHASE_HISTOGRAMS
        .iter()
        .position(|n| *n == name)
        .unwrap_or(EXT_PROC_TAGS.len() - 1)
}

/// Reads the whole-run histograms back, by tag.
pub fn read_histograms(path: &Path) -> Result<BTreeMap<String, Histogram<u64>>, Error> {
    let data = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let bad = |message: String| Error::Results {
        path: path.to_path_buf(),
        message,
    };
    let mut out = BTreeMap::new();
    let mut deserializer = Deserializer::new();
    for entry in IntervalLogIterator::new(&data) {
        let entry = entry.map_err(|e| bad(format!("{e:?}")))?;
        if let LogEntry::Interval(h) = entry {
            let tag = h.tag().map(|t| t.as_str().to_string()).unwrap_or_default();
            if tag == "second" {
                continue;
            }
            let bytes = base64::Engine::decode(
                &base64::engine::general_purpose::STANDARD,
                h.encoded_histogram(),
            )
            .map_err(|e| bad(e.to_string()))?;
            let hist: Histogram<u64> = deserializer
                .deserialize(&mut &bytes[..])
                .map_err(|e| bad(format!("{e:?}")))?;
            out.insert(tag, hist);
        }
    }
    Ok(out)
}
