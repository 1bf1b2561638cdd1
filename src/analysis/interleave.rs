//! Interleaved A/B runs: the same traffic (same seed per pair of blocks) sent to two
//! targets or configurations in short alternating blocks, in ABBA order, so that drift
//! (thermal, noisy neighbours, caches warming) hits both sides equally.

use crate::error::Error;
use crate::profile::Profile;
use crate::run::{run, RunOptions};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Default length of one block.
pub const DEFAULT_BLOCK: Duration = Duration::from_secs(5);

pub struct Arm {
    pub label: String,
    pub profile: Profile,
}

/// Run folders of both arms, in the order they ran.
#[derive(Clone, Debug, Default)]
pub struct Interleaved {
    pub a_runs: Vec<PathBuf>,
    pub b_runs: Vec<PathBuf>,
    pub interrupted: bool,
}

/// Block order for `pairs` pairs: A B, B A, A B, … (ABBA cancels linear drift).
pub fn block_order(pairs: usize) -> Vec<(usize, bool)> {
    (0..pairs)
        .flat_map(|k| {
            if k % 2 == 0 {
                [(k, false), (k, true)]
            } else {
                [(k, true), (k, false)]
            }
        })
        .collect()
}

/// Runs `pairs` pairs of blocks of `block` each; arm B is `true` in the order.
pub async fn interleave(
    a: &Arm,
    b: &Arm,
    pairs: usize,
    block: Duration,
    out: &Path,
    progress: bool,
    cancel: CancellationToken,
) -> Result<Interleaved, Error> {
    let mut result = Interleaved::default();
    let order = block_order(pairs);
    for (i, (pair, is_b)) in order.iter().enumerate() {
        if cancel.is_cancelled() {
            result.interrupted = true;
            break;
        }
        let arm = if *is_b { b } else { a };
        let mut profile = arm.profile.clone();
        profile.duration = Some(block);
        profile.stages.clear();
        profile.seed = arm.profile.seed.wrapping_add(*pair as u64);
        let dir = out
            .join("blocks")
            .join(format!("{:03}-{}", i + 1, sanitize(&arm.label)));
        let options = RunOptions {
            origin: arm.label.clone(),
            out: Some(dir.clone()),
            progress: false,
            shard: Default::default(),
            start_at: None,
        };
        if progress {
            eprintln!(
                "block {}/{}: {} ({} for {:?} at {} req/s)",
                i + 1,
                order.len(),
                arm.label,
                profile.target.url,
                block,
                profile.rate.unwrap_or(crate::schedule::DEFAULT_RATE)
            );
        }
        let outcome = run(&profile, &options, cancel.clone()).await?;
        if outcome.summary.run.interrupted.is_some() {
            result.interrupted = true;
        }
        if *is_b {
            result.b_runs.push(outcome.dir);
        } else {
            result.a_runs.push(outcome.dir);
        }
        if result.interrupted {
            break;
        }
    }
    Ok(result)
}

fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Pairs needed to give each arm about `total` of traffic in blocks of `block`.
pub fn pairs_for(total: Duration, block: Duration) -> usize {
    (total.as_secs_f64() / block.as_secs_f64()).ceil().max(1.0) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abba_order_alternates_who_goes_first() {
        let order: Vec<bool> = block_order(3).into_iter().map(|(_, b)| b).collect();
        assert_eq!(order, vec![false, true, true, false, false, true]);
        assert_eq!(
            pairs_for(Duration::from_secs(30), Duration::from_secs(5)),
            6
        );
        assert_eq!(pairs_for(Duration::from_secs(1), Duration::from_secs(5)), 1);
    }
}
