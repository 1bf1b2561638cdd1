//! The target's seeded randomness and load sensing: which fault a request gets, how long it
//! is delayed, and the arrival rate for failing open. Separate from the server so it can be
//! tested without sockets.

use std::collections::VecDeque;
use std::time::Duration;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::time::Instant;

use crate::target::{Delay, Faults, TargetConfig, TargetError, FAULT_BLOCK};

/// What happens to one request besides marker matching.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum FaultOutcome {
    Normal,
    Error500,
    ExtProcError,
    Reset,
    Stall,
    ResetAfterHeaders,
    ResetMidBody,
    GarbageStatus,
    BadChunked,
    SlowDrip,
}

/// Deals fault outcomes in shuffled blocks with exact counts, and draws delays; one instance
/// per target, used under a lock so the sequence follows arrival order.
pub(crate) struct Dice {
    fault_rng: ChaCha8Rng,
    delay_rng: ChaCha8Rng,
    /// Shares in the order of [`KINDS`].
    shares: [f64; KINDS.len()],
    delay: Delay,
    arrivals: u64,
    block: Vec<FaultOutcome>,
}

/// Kinds in dealing order. New kinds go at the end so that a config without them deals the
/// same blocks (and so the same sequence) as before they existed.
const KINDS: [FaultOutcome; 9] = [
    FaultOutcome::Error500,
    FaultOutcome::ExtProcError,
    FaultOutcome::Reset,
    FaultOutcome::Stall,
    FaultOutcome::ResetAfterHeaders,
    FaultOutcome::ResetMidBody,
    FaultOutcome::GarbageStatus,
    FaultOutcome::BadChunked,
    FaultOutcome::SlowDrip,
];

impl Dice {
    pub(crate) fn new(seed: u64, faults: &Faults, delay: &Delay) -> Dice {
        Dice {
            fault_rng: ChaCha8Rng::seed_from_u64(seed),
            // A different stream of the same seed, so changing fault shares does not change delays.
            delay_rng: ChaCha8Rng::seed_from_u64(seed ^ 0x9e37_79b9_7f4a_7c15),
            shares: [
                faults.error_500_share,
                faults.ext_proc_error_share,
                faults.reset_share,
                faults.stall_share,
                faults.reset_after_headers_share,
                faults.reset_mid_body_share,
                faults.garbage_status_share,
                faults.bad_chunked_share,
                faults.slow_drip_share,
            ],
            delay: delay.clone(),
            arrivals: 0,
            block: Vec::new(),
        }
    }

    /// The next arrival's fault outcome and delay.
    pub(crate) fn draw(&mut self) -> (FaultOutcome, Duration) {
        let position = (self.arrivals % FAULT_BLOCK as u64) as usize;
        if position == 0 {
            self.deal_block();
        }
        self.arrivals += 1;
        let outcome = self.block[position];
        let delay = self.sample_delay();
        (outcome, delay)
    }

    fn deal_block(&mut self) {
        let start = self.arrivals;
        let end = start + FAULT_BLOCK as u64;
        let mut block = Vec::with_capacity(FAULT_BLOCK);
        for (kind, share) in KINDS.iter().zip(self.shares) {
            // Cumulative rounding: after n arrivals exactly round(share * n) of this kind.
            let due = (share * end as f64).round() as u64 - (share * start as f64).round() as u64;
            for _ in 0..due {
                if block.len() < FAULT_BLOCK {
                    block.push(*kind);
                }
            }
        }
        block.resize(FAULT_BLOCK, FaultOutcome::Normal);
        block.shuffle(&mut self.fault_rng);
        self.block = block;
    }

    fn sample_delay(&mut self) -> Duration {
        match &self.delay {
            Delay::None => Duration::ZERO,
            Delay::Fixed(d) => *d,
            Delay::Uniform { min, max } => {
                let u: f64 = self.delay_rng.gen();
                *min + (*max - *min).mul_f64(u)
            }
            Delay::Exponential { mean } => {
                let u: f64 = self.delay_rng.gen();
                mean.mul_f64(-(1.0 - u).ln())
            }
            Delay::Table(points) => {
                let u: f64 = self.delay_rng.gen();
                table_quantile(points, u)
            }
        }
    }
}

/// Inverse CDF of a quantile table at `u`, linear between points, clamped at the ends.
pub(crate) fn table_quantile(points: &[crate::target::QuantilePoint], u: f64) -> Duration {
    let (Some(first), Some(last)) = (points.first(), points.last()) else {
        return Duration::ZERO;
    };
    if u <= first.q {
        return first.at;
    }
    if u >= last.q {
        return last.at;
    }
    for pair in points.windows(2) {
        let (lo, hi) = (&pair[0], &pair[1]);
        if u <= hi.q {
            let t = (u - lo.q) / (hi.q - lo.q);
            let lo_s = lo.at.as_secs_f64();
            let hi_s = hi.at.as_secs_f64();
            return Duration::from_secs_f64(lo_s + t * (hi_s - lo_s));
        }
    }
    last.at
}

/// Arrivals over the last second, in 10 ms buckets (so the window is exact to 10 ms).
pub(crate) struct RateWindow {
    /// (bucket index since `origin`, arrivals in it), oldest first.
    buckets: VecDeque<(u64, u64)>,
    origin: Instant,
}

const BUCKET: Duration = Duration::from_millis(10);
const BUCKETS_PER_SECOND: u64 = 100;

impl RateWindow {
    pub(crate) fn new(origin: Instant) -> RateWindow {
        RateWindow {
            buckets: VecDeque::with_capacity(BUCKETS_PER_SECOND as usize + 1),
            origin,
        }
    }

    /// Records one arrival at `now` and returns arrivals in the last second, this one included.
    pub(crate) fn record(&mut self, now: Instant) -> u64 {
        let bucket =
            (now.saturating_duration_since(self.origin).as_nanos() / BUCKET.as_nanos()) as u64;
        while let Some(&(oldest, _)) = self.buckets.front() {
            if oldest + BUCKETS_PER_SECOND <= bucket {
                self.buckets.pop_front();
            } else {
                break;
            }
        }
        match self.buckets.back_mut() {
            Some((last, count)) if *last >= bucket => *count += 1,
            _ => self.buckets.push_back((bucket, 1)),
        }
        self.buckets.iter().map(|(_, count)| count).sum()
    }
}

/// Checks every field that could make the target misbehave silently; messages name the field.
pub(crate) fn validate(config: &TargetConfig) -> Result<(), TargetError> {
    let invalid = |msg: String| Err(TargetError::InvalidConfig(msg));
    if let Some(i) = config.markers.iter().position(|m| m.is_empty()) {
        return invalid(format!(
            "markers[{i}] is empty (it would match every request)"
        ));
    }
    if http::StatusCode::from_u16(config.block_status).is_err() {
        return invalid(format!(
            "block_status = {} is not an HTTP status",
            config.block_status
        ));
    }
    if http::HeaderName::from_bytes(config.request_id_header.as_bytes()).is_err() {
        return invalid(format!(
            "request_id_header = {:?} is not a valid header name",
            config.request_id_header
        ));
    }
    match &config.delay {
        Delay::Uniform { min, max } if min > max => {
            return invalid(format!(
                "delay.uniform: min {min:?} is greater than max {max:?}"
            ));
        }
        Delay::Table(points) => {
            if points.is_empty() {
                return invalid("delay.table has no points".to_string());
            }
            for (i, p) in points.iter().enumerate() {
                if !(0.0..=1.0).contains(&p.q) {
                    return invalid(format!("delay.table[{i}].q = {} is outside [0, 1]", p.q));
                }
                if i > 0 && (p.q <= points[i - 1].q || p.at < points[i - 1].at) {
                    return invalid(format!(
                        "delay.table[{i}] must have a larger q and no smaller `at` than the point before"
                    ));
                }
            }
        }
        _ => {}
    }
    let f = &config.faults;
    let shares = [
        ("faults.error_500_share", f.error_500_share),
        ("faults.ext_proc_error_share", f.ext_proc_error_share),
        ("faults.reset_share", f.reset_share),
        ("faults.stall_share", f.stall_share),
        (
            "faults.reset_after_headers_share",
            f.reset_after_headers_share,
        ),
        ("faults.reset_mid_body_share", f.reset_mid_body_share),
        ("faults.garbage_status_share", f.garbage_status_share),
        ("faults.bad_chunked_share", f.bad_chunked_share),
        ("faults.slow_drip_share", f.slow_drip_share),
    ];
    for (name, share) in shares {
        if !(0.0..=1.0).contains(&share) {
            return invalid(format!("{name} = {share} is outside [0, 1]"));
        }
    }
    let total: f64 = shares.iter().map(|(_, s)| s).sum();
    if total > 1.0 + 1e-9 {
        return invalid(format!(
            "faults: the *_share fields sum to {total}, which exceeds 1"
        ));
    }
    if config.tls && (f.garbage_status_share > 0.0 || f.bad_chunked_share > 0.0) {
        return invalid(
            "faults.garbage_status_share and bad_chunked_share need a plain-text target (tls: false): malformed bytes cannot be written inside TLS".to_string(),
        );
    }
    if f.slow_drip_share > 0.0 && f.slow_drip.chunk == 0 {
        return invalid("faults.slow_drip.chunk must be at least 1".to_string());
    }
    for (name, value) in [
        ("faults.close_after", f.close_after),
        ("faults.drop_after", f.drop_after),
        (
            "faults.h2_max_concurrent_streams",
            f.h2_max_concurrent_streams,
        ),
        ("faults.tls_fail_every", f.tls_fail_every),
    ] {
        if value == Some(0) {
            return invalid(format!("{name} must be at least 1"));
        }
    }
    if f.tls_fail_every.is_some() && !config.tls {
        return invalid("faults.tls_fail_every needs tls: true".to_string());
    }
    if let Some(capacity) = &f.capacity {
        if capacity.workers == 0 {
            return invalid("faults.capacity.workers must be at least 1".to_string());
        }
    }
    if let Some(rate) = f.fail_open_above {
        if !(rate.is_finite() && rate >= 0.0) {
            return invalid(format!(
                "faults.fail_open_above = {rate} must be a non-negative number"
            ));
        }
    }
    Ok(())
}
