//! Scale-out on one machine: N shard processes merged equal a single run of the same
//! profile — counts exactly, latency quantiles losslessly (histograms added, not averaged).

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use wafload::results::{load_summary, merge::merge};

fn background_target() -> (String, tokio::runtime::Runtime) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let target = runtime
        .block_on(wafload::target::start(wafload::target::TargetConfig {
            markers: vec!["wafload-evil".into()],
            delay: wafload::target::Delay::Fixed(std::time::Duration::from_millis(5)),
            ..Default::default()
        }))
        .unwrap();
    let url = target.url();
    runtime.spawn(async move {
        let _keep = target;
        std::future::pending::<()>().await
    });
    (url, runtime)
}

fn run_args(url: &str, out: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_wafload"));
    c.current_dir(manifest_dir())
        .args([
            "run",
            "--target",
            url,
            "--corpus",
            "tests/fixtures/known",
            "--benign-share",
            "0.25",
        ])
        .args(["--rate", "150", "--duration", "2s", "--quiet", "--out"])
        .arg(out)
        .args(extra);
    c
}

fn quantile(sorted: &[u64], q: f64) -> u64 {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

#[test]
fn three_shards_merged_equal_a_single_run() {
    let (url, _rt) = background_target();
    let dir = tempfile::tempdir().unwrap();
    let start_at = format!(
        "{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
            + 2.0
    );
    let shards: Vec<PathBuf> = (0..3).map(|i| dir.path().join(format!("s{i}"))).collect();
    let children: Vec<_> = shards
        .iter()
        .enumerate()
        .map(|(i, out)| {
            run_args(
                &url,
                out,
                &["--shard", &format!("{i}/3"), "--start-at", &start_at],
            )
            .spawn()
            .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let single_dir = dir.path().join("single");
    assert!(run_args(&url, &single_dir, &[]).status().unwrap().success());

    let merged_dir = dir.path().join("merged");
    let merged = merge(&shards, &merged_dir).unwrap();
    let single = load_summary(&single_dir).unwrap();
    // Shards really split the load.
    let per_shard: Vec<u64> = shards
        .iter()
        .map(|s| load_summary(s).unwrap().sent)
        .collect();
    assert_eq!(per_shard, vec![100, 100, 100]);
    // Counts: exactly equal, per class and per set.
    assert_eq!(merged.sent, 300);
    assert_eq!(merged.sent, single.sent);
    assert_eq!(merged.counts, single.counts);
    assert_eq!(merged.detection.by_set, single.detection.by_set);
    assert_eq!(merged.detection.by_case, single.detection.by_case);
    assert_eq!(merged.records, 300);
    assert_eq!(merged.run.merged_from.len(), 3);
    // Lossless latency: the merged histogram's quantiles equal those of the union of the
    // shards' raw per-request latencies, within HDR precision (3 significant digits).
    let mut raw: Vec<u64> = Vec::new();
    for s in &shards {
        wafload::record::for_each_record(s, |r| raw.push(r.lat.max(1))).unwrap();
    }
    raw.sort();
    for (q, got) in [
        (0.5, merged.latency["all"].p50),
        (0.99, merged.latency["all"].p99),
    ] {
        let want = quantile(&raw, q) as f64;
        assert!(
            (got as f64 - want).abs() <= want * 0.001 + 1.0,
            "q{q}: merged {got} µs vs raw {want} µs"
        );
    }
    // And close to the single run (fixed 5 ms target delay).
    let (m, s) = (ms(merged.latency["all"].p50), ms(single.latency["all"].p50));
    assert!((m - s).abs() < 3.0, "merged p50 {m} ms vs single {s} ms");
    // The per-second series is aligned on the common start: ~150 sent per second.
    let series = wafload::results::load_series(&merged_dir).unwrap();
    assert_eq!(series.iter().map(|x| x.sent).sum::<u64>(), 300);
    assert!(series[0].sent >= 140, "{series:?}");
}

#[test]
fn merge_refuses_runs_of_different_profiles_or_corpora() {
    let (url, _rt) = background_target();
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    let b = dir.path().join("b");
    let c = dir.path().join("c");
    assert!(run_args(&url, &a, &[]).status().unwrap().success());
    assert!(run_args(&url, &b, &["--timeout", "3s"])
        .status()
        .unwrap()
        .success());
    let err = merge(&[a.clone(), b], &dir.path().join("m1"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("different profile") && err.contains("`timeout` differs"),
        "{err}"
    );
    let mut other = Command::new(env!("CARGO_BIN_EXE_wafload"));
    other
        .current_dir(manifest_dir())
        .args([
            "run",
            "--target",
            &url,
            "--corpus",
            "payloads",
            "--benign-share",
            "0.25",
        ])
        .args(["--rate", "150", "--duration", "1s", "--quiet", "--out"])
        .arg(&c);
    assert!(other.status().unwrap().success());
    let err = merge(&[a, c], &dir.path().join("m2"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("different corpus"), "{err}");
}
