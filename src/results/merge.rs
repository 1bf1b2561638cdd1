//! Lossless merge of shard runs into one result: HDR histograms are added (never
//! percentiles averaged), counts summed, per-second series aligned on wall-clock time, and
//! detection tables recomputed from per-request records. Runs of different profiles or
//! corpora are refused.

use super::summary::{Labels, RunInfo, Summary};
use super::{load_histograms, load_sources, load_summary, write_run};
use crate::error::Error;
use crate::record::{for_each_record, RecordLine, RecordWriter, Recorded};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Profile keys allowed to differ between shards (where results were written).
const PER_SHARD_KEYS: [&str; 1] = ["results_dir"];

fn bad(path: &Path, message: String) -> Error {
    Error::Results {
        path: path.to_path_buf(),
        message,
    }
}

/// Merges `runs` into `out` and returns the merged summary.
pub fn merge(runs: &[PathBuf], out: &Path) -> Result<Summary, Error> {
    if runs.len() < 2 {
        return Err(Error::flag(
            "RUN_DIR",
            "give at least two results folders to merge",
        ));
    }
    let mut summaries = Vec::new();
    for dir in runs {
        summaries.push(load_summary(dir)?);
    }
    let sources = load_sources(&runs[0])?;
    for (dir, s) in runs.iter().zip(&summaries).skip(1) {
        let other = load_sources(dir)?;
        if other != sources {
            let at = sources
                .iter()
                .zip(&other)
                .position(|(a, b)| a != b)
                .unwrap_or(sources.len().min(other.len()));
            return Err(bad(
                dir,
                format!(
                    "built from a different corpus than {} (sources differ at entry {at}); only shards of one run can be merged",
                    runs[0].display()
                ),
            ));
        }
        if let Some(key) = profile_difference(&summaries[0].profile, &s.profile) {
            return Err(bad(
                dir,
                format!(
                    "ran a different profile than {} (`{key}` differs); only shards of one run can be merged",
                    runs[0].display()
                ),
            ));
        }
    }

    // Align every run on the earliest schedule start.
    let base_ms = summaries
        .iter()
        .map(|s| s.run.start_unix_ms)
        .min()
        .unwrap_or(0);
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let mut recorded = Recorded::new(sources.len());
    let mut writer = RecordWriter::create(out).map_err(|e| Error::io(out, e))?;
    let mut write_error = None;
    for (dir, s) in runs.iter().zip(&summaries) {
        let offset_us = (s.run.start_unix_ms - base_ms) * 1000;
        for_each_record(dir, |r| {
            recorded.add_stored(&r, offset_us);
            let line = RecordLine {
                n: r.n,
                src: r.src,
                t: if r.n.is_some() { r.t + offset_us } else { 0 },
                wait: r.wait,
                lat: r.lat,
                st: r.st,
                cls: crate::classify::Class::parse(&r.cls)
                    .unwrap_or(crate::classify::Class::Failed)
                    .as_str(),
                err: r.err.as_deref().and_then(error_name),
                up: r.up,
                xp: r.xp,
                reason: r.reason.clone(),
            };
            if let Err(e) = writer.write(&line) {
                write_error.get_or_insert(e);
            }
        })
        .map_err(|e| Error::io(dir, e))?;
        // Whole-run histograms are added bucket by bucket (lossless).
        let hists = load_histograms(dir)?;
        for (tag, h) in hists {
            let target = match tag.as_str() {
                "all" => &mut recorded.all,
                "blocked" => &mut recorded.by_class[0],
                "passed" => &mut recorded.by_class[1],
                "unresolved" => &mut recorded.by_class[2],
                "failed" => &mut recorded.by_class[3],
                "lateness" => &mut recorded.lateness,
                "upstream" => &mut recorded.upstream,
                "gateway" => &mut recorded.gateway,
                _ => continue,
            };
            target
                .add(&h)
                .map_err(|e| bad(dir, format!("histogram {tag}: {e:?}")))?;
        }
        recorded.body_bytes += s.response_body_bytes;
    }
    if let Some(e) = write_error {
        return Err(Error::io(out, e));
    }
    writer.finish().map_err(|e| Error::io(out, e))?;
    let sent_records: u64 = recorded.series.iter().map(|s| s.sent).sum();
    if sent_records != recorded.all.len() {
        return Err(bad(
            out,
            format!(
                "records ({sent_records}) and histograms ({}) disagree; a results folder is incomplete",
                recorded.all.len()
            ),
        ));
    }

    let first = &summaries[0];
    // A property of the corpus, the same in every shard: not summed.
    let unsupported: BTreeMap<String, u64> = first.unsupported.clone();
    let interrupted: Vec<String> = runs
        .iter()
        .zip(&summaries)
        .filter_map(|(d, s)| {
            s.run
                .interrupted
                .as_ref()
                .map(|r| format!("{}: {r}", d.display()))
        })
        .collect();
    let info = RunInfo {
        run_id: out
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "merged".into()),
        started_at: summaries
            .iter()
            .map(|s| s.run.started_at.clone())
            .min()
            .unwrap_or_default(),
        finished_at: summaries
            .iter()
            .map(|s| s.run.finished_at.clone())
            .max()
            .unwrap_or_default(),
        interrupted: (!interrupted.is_empty()).then(|| interrupted.join("; ")),
        requested_rate: first
            .run
            .requested_rate
            .map(|r| r * first_shard_count(first) as f64),
        shard: None,
        start_unix_ms: base_ms,
        unsendable: summaries.iter().map(|s| s.run.unsendable).sum(),
        merged_from: runs.iter().map(|d| d.display().to_string()).collect(),
        ..first.run.clone()
    };
    let sent: u64 = summaries.iter().map(|s| s.sent).sum();
    let not_sent: u64 = summaries.iter().map(|s| s.not_sent).sum();
    let summary = Summary::build(
        info,
        first.profile.clone(),
        Labels {
            sources: &sources,
            notes: &[],
            unsupported,
        },
        &recorded,
        sent,
        not_sent,
    );
    let started = SystemTime::UNIX_EPOCH + Duration::from_millis(base_ms);
    write_run(out, &summary, &sources, &recorded, started)?;
    Ok(summary)
}

/// Shard runs record "I/N"; their requested rate is per shard.
fn first_shard_count(s: &Summary) -> u64 {
    s.run
        .shard
        .as_deref()
        .and_then(|t| t.split_once('/'))
        .and_then(|(_, n)| n.parse().ok())
        .unwrap_or(1)
}

fn error_name(e: &str) -> Option<&'static str> {
    use crate::transport::ErrorKind::*;
    [Connect, Tls, Reset, Timeout, Protocol, Aborted, Other]
        .into_iter()
        .map(|k| k.as_str())
        .find(|k| *k == e)
}

/// The first top-level profile key whose value differs (ignoring per-shard keys).
fn profile_difference(a: &serde_json::Value, b: &serde_json::Value) -> Option<String> {
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return (a != b).then(|| "profile".to_string());
    };
    let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .filter(|k| !PER_SHARD_KEYS.contains(&k.as_str()))
        .find(|k| a.get(*k) != b.get(*k))
        .cloned()
}
