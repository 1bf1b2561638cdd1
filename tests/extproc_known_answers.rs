//! Known answers of direct ext_proc mode against the calibration processor (loopback only,
//! every run bounded by a request count).

#[path = "support/extproc.rs"]
mod support;

use std::time::Duration;
use support::*;
use wafload::target::extproc::{start_ext_proc, ExtProcTargetConfig, ProcessorFault};
use wafload::transport::extproc::{BodyMode, ExtProcSettings, ProcessorTls};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_four_chunks_are_four_body_round_trips() {
    let proc = start_ext_proc(ExtProcTargetConfig {
        request_body_delay: Duration::from_millis(2),
        ..ExtProcTargetConfig::default()
    })
    .await
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let corpus = benign_body_corpus(tmp.path(), 4 * 1024);
    let p = profile(&corpus, tmp.path(), 50, 2);
    let s = ExtProcSettings {
        chunk_size: 1024,
        ..settings(BodyMode::Streamed)
    };
    let out = run_direct(&p, &proc.url(), s, ProcessorTls::default()).await;
    let x = out.summary.ext_proc.as_ref().unwrap();
    assert_eq!(x.round_trips["request_body"], 4 * 50);
    assert_eq!(x.phases["request_body"].count, 4 * 50);
    assert_eq!(x.phases["request_body_phase"].count, 50);
    // Each chunk is the processor's 2 ms (served one after another) plus the gRPC floor
    // (~0.5 ms in a debug build, more while the binary's other tests run beside it); the
    // phase about 8 ms — below the 10 ms that a fifth chunk would take.
    let b = &x.phases["request_body"];
    assert!((2000..=3000).contains(&b.p50), "per-chunk p50 {} µs", b.p50);
    let phase = &x.phases["request_body_phase"];
    assert!(
        (8000..=10_000).contains(&phase.p50),
        "phase p50 {} µs",
        phase.p50
    );
    for r in records(&out.dir) {
        assert_eq!(r["xp_detail"]["rqb"].as_array().unwrap().len(), 4, "{r}");
    }
    assert_eq!(proc.stats().request_body, 200);
    proc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn marker_in_chunk_three_is_blocked_at_chunk_three() {
    let proc = start_ext_proc(ExtProcTargetConfig::default())
        .await
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let corpus = tmp.path().join("corpus");
    let mut body = "a".repeat(4096);
    body.replace_range(2500..2507, "<script");
    write_case(&corpus, "calib-attacks", "chunk3", &body);
    let p = profile(&corpus, tmp.path(), 20, 1);
    let s = ExtProcSettings {
        chunk_size: 1024,
        ..settings(BodyMode::Streamed)
    };
    let out = run_direct(&p, &proc.url(), s, ProcessorTls::default()).await;
    let x = out.summary.ext_proc.as_ref().unwrap();
    assert_eq!(x.blocked_at.len(), 1, "{:?}", x.blocked_at);
    assert_eq!(x.blocked_at["request_body#3"], 20);
    assert_eq!(out.summary.counts["blocked"], 20);
    assert_eq!(out.summary.statuses["403"], 20);
    // Three body messages answered, the fourth was sent but never answered.
    assert_eq!(x.round_trips["request_body"], 3 * 20);
    for r in records(&out.dir) {
        assert_eq!(r["xp_detail"]["at"], "request_body#3");
        assert_eq!(r["xp_detail"]["v"], "block");
    }
    // A marker split across chunks 2 and 3 is found when chunk 3 completes it.
    let mut split = "a".repeat(4096);
    split.replace_range(2045..2052, "<script");
    let corpus2 = tmp.path().join("corpus2");
    write_case(&corpus2, "calib-attacks", "split", &split);
    let p2 = profile(&corpus2, &tmp.path().join("r2"), 5, 1);
    let s2 = ExtProcSettings {
        chunk_size: 1024,
        ..settings(BodyMode::Streamed)
    };
    let out2 = run_direct(&p2, &proc.url(), s2, ProcessorTls::default()).await;
    assert_eq!(
        out2.summary.ext_proc.as_ref().unwrap().blocked_at["request_body#3"],
        5
    );
    proc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_marker_blocks_at_headers_and_body_is_never_sent() {
    let proc = start_ext_proc(ExtProcTargetConfig::default())
        .await
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let corpus = tmp.path().join("corpus");
    let dir = corpus.join("calib-attacks");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("q.yml"),
        "payload:\n  - \"1 union select 2\"\nencoder: [Plain]\nplaceholder:\n  - RawRequest:\n      method: POST\n      path: \"/s?q={{payload}}\"\n      body: \"hello\"\ntype: t\n",
    )
    .unwrap();
    let p = profile(&corpus, tmp.path(), 10, 1);
    let out = run_buffered(&p, &proc.url()).await;
    let x = out.summary.ext_proc.as_ref().unwrap();
    assert_eq!(x.blocked_at["request_headers"], 10);
    assert_eq!(x.round_trips.get("request_body"), None);
    assert_eq!(proc.stats().request_body, 0);
    proc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buffered_over_the_limit_is_413_and_partial_sends_the_limit() {
    let proc = start_ext_proc(ExtProcTargetConfig::default())
        .await
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    // Envoy's default limit is 1 MiB: one byte more is a 413, never sent to the processor.
    let corpus = benign_body_corpus(tmp.path(), (1 << 20) + 1);
    let p = profile(&corpus, tmp.path(), 5, 1);
    let out = run_buffered(&p, &proc.url()).await;
    assert_eq!(out.summary.statuses["413"], 5);
    assert_eq!(out.summary.counts["unresolved"], 5);
    let x = out.summary.ext_proc.as_ref().unwrap();
    assert_eq!(x.verdicts["too_large"], 5);
    assert_eq!(x.decided_at["request_body"], 5);
    assert_eq!(proc.stats().request_body, 0);
    // Exactly at the limit is fine.
    let tmp2 = tempfile::tempdir().unwrap();
    let corpus2 = benign_body_corpus(tmp2.path(), 1 << 20);
    let p2 = profile(&corpus2, tmp2.path(), 2, 1);
    let out2 = run_buffered(&p2, &proc.url()).await;
    assert_eq!(out2.summary.statuses["200"], 2);
    // BUFFERED_PARTIAL sends the first MiB and passes.
    let tmp3 = tempfile::tempdir().unwrap();
    let corpus3 = benign_body_corpus(tmp3.path(), (1 << 20) + 1);
    let p3 = profile(&corpus3, tmp3.path(), 2, 1);
    let out3 = run_direct(
        &p3,
        &proc.url(),
        settings(BodyMode::BufferedPartial),
        ProcessorTls::default(),
    )
    .await;
    assert_eq!(out3.summary.statuses["200"], 2);
    // Two bodies at the limit, two partial ones; none of the oversized BUFFERED ones.
    assert_eq!(proc.stats().request_body, 4);
    proc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_phases_are_timed() {
    let proc = start_ext_proc(ExtProcTargetConfig {
        response_headers_delay: Duration::from_millis(1),
        response_body_delay: Duration::from_millis(1),
        ..ExtProcTargetConfig::default()
    })
    .await
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let corpus = benign_body_corpus(tmp.path(), 100);
    let p = profile(&corpus, tmp.path(), 20, 1);
    let s = ExtProcSettings {
        response_phases: true,
        response_body_size: 3000,
        chunk_size: 1000,
        ..settings(BodyMode::Streamed)
    };
    let out = run_direct(&p, &proc.url(), s, ProcessorTls::default()).await;
    let x = out.summary.ext_proc.as_ref().unwrap();
    assert_eq!(x.round_trips["response_headers"], 20);
    assert_eq!(x.round_trips["response_body"], 60);
    assert_eq!(x.decided_at["response_body"], 20);
    // The phase's own round trip: the processor's 1 ms plus the gRPC round-trip floor
    // (~0.5 ms in a debug build, more while the other tests of this binary run beside it;
    // CI once saw 1516 µs). Never below the delay, and well below the 4 ms that the
    // response phases take together (headers + 3 body chunks of 1 ms each).
    let rh = &x.phases["response_headers"];
    assert!(
        (1000..=2500).contains(&rh.p50),
        "response headers p50 {}",
        rh.p50
    );
    assert_eq!(proc.stats().response_body, 60);
    proc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_map_to_envoy_outcomes() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = benign_body_corpus(tmp.path(), 100);
    // Stall past the 200 ms message timeout: 504, or 200 with failure-mode-allow.
    let proc = start_ext_proc(ExtProcTargetConfig {
        fault: Some(ProcessorFault::Stall),
        stall_for: Duration::from_millis(400),
        ..ExtProcTargetConfig::default()
    })
    .await
    .unwrap();
    let p = profile(&corpus, &tmp.path().join("a"), 4, 2);
    let out = run_buffered(&p, &proc.url()).await;
    assert_eq!(out.summary.statuses["504"], 4);
    assert_eq!(
        out.summary.ext_proc.as_ref().unwrap().verdicts["timeout"],
        4
    );
    let allow = ExtProcSettings {
        failure_mode_allow: true,
        ..settings(BodyMode::Buffered)
    };
    let p = profile(&corpus, &tmp.path().join("b"), 2, 2);
    let out = run_direct(&p, &proc.url(), allow, ProcessorTls::default()).await;
    assert_eq!(out.summary.statuses["200"], 2);
    proc.shutdown().await;

    // gRPC error on half the streams: failed (reset kind for UNAVAILABLE), exact share.
    let proc = start_ext_proc(ExtProcTargetConfig {
        fault: Some(ProcessorFault::GrpcError),
        fault_share: 0.5,
        ..ExtProcTargetConfig::default()
    })
    .await
    .unwrap();
    let p = profile(&corpus, &tmp.path().join("c"), 10, 1);
    let out = run_buffered(&p, &proc.url()).await;
    assert_eq!(out.summary.counts["failed"], 5);
    assert_eq!(out.summary.counts["passed"], 5);
    assert_eq!(out.summary.ext_proc.as_ref().unwrap().verdicts["error"], 5);
    assert_eq!(proc.stats().faults, 5);
    proc.shutdown().await;

    // Stream reset: a failure, and the connection stays usable for the next streams.
    let proc = start_ext_proc(ExtProcTargetConfig {
        fault: Some(ProcessorFault::Reset),
        fault_share: 0.5,
        ..ExtProcTargetConfig::default()
    })
    .await
    .unwrap();
    let p = profile(&corpus, &tmp.path().join("d"), 10, 1);
    let out = run_buffered(&p, &proc.url()).await;
    assert_eq!(
        out.summary.errors.get("reset"),
        Some(&5),
        "{:?}",
        out.summary.errors
    );
    assert_eq!(out.summary.counts["failed"], 5);
    assert_eq!(out.summary.counts["passed"], 5);
    proc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_custom_ca_and_insecure() {
    let proc = start_ext_proc(ExtProcTargetConfig {
        tls: true,
        ..ExtProcTargetConfig::default()
    })
    .await
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let ca = tmp.path().join("ca.pem");
    std::fs::write(&ca, proc.cert_pem.as_ref().unwrap()).unwrap();
    let corpus = benign_body_corpus(tmp.path(), 100);
    let p = profile(&corpus, &tmp.path().join("a"), 5, 1);
    let tls = ProcessorTls {
        ca_file: Some(ca),
        ..ProcessorTls::default()
    };
    let out = run_direct(&p, &proc.url(), settings(BodyMode::Buffered), tls).await;
    assert_eq!(out.summary.counts["passed"], 5);
    assert!(proc.url().starts_with("grpcs://"));
    let p = profile(&corpus, &tmp.path().join("b"), 5, 1);
    let insecure = ProcessorTls {
        insecure: true,
        ..ProcessorTls::default()
    };
    let out = run_direct(&p, &proc.url(), settings(BodyMode::Buffered), insecure).await;
    assert_eq!(out.summary.counts["passed"], 5);
    // Without trust the connection is refused before the run starts.
    let target = wafload::run::extproc::ExtProcTarget {
        url: proc.url(),
        connections: 1,
        tls: ProcessorTls::default(),
        settings: settings(BodyMode::Buffered),
    };
    let p = profile(&corpus, &tmp.path().join("c"), 1, 1);
    let err = wafload::run::extproc::run_ext_proc(
        &p,
        &wafload::run::RunOptions::default(),
        &target,
        tokio_util::sync::CancellationToken::new(),
    )
    .await
    .err()
    .expect("untrusted certificate must fail");
    assert!(err.to_string().contains("grpcs://"), "{err}");
    proc.shutdown().await;
}
