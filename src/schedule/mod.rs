//! Scheduling: when each request is due. Turns the rate stages into intended send times
//! (open loop) and drives workers; it owns the clock and measures lateness.
//! It never looks at responses: the pacer does not wait for answers.

mod driver;
mod lead;

pub use driver::{run_workers, Completion, CompletionSink, DriverConfig, Job, Progress, Shard};

use crate::profile::Profile;
use std::sync::Arc;
use std::time::Duration;

/// The rate used when a profile gives neither `rate` nor `stages`.
pub const DEFAULT_RATE: f64 = 100.0;

#[derive(Clone, Debug, PartialEq)]
struct Segment {
    start_secs: f64,
    secs: f64,
    r0: f64,
    r1: f64,
    /// Arrivals before this segment (fractional).
    before: f64,
}

/// An open-loop rate schedule: piecewise-linear rate over time, possibly open-ended.
#[derive(Clone, Debug, PartialEq)]
pub struct RateSchedule {
    segments: Vec<Segment>,
    /// Rate that continues after the last segment; `None` when the schedule ends.
    tail_rate: Option<f64>,
    /// Replay of recorded traffic: the offset of every slot in µs, non-decreasing. When
    /// set, it is the whole schedule.
    replay: Option<Arc<[u64]>>,
}

impl RateSchedule {
    /// Constant `rate` forever (bounded by a request count elsewhere).
    pub fn constant(rate: f64) -> Self {
        RateSchedule {
            segments: Vec::new(),
            tail_rate: Some(rate),
            replay: None,
        }
    }

    /// Stages of (duration, start rate, end rate); equal rates are a constant stage.
    pub fn stages(stages: &[(Duration, f64, f64)]) -> Self {
        let mut segments = Vec::new();
        let mut t = 0.0;
        let mut before = 0.0;
        for &(d, r0, r1) in stages {
            let secs = d.as_secs_f64();
            segments.push(Segment {
                start_secs: t,
                secs,
                r0,
                r1,
                before,
            });
            t += secs;
            before += (r0 + r1) / 2.0 * secs;
        }
        RateSchedule {
            segments,
            tail_rate: None,
            replay: None,
        }
    }

    /// Slots at given offsets (µs from the start), e.g. recorded request times scaled by
    /// a replay speed. Offsets are made non-decreasing so the pacer never goes back.
    pub fn replay(offsets_us: &[u64]) -> Self {
        let mut last = 0;
        let offsets: Vec<u64> = offsets_us
            .iter()
            .map(|&o| {
                last = last.max(o);
                last
            })
            .collect();
        RateSchedule {
            segments: Vec::new(),
            tail_rate: None,
            replay: Some(offsets.into()),
        }
    }

    /// The schedule a profile asks for.
    pub fn from_profile(p: &Profile) -> Self {
        if !p.stages.is_empty() {
            let stages: Vec<_> = p
                .stages
                .iter()
                .map(|s| (s.duration, s.rate, s.to.unwrap_or(s.rate)))
                .collect();
            return RateSchedule::stages(&stages);
        }
        let rate = p.rate.unwrap_or(DEFAULT_RATE);
        match p.duration {
            Some(d) => RateSchedule::stages(&[(d, rate, rate)]),
            None => RateSchedule::constant(rate),
        }
    }

    fn finite_count(&self) -> f64 {
        self.segments
            .last()
            .map(|s| s.before + (s.r0 + s.r1) / 2.0 * s.secs)
            .unwrap_or(0.0)
    }

    /// Number of arrivals, or `None` for an open-ended schedule.
    pub fn arrivals(&self) -> Option<u64> {
        if let Some(r) = &self.replay {
            return Some(r.len() as u64);
        }
        if self.tail_rate.is_some() {
            return None;
        }
        Some((self.finite_count() - 1e-9).ceil().max(0.0) as u64)
    }

    /// Total length, or `None` when open-ended.
    pub fn duration(&self) -> Option<Duration> {
        if let Some(r) = &self.replay {
            return Some(Duration::from_micros(r.last().copied().unwrap_or(0)));
        }
        if self.tail_rate.is_some() {
            return None;
        }
        let secs = self
            .segments
            .last()
            .map(|s| s.start_secs + s.secs)
            .unwrap_or(0.0);
        Some(Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX))
    }

    /// Intended send time of arrival `i` (0-based) relative to the start, or `None` past
    /// the end. Within a linear ramp the count is N(t) = r0·t + (r1−r0)·t²/(2T); we invert it.
    pub fn offset(&self, i: u64) -> Option<Duration> {
        if let Some(r) = &self.replay {
            return r.get(i as usize).map(|&us| Duration::from_micros(us));
        }
        let i = i as f64;
        for s in &self.segments {
            let n = (s.r0 + s.r1) / 2.0 * s.secs;
            if i < s.before + n - 1e-9 {
                let k = i - s.before;
                let t = if (s.r1 - s.r0).abs() < 1e-12 {
                    k / s.r0
                } else {
                    let a = (s.r1 - s.r0) / s.secs; // rate slope
                    (-s.r0 + (s.r0 * s.r0 + 2.0 * a * k).max(0.0).sqrt()) / a
                };
                // An offset too large for a Duration (absurd stage lengths) ends the schedule.
                return Duration::try_from_secs_f64(s.start_secs + t.clamp(0.0, s.secs)).ok();
            }
        }
        let rate = self.tail_rate?;
        let end = self
            .segments
            .last()
            .map(|s| s.start_secs + s.secs)
            .unwrap_or(0.0);
        let k = i - self.finite_count();
        // Past what a Duration can hold (a tiny rate and a huge slot number): the end.
        Duration::try_from_secs_f64(end + k.max(0.0) / rate).ok()
    }

    /// Mean rate over the whole schedule (requests per second), for display.
    pub fn mean_rate(&self) -> f64 {
        if let Some(r) = &self.replay {
            let span = r.last().copied().unwrap_or(0) as f64 / 1e6;
            return if span > 0.0 {
                (r.len() as f64 - 1.0).max(0.0) / span
            } else {
                r.len() as f64
            };
        }
        match (self.tail_rate, self.duration()) {
            (Some(r), _) if self.segments.is_empty() => r,
            (_, Some(d)) if d.as_secs_f64() > 0.0 => self.finite_count() / d.as_secs_f64(),
            (Some(r), _) => r,
            _ => 0.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_rate_gives_exact_count_and_spacing() {
        let s = RateSchedule::stages(&[(Duration::from_secs(10), 500.0, 500.0)]);
        assert_eq!(s.arrivals(), Some(5000));
        assert_eq!(s.offset(0), Some(Duration::ZERO));
        assert_eq!(s.offset(1), Some(Duration::from_millis(2)));
        assert_eq!(s.offset(4999).unwrap().as_micros(), 9_998_000);
        assert_eq!(s.offset(5000), None);
    }

    #[test]
    fn fractional_counts_round_up_to_arrivals_inside_the_window() {
        let s = RateSchedule::stages(&[(Duration::from_secs(1), 2.5, 2.5)]);
        assert_eq!(s.arrivals(), Some(3)); // at 0, 0.4, 0.8 s
    }

    #[test]
    fn linear_ramp_matches_the_integral() {
        // 0 → 100 req/s over 10 s: 500 arrivals; half of them after t = 10/√2 ≈ 7.07 s.
        let s = RateSchedule::stages(&[(Duration::from_secs(10), 0.0, 100.0)]);
        assert_eq!(s.arrivals(), Some(500));
        let t = s.offset(250).unwrap().as_secs_f64();
        assert!((t - 10.0 / 2f64.sqrt()).abs() < 1e-6, "{t}");
        // Monotone non-decreasing offsets.
        let mut last = Duration::ZERO;
        for i in 0..500 {
            let o = s.offset(i).unwrap();
            assert!(o >= last);
            last = o;
        }
    }

    #[test]
    fn stages_chain_in_time() {
        let s = RateSchedule::stages(&[
            (Duration::from_secs(2), 10.0, 10.0),
            (Duration::from_secs(2), 10.0, 30.0),
        ]);
        assert_eq!(s.arrivals(), Some(20 + 40));
        assert_eq!(s.offset(20), Some(Duration::from_secs(2)));
        assert_eq!(s.duration(), Some(Duration::from_secs(4)));
    }

    #[test]
    fn replay_uses_given_offsets_and_never_goes_back() {
        let s = RateSchedule::replay(&[0, 500_000, 400_000, 2_000_000]);
        assert_eq!(s.arrivals(), Some(4));
        assert_eq!(s.offset(1), Some(Duration::from_millis(500)));
        assert_eq!(s.offset(2), Some(Duration::from_millis(500)));
        assert_eq!(s.offset(3), Some(Duration::from_secs(2)));
        assert_eq!(s.offset(4), None);
        assert_eq!(s.duration(), Some(Duration::from_secs(2)));
        assert!((s.mean_rate() - 1.5).abs() < 1e-9);
    }

    #[test]
    fn open_ended_schedule_continues_at_rate() {
        let s = RateSchedule::constant(1000.0);
        assert_eq!(s.arrivals(), None);
        assert_eq!(s.offset(1500), Some(Duration::from_millis(1500)));
    }
}
