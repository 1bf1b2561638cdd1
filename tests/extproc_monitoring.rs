//! Monitoring mode: the calibration processor never blocks (0 %), and its would-block log,
//! joined to wafload's records by request id, gives exactly the detection of blocking mode.

#[path = "support/extproc.rs"]
mod support;

use std::collections::BTreeSet;
use std::path::PathBuf;
use support::*;
use wafload::target::extproc::{start_ext_proc, ExtProcTargetConfig};
use wafload::transport::extproc::{BodyMode, ExtProcSettings, ProcessorTls};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitoring_log_gives_the_same_detection_as_blocking() {
    let corpus = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("payloads");
    let tmp = tempfile::tempdir().unwrap();
    let settings = ExtProcSettings {
        request_body_mode: BodyMode::Streamed,
        chunk_size: 64,
        ..ExtProcSettings::default()
    };

    // Blocking mode: which corpus requests are blocked.
    let blocking = start_ext_proc(ExtProcTargetConfig::default())
        .await
        .unwrap();
    let mut p = profile(&corpus, &tmp.path().join("block"), 1, 4);
    p.requests = None; // one pass over the corpus
    let out = run_direct(
        &p,
        &blocking.url(),
        settings.clone(),
        ProcessorTls::default(),
    )
    .await;
    let blocked: BTreeSet<u64> = records(&out.dir)
        .iter()
        .filter(|r| r["cls"] == "blocked")
        .map(|r| r["src"].as_u64().unwrap())
        .collect();
    let sent = out.summary.sent;
    assert!(!blocked.is_empty() && (blocked.len() as u64) < sent);
    blocking.shutdown().await;

    // Monitoring mode, same plan (same seed): nothing blocked, every hit logged.
    let log = tmp.path().join("would-block.jsonl");
    let monitoring = start_ext_proc(ExtProcTargetConfig {
        monitoring: true,
        log_path: Some(log.clone()),
        ..ExtProcTargetConfig::default()
    })
    .await
    .unwrap();
    let mut p = profile(&corpus, &tmp.path().join("monitor"), 1, 4);
    p.requests = None;
    let out = run_direct(&p, &monitoring.url(), settings, ProcessorTls::default()).await;
    assert_eq!(out.summary.sent, sent);
    assert_eq!(
        out.summary.counts["blocked"], 0,
        "monitoring mode must not block"
    );
    assert_eq!(out.summary.detection.attacks.rate, Some(0.0));
    let prefix = format!("{}-", out.summary.run.request_id_prefix);
    let logged_slots: BTreeSet<u64> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .inspect(|v| assert_eq!(v["would_block"], true))
        .map(|v| {
            v["id"]
                .as_str()
                .unwrap()
                .strip_prefix(&prefix)
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    let logged: BTreeSet<u64> = records(&out.dir)
        .iter()
        .filter(|r| logged_slots.contains(&r["n"].as_u64().unwrap()))
        .map(|r| r["src"].as_u64().unwrap())
        .collect();
    assert_eq!(
        logged, blocked,
        "log-derived detection differs from blocking mode"
    );
    assert_eq!(monitoring.stats().would_block, blocked.len() as u64);
    monitoring.shutdown().await;
}
