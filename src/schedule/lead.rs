//! How early an engine's pacer releases an open-loop job, from how late its own timer
//! wake-ups have been.
//!
//! A pacer sleeps until `due − lead`, hands the job to a worker, and the worker waits out
//! the rest of the lead awake (spinning on its engine thread), so a request leaves on time
//! unless the wake-up was later than the lead. A fixed lead of 200 µs covered almost every
//! wake-up on a noisy VM, but on a quiet one the wake-ups are 30–45 µs late and the worker
//! spun ~160 µs per request: a fifth of a core at 1 000 req/s, two fifths at 2 000, for a
//! send jitter of 1–2 µs where the goal is 100. So the lead follows the wake-ups measured
//! in the run: long enough that the late tail stays well inside the jitter budget, never
//! longer than the fixed bound (`dispatch_lead`), which also bounds the spinning.

use std::time::Duration;

/// Wake-ups remembered: the last 256 (a quarter second at 1 000 req/s per engine).
const WINDOW: usize = 256;
/// The lead is worked out again after this many new wake-ups.
const REVISE_EVERY: usize = 64;
/// How late a send may be at the 99th percentile of wake-ups: half the 100 µs goal, the
/// other half left for a tail that grows between revisions.
const JITTER_BUDGET: Duration = Duration::from_micros(50);
/// Added to the 90th percentile: the worker's own hand-over takes a few µs.
const HAND_OVER: Duration = Duration::from_micros(5);

/// Tracks one pacer's timer wake-up lateness and the lead it calls for.
#[derive(Debug)]
pub struct AdaptiveLead {
    late_us: Box<[u32; WINDOW]>,
    seen: usize,
    since_revision: usize,
    /// `None` until the window is full: the fixed bound is used until then.
    lead: Option<Duration>,
}

impl Default for AdaptiveLead {
    fn default() -> Self {
        Self::new()
    }
}

impl AdaptiveLead {
    pub fn new() -> Self {
        AdaptiveLead {
            late_us: Box::new([0; WINDOW]),
            seen: 0,
            since_revision: 0,
            lead: None,
        }
    }

    /// A wake-up of the pacer's timer came `lateness` after the deadline it was set for.
    pub fn observe(&mut self, lateness: Duration) {
        let us = u32::try_from(lateness.as_micros()).unwrap_or(u32::MAX);
        self.late_us[self.seen % WINDOW] = us;
        self.seen += 1;
        self.since_revision += 1;
        if self.seen >= WINDOW && (self.lead.is_none() || self.since_revision >= REVISE_EVERY) {
            self.since_revision = 0;
            self.lead = Some(self.wanted());
        }
    }

    /// The lead to use, at most `bound` (the fixed lead for the run's rate).
    pub fn lead(&self, bound: Duration) -> Duration {
        self.lead.map_or(bound, |lead| lead.min(bound))
    }

    /// Covers nine wake-ups in ten, and enough of the tail that the 99th percentile is
    /// late by at most `JITTER_BUDGET`.
    fn wanted(&self) -> Duration {
        let mut sorted = *self.late_us;
        sorted.sort_unstable();
        let at = |q: usize| Duration::from_micros(u64::from(sorted[WINDOW * q / 100]));
        (at(90) + HAND_OVER).max(at(99).saturating_sub(JITTER_BUDGET))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    fn fed(lateness: impl IntoIterator<Item = u64>) -> AdaptiveLead {
        let mut lead = AdaptiveLead::new();
        for l in lateness {
            lead.observe(us(l));
        }
        lead
    }

    #[test]
    fn the_fixed_bound_holds_until_a_window_of_wake_ups_is_seen() {
        let lead = fed(std::iter::repeat_n(30, WINDOW - 1));
        assert_eq!(lead.lead(us(200)), us(200));
        assert_eq!(lead.lead(us(33)), us(33));
    }

    #[test]
    fn a_quiet_machine_gets_a_lead_just_over_its_usual_wake_up() {
        // 30–39 µs late, as this VM's timerfd wake-ups are when nothing else runs.
        let lead = fed((0..WINDOW as u64).map(|i| 30 + i % 10));
        let l = lead.lead(us(200));
        assert!(l >= us(39) && l <= us(45), "lead {l:?}");
        // Never more than the bound for the rate (at 10 000 req/s: a third of 100 µs).
        assert_eq!(lead.lead(us(33)), us(33));
        assert_eq!(lead.lead(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn a_late_tail_lengthens_the_lead_up_to_the_bound() {
        // Two wake-ups in a hundred 150 µs late: p99 − 50 µs = 100 µs.
        let tail = fed((0..WINDOW as u64).map(|i| if i % 50 == 0 { 150 } else { 35 }));
        assert_eq!(tail.lead(us(200)), us(100));
        // A noisy machine (one in ten 2 ms late): the bound, as before.
        let noisy = fed((0..WINDOW as u64).map(|i| if i % 10 == 0 { 2_000 } else { 35 }));
        assert_eq!(noisy.lead(us(200)), us(200));
    }

    #[test]
    fn the_lead_follows_the_machine_within_a_window() {
        let mut lead = fed((0..WINDOW as u64).map(|i| if i % 10 == 0 { 2_000 } else { 35 }));
        assert_eq!(lead.lead(us(200)), us(200));
        // The machine quietens: once the noisy wake-ups have left the window, the lead
        // shrinks (revised every REVISE_EVERY wake-ups).
        for _ in 0..WINDOW {
            lead.observe(us(35));
        }
        assert_eq!(lead.lead(us(200)), us(40));
        // And grows again when it gets noisy.
        for i in 0..WINDOW as u64 {
            lead.observe(us(if i % 10 == 0 { 2_000 } else { 35 }));
        }
        assert_eq!(lead.lead(us(200)), us(200));
    }
}
