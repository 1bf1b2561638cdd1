//! Monitoring-mode detection: a WAF in detection-only mode answers every request 200 but
//! logs the ones it would have blocked. After a run this module reads that log, finds the
//! entries of this run by request id (`<request_id_prefix>-<slot>`), and refines the run:
//! a *passed* request whose id the log marks as would-block becomes *blocked* (its record
//! keeps the raw status and gains `"wb":true`). It reads files only; it never sends.
//!
//! A log is JSON lines. An entry counts when a regex matches its raw text (e.g. ModSecurity's
//! `"ruleId":"949110"`, CRS's inbound anomaly verdict) and its id sits at a dotted field path
//! (`transaction.unique_id`). Presets fix both for known WAFs.

use crate::classify::Class;
use crate::record::{micros, new_histogram, Recorded, RECORDS_FILE};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Built-in readings of known WAF logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum MonitorPreset {
    /// ModSecurity v3 JSON audit log (`SecAuditLogFormat JSON`): id `transaction.unique_id`,
    /// would-block when OWASP CRS's inbound anomaly rule 949110 fired.
    Modsecurity,
    /// The calibration target's JSON-lines log (`wafload target --monitoring --log FILE`):
    /// id `id`, every marker hit is a would-block.
    WafloadTarget,
}

impl MonitorPreset {
    /// (id field, match regex) of the preset.
    pub fn reading(self) -> (&'static str, &'static str) {
        match self {
            MonitorPreset::Modsecurity => ("transaction.unique_id", r#""ruleId"\s*:\s*"949110""#),
            MonitorPreset::WafloadTarget => ("id", r#""rule"\s*:\s*"marker""#),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MonitorPreset::Modsecurity => "modsecurity",
            MonitorPreset::WafloadTarget => "wafload-target",
        }
    }
}

/// Only JSON lines today; the field exists so other formats can be added without
/// breaking profiles.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Jsonl,
}

/// Profile key `monitor`: where a monitoring-mode WAF logs would-blocks and how to read it.
/// Either `preset`, or `id_field` + `match` (both may also refine a preset).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitorSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<MonitorPreset>,
    /// The WAF's log file, relative to the profile's folder.
    pub log: PathBuf,
    #[serde(default)]
    pub format: LogFormat,
    /// Dotted path to the request id in an entry (`transaction.unique_id`; numbers index arrays).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_field: Option<String>,
    /// Regex over the entry's raw JSON text that marks a would-block.
    #[serde(rename = "match", default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// The log counts as complete once its size has not changed for this long (entries are
    /// written just after the response).
    #[serde(default = "default_settle", with = "human_duration")]
    pub settle: Duration,
    /// Upper bound on waiting for the log to settle.
    #[serde(default = "default_wait", with = "human_duration")]
    pub wait: Duration,
}

/// "500ms", "10s" or a number of seconds, like every other duration in a profile.
mod human_duration {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Num(f64),
        Text(String),
    }

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = match Raw::deserialize(d)? {
            Raw::Num(n) => n.to_string(),
            Raw::Text(t) => t,
        };
        crate::profile::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

fn default_settle() -> Duration {
    Duration::from_millis(500)
}
fn default_wait() -> Duration {
    Duration::from_secs(10)
}

impl MonitorSpec {
    /// A spec from a preset and a log path, with default timings.
    pub fn preset(preset: MonitorPreset, log: impl Into<PathBuf>) -> Self {
        MonitorSpec {
            preset: Some(preset),
            log: log.into(),
            format: LogFormat::Jsonl,
            id_field: None,
            pattern: None,
            settle: default_settle(),
            wait: default_wait(),
        }
    }

    /// Compiles the reading; the error names the field at fault.
    pub fn compile(&self) -> Result<LogReading, String> {
        let (preset_id, preset_match) = match self.preset {
            Some(p) => {
                let (id, m) = p.reading();
                (Some(id), Some(m))
            }
            None => (None, None),
        };
        let id_field = self
            .id_field
            .as_deref()
            .or(preset_id)
            .ok_or("id_field is missing (set preset: modsecurity, or id_field and match)")?;
        let pattern = self
            .pattern
            .as_deref()
            .or(preset_match)
            .ok_or("match is missing (set preset: modsecurity, or id_field and match)")?;
        if self.log.as_os_str().is_empty() {
            return Err("log is empty".into());
        }
        let id_path: Vec<String> = id_field.split('.').map(str::to_string).collect();
        if id_path.iter().any(String::is_empty) {
            return Err(format!("id_field {id_field:?} has an empty component"));
        }
        let regex = regex::RegexBuilder::new(pattern)
            .size_limit(1 << 20)
            .build()
            .map_err(|e| {
                format!(
                    "match regex {pattern:?}: {}",
                    e.to_string()
                        .split_whitespace()
                        .collect::<Vec<_>>()
                        .join(" ")
                )
            })?;
        let label = match (self.preset, &self.id_field, &self.pattern) {
            (Some(p), None, None) => format!("waf log ({} preset)", p.as_str()),
            _ => format!("waf log (jsonl, id {id_field}, match {pattern})"),
        };
        Ok(LogReading {
            id_path,
            regex,
            label,
        })
    }

    /// Notes where the log ends now, so only entries written after this point are read.
    pub fn begin(&self) -> LogCursor {
        let size = std::fs::metadata(&self.log).ok().map(|m| m.len());
        LogCursor {
            path: self.log.clone(),
            start: size.unwrap_or(0),
            existed_at_start: size.is_some(),
        }
    }
}

/// A compiled reading of a log: where the id is and what marks a would-block.
#[derive(Clone, Debug)]
pub struct LogReading {
    id_path: Vec<String>,
    regex: regex::Regex,
    /// "waf log (modsecurity preset)": where detection came from, for reports.
    pub label: String,
}

impl LogReading {
    /// The request id of an entry when it is a would-block, else `None`.
    pub fn would_block_id(&self, line: &str) -> Result<Option<String>, serde_json::Error> {
        if !self.regex.is_match(line) {
            return Ok(None);
        }
        let value: serde_json::Value = serde_json::from_str(line)?;
        Ok(field_at(&value, &self.id_path).and_then(|v| match v {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        }))
    }
}

fn field_at<'v>(value: &'v serde_json::Value, path: &[String]) -> Option<&'v serde_json::Value> {
    path.iter().try_fold(value, |v, key| match v {
        serde_json::Value::Object(map) => map.get(key),
        serde_json::Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })
}

/// The log's size when the run started.
#[derive(Clone, Debug)]
pub struct LogCursor {
    pub path: PathBuf,
    pub start: u64,
    pub existed_at_start: bool,
}

/// Would-block slots of one run, read from the log.
#[derive(Clone, Debug, Default)]
pub struct WouldBlocks {
    pub slots: HashSet<u64>,
    /// Log lines read after the run's start offset.
    pub lines: u64,
    /// Would-block entries with an id of this run.
    pub matched: u64,
    /// Would-block entries of other runs or other clients (id without this run's prefix).
    pub foreign: u64,
    /// Lines that matched but were not JSON (or had no id at the field path).
    pub bad_lines: u64,
    /// How long we waited for the log to settle.
    pub waited: Duration,
    /// Read from the beginning because the log shrank (rotated or truncated) during the run.
    pub rewound: bool,
}

/// Why the log could not be used; the run keeps its response-based classes then.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error("monitor log {}: does not exist (the WAF has not written it, or the path is wrong)", .0.display())]
    Missing(PathBuf),
    #[error("monitor log {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Waits until the log's size is stable for `settle` (at most `wait`), then reads the lines
/// written since `cursor` and returns this run's would-block slots.
pub fn collect(
    cursor: &LogCursor,
    reading: &LogReading,
    request_id_prefix: &str,
    settle: Duration,
    wait: Duration,
) -> Result<WouldBlocks, MonitorError> {
    let started = Instant::now();
    let size = |p: &Path| std::fs::metadata(p).ok().map(|m| m.len());
    let mut last = size(&cursor.path);
    let mut stable_since = Instant::now();
    while started.elapsed() < wait {
        std::thread::sleep(Duration::from_millis(50).min(settle.max(Duration::from_millis(1))));
        let now = size(&cursor.path);
        if now != last {
            last = now;
            stable_since = Instant::now();
        } else if stable_since.elapsed() >= settle {
            break;
        }
    }
    let waited = started.elapsed();
    let io = |source| MonitorError::Io {
        path: cursor.path.clone(),
        source,
    };
    let mut file = match File::open(&cursor.path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(MonitorError::Missing(cursor.path.clone()))
        }
        Err(e) => return Err(io(e)),
    };
    let len = file.metadata().map_err(io)?.len();
    let rewound = len < cursor.start;
    let from = if rewound { 0 } else { cursor.start };
    file.seek(SeekFrom::Start(from)).map_err(io)?;
    let mut found = WouldBlocks {
        waited,
        rewound,
        ..WouldBlocks::default()
    };
    read_entries(
        BufReader::with_capacity(1 << 16, file),
        reading,
        request_id_prefix,
        &mut found,
    )
    .map_err(io)?;
    Ok(found)
}

/// Scans JSON lines; exposed for tests and for logs that are not files.
pub fn read_entries(
    mut reader: impl BufRead,
    reading: &LogReading,
    request_id_prefix: &str,
    found: &mut WouldBlocks,
) -> std::io::Result<()> {
    let mut raw = Vec::with_capacity(4096);
    let slot_prefix = format!("{request_id_prefix}-");
    loop {
        raw.clear();
        if reader.read_until(b'\n', &mut raw)? == 0 {
            return Ok(());
        }
        let line = String::from_utf8_lossy(&raw);
        let line = line.trim_end();
        if line.is_empty() {
            continue;
        }
        found.lines += 1;
        match reading.would_block_id(line) {
            Ok(None) => {}
            Ok(Some(id)) => match id
                .strip_prefix(&slot_prefix)
                .and_then(|n| n.parse::<u64>().ok())
            {
                Some(slot) => {
                    found.matched += 1;
                    found.slots.insert(slot);
                }
                None => found.foreign += 1,
            },
            Err(_) => found.bad_lines += 1,
        }
    }
}

/// What refining changed; written to `summary.json` as `monitor`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MonitorSummary {
    /// Where detection came from, e.g. "waf log (modsecurity preset)".
    pub source: String,
    pub log: String,
    /// Log lines read (written since the run started).
    pub lines: u64,
    /// Would-block entries carrying one of this run's request ids.
    pub matched: u64,
    /// Passed requests turned into blocked (would-block).
    pub would_block: u64,
    /// Requests the log marks that the WAF had blocked anyway (a blocking WAF's own log).
    pub already_blocked: u64,
    /// Marked requests that got no pass/block answer (failed, unresolved).
    pub other_class: u64,
    /// Would-block entries of other runs or clients.
    pub foreign: u64,
    pub bad_lines: u64,
    pub waited_ms: u64,
    /// Why the log could not be read; the run then keeps response-based classes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Rewrites the run's records with refined classes (atomically) and moves counts, latency
/// and per-second numbers of would-block requests from *passed* to *blocked*.
pub fn refine_run(
    dir: &Path,
    recorded: &mut Recorded,
    would_block: &WouldBlocks,
    summary: &mut MonitorSummary,
) -> std::io::Result<()> {
    let path = dir.join(RECORDS_FILE);
    let partial = dir.join(format!("{RECORDS_FILE}.refine.partial"));
    let reader = BufReader::with_capacity(1 << 16, zstd::Decoder::new(File::open(&path)?)?);
    let out = File::create(&partial)?;
    let mut encoder = zstd::Encoder::new(BufWriter::with_capacity(1 << 16, out), 3)?;
    let mut moved = new_histogram();
    let result = (|| -> std::io::Result<()> {
        for (index, line) in reader.lines().enumerate() {
            let line = line?;
            if line.is_empty() {
                continue;
            }
            let mut record: serde_json::Value = serde_json::from_str(&line).map_err(|e| {
                std::io::Error::other(format!("{}: line {}: {e}", path.display(), index + 1))
            })?;
            let slot = record.get("n").and_then(|n| n.as_u64());
            let marked = slot.is_some_and(|s| would_block.slots.contains(&s));
            if !marked {
                encoder.write_all(line.as_bytes())?;
                encoder.write_all(b"\n")?;
                continue;
            }
            let class = record
                .get("cls")
                .and_then(|c| c.as_str())
                .and_then(Class::parse);
            match class {
                Some(Class::Passed) => {
                    summary.would_block += 1;
                    record["cls"] = Class::Blocked.as_str().into();
                    let src = record.get("src").and_then(|s| s.as_u64()).unwrap_or(0) as usize;
                    if let Some(counts) = recorded.per_source.get_mut(src) {
                        let passed = &mut counts[Class::Passed.index()];
                        *passed = passed.saturating_sub(1);
                        counts[Class::Blocked.index()] += 1;
                    }
                    let lat = record
                        .get("lat")
                        .and_then(|l| l.as_u64())
                        .unwrap_or(1)
                        .max(1);
                    moved.saturating_record(lat);
                    let t = record.get("t").and_then(|t| t.as_u64()).unwrap_or(0);
                    if let Some(second) = recorded.series.get_mut((t / 1_000_000) as usize) {
                        let passed = &mut second.by_class[Class::Passed.index()];
                        *passed = passed.saturating_sub(1);
                        second.by_class[Class::Blocked.index()] += 1;
                    }
                }
                Some(Class::Blocked) => summary.already_blocked += 1,
                _ => summary.other_class += 1,
            }
            record["wb"] = true.into();
            serde_json::to_writer(&mut encoder, &record)?;
            encoder.write_all(b"\n")?;
        }
        Ok(())
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&partial);
        return Err(e);
    }
    let mut inner = encoder.finish()?;
    inner.flush()?;
    inner.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    std::fs::rename(&partial, &path)?;
    if !moved.is_empty() {
        let passed = &mut recorded.by_class[Class::Passed.index()];
        let _ = passed.subtract(&moved);
        let _ = recorded.by_class[Class::Blocked.index()].add(&moved);
    }
    Ok(())
}

/// Reads the log after a run and refines the run folder; never fails the run: a log that
/// cannot be read is reported in the returned summary's `error`.
pub fn apply(
    spec: &MonitorSpec,
    cursor: &LogCursor,
    request_id_prefix: &str,
    dir: &Path,
    recorded: &mut Recorded,
) -> MonitorSummary {
    let mut summary = MonitorSummary {
        log: spec.log.display().to_string(),
        ..MonitorSummary::default()
    };
    let reading = match spec.compile() {
        Ok(r) => r,
        Err(e) => {
            summary.source = "responses".into();
            summary.error = Some(format!("monitor: {e}"));
            return summary;
        }
    };
    summary.source = reading.label.clone();
    let found = match collect(cursor, &reading, request_id_prefix, spec.settle, spec.wait) {
        Ok(f) => f,
        Err(e) => {
            summary.error = Some(e.to_string());
            return summary;
        }
    };
    summary.lines = found.lines;
    summary.matched = found.matched;
    summary.foreign = found.foreign;
    summary.bad_lines = found.bad_lines;
    summary.waited_ms = micros(found.waited) / 1000;
    if found.slots.is_empty() {
        return summary;
    }
    if let Err(e) = refine_run(dir, recorded, &found, &mut summary) {
        summary.error = Some(format!("cannot rewrite {RECORDS_FILE}: {e}"));
    }
    summary
}

/// Plain-language hints about the log, for the summary.
pub fn hints(m: &MonitorSummary, request_id_header: &str) -> Vec<String> {
    let mut hints = Vec::new();
    if let Some(e) = &m.error {
        hints.push(format!(
            "detection could not be read from the WAF log ({e}); the rates above come from the responses only"
        ));
    } else if m.matched == 0 {
        hints.push(format!(
            "the WAF log {} has no would-block entry for this run ({} new lines, {} from other runs or clients): check the path, that the WAF logs the {request_id_header} header as its transaction id, and the match rule",
            m.log, m.lines, m.foreign
        ));
    }
    if m.bad_lines > 0 {
        hints.push(format!(
            "{} matching lines of the WAF log were not JSON or had no id at the configured field",
            m.bad_lines
        ));
    }
    hints
}

/// Reads a whole log (small test logs) and returns every id the reading marks.
pub fn read_ids(path: &Path, reading: &LogReading) -> std::io::Result<Vec<String>> {
    let mut text = String::new();
    File::open(path)?.read_to_string(&mut text)?;
    Ok(text
        .lines()
        .filter_map(|l| reading.would_block_id(l).ok().flatten())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODSEC_WB: &str = r#"{"transaction":{"unique_id":"wlabc-7","response":{"http_code":200},"messages":[{"message":"SQL","details":{"ruleId":"942100"}},{"message":"Inbound Anomaly Score Exceeded (Total Score: 5)","details":{"ruleId":"949110"}}]}}"#;
    const MODSEC_OTHER: &str = r#"{"transaction":{"unique_id":"wlabc-8","messages":[{"message":"x","details":{"ruleId":"920350"}}]}}"#;

    fn spec(preset: MonitorPreset) -> MonitorSpec {
        MonitorSpec::preset(preset, "/nonexistent/log.json")
    }

    fn scan(reading: &LogReading, text: &str, prefix: &str) -> WouldBlocks {
        let mut found = WouldBlocks::default();
        read_entries(text.as_bytes(), reading, prefix, &mut found).unwrap();
        found
    }

    #[test]
    fn modsecurity_preset_marks_949110_only() {
        let reading = spec(MonitorPreset::Modsecurity).compile().unwrap();
        assert_eq!(reading.label, "waf log (modsecurity preset)");
        assert_eq!(
            reading.would_block_id(MODSEC_WB).unwrap().as_deref(),
            Some("wlabc-7")
        );
        assert_eq!(reading.would_block_id(MODSEC_OTHER).unwrap(), None);
        let text = format!("{MODSEC_WB}\n{MODSEC_OTHER}\n\n");
        let found = scan(&reading, &text, "wlabc");
        assert_eq!(found.slots, HashSet::from([7]));
        assert_eq!((found.lines, found.matched, found.foreign), (2, 1, 0));
    }

    #[test]
    fn ids_of_other_runs_are_counted_not_used() {
        let reading = spec(MonitorPreset::Modsecurity).compile().unwrap();
        let other = MODSEC_WB.replace("wlabc-7", "wlzzz-7");
        let no_slot = MODSEC_WB.replace("wlabc-7", "wlabc-x");
        let found = scan(&reading, &format!("{other}\n{no_slot}\n"), "wlabc");
        assert!(found.slots.is_empty());
        assert_eq!(found.foreign, 2);
    }

    #[test]
    fn target_preset_and_generic_reading_agree() {
        let line = r#"{"ts":1.5,"id":"wlq-3","rule":"marker","marker":"<script","would_block":true,"action":"log"}"#;
        let preset = spec(MonitorPreset::WafloadTarget).compile().unwrap();
        let generic = MonitorSpec {
            preset: None,
            id_field: Some("id".into()),
            pattern: Some(r#""would_block":\s*true"#.into()),
            ..spec(MonitorPreset::WafloadTarget)
        }
        .compile()
        .unwrap();
        assert!(
            generic.label.starts_with("waf log (jsonl, id id"),
            "{}",
            generic.label
        );
        for r in [&preset, &generic] {
            assert_eq!(scan(r, line, "wlq").slots, HashSet::from([3]));
        }
    }

    #[test]
    fn dotted_paths_index_arrays_and_numbers_are_ids() {
        let reading = MonitorSpec {
            preset: None,
            id_field: Some("a.1.id".into()),
            pattern: Some("hit".into()),
            ..spec(MonitorPreset::Modsecurity)
        }
        .compile()
        .unwrap();
        let line = r#"{"a":[{"id":"no"},{"id":"r-5"}],"hit":1}"#;
        assert_eq!(
            reading.would_block_id(line).unwrap().as_deref(),
            Some("r-5")
        );
        let bad = scan(&reading, "{\"hit\": broken\n", "r");
        assert_eq!(bad.bad_lines, 1);
    }

    #[test]
    fn incomplete_specs_name_the_missing_field() {
        let mut s = spec(MonitorPreset::Modsecurity);
        s.preset = None;
        assert!(s.compile().unwrap_err().starts_with("id_field is missing"));
        s.id_field = Some("id".into());
        assert!(s.compile().unwrap_err().starts_with("match is missing"));
        s.pattern = Some("(".into());
        assert!(s.compile().unwrap_err().starts_with("match regex"));
        s.pattern = Some("x".into());
        s.id_field = Some("a..b".into());
        assert!(s.compile().unwrap_err().contains("empty component"));
    }

    #[test]
    fn profile_key_resolves_the_log_and_flags_override_it() {
        use crate::profile::{Overrides, Profile};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.yaml");
        std::fs::write(
            &path,
            "monitor:\n  log: logs/audit.json\n  id_field: transaction.unique_id\n  match: '\"ruleId\":\"949110\"'\n  settle: 200ms\n",
        )
        .unwrap();
        let mut p = Profile::load(&path).unwrap();
        let m = p.monitor.clone().unwrap();
        assert_eq!(m.log, dir.path().join("logs/audit.json"));
        assert_eq!(m.settle, Duration::from_millis(200));
        assert_eq!(m.wait, Duration::from_secs(10));
        assert!(m.compile().unwrap().label.contains("transaction.unique_id"));
        p.apply(&Overrides {
            monitor_preset: Some(MonitorPreset::WafloadTarget),
            ..Overrides::default()
        });
        let m = p.monitor.clone().unwrap();
        assert_eq!(
            (m.preset, m.id_field),
            (Some(MonitorPreset::WafloadTarget), None)
        );
        let mut bare = Profile::default();
        bare.apply(&Overrides {
            monitor_log: Some("/var/log/a.json".into()),
            ..Overrides::default()
        });
        assert_eq!(
            bare.monitor.unwrap().preset,
            Some(MonitorPreset::Modsecurity)
        );
        let err = Profile::parse("monitor:\n  log: x\n  preset: nginx\n", Path::new("q.yaml"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("q.yaml:3:"), "{err}");
    }

    #[test]
    fn collect_reads_only_what_was_written_after_begin() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("audit.json");
        std::fs::write(&log, format!("{MODSEC_WB}\n")).unwrap();
        let s = MonitorSpec::preset(MonitorPreset::Modsecurity, &log);
        let cursor = s.begin();
        assert!(cursor.existed_at_start);
        let later = MODSEC_WB.replace("wlabc-7", "wlabc-9");
        let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        writeln!(f, "{later}").unwrap();
        let reading = s.compile().unwrap();
        let found = collect(
            &cursor,
            &reading,
            "wlabc",
            Duration::from_millis(60),
            Duration::from_secs(2),
        )
        .unwrap();
        assert_eq!(found.slots, HashSet::from([9]));
        assert!(!found.rewound);
        // Truncated (rotated) during the run: read from the start.
        std::fs::write(&log, format!("{MODSEC_WB}\n")).unwrap();
        let cursor = LogCursor {
            start: 10_000,
            ..cursor
        };
        let found = collect(
            &cursor,
            &reading,
            "wlabc",
            Duration::from_millis(60),
            Duration::from_secs(2),
        )
        .unwrap();
        assert!(found.rewound);
        assert_eq!(found.slots, HashSet::from([7]));
        let missing = MonitorSpec::preset(MonitorPreset::Modsecurity, dir.path().join("none"));
        let err = collect(
            &missing.begin(),
            &reading,
            "wlabc",
            Duration::from_millis(10),
            Duration::from_millis(50),
        )
        .unwrap_err();
        assert!(err.to_string().contains("does not exist"), "{err}");
    }
}
