//! Recording: per-class HDR histograms, per-second series and a streaming writer of
//! per-request records. One recorder thread owns all of it; nothing per request stays in
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

/// Consumes completions until every worker is done; writes records as it goes.
pub struct Recorder {
    /// Seconds whose intended time is this far behind the newest answer are closed and
    /// packed (no answer for them can still arrive: it would be past its timeout).
    close_after: Option<Duration>,
    closed_upto: usize,
    start: Instant,
    recorded: Recorded,
    writer: Option<RecordWriter>,
    progress: Arc<Progress>,
    last_publish: Instant,
}

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
            progress,
            last_publish: Instant::now(),
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

    /// Records a source that could never be sent (one record, class unsendable).
    pub fn record_unsendable(&mut self, source: u32, reason: &str) -> std::io::Result<()> {
        self.recorded.per_source[source as usize][Class::Unsendable.index()] += 1;
        if let Some(w) = &mut self.writer {
            w.write(&RecordLine::unsendable(source, reason))?;
            self.recorded.records_written += 1;
        }
        Ok(())
    }

    pub fn record(&mut self, c: &Completion) -> std::io::Result<()> {
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
            w.write(&RecordLine {
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
            })?;
            r.records_written += 1;
        }

        self.close_old_seconds(done_off);
        let p = &self.progress;
        p.completed.fetch_add(1, Ordering::Relaxed);
        match c.class {
            Class::Blocked => p.blocked.fetch_add(1, Ordering::Relaxed),
            Class::Passed => p.passed.fetch_add(1, Ordering::Relaxed),
            Class::Failed => p.failed.fetch_add(1, Ordering::Relaxed),
            _ => 0,
        };
        if c.flags.ext_proc_error {
            p.ext_proc_errors.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Publishes the p99 for the progress display at most every 200 ms; called once per
    /// batch of completions, so the clock is read per batch, not per record.
    fn publish_progress(&mut self) {
        if self.last_publish.elapsed() > Duration::from_millis(200) {
            self.last_publish = Instant::now();
            self.progress
                .p99_us
                .store(self.recorded.all.value_at_quantile(0.99), Ordering::Relaxed);
        }
    }

    /// Drains the channel until all senders are gone, then flushes the records file.
    pub fn run(
        mut self,
        completions: flume::Receiver<Vec<Completion>>,
    ) -> std::io::Result<Recorded> {
        let mut first_error = None;
        for batch in completions.iter() {
            for c in &batch {
                if let Err(e) = self.record(c) {
                    // Keep counting even if the disk fails; report the first error at the end.
                    first_error.get_or_insert(e);
                    self.writer = None;
                }
            }
            self.publish_progress();
        }
        if let Some(w) = self.writer.take() {
            w.finish()?;
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        self.progress
            .p99_us
            .store(self.recorded.all.value_at_quantile(0.99), Ordering::Relaxed);
        Ok(self.recorded)
    }
}

pub fn micros(d: Duration) -> u64 {
    d.as_micros().min(u64::MAX as u128) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

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
