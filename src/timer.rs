//! Sub-millisecond sleeps for the calibration targets. tokio's timer wheel has 1 ms
//! granularity, so `tokio::time::sleep(2ms)` really sleeps 2–3 ms; a known-answer test of
//! "+2 ms ± 0.3 ms" needs better. One dedicated thread keeps a heap of deadlines and waits
//! on a channel with a timeout (futex-precise, typically within ~0.1 ms), then wakes the
//! sleeping task through a oneshot channel.

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

/// Asks the kernel for 1 µs timer slack on the calling thread (Linux). The default 50 µs
/// slack makes every sleep of a pacing thread overshoot by ~50–60 µs.
pub fn precise_thread() {
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

/// Sleeps until `deadline` with sub-millisecond precision.
pub async fn sleep_until(deadline: Instant) {
    if deadline <= Instant::now() {
        return;
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sleeps_never_wake_early() {
        let mut overshoot = Vec::new();
        for _ in 0..50 {
            let t = Instant::now();
            sleep(Duration::from_millis(2)).await;
            overshoot.push(t.elapsed().as_micros() as i64 - 2000);
        }
        overshoot.sort();
        let median = overshoot[overshoot.len() / 2];
        assert!(overshoot[0] >= 0, "woke early: {overshoot:?}");
        // Precision itself is a speed property: the overhead known-answer test (±0.3 ms)
        // depends on it; here we only report it.
        eprintln!("median overshoot of a 2 ms sleep: {median} µs");
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
}
