//! Per-request records: one JSON line each, zstd-compressed, streamed to disk as the run
//! goes. Written to a `.partial` file and renamed when complete, so a reader never sees
//! a half-written file under the final name.

use serde::Serialize;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

pub const RECORDS_FILE: &str = "requests.jsonl.zst";

/// One request's record. Short keys keep the file small; `src` indexes `sources.json`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RecordLine {
    /// Slot number (also the request id suffix); absent for unsendable sources.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub n: Option<u64>,
    pub src: u32,
    /// Intended send time, µs since the run start.
    pub t: u64,
    /// Intended → actual send, µs.
    pub wait: u64,
    /// Intended send → response complete, µs.
    pub lat: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub st: Option<u16>,
    pub cls: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub err: Option<&'static str>,
    /// Upstream service time from the gateway, µs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub up: Option<u64>,
    /// Envoy ext_proc error body seen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub xp: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Direct ext_proc mode: deciding phase and per-phase round trips.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub xp_detail: Option<super::extproc::ExtProcLine>,
}

impl RecordLine {
    /// The JSON line, written by hand: the recorder does this once per request, and this is
    /// several times cheaper than going through serde (a test checks both agree).
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut num = itoa::Buffer::new();
        let mut field = |out: &mut Vec<u8>, name: &[u8], value: u64| {
            out.extend_from_slice(name);
            out.extend_from_slice(num.format(value).as_bytes());
        };
        out.push(b'{');
        if let Some(n) = self.n {
            field(out, b"\"n\":", n);
            out.push(b',');
        }
        field(out, b"\"src\":", u64::from(self.src));
        field(out, b",\"t\":", self.t);
        field(out, b",\"wait\":", self.wait);
        field(out, b",\"lat\":", self.lat);
        if let Some(st) = self.st {
            field(out, b",\"st\":", u64::from(st));
        }
        // Class and error names are fixed ASCII identifiers: no escaping needed.
        out.extend_from_slice(b",\"cls\":\"");
        out.extend_from_slice(self.cls.as_bytes());
        out.push(b'"');
        if let Some(err) = self.err {
            out.extend_from_slice(b",\"err\":\"");
            out.extend_from_slice(err.as_bytes());
            out.push(b'"');
        }
        if let Some(up) = self.up {
            field(out, b",\"up\":", up);
        }
        if let Some(xp) = self.xp {
            out.extend_from_slice(if xp {
                b",\"xp\":true"
            } else {
                b",\"xp\":false"
            });
        }
        if let Some(reason) = &self.reason {
            out.extend_from_slice(b",\"reason\":");
            let _ = serde_json::to_writer(&mut *out, reason);
        }
        if let Some(detail) = &self.xp_detail {
            // Only direct ext_proc runs carry it; serde keeps it exact and it is rare enough.
            out.extend_from_slice(b",\"xp_detail\":");
            let _ = serde_json::to_writer(&mut *out, detail);
        }
        out.extend_from_slice(b"}\n");
    }

    pub fn unsendable(source: u32, reason: &str) -> Self {
        RecordLine {
            n: None,
            src: source,
            t: 0,
            wait: 0,
            lat: 0,
            st: None,
            cls: "unsendable",
            err: None,
            up: None,
            xp: None,
            reason: Some(reason.to_string()),
            xp_detail: None,
        }
    }
}

/// Lines gathered before they are compressed: a zstd call per ~60-byte line cost more
/// than the compression itself, and a frame this long compresses about as well as one
/// continuous stream.
const LINES_BUFFER: usize = 128 * 1024;

/// The records file, shared by the writers of one run (one per engine thread): each
/// compresses its own lines into complete zstd frames and appends them under a lock, so
/// no thread waits for another's compression. A zstd reader decodes the concatenated
/// frames as one stream; lines from different threads interleave only frame by frame.
struct RecordFile {
    file: std::sync::Mutex<File>,
    partial: PathBuf,
    final_path: PathBuf,
}

/// Writes records into a results folder's records file.
pub struct RecordWriter {
    file: std::sync::Arc<RecordFile>,
    line: Vec<u8>,
    frame: Vec<u8>,
    compressor: zstd::bulk::Compressor<'static>,
}

impl RecordWriter {
    pub fn create(dir: &Path) -> std::io::Result<Self> {
        let final_path = dir.join(RECORDS_FILE);
        let partial = dir.join(format!("{RECORDS_FILE}.partial"));
        let file = File::create(&partial)?;
        Self::on(std::sync::Arc::new(RecordFile {
            file: std::sync::Mutex::new(file),
            partial,
            final_path,
        }))
    }

    fn on(file: std::sync::Arc<RecordFile>) -> std::io::Result<Self> {
        // Level -3 ("--fast=3"): the records are highly repetitive, so even zstd's fast
        // mode keeps them at ~12 bytes per request (level 1: ~7) at about twice the speed
        // of level 1 — the engine threads that record share the cores with the target.
        Ok(RecordWriter {
            file,
            line: Vec::with_capacity(LINES_BUFFER + 4096),
            frame: Vec::new(),
            compressor: zstd::bulk::Compressor::new(-3)?,
        })
    }

    /// Another writer into the same file (for another thread).
    pub fn another(&self) -> std::io::Result<Self> {
        Self::on(self.file.clone())
    }

    pub fn write(&mut self, record: &RecordLine) -> std::io::Result<()> {
        record.encode(&mut self.line);
        if self.line.len() >= LINES_BUFFER {
            self.flush_lines()?;
        }
        Ok(())
    }

    /// Compresses the gathered lines into one frame and appends it to the file.
    fn flush_lines(&mut self) -> std::io::Result<()> {
        if self.line.is_empty() {
            return Ok(());
        }
        self.frame.clear();
        self.frame
            .reserve(zstd::zstd_safe::compress_bound(self.line.len()));
        self.compressor
            .compress_to_buffer(&self.line, &mut self.frame)?;
        self.line.clear();
        let mut file = self.file.file.lock().unwrap_or_else(|p| p.into_inner());
        file.write_all(&self.frame)
    }

    /// Writes what this writer still holds; the file stays open for the other writers.
    pub fn close(mut self) -> std::io::Result<()> {
        self.flush_lines()
    }

    /// Writes what is left, syncs and moves the file to its final name. Call it on the
    /// last writer, after every other writer of the file is closed.
    pub fn finish(mut self) -> std::io::Result<()> {
        self.flush_lines()?;
        let shared = std::sync::Arc::try_unwrap(self.file).map_err(|_| {
            std::io::Error::other("records file finished while another writer was open")
        })?;
        let file = shared.file.into_inner().unwrap_or_else(|p| p.into_inner());
        file.sync_all()?;
        std::fs::rename(&shared.partial, &shared.final_path)
    }
}

/// Reads every record of a results folder (for merge, compare and tests).
pub fn read_records(dir: &Path) -> std::io::Result<Vec<serde_json::Value>> {
    let file = File::open(dir.join(RECORDS_FILE))?;
    let decoder = zstd::Decoder::new(file)?;
    let reader = std::io::BufReader::new(decoder);
    let mut out = Vec::new();
    for line in std::io::BufRead::lines(reader) {
        let line = line?;
        if line.is_empty() {
            continue;
        }
        out.push(serde_json::from_str(&line).map_err(std::io::Error::other)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Engine threads each write their own frames into one file: every record comes back,
    /// each exactly once, and the file gets its final name only from the last writer.
    #[test]
    fn writers_of_one_file_lose_no_record() {
        let dir = tempfile::tempdir().unwrap();
        let mut first = RecordWriter::create(dir.path()).unwrap();
        let mut second = first.another().unwrap();
        let line = |n: u64| RecordLine {
            n: Some(n),
            src: (n % 7) as u32,
            t: n * 10,
            wait: 1,
            lat: 100 + n % 50,
            st: Some(200),
            cls: "passed",
            err: None,
            up: None,
            xp: None,
            reason: None,
            xp_detail: None,
        };
        // Enough lines for several frames per writer, interleaved.
        for n in 0..40_000u64 {
            let w = if n % 3 == 0 { &mut first } else { &mut second };
            w.write(&line(n)).unwrap();
        }
        let third = first.another().unwrap();
        assert!(!dir.path().join(RECORDS_FILE).exists());
        second.close().unwrap();
        third.close().unwrap();
        first.finish().unwrap();
        let mut seen: Vec<u64> = read_records(dir.path())
            .unwrap()
            .iter()
            .map(|r| r["n"].as_u64().unwrap())
            .collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..40_000).collect::<Vec<_>>());
        assert!(!dir.path().join(format!("{RECORDS_FILE}.partial")).exists());
    }

    #[test]
    fn finishing_while_another_writer_is_open_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let first = RecordWriter::create(dir.path()).unwrap();
        let open = first.another().unwrap();
        assert!(first.finish().is_err());
        drop(open);
        assert!(!dir.path().join(RECORDS_FILE).exists());
    }

    #[test]
    fn hand_written_encoding_equals_serde() {
        let full = RecordLine {
            n: Some(42),
            src: 7,
            t: 1_000_123,
            wait: 15,
            lat: 2_345,
            st: Some(403),
            cls: "blocked",
            err: Some("reset"),
            up: Some(5000),
            xp: Some(true),
            reason: Some("header X-a contains CR \"\u{1}\"".into()),
            xp_detail: Some(super::super::extproc::ExtProcLine {
                at: "request_body#3".into(),
                v: "block",
                rqh: Some(1200),
                rqb: vec![2100, 2050, 2200],
                rsh: None,
                rsb: vec![],
                tot: 7550,
            }),
        };
        let bare = RecordLine::unsendable(3, "bad \\ reason");
        for r in [full, bare] {
            let mut ours = Vec::new();
            r.encode(&mut ours);
            let mut theirs = serde_json::to_vec(&r).unwrap();
            theirs.push(b'\n');
            assert_eq!(
                String::from_utf8(ours).unwrap(),
                String::from_utf8(theirs).unwrap()
            );
        }
    }
}

/// A record as read back from disk.
#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
pub struct StoredRecord {
    #[serde(default)]
    pub n: Option<u64>,
    pub src: u32,
    #[serde(default)]
    pub t: u64,
    #[serde(default)]
    pub wait: u64,
    #[serde(default)]
    pub lat: u64,
    #[serde(default)]
    pub st: Option<u16>,
    pub cls: String,
    #[serde(default)]
    pub err: Option<String>,
    #[serde(default)]
    pub up: Option<u64>,
    #[serde(default)]
    pub xp: Option<bool>,
    #[serde(default)]
    pub reason: Option<String>,
}

/// Streams every record of a results folder through `f` without holding them in memory.
/// Returns the number of records; a malformed line is an error naming its line number.
pub fn for_each_record(dir: &Path, mut f: impl FnMut(StoredRecord)) -> std::io::Result<u64> {
    let path = dir.join(RECORDS_FILE);
    let file = File::open(&path)?;
    let decoder = zstd::Decoder::new(file)?;
    let reader = std::io::BufReader::with_capacity(1 << 16, decoder);
    let mut count = 0;
    for (i, line) in std::io::BufRead::lines(reader).enumerate() {
        let line = line?;
        if line.is_empty() {
            continue;
        }
        let record: StoredRecord = serde_json::from_str(&line).map_err(|e| {
            std::io::Error::other(format!("{}: line {}: {e}", path.display(), i + 1))
        })?;
        f(record);
        count += 1;
    }
    Ok(count)
}
