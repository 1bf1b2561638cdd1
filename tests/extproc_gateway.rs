//! The seed's topology on loopback: wafload (HTTP) → gateway emulation → calibration
//! ext_proc processor → calibration HTTP target as the upstream application.

#[path = "support/extproc.rs"]
mod support;

use std::time::Duration;
use support::*;
use wafload::target::extproc::{start_ext_proc, ExtProcTargetConfig, ProcessorFault};
use wafload::transport::extproc::BodyMode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attacks_blocked_by_the_processor_and_streamed_chunks_through_the_gateway() {
    let app = upstream(Duration::ZERO).await;
    let proc = start_ext_proc(ExtProcTargetConfig::default())
        .await
        .unwrap();
    let gw = gateway(
        proc.url(),
        format!("http://{}", app.addr),
        BodyMode::Streamed,
    )
    .await;
    let tmp = tempfile::tempdir().unwrap();
    let corpus = tmp.path().join("corpus");
    let mut body = "a".repeat(40 * 1024);
    body.replace_range(33_000..33_007, "<script");
    write_case(&corpus, "calib-attacks", "deep", &body);
    write_case(&corpus, "calib-false-pos", "big", &"b".repeat(1 << 20));
    let out = http_run(&gw.url(), &corpus, tmp.path(), 10).await;
    assert_eq!(out.summary.counts["blocked"], 5);
    assert_eq!(out.summary.counts["passed"], 5);
    let s = proc.stats();
    // 16 KiB chunks: the attack is blocked at chunk 3 (bytes 32768..49151).
    assert_eq!(s.blocked_at_body, 5);
    assert_eq!(s.request_body, 5 * 3 + 5 * 64);
    assert_eq!(
        app.stats().requests,
        5,
        "blocked requests never reach the upstream"
    );
    gw.shutdown().await;
    proc.shutdown().await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_or_http1_processor_is_ext_proc_error_14() {
    let app = upstream(Duration::ZERO).await;
    let tmp = tempfile::tempdir().unwrap();
    let corpus = benign_body_corpus(tmp.path(), 100);

    // Nothing listens on the processor port.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("grpc://{}", closed.local_addr().unwrap());
    drop(closed);
    let gw = gateway(dead, format!("http://{}", app.addr), BodyMode::Buffered).await;
    let out = http_run(&gw.url(), &corpus, &tmp.path().join("a"), 5).await;
    assert_eq!(out.summary.statuses["500"], 5);
    assert_eq!(out.summary.ext_proc_errors, 5);
    assert!(out.summary.hints.iter().any(|h| h.contains("ext_proc")));
    gw.shutdown().await;

    // A processor port that speaks HTTP/1.1 only (what a mesh does to an undeclared gRPC port).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let h1 = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        for _ in 0..50 {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            let _ = s
                .write_all(
                    b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                )
                .await;
        }
    });
    let gw = gateway(
        format!("grpc://{h1}"),
        format!("http://{}", app.addr),
        BodyMode::Buffered,
    )
    .await;
    let out = http_run(&gw.url(), &corpus, &tmp.path().join("b"), 5).await;
    assert_eq!(out.summary.statuses["500"], 5, "{:?}", out.summary.statuses);
    assert_eq!(out.summary.ext_proc_errors, 5);
    assert_eq!(app.stats().requests, 0);
    gw.shutdown().await;
    server.abort();
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_timeout_is_504_and_413_over_the_buffer_limit() {
    let app = upstream(Duration::ZERO).await;
    let proc = start_ext_proc(ExtProcTargetConfig {
        fault: Some(ProcessorFault::Stall),
        stall_for: Duration::from_millis(300),
        ..ExtProcTargetConfig::default()
    })
    .await
    .unwrap();
    let gw = gateway(
        proc.url(),
        format!("http://{}", app.addr),
        BodyMode::Buffered,
    )
    .await;
    let tmp = tempfile::tempdir().unwrap();
    let corpus = benign_body_corpus(tmp.path(), 100);
    let out = http_run(&gw.url(), &corpus, &tmp.path().join("a"), 3).await;
    assert_eq!(out.summary.statuses["504"], 3);
    assert_eq!(gw.stats().message_timeouts, 3);
    gw.shutdown().await;
    proc.shutdown().await;

    let proc = start_ext_proc(ExtProcTargetConfig::default())
        .await
        .unwrap();
    let gw = gateway(
        proc.url(),
        format!("http://{}", app.addr),
        BodyMode::Buffered,
    )
    .await;
    let tmp2 = tempfile::tempdir().unwrap();
    let corpus = benign_body_corpus(tmp2.path(), (1 << 20) + 1);
    let out = http_run(&gw.url(), &corpus, tmp2.path(), 3).await;
    assert_eq!(out.summary.statuses["413"], 3);
    gw.shutdown().await;
    proc.shutdown().await;
    app.shutdown().await;
}
