//! Sub-millisecond sleeps for the calibration targets. tokio's timer wheel has 1 ms
//! granularity, so `tokio::time::sleep(2ms)` really sleeps 2–3 ms; a known-answer test of
//! "+2 ms ± 0.3 ms" needs better. On Linux each sleep arms a timerfd registered with the
//! runtime's reactor, so the kernel timer wakes the sleeping task's own thread. Where that
//! is not possible (another OS, or no file descriptor left) one dedicated thread keeps a
//! heap of deadlines and waits on a channel with a timeout (futex-precise, typically within
//! ~0.1 ms), then wakes the sleeping task through a oneshot channel — two thread wake-ups
//! per sleep instead of one: the calibration target with a 1 ms delay at 10 000 req/s used
//! 77–80 µs of CPU per request with the timer thread, 59–62 µs with timerfds.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

struct Entry {
    deadline: Instant,
    seq: u64,
    wake: oneshot::Sender<()>,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        (self.deadline, self.seq) == (other.deadline, other.seq)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.deadline, self.seq).cmp(&(other.deadline, other.seq))
    }
}

fn timer() -> &'static Mutex<mpsc::Sender<Entry>> {
    static TIMER: OnceLock<Mutex<mpsc::Sender<Entry>>> = OnceLock::new();
    TIMER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Entry>();
        std::thread::Builder::new()
            .name("wafload-timer".into())
            .spawn(move || run(rx))
            .expect("spawn timer thread");
        Mutex::new(tx)
    })
}

/// Asks the kernel for 1 µs timer slack on the calling thread (Linux): the timer thread's
/// waits would otherwise overshoot by the default 50 µs slack. (timerfd expiries are not
/// subject to timer slack.)
fn precise_thread() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_TIMERSLACK only changes this thread's timer slack; no memory is touched.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1000 as libc::c_ulong, 0, 0, 0);
    }
}

fn run(rx: mpsc::Receiver<Entry>) {
    precise_thread();
    let mut heap: BinaryHeap<Reverse<Entry>> = BinaryHeap::new();
    loop {
        let now = Instant::now();
        while heap.peek().is_some_and(|Reverse(e)| e.deadline <= now) {
            let Reverse(e) = heap.pop().expect("peeked");
            let _ = e.wake.send(());
        }
        let next = match heap.peek() {
            Some(Reverse(e)) => rx.recv_timeout(e.deadline.saturating_duration_since(now)),
            None => rx.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected),
        };
        match next {
            Ok(e) => heap.push(Reverse(e)),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// Sleeps until `deadline` with sub-millisecond precision (a timerfd of its own, else the
/// timer thread).
pub async fn sleep_until(deadline: Instant) {
    if deadline <= Instant::now() {
        return;
    }
    if !PreciseTimer::new().try_sleep_until(deadline).await {
        thread_sleep_until(deadline).await
    }
}

/// The fallback: the dedicated timer thread wakes the task at `deadline`.
async fn thread_sleep_until(deadline: Instant) {
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let (wake, woken) = oneshot::channel();
    let entry = Entry {
        deadline,
        seq: SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        wake,
    };
    let sent = timer()
        .lock()
        .map(|tx| tx.send(entry).is_ok())
        .unwrap_or(false);
    if !sent {
        // Timer thread gone (never expected): fall back to tokio's coarser timer.
        tokio::time::sleep_until(tokio::time::Instant::from_std(deadline)).await;
        return;
    }
    let _ = woken.await;
}

/// Sleeps for `d` with sub-millisecond precision.
pub async fn sleep(d: Duration) {
    if d.is_zero() {
        return;
    }
    sleep_until(Instant::now() + d).await
}

/// A reusable sleep with microsecond precision for a task that sleeps often (an engine
/// thread's pacer), without a thread of its own: on Linux a timerfd registered with the
/// runtime's reactor, so the sleeping thread is woken straight by the kernel timer — one
/// wake-up, not a timer thread's plus the sleeper's. Elsewhere, or when the timerfd
/// cannot be made, it falls back to tokio's timer (whole milliseconds).
pub struct PreciseTimer {
    #[cfg(target_os = "linux")]
    fd: Option<tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>>,
}

impl PreciseTimer {
    /// Called outside a tokio runtime with IO enabled it falls back to tokio's timer.
    pub fn new() -> Self {
        PreciseTimer {
            #[cfg(target_os = "linux")]
            fd: linux_timerfd().ok(),
        }
    }

    /// Sleeps until `deadline` (returns at once if it has passed).
    pub async fn sleep_until(&mut self, deadline: Instant) {
        if !self.try_sleep_until(deadline).await {
            tokio::time::sleep_until(tokio::time::Instant::from_std(deadline)).await;
        }
    }

    /// Sleeps until `deadline` on the timerfd; false (having slept at most partly) when
    /// there is none or it failed, and the caller must fall back.
    async fn try_sleep_until(&mut self, deadline: Instant) -> bool {
        let now = Instant::now();
        if deadline <= now {
            return true;
        }
        #[cfg(target_os = "linux")]
        if let Some(fd) = &self.fd {
            return linux_timerfd_wait(fd, deadline - now).await.is_ok();
        }
        false
    }
}

impl Default for PreciseTimer {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(target_os = "linux")]
fn linux_timerfd() -> std::io::Result<tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>> {
    use std::os::fd::FromRawFd;
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(std::io::Error::other("no tokio runtime"));
    }
    // SAFETY: timerfd_create takes no pointers; a non-negative result is a new fd we own.
    let fd = unsafe {
        libc::timerfd_create(
            libc::CLOCK_MONOTONIC,
            libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` was just created and is owned by nothing else.
    let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
    // SAFETY: an OwnedFd stays open and names the same timer until the AsyncFd drops it.
    unsafe { tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }
        .map_err(|e| e.into_parts().1)
}

/// Arms the timerfd `after` from now (re-arming resets its expiry count) and waits until
/// it has expired.
#[cfg(target_os = "linux")]
async fn linux_timerfd_wait(
    fd: &tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>,
    after: Duration,
) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let zero = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    let spec = libc::itimerspec {
        it_interval: zero,
        it_value: libc::timespec {
            tv_sec: after.as_secs().min(i32::MAX as u64) as libc::time_t,
            tv_nsec: after.subsec_nanos().max(1) as libc::c_long,
        },
    };
    // SAFETY: `spec` is a valid itimerspec; a null old-value pointer is allowed.
    if unsafe { libc::timerfd_settime(fd.as_raw_fd(), 0, &spec, std::ptr::null_mut()) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    loop {
        let mut ready = fd.readable().await?;
        let read = ready.try_io(|fd| {
            let mut expirations = [0u8; 8];
            // SAFETY: reads at most 8 bytes into a buffer of 8.
            let n = unsafe { libc::read(fd.as_raw_fd(), expirations.as_mut_ptr().cast(), 8) };
            if n < 0 {
                Err(std::io::Error::last_os_error())
            } else {
                Ok(())
            }
        });
        match read {
            Ok(result) => return result,
            // A readiness left from an earlier arming: not expired yet, wait again.
            Err(_would_block) => continue,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sleeps_never_wake_early() {
        for (way, via_thread) in [("timerfd", false), ("timer thread", true)] {
            let mut overshoot = Vec::new();
            for _ in 0..50 {
                let t = Instant::now();
                if via_thread {
                    thread_sleep_until(t + Duration::from_millis(2)).await;
                } else {
                    sleep(Duration::from_millis(2)).await;
                }
                overshoot.push(t.elapsed().as_micros() as i64 - 2000);
            }
            overshoot.sort();
            let median = overshoot[overshoot.len() / 2];
            assert!(overshoot[0] >= 0, "{way}: woke early: {overshoot:?}");
            // Precision itself is a speed property: the overhead known-answer test (±0.3 ms)
            // depends on it; here we only report it.
            eprintln!("{way}: median overshoot of a 2 ms sleep: {median} µs");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_concurrent_sleeps_wake_in_deadline_order() {
        let start = Instant::now();
        let handles: Vec<_> = (0..200u64)
            .map(|i| {
                tokio::spawn(async move {
                    let d = Duration::from_micros(500 + (i * 37) % 5000);
                    sleep_until(start + d).await;
                    Instant::now() >= start + d
                })
            })
            .collect();
        for h in handles {
            assert!(h.await.unwrap());
        }
    }

    /// The engine pacer's timer: never early, and precise — well under tokio's whole
    /// milliseconds (a median overshoot of 1 ms would fail).
    #[tokio::test(flavor = "current_thread")]
    async fn the_precise_timer_never_wakes_early_and_is_sub_millisecond() {
        let mut timer = PreciseTimer::new();
        let mut overshoot = Vec::new();
        for i in 0..60u64 {
            let d = Duration::from_micros(150 + (i * 53) % 700);
            let t = Instant::now();
            timer.sleep_until(t + d).await;
            overshoot.push(t.elapsed().as_micros() as i64 - d.as_micros() as i64);
        }
        overshoot.sort();
        assert!(overshoot[0] >= 0, "woke early: {overshoot:?}");
        let median = overshoot[overshoot.len() / 2];
        assert!(median < 700, "median overshoot {median} µs: {overshoot:?}");
        // A deadline already past returns at once; a timer re-armed after an abandoned
        // sleep still waits for the new deadline.
        timer
            .sleep_until(Instant::now() - Duration::from_millis(1))
            .await;
        let abandoned = tokio::time::timeout(
            Duration::from_micros(100),
            timer.sleep_until(Instant::now() + Duration::from_millis(50)),
        )
        .await;
        assert!(abandoned.is_err());
        let t = Instant::now();
        timer.sleep_until(t + Duration::from_millis(3)).await;
        assert!(t.elapsed() >= Duration::from_millis(3));
    }
}
