//! The run driver: a pacer thread that releases each slot at its intended time (open
//! loop) or a shared counter (closed loop), and worker tasks that send, classify and pass
//! completions on to the recorder. Latency starts at the intended time, so time spent
//! queued behind busy connections counts (no coordinated omission).

use super::RateSchedule;
use crate::classify::{Class, Classifier, Flags};
use crate::plan::Plan;
use crate::transport::{ErrorKind, Outcome, Session, Transport};
use http::HeaderValue;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// After an interrupt, requests in flight get this long to finish before they are
/// recorded as aborted.
pub const ABORT_GRACE: Duration = Duration::from_millis(1500);

/// One slot released by the pacer.
#[derive(Clone, Copy, Debug)]
pub struct Job {
    pub slot: u64,
    pub intended: Instant,
}

/// What the recorder gets for each sent request.
#[derive(Clone, Debug)]
pub struct Completion {
    pub slot: u64,
    pub source: u32,
    pub intended: Instant,
    pub sent: Instant,
    pub done: Instant,
    pub class: Class,
    pub flags: Flags,
    pub status: Option<u16>,
    pub error: Option<ErrorKind>,
    pub upstream_us: Option<u64>,
    pub body_len: u64,
}

/// Live counters for the progress display; updated by workers and the recorder.
#[derive(Debug, Default)]
pub struct Progress {
    pub dispatched: AtomicU64,
    pub sent: AtomicU64,
    pub completed: AtomicU64,
    pub blocked: AtomicU64,
    pub passed: AtomicU64,
    pub failed: AtomicU64,
    pub ext_proc_errors: AtomicU64,
    /// p99 latency so far in µs, published by the recorder.
    pub p99_us: AtomicU64,
    /// Connection failures in a row (no response at all); used to stop on a dead target.
    pub consecutive_connect_failures: AtomicU64,
    pub done: AtomicBool,
}

#[derive(Clone, Debug)]
pub struct DriverConfig {
    /// How many slots to send; `None` = until the schedule or `duration_limit` ends.
    pub slots: Option<u64>,
    /// Open-loop schedule; `None` = closed loop (as fast as answers come back).
    pub schedule: Option<RateSchedule>,
    pub duration_limit: Option<Duration>,
    pub workers: usize,
    /// Prefix of every request id: `<tag>-<slot>`.
    pub run_tag: String,
    /// Stop the run when this many requests in a row fail to connect (dead target).
    pub dead_target_after: u64,
    /// Time zero of the schedule (slot offsets are added to it).
    pub start: Instant,
    /// This process sends only its shard of the global slots.
    pub shard: Shard,
}

/// Shard `index` of `count`: it sends global slots index, index + count, index + 2·count…
/// at their global intended times, so N shards together send exactly the single-process
/// schedule (rate / N each, evenly interleaved) and the same requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
}

impl Default for Shard {
    fn default() -> Self {
        Shard { index: 0, count: 1 }
    }
}

impl Shard {
    /// Parses "I/N" (0-based index).
    pub fn parse(text: &str) -> Result<Shard, String> {
        let (i, n) = text
            .split_once('/')
            .ok_or_else(|| format!("{text:?} is not I/N (e.g. 0/4)"))?;
        let index: u64 = i
            .trim()
            .parse()
            .map_err(|_| format!("{i:?} is not a shard index"))?;
        let count: u64 = n
            .trim()
            .parse()
            .map_err(|_| format!("{n:?} is not a shard count"))?;
        if count == 0 || index >= count {
            return Err(format!("shard {index}/{count}: need 0 <= I < N"));
        }
        Ok(Shard { index, count })
    }

    /// The k-th slot of this shard.
    pub fn slot(&self, k: u64) -> u64 {
        self.index + k * self.count
    }

    /// How many of the first `total` global slots belong to this shard.
    pub fn share_of(&self, total: u64) -> u64 {
        if total <= self.index {
            0
        } else {
            (total - self.index).div_ceil(self.count)
        }
    }

    pub fn is_single(&self) -> bool {
        self.count == 1
    }
}

/// What the driver itself knows at the end.
#[derive(Clone, Debug, Default)]
pub struct DriverStats {
    pub sent: u64,
    /// Slots released by the pacer but never sent (interrupted).
    pub not_sent: u64,
    pub stopped_dead_target: bool,
}

/// Runs the whole send phase; returns when every worker has finished.
pub async fn run_workers<T: Transport>(
    transport: Arc<T>,
    plan: Arc<Plan>,
    classifier: Arc<Classifier>,
    config: DriverConfig,
    cancel: CancellationToken,
    completions: flume::Sender<Completion>,
    progress: Arc<Progress>,
) -> DriverStats {
    let start = config.start;
    let dead_target = Arc::new(AtomicBool::new(false));
    let (job_tx, job_rx) = flume::unbounded::<Job>();
    let closed_counter = Arc::new(AtomicU64::new(0));
    let pacer = config.schedule.clone().map(|schedule| {
        let cancel = cancel.clone();
        let progress = progress.clone();
        let slots = config.slots;
        let limit = config.duration_limit;
        let shard = config.shard;
        std::thread::Builder::new()
            .name("wafload-pacer".into())
            .spawn(move || {
                pace(
                    schedule, slots, shard, limit, start, job_tx, cancel, progress,
                )
            })
            .expect("spawn pacer thread")
    });

    let mut handles = Vec::with_capacity(config.workers);
    for w in 0..config.workers {
        let session = transport.session(w);
        let ctx = WorkerContext {
            plan: plan.clone(),
            classifier: classifier.clone(),
            cancel: cancel.clone(),
            completions: completions.clone(),
            progress: progress.clone(),
            run_tag: config.run_tag.clone(),
            dead_target_after: config.dead_target_after,
            dead_target: dead_target.clone(),
        };
        let handle = if config.schedule.is_some() {
            tokio::spawn(open_loop_worker(session, ctx, job_rx.clone()))
        } else {
            tokio::spawn(closed_loop_worker(
                session,
                ctx,
                closed_counter.clone(),
                config.shard,
                config.slots,
                config.duration_limit.map(|d| start + d),
            ))
        };
        handles.push(handle);
    }
    drop(job_rx);
    drop(completions);
    let mut sent = 0;
    for h in handles {
        sent += h.await.unwrap_or(0);
    }
    if let Some(p) = pacer {
        let _ = tokio::task::spawn_blocking(move || p.join()).await;
    }
    let dispatched = if config.schedule.is_some() {
        progress.dispatched.load(Ordering::Relaxed)
    } else {
        sent
    };
    DriverStats {
        sent,
        not_sent: dispatched.saturating_sub(sent),
        stopped_dead_target: dead_target.load(Ordering::Relaxed),
    }
}

/// The pacer: releases slot i at start + offset(i). A dedicated thread, because tokio's
/// timer wheel has 1 ms granularity and we want sub-millisecond send accuracy.
#[allow(clippy::too_many_arguments)]
fn pace(
    schedule: RateSchedule,
    slots: Option<u64>,
    shard: Shard,
    limit: Option<Duration>,
    start: Instant,
    jobs: flume::Sender<Job>,
    cancel: CancellationToken,
    progress: Arc<Progress>,
) {
    let mut k = 0u64;
    loop {
        let slot = shard.slot(k);
        if slots.is_some_and(|n| slot >= n) {
            break;
        }
        let Some(offset) = schedule.offset(slot) else {
            break;
        };
        if limit.is_some_and(|l| offset >= l) {
            break;
        }
        let due = start + offset;
        loop {
            if cancel.is_cancelled() {
                return;
            }
            let now = Instant::now();
            if now >= due {
                break;
            }
            std::thread::sleep((due - now).min(Duration::from_millis(20)));
        }
        if jobs
            .send(Job {
                slot,
                intended: due,
            })
            .is_err()
        {
            return;
        }
        progress.dispatched.fetch_add(1, Ordering::Relaxed);
        k += 1;
    }
}

struct WorkerContext {
    plan: Arc<Plan>,
    classifier: Arc<Classifier>,
    cancel: CancellationToken,
    completions: flume::Sender<Completion>,
    progress: Arc<Progress>,
    run_tag: String,
    dead_target_after: u64,
    dead_target: Arc<AtomicBool>,
}

async fn open_loop_worker<S: Session>(
    mut session: S,
    ctx: WorkerContext,
    jobs: flume::Receiver<Job>,
) -> u64 {
    let mut sent = 0;
    loop {
        let job = tokio::select! {
            biased;
            _ = ctx.cancel.cancelled() => break,
            job = jobs.recv_async() => match job { Ok(j) => j, Err(_) => break },
        };
        sent += 1;
        if !send_one(&mut session, &ctx, job).await {
            break;
        }
    }
    sent
}

async fn closed_loop_worker<S: Session>(
    mut session: S,
    ctx: WorkerContext,
    counter: Arc<AtomicU64>,
    shard: Shard,
    slots: Option<u64>,
    deadline: Option<Instant>,
) -> u64 {
    let mut sent = 0;
    loop {
        if ctx.cancel.is_cancelled() || deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        let slot = shard.slot(counter.fetch_add(1, Ordering::Relaxed));
        if slots.is_some_and(|n| slot >= n) {
            break;
        }
        let job = Job {
            slot,
            intended: Instant::now(),
        };
        sent += 1;
        if !send_one(&mut session, &ctx, job).await {
            break;
        }
    }
    sent
}

/// Sends one slot and hands the completion to the recorder. Returns false when the
/// worker should stop (recorder gone or dead target).
async fn send_one<S: Session>(session: &mut S, ctx: &WorkerContext, job: Job) -> bool {
    let request = ctx.plan.request_for_slot(job.slot);
    let id =
        HeaderValue::from_str(&format!("{}-{}", ctx.run_tag, job.slot)).expect("run tag is ascii");
    let sent = Instant::now();
    ctx.progress.sent.fetch_add(1, Ordering::Relaxed);
    let outcome = tokio::select! {
        outcome = session.send(request, id) => outcome,
        _ = async { ctx.cancel.cancelled().await; tokio::time::sleep(ABORT_GRACE).await } => {
            Outcome::failed(ErrorKind::Aborted, "run interrupted while the request was in flight")
        }
    };
    let done = Instant::now();
    let (class, flags) = ctx.classifier.classify(&outcome);
    let error = outcome.error.as_ref().map(|e| e.kind);
    if error == Some(ErrorKind::Connect) {
        let n = ctx
            .progress
            .consecutive_connect_failures
            .fetch_add(1, Ordering::Relaxed)
            + 1;
        if n >= ctx.dead_target_after && !ctx.dead_target.swap(true, Ordering::Relaxed) {
            ctx.cancel.cancel();
        }
    } else {
        ctx.progress
            .consecutive_connect_failures
            .store(0, Ordering::Relaxed);
    }
    let completion = Completion {
        slot: job.slot,
        source: request.source,
        intended: job.intended,
        sent,
        done,
        class,
        flags,
        status: outcome.status,
        error,
        upstream_us: outcome.upstream_service_time_us,
        body_len: outcome.body_len,
    };
    ctx.completions.send_async(completion).await.is_ok()
}

#[cfg(test)]
mod tests {
    use super::Shard;

    #[test]
    fn shards_partition_the_slots() {
        let shards: Vec<Shard> = (0..3).map(|i| Shard { index: i, count: 3 }).collect();
        let mut all: Vec<u64> = shards
            .iter()
            .flat_map(|s| (0..s.share_of(10)).map(move |k| s.slot(k)))
            .collect();
        all.sort();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
        assert_eq!(
            shards.iter().map(|s| s.share_of(10)).collect::<Vec<_>>(),
            vec![4, 3, 3]
        );
        assert_eq!(Shard::parse("2/4").unwrap(), Shard { index: 2, count: 4 });
        assert!(Shard::parse("4/4").is_err());
        assert!(Shard::parse("x").is_err());
    }
}
