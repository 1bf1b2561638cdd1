//! Known answer: per-phase latencies of direct ext_proc mode equal the calibration
//! processor's delays (within +0.5 ms at p50). A test binary of its own, so no other test
//! competes for the two cores while it measures.

#[path = "support/extproc.rs"]
mod support;

use std::time::Duration;
use support::*;
use wafload::target::extproc::{start_ext_proc, ExtProcTargetConfig};
use wafload::transport::extproc::{BodyMode, ExtProcSettings, ProcessorTls};

fn settings(mode: BodyMode) -> ExtProcSettings {
    ExtProcSettings {
        request_body_mode: mode,
        response_body_mode: mode,
        ..ExtProcSettings::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phase_latencies_match_processor_delays_buffered() {
    let proc = start_ext_proc(ExtProcTargetConfig {
        request_headers_delay: Duration::from_millis(1),
        request_body_delay: Duration::from_millis(2),
        ..ExtProcTargetConfig::default()
    })
    .await
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let corpus = benign_body_corpus(tmp.path(), 1000);
    let p = profile(&corpus, tmp.path(), 200, 1);
    let out = run_direct(
        &p,
        &proc.url(),
        settings(BodyMode::Buffered),
        ProcessorTls::default(),
    )
    .await;
    let x = out.summary.ext_proc.as_ref().expect("ext_proc summary");
    let h = &x.phases["request_headers"];
    let b = &x.phases["request_body"];
    eprintln!("headers p50 {} µs, body p50 {} µs", h.p50, b.p50);
    assert_eq!(h.count, 200);
    assert_eq!(b.count, 200);
    assert!((1000..=1500).contains(&h.p50), "headers p50 {} µs", h.p50);
    assert!((2000..=2500).contains(&b.p50), "body p50 {} µs", b.p50);
    assert_eq!(x.verdicts.get("pass"), Some(&200));
    assert_eq!(out.summary.counts["passed"], 200);
    proc.shutdown().await;
}
