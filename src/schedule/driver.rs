//! The run driver: a pacer on each engine thread that releases the thread's slots at
//! their intended time (open loop), or a shared counter (closed loop), and worker tasks
//! that open their connections before the clock starts, then send, classify and hand each
//! completion to their engine thread's sink (the recorder). Latency starts at the intended
//! time, so time spent queued behind busy connections counts (no coordinated omission).

use super::RateSchedule;
use crate::classify::{Class, Classifier, Flags};
use crate::plan::Plan;
use crate::transport::{ErrorKind, Outcome, RequestId, Session, Transport};
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

/// Where an engine thread's completions go: each engine thread has its own sink, fed
/// by that thread's workers as their answers come in, so recording needs neither a
/// hand-over to another thread nor a third busy thread on the cores the target shares.
pub trait CompletionSink: Send + 'static {
    fn accept(&mut self, c: &Completion);

    /// The schedule's time zero, fixed once every worker has warmed its session (before
    /// any completion arrives); the sink was made with the earliest it could be.
    fn begin(&mut self, _start: Instant) {}
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
    /// Direct ext_proc mode: the exchange's phases.
    pub ext_proc: Option<Box<crate::transport::extproc::ExtProcDetail>>,
}

/// Live counters for the progress display; updated by workers and the recorder. Each
/// counter has a cache line of its own: the engine threads update them (the recorders in
/// batches), and counters sharing a line made it bounce between cores.
#[derive(Debug, Default)]
pub struct Progress {
    pub dispatched: Padded<AtomicU64>,
    /// Requests sent, one counter per engine thread (each written by its own thread only);
    /// read the total with [`Progress::sent`].
    engines_sent: std::sync::Mutex<Vec<Arc<Padded<AtomicU64>>>>,
    pub completed: Padded<AtomicU64>,
    pub blocked: AtomicU64,
    pub passed: AtomicU64,
    pub failed: AtomicU64,
    pub ext_proc_errors: AtomicU64,
    /// p99 latency so far in µs, published by the recorder.
    pub p99_us: AtomicU64,
    /// Connection failures in a row (no response at all); used to stop on a dead target.
    pub consecutive_connect_failures: Padded<AtomicU64>,
    pub done: AtomicBool,
}

impl Progress {
    /// Requests sent so far.
    pub fn sent(&self) -> u64 {
        self.engines_sent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }

    /// A sent-requests counter for one engine thread.
    fn engine_sent_counter(&self) -> Arc<Padded<AtomicU64>> {
        let counter: Arc<Padded<AtomicU64>> = Arc::default();
        self.engines_sent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(counter.clone());
        counter
    }
}

/// A value alone on its cache line (128 bytes: two lines, as adjacent-line prefetch pairs
/// them on x86).
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct Padded<T>(pub T);

impl<T> std::ops::Deref for Padded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
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
    /// The earliest time zero of the schedule (slot offsets are added to it): the
    /// schedule starts here, or once every worker has warmed its session if that is later.
    pub start: Instant,
    /// This process sends only its shard of the global slots.
    pub shard: Shard,
    /// Engine threads, each running its share of the workers on its own single-threaded
    /// runtime (no work stealing, no cross-thread wake-ups per request — like wrk's
    /// thread-per-core event loops).
    pub threads: usize,
}

impl DriverConfig {
    /// How many engine threads the run uses (never more than its workers): the number of
    /// sinks `run_workers` wants.
    pub fn engine_threads(&self) -> usize {
        self.threads.clamp(1, self.workers.max(1))
    }
}

/// The most a pacer hands a job to the workers ahead of its time (the worker waits out
/// the rest itself); within it, the lead follows the measured wake-ups (`lead.rs`).
pub const DISPATCH_LEAD: Duration = Duration::from_micros(200);
/// Below this interval between requests (> 2 000 req/s per process) the lead shrinks to a
/// third of the interval, so the workers' waiting costs at most a third of a core.
pub const LEAD_MIN_INTERVAL: Duration = Duration::from_micros(500);
/// A lead shorter than this would not cover an engine thread's wake-up; none is used.
pub const LEAD_FLOOR: Duration = Duration::from_micros(25);

/// The longest hand-over lead for requests `interval` apart: bounds the spinning it costs.
pub fn dispatch_lead(interval: Duration) -> Duration {
    if interval >= LEAD_MIN_INTERVAL {
        return DISPATCH_LEAD;
    }
    let lead = interval / 3;
    if lead >= LEAD_FLOOR {
        lead
    } else {
        Duration::ZERO
    }
}

/// Waits for an instant at most `DISPATCH_LEAD` away by yielding to the engine's other
/// tasks (tokio's timer has 1 ms granularity, far too coarse for a send time); returns
/// the time it saw, which is the send time.
async fn wait_until(t: Instant) -> Instant {
    loop {
        let now = Instant::now();
        if now >= t {
            return now;
        }
        tokio::task::yield_now().await;
    }
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
    /// The schedule's time zero as it was fixed once the workers had warmed their
    /// sessions: `DriverConfig::start` or later (`None` if the run ended before).
    pub start: Option<Instant>,
    pub sent: u64,
    /// Slots released by the pacer but never sent (interrupted).
    pub not_sent: u64,
    pub stopped_dead_target: bool,
}

/// Runs the whole send phase with one engine thread per sink; returns when every worker
/// has finished, with the sinks.
pub async fn run_workers<T: Transport, K: CompletionSink>(
    transport: Arc<T>,
    plan: Arc<Plan>,
    classifier: Arc<Classifier>,
    config: DriverConfig,
    cancel: CancellationToken,
    sinks: Vec<K>,
    progress: Arc<Progress>,
) -> (DriverStats, Vec<K>) {
    let start = config.start;
    let threads = sinks.len();
    assert!(threads >= 1, "run_workers needs a sink per engine thread");
    let dead_target = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    // Workers wait for cancellation on their engine thread's own token, cancelled here
    // after `stop` is set (see `abortable`). The run's token is one lock for all threads.
    let engine_cancel: Vec<CancellationToken> =
        (0..threads).map(|_| CancellationToken::new()).collect();
    let watcher = {
        let (cancel, stop, engines) = (cancel.clone(), stop.clone(), engine_cancel.clone());
        tokio::spawn(async move {
            cancel.cancelled().await;
            stop.store(true, Ordering::Release);
            for engine in engines {
                engine.cancel();
            }
        })
    };
    let job_queues: Vec<Arc<EngineJobs>> = (0..threads).map(|_| Arc::default()).collect();
    let gate = Arc::new(StartGate::new(config.workers, start));
    let closed_counter = Arc::new(AtomicU64::new(0));

    // Workers are dealt round-robin to engine threads; each thread runs a current-thread
    // runtime, so a worker, its connection task and its timers share one thread.
    let mut groups: Vec<Vec<WorkerFuture>> = (0..threads).map(|_| Vec::new()).collect();
    let sinks: Vec<Arc<std::sync::Mutex<K>>> = sinks
        .into_iter()
        .map(|k| Arc::new(std::sync::Mutex::new(k)))
        .collect();
    let engine_slots: Vec<Arc<EngineSlots>> = (0..threads)
        .map(|_| Arc::new(EngineSlots::new(closed_counter.clone())))
        .collect();
    let engine_sent: Vec<_> = (0..threads)
        .map(|_| progress.engine_sent_counter())
        .collect();
    for w in 0..config.workers {
        let session = transport.session(w);
        let ctx = WorkerContext {
            plan: plan.clone(),
            classifier: classifier.clone(),
            cancel: cancel.clone(),
            engine_cancel: engine_cancel[w % threads].clone(),
            sent: engine_sent[w % threads].clone(),
            progress: progress.clone(),
            run_tag: config.run_tag.clone(),
            dead_target_after: config.dead_target_after,
            dead_target: dead_target.clone(),
            stop: stop.clone(),
            sink: sinks[w % threads].clone(),
            gate: gate.clone(),
        };
        let fut: WorkerFuture = if config.schedule.is_some() {
            Box::pin(open_loop_worker(
                session,
                ctx,
                job_queues[w % threads].clone(),
            ))
        } else {
            Box::pin(closed_loop_worker(
                session,
                ctx,
                engine_slots[w % threads].clone(),
                config.shard,
                config.slots,
                config.duration_limit,
            ))
        };
        groups[w % threads].push(fut);
    }
    // Open loop: each engine thread paces its own share of the schedule (every
    // `threads`-th slot), so a release wakes only the thread that sends it.
    if let Some(schedule) = &config.schedule {
        for (engine, queue) in job_queues.into_iter().enumerate() {
            let pacer = EnginePacer {
                schedule: schedule.clone(),
                slots: config.slots,
                shard: config.shard,
                limit: config.duration_limit,
                gate: gate.clone(),
                first: engine as u64,
                step: threads as u64,
                queue,
                stop: stop.clone(),
                progress: progress.clone(),
            };
            groups[engine].push(Box::pin(async move {
                pacer.run().await;
                0
            }));
        }
    }
    // Connections shared between engine threads (the HTTP/2 pool) run as tasks on the
    // runtime of the thread that opened them; a runtime that ended early would take them
    // down under requests still in flight on other threads. So every engine thread keeps its
    // runtime (and its connection tasks) alive until all engine threads are done.
    let engines_left = Arc::new(AtomicU64::new(groups.len() as u64));
    let (all_done_tx, all_done_rx) = tokio::sync::watch::channel(false);
    let all_done_tx = Arc::new(all_done_tx);
    let engine_done = move |left: &AtomicU64, tx: &tokio::sync::watch::Sender<bool>| {
        if left.fetch_sub(1, Ordering::AcqRel) == 1 {
            let _ = tx.send(true);
        }
    };
    let engines: Vec<_> = groups
        .into_iter()
        .zip(sinks)
        .enumerate()
        .map(|(t, (group, sink))| {
            let left = engines_left.clone();
            let done_tx = all_done_tx.clone();
            let mut done_rx = all_done_rx.clone();
            std::thread::Builder::new()
                .name(format!("wafload-engine-{t}"))
                .spawn(move || -> (u64, Option<K>) {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build();
                    let sent = match runtime {
                        Ok(runtime) => runtime.block_on(async move {
                            let handles: Vec<_> = group.into_iter().map(tokio::spawn).collect();
                            let mut sent = 0;
                            for h in handles {
                                sent += h.await.unwrap_or(0);
                            }
                            engine_done(&left, &done_tx);
                            let _ = done_rx.wait_for(|done| *done).await;
                            sent
                        }),
                        Err(_) => {
                            drop(group);
                            engine_done(&left, &done_tx);
                            0
                        }
                    };
                    // Every worker (each holding a clone) has finished: the sink is ours.
                    let sink = Arc::try_unwrap(sink)
                        .ok()
                        .map(|m| m.into_inner().unwrap_or_else(|p| p.into_inner()));
                    (sent, sink)
                })
                .expect("spawn engine thread")
        })
        .collect();
    let mut sent = 0;
    let mut sinks = Vec::with_capacity(threads);
    for e in engines {
        let (n, sink) = tokio::task::spawn_blocking(move || e.join().unwrap_or((0, None)))
            .await
            .unwrap_or((0, None));
        sent += n;
        sinks.extend(sink);
    }
    watcher.abort();
    let dispatched = if config.schedule.is_some() {
        progress.dispatched.load(Ordering::Relaxed)
    } else {
        sent
    };
    let stats = DriverStats {
        start: gate.start.get().copied(),
        sent,
        not_sent: dispatched.saturating_sub(sent),
        stopped_dead_target: dead_target.load(Ordering::Relaxed),
    };
    (stats, sinks)
}

/// One engine thread's pacer: releases its slots (`first`, `first + step`, … of the
/// shard) at start + offset(slot), on the engine thread itself. It sleeps on a timerfd
/// (microsecond precision; tokio's timer has whole milliseconds), so a release costs one
/// wake-up of the thread that sends it. A pacer thread of its own cost two — its own and
/// the engine's — and on 2 cores shared with the target it used a fifth of a core at
/// 10 000 req/s and was itself often kept waiting for a core.
struct EnginePacer {
    schedule: RateSchedule,
    slots: Option<u64>,
    shard: Shard,
    limit: Option<Duration>,
    gate: Arc<StartGate>,
    first: u64,
    step: u64,
    queue: Arc<EngineJobs>,
    stop: Arc<AtomicBool>,
    progress: Arc<Progress>,
}

/// The longest single sleep of a pacer, so that it notices a stopped run soon.
const PACER_NAP: Duration = Duration::from_millis(20);

impl EnginePacer {
    async fn run(self) {
        // However the pacer ends, the workers learn that no job will come.
        let _close = CloseOnDrop(&self.queue);
        let Some(start) = self.gate.opened(&self.stop).await else {
            return;
        };
        let mut timer = crate::timer::PreciseTimer::new();
        let mut lead_tracker = super::lead::AdaptiveLead::new();
        let mut k = self.first;
        loop {
            let slot = self.shard.slot(k);
            if self.slots.is_some_and(|n| slot >= n) {
                break;
            }
            let Some(offset) = self.schedule.offset(slot) else {
                break;
            };
            if self.limit.is_some_and(|l| offset >= l) {
                break;
            }
            let due = start + offset;
            // Hand the job over early: waking a parked engine thread takes tens of µs on a
            // VM, so the worker gets the job ahead and waits the last stretch itself. At
            // most DISPATCH_LEAD early, and less at high rates, where the engines are awake
            // anyway and the wait would only burn CPU the target may need: the bound
            // follows the run's rate (the interval to the process's next slot), as the
            // spin it costs does.
            let interval = self
                .schedule
                .offset(self.shard.slot(k + 1))
                .map(|next| next.saturating_sub(offset))
                .unwrap_or(Duration::MAX);
            // Within that bound, the lead covers the wake-ups measured so far (`lead`).
            let lead = lead_tracker.lead(dispatch_lead(interval));
            let hand_over = due.checked_sub(lead).unwrap_or(due);
            loop {
                if self.stop.load(Ordering::Relaxed) {
                    return;
                }
                let now = Instant::now();
                if now >= hand_over {
                    break;
                }
                let wake_at = hand_over.min(now + PACER_NAP);
                timer.sleep_until(wake_at).await;
                if wake_at == hand_over {
                    lead_tracker.observe(Instant::now().saturating_duration_since(hand_over));
                }
            }
            self.queue.push(Job {
                slot,
                intended: due,
            });
            self.progress.dispatched.fetch_add(1, Ordering::Relaxed);
            k += self.step;
        }
    }
}

/// How long after the last worker has warmed its session the schedule starts at the
/// earliest: a moment for the engine threads to get the news, plus time for the server to
/// take the new connections — the kernel completes a connection before the server's
/// accept loop has taken it, so a request sent at once may wait behind hundreds of
/// accepts (the calibration target takes ~20 µs per connection; with 512 connections at
/// 20 000 req/s the first sends were then up to 140 ms late).
fn start_margin(connections: usize) -> Duration {
    Duration::from_millis(5) + Duration::from_micros(50) * connections.min(100_000) as u32
}

/// Holds every worker and pacer until all workers have warmed their sessions (opened
/// their connections), then fixes the schedule's time zero: the configured start, or
/// `start_margin` after the last worker is ready if that is later. Without it, the first
/// requests of an open-loop run waited behind the opening of hundreds of connections: at
/// 20 000 req/s with 512 connections, sends in the first 100 ms were up to 50 ms late.
struct StartGate {
    workers: usize,
    waiting: std::sync::atomic::AtomicUsize,
    earliest: Instant,
    start: std::sync::OnceLock<Instant>,
    opened: tokio::sync::Notify,
}

impl StartGate {
    fn new(workers: usize, earliest: Instant) -> Self {
        StartGate {
            workers,
            waiting: std::sync::atomic::AtomicUsize::new(workers),
            earliest,
            start: std::sync::OnceLock::new(),
            opened: tokio::sync::Notify::new(),
        }
    }

    /// A worker is ready; the last one opens the gate.
    fn arrive(&self) {
        if self.waiting.fetch_sub(1, Ordering::AcqRel) == 1 {
            let start = self
                .earliest
                .max(Instant::now() + start_margin(self.workers));
            let _ = self.start.set(start);
            self.opened.notify_waiters();
        }
    }

    /// The time zero once the gate is open, or `None` if the run stops first.
    async fn opened(&self, stop: &AtomicBool) -> Option<Instant> {
        loop {
            let mut opened = std::pin::pin!(self.opened.notified());
            opened.as_mut().enable();
            if let Some(start) = self.start.get() {
                return Some(*start);
            }
            if stop.load(Ordering::Acquire) {
                return None;
            }
            // Looks at `stop` again every nap: a stopped run does not open the gate.
            let _ = tokio::time::timeout(PACER_NAP, opened).await;
        }
    }
}

/// One engine thread's released jobs, shared by its pacer (pushing) and its workers
/// (taking, oldest first). Idle workers wait in FIFO order (tokio's `Notify` keeps
/// them in an intrusive list), so every connection of the pool takes its turn. One queue
/// for all workers of all threads (a flume channel) took a lock shared by the pacer and
/// both engine threads on every request, and re-registering a woken receiver cost time in
/// proportion to the number of idle workers: with 512 connections at 10 000 req/s, sends
/// stalled for 200–500 µs every few milliseconds.
#[derive(Default)]
struct EngineJobs {
    queue: std::sync::Mutex<std::collections::VecDeque<Job>>,
    /// Set when the pacer has ended: no more jobs will come.
    closed: AtomicBool,
    ready: tokio::sync::Notify,
}

impl EngineJobs {
    fn push(&self, job: Job) {
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_back(job);
        self.ready.notify_one();
    }

    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.ready.notify_waiters();
    }

    fn take(&self) -> Option<Job> {
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front()
    }

    /// The next job, or `None` once the pacer has ended and the queue is empty.
    async fn next(&self) -> Option<Job> {
        loop {
            let mut ready = std::pin::pin!(self.ready.notified());
            // Registered before looking, so a push right after the look still wakes us.
            ready.as_mut().enable();
            if let Some(job) = self.take() {
                return Some(job);
            }
            if self.closed.load(Ordering::Acquire) {
                return self.take();
            }
            ready.await;
        }
    }
}

/// Closes an engine's queue when its pacer ends, however it ends.
struct CloseOnDrop<'a>(&'a EngineJobs);

impl Drop for CloseOnDrop<'_> {
    fn drop(&mut self) {
        self.0.close();
    }
}

type WorkerFuture = std::pin::Pin<Box<dyn std::future::Future<Output = u64> + Send>>;

struct WorkerContext<K> {
    plan: Arc<Plan>,
    classifier: Arc<Classifier>,
    /// The run's token: cancelled here when the target is dead.
    cancel: CancellationToken,
    /// Cancelled after the run's token, once `stop` is set: what this engine thread's
    /// workers wait on.
    engine_cancel: CancellationToken,
    /// This engine thread's sent counter.
    sent: Arc<Padded<AtomicU64>>,
    progress: Arc<Progress>,
    run_tag: String,
    dead_target_after: u64,
    dead_target: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    /// The sink of this worker's engine thread, shared with the thread's other workers.
    /// Never locked across an await; uncontended (one thread).
    sink: Arc<std::sync::Mutex<K>>,
    gate: Arc<StartGate>,
}

impl<K: CompletionSink> WorkerContext<K> {
    /// Cheap check (one atomic load) whether the run is stopping; set once by a watcher
    /// task when the cancellation token fires.
    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Warms the session, then waits until every worker has: returns the schedule's time
    /// zero (already told to this engine's sink), or `None` if the run stopped first.
    async fn warm_and_wait<S: Session>(&self, session: &mut S) -> Option<Instant> {
        session.warm().await;
        self.gate.arrive();
        let start = self.gate.opened(&self.stop).await?;
        self.sink
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .begin(start);
        Some(start)
    }

    /// Hands a completion to this engine thread's recorder.
    fn deliver(&self, c: &Completion) {
        self.sink
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .accept(c);
    }
}

/// What a worker owns while it runs; kept outside the loop future so that a request still
/// in flight when the run is aborted can be recorded (every slot sent gets one record).
struct WorkerState {
    sent: u64,
    /// The slot being sent right now, with its actual send time.
    in_flight: Option<(Job, Instant)>,
}

impl WorkerState {
    fn new() -> Self {
        WorkerState {
            sent: 0,
            in_flight: None,
        }
    }
}

/// Waits for `run`, or for the run's cancellation plus `ABORT_GRACE`; true when it had to
/// give up on `run`. One cancellation waiter per worker (not per request) keeps the hot path
/// free of locks: the waiter is polled once to register, and after that only once `stop`
/// is set — which happens before the engine token is cancelled, so the wake-up that
/// cancellation brings always finds it set. (Polled on every wake, the waiter took the
/// token's lock each time.)
///
/// `run` comes pinned by reference: taken by value, it would be stored twice in the
/// worker's future, doubling the memory a resumed worker touches.
async fn abortable<K, F: std::future::Future<Output = ()>>(
    ctx: &WorkerContext<K>,
    mut run: std::pin::Pin<&mut F>,
) -> bool {
    use std::future::Future as _;
    let mut abort = std::pin::pin!(async {
        ctx.engine_cancel.cancelled().await;
        tokio::time::sleep(ABORT_GRACE).await
    });
    let mut registered = false;
    std::future::poll_fn(|cx| {
        if run.as_mut().poll(cx).is_ready() {
            return std::task::Poll::Ready(false);
        }
        if !registered || ctx.stop.load(Ordering::Acquire) {
            registered = true;
            if abort.as_mut().poll(cx).is_ready() {
                return std::task::Poll::Ready(true);
            }
        }
        std::task::Poll::Pending
    })
    .await
}

/// After the loop: a request still in flight when the run was aborted is recorded as
/// aborted (every slot sent gets one record).
fn finish<K: CompletionSink>(ctx: &WorkerContext<K>, state: &mut WorkerState, aborted: bool) {
    if aborted {
        if let Some((job, sent)) = state.in_flight.take() {
            let outcome = Outcome::failed(
                ErrorKind::Aborted,
                "run interrupted while the request was in flight",
            );
            let source = ctx.plan.request_for_slot(job.slot).source;
            ctx.deliver(&complete(ctx, job, source, sent, &outcome));
        }
    }
}

async fn open_loop_worker<S: Session, K: CompletionSink>(
    mut session: S,
    ctx: WorkerContext<K>,
    jobs: Arc<EngineJobs>,
) -> u64 {
    let mut state = WorkerState::new();
    let aborted = {
        let run = std::pin::pin!(open_loop(&mut session, &ctx, &jobs, &mut state));
        abortable(&ctx, run).await
    };
    finish(&ctx, &mut state, aborted);
    state.sent
}

async fn open_loop<S: Session, K: CompletionSink>(
    session: &mut S,
    ctx: &WorkerContext<K>,
    jobs: &EngineJobs,
    state: &mut WorkerState,
) {
    if ctx.warm_and_wait(session).await.is_none() {
        return;
    }
    loop {
        if ctx.stopping() {
            break;
        }
        let Some(job) = jobs.next().await else {
            break;
        };
        if ctx.stopping() {
            break;
        }
        let now = wait_until(job.intended).await;
        state.sent += 1;
        let c = send_one(session, ctx, job, now, &mut state.in_flight).await;
        ctx.deliver(&c);
    }
}

/// Closed-loop slot numbers for one engine thread's workers, taken from the run's counter
/// `SLOT_CHUNK` at a time: one shared counter bumped per request bounced its cache line
/// between the engine threads. Numbers are handed out in ascending order, so with a
/// request limit every slot below it is still sent, and a chunk's unsent numbers at the
/// end of a timed run are only gaps in the numbering.
struct EngineSlots {
    run: Arc<AtomicU64>,
    /// Next number and end of this engine's chunk. Locked by one thread only.
    chunk: std::sync::Mutex<(u64, u64)>,
}

const SLOT_CHUNK: u64 = 16;

impl EngineSlots {
    fn new(run: Arc<AtomicU64>) -> Self {
        EngineSlots {
            run,
            chunk: std::sync::Mutex::new((0, 0)),
        }
    }

    fn next(&self) -> u64 {
        let mut chunk = self.chunk.lock().unwrap_or_else(|p| p.into_inner());
        if chunk.0 == chunk.1 {
            let base = self.run.fetch_add(SLOT_CHUNK, Ordering::Relaxed);
            *chunk = (base, base + SLOT_CHUNK);
        }
        chunk.0 += 1;
        chunk.0 - 1
    }
}

async fn closed_loop_worker<S: Session, K: CompletionSink>(
    mut session: S,
    ctx: WorkerContext<K>,
    slots_source: Arc<EngineSlots>,
    shard: Shard,
    slots: Option<u64>,
    limit: Option<Duration>,
) -> u64 {
    let mut state = WorkerState::new();
    let aborted = {
        let run = std::pin::pin!(closed_loop(
            &mut session,
            &ctx,
            &slots_source,
            shard,
            slots,
            limit,
            &mut state,
        ));
        abortable(&ctx, run).await
    };
    finish(&ctx, &mut state, aborted);
    state.sent
}

async fn closed_loop<S: Session, K: CompletionSink>(
    session: &mut S,
    ctx: &WorkerContext<K>,
    slots_source: &EngineSlots,
    shard: Shard,
    slots: Option<u64>,
    limit: Option<Duration>,
    state: &mut WorkerState,
) {
    let Some(start) = ctx.warm_and_wait(session).await else {
        return;
    };
    let deadline = limit.map(|d| start + d);
    loop {
        let now = Instant::now();
        if ctx.stopping() || deadline.is_some_and(|d| now >= d) {
            break;
        }
        let slot = shard.slot(slots_source.next());
        if slots.is_some_and(|n| slot >= n) {
            break;
        }
        // Closed loop: the request is intended for the moment it is sent.
        let job = Job {
            slot,
            intended: now,
        };
        state.sent += 1;
        let c = send_one(session, ctx, job, now, &mut state.in_flight).await;
        ctx.deliver(&c);
    }
}

/// Sends one slot at `sent` and returns its completion (classified).
async fn send_one<S: Session, K: CompletionSink>(
    session: &mut S,
    ctx: &WorkerContext<K>,
    job: Job,
    sent: Instant,
    in_flight: &mut Option<(Job, Instant)>,
) -> Completion {
    let request = ctx.plan.request_for_slot(job.slot);
    let id = RequestId::new(&ctx.run_tag, job.slot);
    *in_flight = Some((job, sent));
    ctx.sent.fetch_add(1, Ordering::Relaxed);
    let outcome = session.send(request, &id, sent).await;
    *in_flight = None;
    complete(ctx, job, request.source, sent, &outcome)
}

/// Classifies an outcome into the completion the recorder gets.
fn complete<K>(
    ctx: &WorkerContext<K>,
    job: Job,
    source: u32,
    sent: Instant,
    outcome: &Outcome,
) -> Completion {
    let done = Instant::now();
    let (class, flags) = ctx.classifier.classify(outcome);
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
    } else if ctx
        .progress
        .consecutive_connect_failures
        .load(Ordering::Relaxed)
        != 0
    {
        // Written only when it changes: a store per request kept the line bouncing.
        ctx.progress
            .consecutive_connect_failures
            .store(0, Ordering::Relaxed);
    }
    Completion {
        slot: job.slot,
        source,
        intended: job.intended,
        sent,
        done,
        class,
        flags,
        status: outcome.status,
        error,
        upstream_us: outcome.upstream_service_time_us,
        body_len: outcome.body_len,
        ext_proc: outcome.ext_proc.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::{dispatch_lead, RequestId, Shard};
    use std::time::Duration;

    #[test]
    fn the_lead_shrinks_with_the_interval_and_stops_below_its_floor() {
        let us = Duration::from_micros;
        assert_eq!(dispatch_lead(us(1000)), us(200)); // 1k req/s
        assert_eq!(dispatch_lead(us(500)), us(200)); // 2k req/s
        assert_eq!(dispatch_lead(us(200)), us(200) / 3); // 5k req/s: 66.7 µs
        assert_eq!(dispatch_lead(us(100)), us(100) / 3); // 10k req/s: 33.3 µs
        assert_eq!(dispatch_lead(us(50)), Duration::ZERO); // 20k req/s: engines are awake
    }

    #[test]
    fn request_ids_are_tag_dash_slot() {
        let id = |tag: &str, n| RequestId::new(tag, n).header_value();
        assert_eq!(id("wl-abc", 0), "wl-abc-0");
        assert_eq!(id("wl-abc", u64::MAX), "wl-abc-18446744073709551615");
        let long = "t".repeat(60);
        assert_eq!(id(&long, 42), format!("{long}-42").as_str());
    }

    /// Engine threads take closed-loop slots in chunks: each engine's numbers ascend, and
    /// together they hand out every number exactly once — so with a request limit N, every
    /// slot below N is sent by whichever engine holds it.
    #[test]
    fn engine_slot_chunks_hand_out_every_number_once() {
        use super::{EngineSlots, SLOT_CHUNK};
        use std::sync::{atomic::AtomicU64, Arc};
        let run = Arc::new(AtomicU64::new(0));
        let engines: Vec<EngineSlots> = (0..3).map(|_| EngineSlots::new(run.clone())).collect();
        let mut taken: Vec<Vec<u64>> = vec![Vec::new(); 3];
        for i in 0..1000usize {
            let e = (i * 7 + i / 5) % 3; // uneven interleaving
            taken[e].push(engines[e].next());
        }
        for t in &taken {
            assert!(t.windows(2).all(|w| w[0] < w[1]), "ascending per engine");
        }
        let mut all: Vec<u64> = taken.concat();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 1000, "no number twice");
        // The numbers not handed out yet are only the rest of the engines' open chunks.
        let max = *all.last().unwrap();
        assert!(max < 1000 + 3 * SLOT_CHUNK);
    }

    /// An engine's job queue: jobs pushed (here from another thread) reach the
    /// workers exactly once and oldest first, and closing it ends every waiting worker —
    /// after the jobs already queued are taken.
    #[test]
    fn engine_jobs_reach_each_waiting_worker_once_and_close_ends_them() {
        use super::{EngineJobs, Job};
        use std::sync::{Arc, Mutex};
        use std::time::Instant;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let jobs: Arc<EngineJobs> = Arc::default();
        let taken = Arc::new(Mutex::new(Vec::new()));
        let start = Instant::now();
        let pacer = {
            let jobs = jobs.clone();
            std::thread::spawn(move || {
                for slot in 0..5000u64 {
                    jobs.push(Job {
                        slot,
                        intended: start,
                    });
                    if slot % 500 == 0 {
                        std::thread::sleep(Duration::from_millis(2));
                    }
                }
                jobs.close();
            })
        };
        let per_worker = runtime.block_on(async {
            let workers: Vec<_> = (0..64)
                .map(|_| {
                    let (jobs, taken) = (jobs.clone(), taken.clone());
                    tokio::spawn(async move {
                        let mut mine = 0u64;
                        while let Some(job) = jobs.next().await {
                            taken.lock().unwrap().push(job.slot);
                            mine += 1;
                            tokio::task::yield_now().await;
                        }
                        mine
                    })
                })
                .collect();
            let mut counts = Vec::new();
            for w in workers {
                counts.push(tokio::time::timeout(Duration::from_secs(10), w).await);
            }
            counts
        });
        pacer.join().unwrap();
        let counts: Vec<u64> = per_worker
            .into_iter()
            .map(|r| r.expect("a worker never ended after close").unwrap())
            .collect();
        let taken = taken.lock().unwrap().clone();
        assert_eq!(
            taken,
            (0..5000).collect::<Vec<_>>(),
            "each once, oldest first"
        );
        assert_eq!(counts.iter().sum::<u64>(), 5000);
        // Idle workers take turns (FIFO): every worker got a share.
        assert!(counts.iter().all(|&n| n > 0), "{counts:?}");
        // A worker asking after close gets nothing and does not wait.
        assert!(runtime.block_on(jobs.next()).is_none());
    }

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
