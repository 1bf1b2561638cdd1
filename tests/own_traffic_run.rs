//! Runs with imported traffic against the calibration target (loopback, bounded): the
//! false-positive rate is reported per imported source and is exact, weights decide each
//! source's share of the benign slots, block-expected (incident) requests are checked,
//! and replay follows the recorded times scaled by the replay speed.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use wafload::profile::BenignFile;
use wafload::results::Summary;
use wafload::target::{self, TargetConfig};
use wafload::traffic::{render_traffic, TrafficRequest, Verdict};

const MARKER: &str = "wafload-evil";

/// `n` GET requests under `prefix`; those with index in `marked` carry the marker.
fn traffic(
    prefix: &str,
    n: usize,
    marked: &[usize],
    expect: Option<Verdict>,
) -> Vec<TrafficRequest> {
    (0..n)
        .map(|i| TrafficRequest {
            method: "GET".into(),
            target: if marked.contains(&i) {
                format!("/{prefix}/{i}?q={MARKER}")
            } else {
                format!("/{prefix}/{i}?q=fine")
            },
            headers: vec![("accept".into(), "text/html".into())],
            t_ms: Some(i as u64 * 100),
            expect,
            ..Default::default()
        })
        .collect()
}

fn write(dir: &Path, name: &str, requests: &[TrafficRequest]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, render_traffic(requests)).unwrap();
    path
}

fn group(s: &Summary, set: &str) -> (u64, u64, Option<f64>) {
    let g = s
        .detection
        .by_set
        .iter()
        .find(|g| g.name == set)
        .unwrap_or_else(|| panic!("no set {set}: {:#?}", s.detection.by_set));
    (g.rates.blocked, g.rates.passed, g.rates.rate)
}

fn marker_target() -> TargetConfig {
    TargetConfig {
        markers: vec![MARKER.into()],
        ..TargetConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn false_positive_rate_is_reported_per_imported_source() {
    let _guard = TIMING.lock().await;
    let target = target::start(marker_target()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let shop = write(
        dir.path(),
        "shop.jsonl",
        &traffic("shop", 10, &[3, 7], None),
    );
    let api = write(dir.path(), "api.jsonl", &traffic("api", 5, &[], None));
    let incident = write(
        dir.path(),
        "incident.jsonl",
        &traffic("admin", 4, &[0, 1, 2], Some(Verdict::Block)),
    );
    let mut p = profile(&target.url(), &[fixture("known")], dir.path());
    p.rate = Some(300.0);
    p.benign = [shop, api, incident]
        .into_iter()
        .map(|file| BenignFile { file, weight: 1.0 })
        .collect();
    // Corpus mix: every request once, so each source's counts are exact.
    let outcome = run_profile(&p).await;
    let s = &outcome.summary;
    assert_eq!(s.sent, 28 + 10 + 5 + 4);
    assert_eq!(group(s, "shop"), (2, 8, Some(0.2)));
    assert_eq!(group(s, "api"), (0, 5, Some(0.0)));
    // The incident's requests are attacks: 3 of 4 blocked.
    assert_eq!(group(s, "incident"), (3, 1, Some(0.75)));
    // Corpus benign set too (2 of 6), so all benign: (2 + 0 + 2) of 21.
    assert_eq!(
        (s.detection.benign.blocked, s.detection.benign.passed),
        (4, 17)
    );
    let e = s.expectations.as_ref().expect("expected verdicts counted");
    assert_eq!((e.met, e.missed, e.unresolved), (8 + 5 + 3, 2 + 1, 0));
    let incident = e.by_source.iter().find(|g| g.source == "incident").unwrap();
    assert_eq!(
        (incident.expected, incident.met, incident.missed),
        (Verdict::Block, 3, 1)
    );
    assert!(
        s.hints
            .iter()
            .any(|h| h == "1 of 4 requests from incident expected to be blocked passed"),
        "{:?}",
        s.hints
    );
    // Every request reached the target once.
    assert_eq!(target.stats().requests, 47);
    target.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weights_decide_each_sources_share_of_benign_slots() {
    let _guard = TIMING.lock().await;
    let target = target::start(marker_target()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let shop = write(
        dir.path(),
        "shop.jsonl",
        &traffic("shop", 10, &[3, 7], None),
    );
    let api = write(dir.path(), "api.jsonl", &traffic("api", 5, &[], None));
    let mut p = profile(&target.url(), &[fixture("known")], dir.path());
    p.rate = Some(400.0);
    p.requests = Some(80);
    p.benign_share = Some(0.5);
    p.benign = vec![
        BenignFile {
            file: shop,
            weight: 3.0,
        },
        BenignFile {
            file: api,
            weight: 1.0,
        },
    ];
    let s = run_profile(&p).await.summary;
    assert_eq!(s.sent, 80);
    // 40 benign slots split 3:1 → shop 30 (3 passes, 6 blocked), api 10 (2 passes).
    assert_eq!(group(&s, "shop"), (6, 24, Some(0.2)));
    assert_eq!(group(&s, "api"), (0, 10, Some(0.0)));
    // Traffic files replace the corpus's benign set in the benign mix.
    assert!(s
        .detection
        .by_set
        .iter()
        .filter(|g| g.name == "kn-false-pos")
        .all(|g| g.rates.total() == 0));
    assert_eq!(s.detection.attacks.total(), 40);
    target.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_follows_recorded_times_scaled_by_speed() {
    let _guard = TIMING.lock().await;
    let target = target::start(marker_target()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    // 10 requests recorded 100 ms apart (0.9 s); at 3× they span 0.3 s.
    let shop = write(
        dir.path(),
        "shop.jsonl",
        &traffic("shop", 10, &[3, 7], None),
    );
    let mut p = profile(&target.url(), &[], dir.path());
    p.benign = vec![BenignFile {
        file: shop.clone(),
        weight: 1.0,
    }];
    p.replay_speed = Some(3.0);
    let outcome = run_profile(&p).await;
    let s = &outcome.summary;
    assert_eq!(s.sent, 10);
    assert_eq!(group(s, "shop"), (2, 8, Some(0.2)));
    assert!(s.run.mix.starts_with("replay ×3"), "{}", s.run.mix);
    let records = wafload::record::read_records(&outcome.dir).unwrap();
    // Intended send times are the recorded ones ÷ 3: slot i at i × 33.3 ms.
    let mut intended: Vec<(u64, u64)> = records
        .iter()
        .map(|r| (r["n"].as_u64().unwrap(), r["t"].as_u64().unwrap()))
        .collect();
    intended.sort_unstable();
    let offsets: Vec<u64> = intended.iter().map(|&(_, t)| t - intended[0].1).collect();
    let expected: Vec<u64> = (0..10).map(|i| i * 100_000 / 3).collect();
    for (got, want) in offsets.iter().zip(&expected) {
        assert!(
            got.abs_diff(*want) <= 2,
            "offsets {offsets:?} want {expected:?}"
        );
    }
    assert!(
        s.duration_s >= 0.29 && s.duration_s < 2.0,
        "duration {}",
        s.duration_s
    );

    // With a benign share, attacks are interleaved and the traffic keeps its times.
    let mut p = profile(&target.url(), &[fixture("known")], dir.path());
    p.benign = vec![BenignFile {
        file: shop,
        weight: 1.0,
    }];
    p.replay_speed = Some(3.0);
    p.benign_share = Some(0.5);
    let s = run_profile(&p).await.summary;
    assert_eq!(s.sent, 20);
    assert_eq!(group(&s, "shop"), (2, 8, Some(0.2)));
    assert_eq!(s.detection.attacks.total(), 10);
    assert!(s.duration_s < 2.0, "duration {}", s.duration_s);
    target.shutdown().await;
}
