//! Recording: per-class HDR histograms, per-second series and a streaming writer of
//! per-request records. Each engine thread records its own completions (no hand-over to
//! another thread); the recorders are merged at the end. Nothing per request stays in
//! memory. It never decides what a response means (that is the classifier's job).

pub mod extproc;
mod records;

pub use records::{
    for_each_record, read_records, RecordLine, RecordWriter, StoredRecord, RECORDS_FILE,
};

use crate::classify::Class;
use crate::schedule::{Completion, Progress};
use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Highest latency the histograms can hold (1 hour, in µs); larger values saturate.
pub const MAX_LATENCY_US: u64 = 3_600_000_000;
/// A request that waited longer than this behind the schedule counts as late.
pub const LATE_THRESHOLD_US: u64 = 1_000;

/// A latency histogram in microseconds with 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid histogram bounds")
}

fn new_second_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 2).expect("valid histogram bounds")
}

/// One second of the run, keyed by the intended send time.
#[derive(Clone, Debug)]
pub struct Second {
    pub sent: u64,
    pub by_class: [u64; 5],
    pub ext_proc_errors: u64,
    /// Latency of this second's requests while the second can still receive answers;
    /// `None` once packed (a 2-digit histogram is ~25 KiB: 600 of them would be most of
    /// the recorder's memory on a 10-minute run).
    pub latency: Option<Histogram<u64>>,
    /// The second's latency once closed: quantiles plus the histogram, compressed.
    pub packed: Option<PackedSecond>,
    /// Responses that completed during this second (by completion time): throughput.
    pub completed: u64,
}

/// A closed second's latency: its quantiles and the histogram in V2 deflate encoding.
#[derive(Clone, Debug)]
pub struct PackedSecond {
    pub count: u64,
    pub p50: u64,
    pub p99: u64,
    pub max: u64,
    pub encoded: Vec<u8>,
}

impl Default for Second {
    fn default() -> Self {
        Second::new()
    }
}

impl Second {
    pub fn new() -> Self {
        Second {
            sent: 0,
            by_class: [0; 5],
            ext_proc_errors: 0,
            latency: Some(new_second_histogram()),
            packed: None,
            completed: 0,
        }
    }

    /// Records one latency (a late answer for an already packed second only counts).
    pub fn record_latency(&mut self, us: u64) {
        if let Some(h) = &mut self.latency {
            h.saturating_record(us);
        }
    }

    /// (count, p50, p99, max) of this second's latencies, in µs.
    pub fn stats(&self) -> (u64, u64, u64, u64) {
        match (&self.latency, &self.packed) {
            (Some(h), _) if !h.is_empty() => (
                h.len(),
                h.value_at_quantile(0.5),
                h.value_at_quantile(0.99),
                h.max(),
            ),
            (_, Some(p)) => (p.count, p.p50, p.p99, p.max),
            _ => (0, 0, 0, 0),
        }
    }

    /// The second's histogram (decoded again when packed).
    pub fn histogram(&self) -> Histogram<u64> {
        if let Some(h) = &self.latency {
            return h.clone();
        }
        self.packed
            .as_ref()
            .and_then(|p| {
                hdrhistogram::serialization::Deserializer::new()
                    .deserialize(&mut &p.encoded[..])
                    .ok()
            })
            .unwrap_or_else(new_second_histogram)
    }

    /// Adds the same second as seen by another recorder; packed if either side was.
    pub fn merge(&mut self, other: Second) {
        self.sent += other.sent;
        for (a, b) in self.by_class.iter_mut().zip(other.by_class) {
            *a += b;
        }
        self.ext_proc_errors += other.ext_proc_errors;
        self.completed += other.completed;
        let packed = self.packed.is_some() || other.packed.is_some();
        let mut latency = self.histogram();
        let _ = latency.add(other.histogram());
        self.latency = Some(latency);
        self.packed = None;
        if packed {
            self.pack();
        }
    }

    /// Replaces the live histogram by its quantiles and a compressed copy.
    pub fn pack(&mut self) {
        use hdrhistogram::serialization::Serializer as _;
        let Some(h) = self.latency.take() else { return };
        let (count, p50, p99, max) = if h.is_empty() {
            (0, 0, 0, 0)
        } else {
            (
                h.len(),
                h.value_at_quantile(0.5),
                h.value_at_quantile(0.99),
                h.max(),
            )
        };
        let mut encoded = Vec::new();
        let _ = hdrhistogram::serialization::V2DeflateSerializer::new().serialize(&h, &mut encoded);
        self.packed = Some(PackedSecond {
            count,
            p50,
            p99,
            max,
            encoded,
        });
    }
}

/// Everything the recorder accumulated; turned into results at the end.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub all: Histogram<u64>,
    pub by_class: [Histogram<u64>; 5],
    /// Intended → actual send: how far the sender fell behind the schedule.
    pub lateness: Histogram<u64>,
    pub late: u64,
    /// From `x-envoy-upstream-service-time`, and total minus it (gateway + filter time).
    pub upstream: Histogram<u64>,
    pub gateway: Histogram<u64>,
    /// Class counts per source (corpus request).
    pub per_source: Vec<[u64; 5]>,
    pub statuses: BTreeMap<u16, u64>,
    pub errors: BTreeMap<String, u64>,
    pub ext_proc_errors: u64,
    pub block_pages: u64,
    pub body_bytes: u64,
    pub series: Vec<Second>,
    pub first_intended: Option<Duration>,
    pub last_done: Option<Duration>,
    /// Actual send times of the first and last request (offsets from the run start).
    pub first_sent: Option<Duration>,
    pub last_sent: Option<Duration>,
    pub records_written: u64,
    /// Direct ext_proc mode only: per-phase round trips and decisions.
    pub ext_proc: Option<Box<extproc::ExtProcRecorded>>,
}

impl Recorded {
    pub fn new(sources: usize) -> Self {
        Recorded {
            all: new_histogram(),
            by_class: std::array::from_fn(|_| new_histogram()),
            lateness: new_histogram(),
            late: 0,
            upstream: new_histogram(),
            gateway: new_histogram(),
            per_source: vec![[0; 5]; sources],
            statuses: BTreeMap::new(),
            errors: BTreeMap::new(),
            ext_proc_errors: 0,
            block_pages: 0,
            body_bytes: 0,
            series: Vec::new(),
            first_intended: None,
            last_done: None,
            first_sent: None,
            last_sent: None,
            records_written: 0,
            ext_proc: None,
        }
    }

    /// Total requests per class (sent ones plus unsendable).
    pub fn class_counts(&self) -> [u64; 5] {
        let mut totals = [0u64; 5];
        for counts in &self.per_source {
            for (t, c) in totals.iter_mut().zip(counts) {
                *t += c;
            }
        }
        totals
    }

    /// Adds one stored record (from a results folder) whose times are shifted by
    /// `offset_us` onto a common clock: how `merge` rebuilds a run from its shards.
    pub fn add_stored(&mut self, r: &StoredRecord, offset_us: u64) {
        let class = Class::parse(&r.cls).unwrap_or(Class::Failed);
        if let Some(counts) = self.per_source.get_mut(r.src as usize) {
            counts[class.index()] += 1;
        }
        self.records_written += 1;
        if r.n.is_none() {
            return; // unsendable: labelled, never sent
        }
        let intended = r.t + offset_us;
        let sent = intended + r.wait;
        let done = intended + r.lat;
        if r.wait > LATE_THRESHOLD_US {
            self.late += 1;
        }
        if let Some(s) = r.st {
            *self.statuses.entry(s).or_insert(0) += 1;
        }
        if let Some(e) = &r.err {
            *self.errors.entry(e.clone()).or_insert(0) += 1;
        }
        let xp = r.xp == Some(true);
        if xp {
            self.ext_proc_errors += 1;
        }
        let us = Duration::from_micros;
        self.first_intended = Some(
            self.first_intended
                .map_or(us(intended), |f| f.min(us(intended))),
        );
        self.last_done = Some(self.last_done.map_or(us(done), |l| l.max(us(done))));
        self.first_sent = Some(self.first_sent.map_or(us(sent), |f| f.min(us(sent))));
        self.last_sent = Some(self.last_sent.map_or(us(sent), |l| l.max(us(sent))));
        let sec = self.second((intended / 1_000_000) as usize);
        sec.sent += 1;
        sec.by_class[class.index()] += 1;
        if xp {
            sec.ext_proc_errors += 1;
        }
        sec.record_latency(r.lat.max(1));
        self.second((done / 1_000_000) as usize).completed += 1;
    }

    /// Adds another part of the same run (another engine thread's figures).
    pub fn merge(&mut self, other: Recorded) {
        let add = |into: &mut Histogram<u64>, from: &Histogram<u64>| {
            // Same bounds everywhere: adding cannot fail.
            let _ = into.add(from);
        };
        add(&mut self.all, &other.all);
        for (into, from) in self.by_class.iter_mut().zip(&other.by_class) {
            add(into, from);
        }
        add(&mut self.lateness, &other.lateness);
        add(&mut self.upstream, &other.upstream);
        add(&mut self.gateway, &other.gateway);
        self.late += other.late;
        for (into, from) in self.per_source.iter_mut().zip(&other.per_source) {
            for (a, b) in into.iter_mut().zip(from) {
                *a += b;
            }
        }
        for (status, n) in other.statuses {
            *self.statuses.entry(status).or_insert(0) += n;
        }
        for (error, n) in other.errors {
            *self.errors.entry(error).or_insert(0) += n;
        }
        self.ext_proc_errors += other.ext_proc_errors;
        self.block_pages += other.block_pages;
        self.body_bytes += other.body_bytes;
        if self.series.len() < other.series.len() {
            self.series.resize_with(other.series.len(), Second::new);
        }
        for (into, from) in self.series.iter_mut().zip(other.series) {
            into.merge(from);
        }
        let earliest = |a: Option<Duration>, b: Option<Duration>| match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let latest = |a: Option<Duration>, b: Option<Duration>| a.max(b);
        self.first_intended = earliest(self.first_intended, other.first_intended);
        self.first_sent = earliest(self.first_sent, other.first_sent);
        self.last_done = latest(self.last_done, other.last_done);
        self.last_sent = latest(self.last_sent, other.last_sent);
        self.records_written += other.records_written;
        match (&mut self.ext_proc, other.ext_proc) {
            (Some(into), Some(from)) => into.merge(*from),
            (into @ None, from) => *into = from,
            (Some(_), None) => {}
        }
    }

    fn second(&mut self, index: usize) -> &mut Second {
        if self.series.len() <= index {
            self.series.resize_with(index + 1, Second::new);
        }
        &mut self.series[index]
    }
}

/// Snapshot of a histogram's percentiles in µs, as written to results.
#[derive(Clone, Debug, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct Percentiles {
    pub count: u64,
    pub min: u64,
    pub mean: f64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            count: h.len(),
            min: h.min(),
            mean: (h.mean() * 10.0).round() / 10.0,
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
        }
    }
}

/// Records completions and writes their records as they come. Each engine thread has its
/// own (fed by that thread's workers, with no hand-over to another thread); they are merged
/// into one at the end.
pub struct Recorder {
    /// Seconds whose intended time is this far behind the newest answer are closed and
    /// packed (no answer for them can still arrive: it would be past its timeout).
    close_after: Option<Duration>,
    closed_upto: usize,
    start: Instant,
    recorded: Recorded,
    writer: Option<RecordWriter>,
    /// The first error writing records; counting goes on without the file.
    write_error: Option<std::io::Error>,
    progress: Arc<Progress>,
    /// Counts not yet added to `progress`: shared counters updated per request by every
    /// engine thread would bounce their cache lines between the cores.
    unpublished: ProgressCounts,
    last_publish: Instant,
    last_p99: Instant,
}

/// Progress counts gathered by one recorder between publications.
#[derive(Clone, Copy, Debug, Default)]
struct ProgressCounts {
    completed: u64,
    blocked: u64,
    passed: u64,
    failed: u64,
    ext_proc_errors: u64,
}

/// Counts reach the progress display after this many completions or this long.
const PUBLISH_EVERY: u64 = 64;
const PUBLISH_AFTER: Duration = Duration::from_millis(100);
/// The live p99 is computed at most this often (it walks the histogram).
const P99_EVERY: Duration = Duration::from_millis(200);

impl Recorder {
    pub fn new(
        start: Instant,
        sources: usize,
        writer: Option<RecordWriter>,
        progress: Arc<Progress>,
    ) -> Self {
        Recorder {
            close_after: None,
            closed_upto: 0,
            start,
            recorded: Recorded::new(sources),
            writer,
            write_error: None,
            progress,
            unpublished: ProgressCounts::default(),
            last_publish: Instant::now(),
            last_p99: Instant::now(),
        }
    }

    /// Packs per-second histograms once no answer for them can arrive any more: answers
    /// come within `timeout` (plus the abort grace), so memory stays flat on long runs.
    pub fn close_seconds_after(mut self, timeout: Duration) -> Self {
        self.close_after = Some(timeout + Duration::from_secs(3));
        self
    }

    fn close_old_seconds(&mut self, done_off: Duration) {
        let Some(window) = self.close_after else {
            return;
        };
        let Some(edge) = done_off.checked_sub(window) else {
            return;
        };
        let edge = edge.as_secs() as usize;
        while self.closed_upto < edge && self.closed_upto < self.recorded.series.len() {
            self.recorded.series[self.closed_upto].pack();
            self.closed_upto += 1;
        }
    }

    /// A recorder for another engine thread of the same run: same start, sources and
    /// progress display, its own figures, its records into the same file.
    pub fn another(&self) -> std::io::Result<Recorder> {
        let writer = self
            .writer
            .as_ref()
            .map(RecordWriter::another)
            .transpose()?;
        let mut sibling = Recorder::new(
            self.start,
            self.recorded.per_source.len(),
            writer,
            self.progress.clone(),
        );
        sibling.close_after = self.close_after;
        Ok(sibling)
    }

    /// Records a source that could never be sent (one record, class unsendable).
    pub fn record_unsendable(&mut self, source: u32, reason: &str) -> std::io::Result<()> {
        self.recorded.per_source[source as usize][Class::Unsendable.index()] += 1;
        if let Some(w) = &mut self.writer {
            w.write(&RecordLine::unsendable(source, reason))?;
            self.recorded.records_written += 1;
        }
        Ok(())
    }

    /// Records one completion; a failure to write its record is kept for [`Recorder::finish`]
    /// and the run goes on counting.
    pub fn record(&mut self, c: &Completion) {
        let r = &mut self.recorded;
        let latency_us = micros(c.done.saturating_duration_since(c.intended)).max(1);
        let wait_us = micros(c.sent.saturating_duration_since(c.intended));
        let intended_off = c.intended.saturating_duration_since(self.start);
        let done_off = c.done.saturating_duration_since(self.start);
        r.all.saturating_record(latency_us);
        r.by_class[c.class.index()].saturating_record(latency_us);
        r.lateness.saturating_record(wait_us.max(1));
        if wait_us > LATE_THRESHOLD_US {
            r.late += 1;
        }
        if let Some(up) = c.upstream_us {
            r.upstream.saturating_record(up.max(1));
            let service = micros(c.done.saturating_duration_since(c.sent));
            r.gateway
                .saturating_record(service.saturating_sub(up).max(1));
        }
        r.per_source[c.source as usize][c.class.index()] += 1;
        if let Some(s) = c.status {
            *r.statuses.entry(s).or_insert(0) += 1;
        }
        if let Some(e) = c.error {
            *r.errors.entry(e.as_str().to_string()).or_insert(0) += 1;
        }
        if c.flags.ext_proc_error {
            r.ext_proc_errors += 1;
        }
        if c.flags.block_page {
            r.block_pages += 1;
        }
        if let Some(d) = &c.ext_proc {
            r.ext_proc.get_or_insert_with(Default::default).record(d);
        }
        r.body_bytes += c.body_len;
        r.first_intended = Some(
            r.first_intended
                .map_or(intended_off, |f| f.min(intended_off)),
        );
        r.last_done = Some(r.last_done.map_or(done_off, |l| l.max(done_off)));
        let sent_off = c.sent.saturating_duration_since(self.start);
        r.first_sent = Some(r.first_sent.map_or(sent_off, |f| f.min(sent_off)));
        r.last_sent = Some(r.last_sent.map_or(sent_off, |l| l.max(sent_off)));
        let sec = r.second(intended_off.as_secs() as usize);
        sec.sent += 1;
        sec.by_class[c.class.index()] += 1;
        if c.flags.ext_proc_error {
            sec.ext_proc_errors += 1;
        }
        sec.record_latency(latency_us);
        r.second(done_off.as_secs() as usize).completed += 1;

        if let Some(w) = &mut self.writer {
            let written = w.write(&RecordLine {
                n: Some(c.slot),
                src: c.source,
                t: micros(intended_off),
                wait: wait_us,
                lat: latency_us,
                st: c.status,
                cls: c.class.as_str(),
                err: c.error.map(|e| e.as_str()),
                up: c.upstream_us,
                xp: c.flags.ext_proc_error.then_some(true),
                reason: None,
                xp_detail: c.ext_proc.as_deref().map(extproc::ExtProcLine::of),
            });
            match written {
                Ok(()) => r.records_written += 1,
                Err(e) => {
                    self.write_error.get_or_insert(e);
                    self.writer = None;
                }
            }
        }

        self.close_old_seconds(done_off);
        let u = &mut self.unpublished;
        u.completed += 1;
        match c.class {
            Class::Blocked => u.blocked += 1,
            Class::Passed => u.passed += 1,
            Class::Failed => u.failed += 1,
            _ => {}
        }
        if c.flags.ext_proc_error {
            u.ext_proc_errors += 1;
        }
        if u.completed >= PUBLISH_EVERY
            || c.done.saturating_duration_since(self.last_publish) >= PUBLISH_AFTER
        {
            self.publish_progress(c.done);
        }
    }

    /// Adds the gathered counts to the progress display, and the p99 so far at most every
    /// `P99_EVERY` (each recorder publishes its own: the same traffic, the same estimate).
    fn publish_progress(&mut self, now: Instant) {
        let u = std::mem::take(&mut self.unpublished);
        let p = &self.progress;
        for (counter, n) in [
            (&*p.completed, u.completed),
            (&p.blocked, u.blocked),
            (&p.passed, u.passed),
            (&p.failed, u.failed),
            (&p.ext_proc_errors, u.ext_proc_errors),
        ] {
            if n != 0 {
                counter.fetch_add(n, Ordering::Relaxed);
            }
        }
        self.last_publish = now;
        if now.saturating_duration_since(self.last_p99) >= P99_EVERY {
            self.last_p99 = now;
            p.p99_us
                .store(self.recorded.all.value_at_quantile(0.99), Ordering::Relaxed);
        }
    }

    /// Takes in another recorder of the same run (another engine thread's): its figures
    /// join these, its records are written out and its first write error is kept.
    pub fn absorb(&mut self, mut other: Recorder) {
        other.publish_progress(Instant::now());
        if let Some(w) = other.writer.take() {
            if let Err(e) = w.close() {
                other.write_error.get_or_insert(e);
            }
        }
        if let Some(e) = other.write_error {
            self.write_error.get_or_insert(e);
        }
        self.recorded.merge(other.recorded);
    }

    /// Ends recording: the records file gets its final name, the last figures are published.
    pub fn finish(mut self) -> std::io::Result<Recorded> {
        self.publish_progress(Instant::now());
        if let Some(w) = self.writer.take() {
            if let Err(e) = w.finish() {
                self.write_error.get_or_insert(e);
            }
        }
        if let Some(e) = self.write_error {
            return Err(e);
        }
        self.progress
            .p99_us
            .store(self.recorded.all.value_at_quantile(0.99), Ordering::Relaxed);
        Ok(self.recorded)
    }
}

impl crate::schedule::CompletionSink for Recorder {
    fn accept(&mut self, c: &Completion) {
        self.record(c);
    }

    fn begin(&mut self, start: Instant) {
        self.start = start;
    }
}

pub fn micros(d: Duration) -> u64 {
    d.as_micros().min(u64::MAX as u128) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::Flags;

    fn completion(start: Instant, i: u64) -> Completion {
        let intended = start + Duration::from_micros(i * 700);
        let class = [
            Class::Blocked,
            Class::Passed,
            Class::Unresolved,
            Class::Failed,
        ][i as usize % 4];
        Completion {
            slot: i,
            source: (i % 5) as u32,
            intended,
            sent: intended + Duration::from_micros(i % 13),
            done: intended + Duration::from_micros(200 + (i * 37) % 5000),
            class,
            flags: Flags {
                ext_proc_error: i % 11 == 0,
                block_page: i % 17 == 0,
            },
            status: (class != Class::Failed).then_some([403, 200, 404][i as usize % 3]),
            error: None,
            upstream_us: (i % 2 == 0).then_some(150),
            body_len: i % 100,
            ext_proc: None,
        }
    }

    /// Engine threads record their own shares and are merged at the end: the merged
    /// figures equal those of one recorder that saw every completion — also for seconds
    /// packed on one side only.
    #[test]
    fn recorders_merged_equal_one_recorder() {
        let start = Instant::now();
        let progress = Arc::new(Progress::default());
        let mut one = Recorder::new(start, 5, None, progress.clone());
        let mut parts = Recorder::new(start, 5, None, progress.clone()).close_seconds_after(
            Duration::ZERO, // packs seconds 3 s behind the newest answer
        );
        let mut other = parts.another().unwrap();
        other.close_after = None; // its seconds stay live: merged with packed ones
        for i in 0..10_000 {
            let c = completion(start, i);
            one.record(&c);
            if i % 3 == 0 {
                parts.record(&c)
            } else {
                other.record(&c)
            }
        }
        assert!(
            parts.recorded.series[0].packed.is_some(),
            "a packed second is merged"
        );
        parts.absorb(other);
        let (a, b) = (one.finish().unwrap(), parts.finish().unwrap());
        assert_eq!(Percentiles::of(&a.all), Percentiles::of(&b.all));
        for k in 0..5 {
            assert_eq!(
                Percentiles::of(&a.by_class[k]),
                Percentiles::of(&b.by_class[k])
            );
        }
        assert_eq!(Percentiles::of(&a.lateness), Percentiles::of(&b.lateness));
        assert_eq!(Percentiles::of(&a.gateway), Percentiles::of(&b.gateway));
        assert_eq!(a.per_source, b.per_source);
        assert_eq!(a.statuses, b.statuses);
        assert_eq!(
            (a.ext_proc_errors, a.block_pages, a.body_bytes, a.late),
            (b.ext_proc_errors, b.block_pages, b.body_bytes, b.late)
        );
        assert_eq!(
            (a.first_intended, a.last_done, a.first_sent, a.last_sent),
            (b.first_intended, b.last_done, b.first_sent, b.last_sent)
        );
        assert_eq!(a.series.len(), b.series.len());
        for (x, y) in a.series.iter().zip(&b.series) {
            assert_eq!(
                (x.sent, x.by_class, x.completed),
                (y.sent, y.by_class, y.completed)
            );
            assert_eq!(x.stats(), y.stats());
        }
        assert_eq!(progress.completed.load(Ordering::Relaxed), 20_000);
    }

    /// A packed second keeps its figures and its histogram: memory on long runs stays flat
    /// without losing per-second data.
    #[test]
    fn packing_a_second_keeps_quantiles_and_histogram() {
        let mut s = Second::new();
        for us in 1..=1000u64 {
            s.record_latency(us * 10);
        }
        let before = s.stats();
        let hist_before = s.histogram();
        s.pack();
        assert!(s.latency.is_none());
        assert_eq!(s.stats(), before);
        let hist_after = s.histogram();
        assert_eq!(hist_after.len(), hist_before.len());
        assert_eq!(
            hist_after.value_at_quantile(0.99),
            hist_before.value_at_quantile(0.99)
        );
        assert!(s.packed.as_ref().unwrap().encoded.len() < 4096);
    }
}
