//! Synthetic results folders with fixed counts, for known-answer tests, the browser
//! XSS test and the million-request report benchmark. Written with the same writers a
//! real run uses (results::write_run, record::RecordWriter), so the report reads them
//! exactly as it reads a real run.

use crate::classify::Class;
use crate::error::Error;
use crate::plan::Source;
use crate::record::{RecordLine, RecordWriter, Recorded, Second};
use crate::results::{
    detection_of, hints_of, score_of, write_run, Environment, Lateness, RunInfo, Summary,
    SUMMARY_FORMAT,
};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// A corpus label for a synthetic source; the request is a GET with the payload in a
/// query parameter (`target`), unless changed by the caller.
pub fn source(
    set: &str,
    case: &str,
    placeholder: &str,
    encoder: &str,
    benign: bool,
    payload: &str,
) -> Source {
    Source {
        set: set.to_string(),
        case: case.to_string(),
        type_label: if benign { "benign" } else { "attack" }.to_string(),
        placeholder: placeholder.to_string(),
        encoder: encoder.to_string(),
        benign,
        api: false,
        payload_index: 0,
        payload: payload.to_string(),
        method: "GET".to_string(),
        target: format!("/?q={}", payload.replace(' ', "+")),
        headers: Vec::new(),
        body: String::new(),
        body_len: 0,
        unsendable: None,
        expected: None,
        location: None,
    }
}

/// How a synthetic run looks besides its counts.
#[derive(Clone, Debug)]
pub struct FixtureOptions {
    /// Seconds the requests are spread over.
    pub seconds: u64,
    pub seed: u64,
    pub run_id: String,
    /// Write requests.jsonl.zst (a run may have none).
    pub records: bool,
    /// Ext_proc 500s among failed requests (for the breakdown chart).
    pub ext_proc_errors: u64,
}

impl Default for FixtureOptions {
    fn default() -> Self {
        FixtureOptions {
            seconds: 10,
            seed: 7,
            run_id: "synthetic".to_string(),
            records: true,
            ext_proc_errors: 0,
        }
    }
}

/// Synthetic latency in µs for a class: blocked answers are fast, passed ones go to
/// the application, with a rare slow tail.
fn latency(rng: &mut ChaCha8Rng, class: Class) -> u64 {
    let base = match class {
        Class::Blocked => 1_500.0,
        Class::Passed => 3_000.0,
        Class::Unresolved => 4_000.0,
        _ => 5_000_000.0,
    };
    let u: f64 = rng.gen_range(1e-9..1.0);
    if matches!(class, Class::Failed | Class::Unsendable) {
        // Failures are timeouts: about the timeout, no tail.
        return (base * (1.0 + u * 0.01)) as u64;
    }
    let tail = if rng.gen_ratio(1, 1000) { 40.0 } else { 1.0 };
    (base * (1.0 + (-u.ln()) * 0.4) * tail) as u64
}

/// Writes a complete results folder to `dir`: `counts[i]` are the class counts
/// (blocked, passed, unresolved, failed, unsendable) of `sources[i]`. Returns the summary.
pub fn write_results(
    dir: &Path,
    sources: &[Source],
    counts: &[[u64; 5]],
    options: &FixtureOptions,
) -> Result<Summary, Error> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    // One entry per sent request (source, class), shuffled into slot order.
    let mut slots: Vec<(u32, u8)> = Vec::new();
    for (i, c) in counts.iter().enumerate() {
        for class in [
            Class::Blocked,
            Class::Passed,
            Class::Unresolved,
            Class::Failed,
        ] {
            for _ in 0..c[class.index()] {
                slots.push((i as u32, class.index() as u8));
            }
        }
    }
    slots.shuffle(&mut rng);
    let total = slots.len() as u64;
    let span_us = options.seconds.max(1) * 1_000_000;
    let mut recorded = Recorded::new(sources.len());
    let mut writer = if options.records {
        Some(RecordWriter::create(dir).map_err(|e| Error::io(dir, e))?)
    } else {
        None
    };
    let mut ext_proc_left = options.ext_proc_errors;
    for (slot, &(src, class_index)) in slots.iter().enumerate() {
        let class = Class::ALL[class_index as usize];
        let t = slot as u64 * span_us / total.max(1);
        let lat = latency(&mut rng, class).max(1);
        let wait = rng.gen_range(5..200u64);
        let status = match class {
            Class::Blocked => Some(403),
            Class::Passed => Some(200),
            Class::Unresolved => Some(502),
            _ => None,
        };
        let ext_proc = class == Class::Failed && ext_proc_left > 0;
        let (status, error) = if ext_proc {
            ext_proc_left -= 1;
            (Some(500), None)
        } else if class == Class::Failed {
            (None, Some("timeout"))
        } else {
            (status, None)
        };
        recorded.all.saturating_record(lat);
        recorded.by_class[class.index()].saturating_record(lat);
        recorded.lateness.saturating_record(wait);
        recorded.per_source[src as usize][class.index()] += 1;
        if let Some(s) = status {
            *recorded.statuses.entry(s).or_insert(0) += 1;
        }
        if let Some(e) = error {
            *recorded.errors.entry(e.to_string()).or_insert(0) += 1;
        }
        if ext_proc {
            recorded.ext_proc_errors += 1;
        }
        let second = (t / 1_000_000) as usize;
        let done_second = ((t + lat) / 1_000_000) as usize;
        while recorded.series.len() <= second.max(done_second) {
            recorded.series.push(Second::new());
        }
        let sec = &mut recorded.series[second];
        sec.sent += 1;
        sec.by_class[class.index()] += 1;
        if ext_proc {
            sec.ext_proc_errors += 1;
        }
        sec.record_latency(lat);
        recorded.series[done_second].completed += 1;
        let done = Duration::from_micros(t + lat);
        recorded.last_done = Some(recorded.last_done.map_or(done, |d| d.max(done)));
        recorded.first_intended.get_or_insert(Duration::ZERO);
        if let Some(w) = &mut writer {
            w.write(&RecordLine {
                n: Some(slot as u64),
                src,
                t,
                wait,
                lat,
                st: status,
                cls: class.as_str(),
                err: error,
                up: None,
                xp: ext_proc.then_some(true),
                reason: None,
                xp_detail: None,
            })
            .map_err(|e| Error::io(dir, e))?;
            recorded.records_written += 1;
        }
    }
    for (i, c) in counts.iter().enumerate() {
        for _ in 0..c[Class::Unsendable.index()] {
            recorded.per_source[i][Class::Unsendable.index()] += 1;
            if let Some(w) = &mut writer {
                w.write(&RecordLine::unsendable(i as u32, "synthetic"))
                    .map_err(|e| Error::io(dir, e))?;
                recorded.records_written += 1;
            }
        }
    }
    if let Some(w) = writer {
        w.finish().map_err(|e| Error::io(dir, e))?;
    }

    let class_counts = recorded.class_counts();
    let mut latency_by_class = BTreeMap::new();
    latency_by_class.insert(
        "all".to_string(),
        crate::record::Percentiles::of(&recorded.all),
    );
    for c in [
        Class::Blocked,
        Class::Passed,
        Class::Unresolved,
        Class::Failed,
    ] {
        latency_by_class.insert(
            c.as_str().to_string(),
            crate::record::Percentiles::of(&recorded.by_class[c.index()]),
        );
    }
    let duration_s = recorded.last_done.unwrap_or_default().as_secs_f64();
    let mut summary = Summary {
        format: SUMMARY_FORMAT,
        expectations: None,
        detection_source: None,
        monitor: None,
        ext_proc: None,
        run: RunInfo {
            run_id: options.run_id.clone(),
            request_id_prefix: "wlsynthetic".to_string(),
            request_id_header: "x-request-id".to_string(),
            started_at: "2026-01-01T00:00:00+00:00".to_string(),
            finished_at: "2026-01-01T00:00:10+00:00".to_string(),
            interrupted: None,
            target: "http://127.0.0.1:8080/".to_string(),
            protocol: "h1".to_string(),
            mode: "open".to_string(),
            requested_rate: Some(total as f64 / options.seconds.max(1) as f64),
            mix: "corpus".to_string(),
            corpus: vec!["synthetic".to_string()],
            seed: options.seed,
            shard: None,
            start_unix_ms: 1_767_225_600_000,
            unsendable: class_counts[Class::Unsendable.index()],
            // Fields added to RunInfo later keep their defaults here.
            ..RunInfo::default()
        },
        environment: Environment::detect(),
        profile: serde_json::json!({
            "name": "synthetic",
            "target": {"url": "http://user:hunter2@127.0.0.1:8080/"},
            "headers": {"Authorization": "Bearer SYNTHETIC-SECRET-TOKEN", "X-Team": "waf"},
            "secret_headers": [],
        }),
        planned: total + class_counts[Class::Unsendable.index()],
        sent: total,
        not_sent: 0,
        counts: Class::ALL
            .iter()
            .map(|c| (c.as_str().to_string(), class_counts[c.index()]))
            .collect(),
        unsupported: BTreeMap::new(),
        statuses: recorded
            .statuses
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect(),
        errors: recorded.errors.clone(),
        ext_proc_errors: recorded.ext_proc_errors,
        duration_s,
        achieved_rate: total as f64 / options.seconds.max(1) as f64,
        lateness: Lateness {
            late: 0,
            threshold_us: crate::record::LATE_THRESHOLD_US,
            p50_us: recorded.lateness.value_at_quantile(0.5),
            p99_us: recorded.lateness.value_at_quantile(0.99),
            max_us: recorded.lateness.max(),
        },
        latency: latency_by_class,
        upstream: None,
        detection: detection_of(sources, &recorded.per_source),
        score: score_of(sources, &recorded.per_source),
        hints: Vec::new(),
        records: recorded.records_written,
        response_body_bytes: 0,
    };
    summary.hints = hints_of(&summary);
    let started = SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600);
    write_run(dir, &summary, sources, &recorded, started)?;
    Ok(summary)
}
