//! The live progress line: sent rate, completions, blocked share and p99 so far.

use crate::schedule::Progress;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct ProgressDisplay {
    bar: ProgressBar,
    ticker: tokio::task::JoinHandle<()>,
}

impl ProgressDisplay {
    /// Starts redrawing every 250 ms on stderr (hidden when stderr is not a terminal).
    pub fn start(progress: Arc<Progress>, slots: Option<u64>, start: Instant) -> Self {
        let bar = match slots {
            Some(n) => ProgressBar::with_draw_target(Some(n), ProgressDrawTarget::stderr()),
            None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
        };
        let style = if slots.is_some() {
            ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg}")
        } else {
            ProgressStyle::with_template("{elapsed_precise} {spinner} {pos} {msg}")
        };
        bar.set_style(
            style
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        let b = bar.clone();
        let ticker = tokio::spawn(async move {
            let mut last_sent = 0u64;
            let mut last_at = Instant::now();
            let mut interval = tokio::time::interval(Duration::from_millis(250));
            loop {
                interval.tick().await;
                let sent = progress.sent();
                let completed = progress.completed.load(Ordering::Relaxed);
                let blocked = progress.blocked.load(Ordering::Relaxed);
                let failed = progress.failed.load(Ordering::Relaxed);
                let p99 = progress.p99_us.load(Ordering::Relaxed);
                let now = Instant::now();
                let dt = now.duration_since(last_at).as_secs_f64().max(1e-3);
                let rate = (sent - last_sent) as f64 / dt;
                last_sent = sent;
                last_at = now;
                b.set_position(completed);
                let blocked_pct = if completed > 0 {
                    blocked as f64 * 100.0 / completed as f64
                } else {
                    0.0
                };
                let elapsed = now.saturating_duration_since(start).as_secs_f64();
                b.set_message(format!(
                    "{rate:.0} sent/s · blocked {blocked_pct:.1}% · failed {failed} · p99 {:.1} ms · {elapsed:.0}s",
                    p99 as f64 / 1000.0
                ));
                if progress.done.load(Ordering::Relaxed) {
                    break;
                }
            }
        });
        ProgressDisplay { bar, ticker }
    }

    pub async fn finish(self) {
        self.ticker.abort();
        let _ = self.ticker.await;
        self.bar.finish_and_clear();
    }
}
