//! Resilience: for every fault the calibration target can inject, a run completes, every
//! scheduled request gets exactly one record and one class, the class counts are exactly
//! what the fault dictates, and the results folder reads back.
//!
//! Unless a test says otherwise the target's markers never match, so every request that is
//! not hit by a fault passes: "passed" and "failed" are then ground truth.

mod common;

use common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;
use wafload::profile::{HttpVersion, Profile};
use wafload::record::{for_each_record, StoredRecord};
use wafload::results::{load_series, load_sources, load_summary, Summary};
use wafload::run::RunOutcome;
use wafload::target::{self, Drip, Faults, TargetConfig, TargetStats};
use wafload::transport::http::{H1Engine, H2Engine};

/// A target whose markers never match: every unfaulted request is answered 200.
fn passing_target(faults: Faults) -> TargetConfig {
    TargetConfig {
        markers: vec!["wafload-never-matches-anything".into()],
        faults,
        seed: 7,
        ..TargetConfig::default()
    }
}

/// What one faulted run produced, after its results folder was checked for consistency.
struct Checked {
    summary: Summary,
    records: Vec<StoredRecord>,
    target: TargetStats,
    dir: std::path::PathBuf,
    /// The HTTP/1.1 client used (meaningless for HTTP/2 runs).
    engine: H1Engine,
    _results: tempfile::TempDir,
}

impl Checked {
    fn count(&self, class: &str) -> u64 {
        self.summary.counts.get(class).copied().unwrap_or(0)
    }

    fn errors(&self) -> BTreeMap<String, u64> {
        self.summary.errors.clone()
    }
}

fn errors(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

/// Runs `requests` requests of the known fixture at `rate` against `config`, with `tweak`
/// applied to the profile, and checks the invariants every fault must keep:
/// one record per sent request (slots 0..sent, each once), one class per record, counts
/// summing to `sent`, nothing left unsent, every results file readable.
async fn run_faulted(
    config: TargetConfig,
    requests: u64,
    rate: f64,
    tweak: impl FnOnce(&mut Profile),
) -> Checked {
    let target = target::start(config).await.expect("target starts");
    let results = tempfile::tempdir().unwrap();
    let mut p = profile(&target.url(), &[fixture("known")], results.path());
    p.requests = Some(requests);
    p.rate = Some(rate);
    p.timeout = Duration::from_secs(5);
    p.target.insecure = true;
    tweak(&mut p);
    let RunOutcome { dir, summary } = run_profile(&p).await;
    let target = target.stop().await;
    let checked = check_results(&dir, &summary, requests);
    Checked {
        summary,
        records: checked,
        target,
        dir,
        engine: H1Engine::default(),
        _results: results,
    }
}

/// The invariants of a complete run; returns the records.
fn check_results(dir: &Path, summary: &Summary, requests: u64) -> Vec<StoredRecord> {
    assert_eq!(summary.run.interrupted, None, "run stopped early");
    assert_eq!(summary.sent, requests, "every scheduled request is sent");
    assert_eq!(summary.not_sent, 0);
    assert_eq!(summary.planned, requests);
    assert_eq!(summary.records, requests, "one record per request");
    let counted: u64 = summary.counts.values().sum();
    assert_eq!(
        counted, requests,
        "one class per request: {:?}",
        summary.counts
    );
    let errors: u64 = summary.errors.values().sum();
    assert_eq!(
        errors, summary.counts["failed"],
        "every failure has an error kind and only failures do: {:?}",
        summary.errors
    );
    // The folder reads back and agrees with the summary returned in memory.
    let loaded = load_summary(dir).expect("summary.json reads back");
    assert_eq!(loaded.counts, summary.counts);
    assert_eq!(loaded.errors, summary.errors);
    load_sources(dir).expect("sources.json reads back");
    let series = load_series(dir).expect("series.json reads back");
    assert_eq!(series.iter().map(|s| s.sent).sum::<u64>(), requests);
    let mut records = Vec::new();
    for_each_record(dir, |r| records.push(r)).expect("records read back");
    assert_eq!(records.len() as u64, requests);
    let slots: BTreeSet<u64> = records.iter().filter_map(|r| r.n).collect();
    assert_eq!(
        slots.len() as u64,
        requests,
        "each slot recorded exactly once"
    );
    assert_eq!(slots.iter().next_back().copied(), Some(requests - 1));
    let mut by_class: BTreeMap<String, u64> = BTreeMap::new();
    for r in &records {
        *by_class.entry(r.cls.clone()).or_default() += 1;
        assert_eq!(r.err.is_some(), r.cls == "failed", "record {r:?}");
    }
    for (class, n) in &summary.counts {
        assert_eq!(by_class.get(class).copied().unwrap_or(0), *n, "{class}");
    }
    records.sort_by_key(|r| r.n);
    records
}

/// Both HTTP/2 clients: the lean default (`wire`) and the `h2` crate (`h2_engine: h2`).
const H2_ENGINES: [H2Engine; 2] = [H2Engine::Wire, H2Engine::H2];

/// Both HTTP/1.1 clients: the lean default (`wire`) and hyper (`h1_engine: hyper`).
const ENGINES: [H1Engine; 2] = [H1Engine::Wire, H1Engine::Hyper];

/// [`run_faulted`] once per HTTP/1.1 engine, each against a fresh target.
async fn run_h1(
    config: TargetConfig,
    requests: u64,
    rate: f64,
    tweak: impl Fn(&mut Profile),
) -> Vec<Checked> {
    let mut runs = Vec::new();
    for engine in ENGINES {
        let mut r = run_faulted(config.clone(), requests, rate, |p| {
            p.h1_engine = engine;
            tweak(p);
        })
        .await;
        r.engine = engine;
        runs.push(r);
    }
    runs
}

/// [`run_faulted`] over HTTP/2 (2 connections × 8 streams unless `tweak` says otherwise),
/// once per HTTP/2 engine, each against a fresh target.
async fn run_h2(
    config: TargetConfig,
    requests: u64,
    rate: f64,
    tweak: impl Fn(&mut Profile),
) -> Vec<(H2Engine, Checked)> {
    let mut runs = Vec::new();
    for engine in H2_ENGINES {
        eprintln!("HTTP/2 engine: {engine:?}");
        let r = run_faulted(config.clone(), requests, rate, |p| {
            h2(p);
            p.h2_engine = engine;
            tweak(p);
        })
        .await;
        runs.push((engine, r));
    }
    runs
}

fn h2(p: &mut Profile) {
    p.target.http = HttpVersion::H2;
    p.connections = 2;
    p.streams_per_connection = 8;
}

// ---------------------------------------------------------------- resets

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_before_response_h1_is_failed_reset() {
    let _guard = TIMING.lock().await;
    let faults = Faults {
        reset_share: 0.1,
        ..Faults::default()
    };
    for r in run_h1(passing_target(faults), 200, 400.0, |_| {}).await {
        eprintln!("HTTP/1.1 engine: {:?}", r.engine);
        assert_eq!((r.count("passed"), r.count("failed")), (180, 20));
        assert_eq!(r.errors(), errors(&[("reset", 20)]));
        assert_eq!(r.target.injected_resets, 20);
        assert_eq!(r.target.passed, 180);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_after_headers_h1_is_failed_reset_not_passed() {
    let _guard = TIMING.lock().await;
    let faults = Faults {
        reset_after_headers_share: 0.1,
        ..Faults::default()
    };
    for r in run_h1(passing_target(faults), 200, 400.0, |_| {}).await {
        eprintln!("HTTP/1.1 engine: {:?}", r.engine);
        assert_eq!((r.count("passed"), r.count("failed")), (180, 20));
        assert_eq!(r.errors(), errors(&[("reset", 20)]));
        assert_eq!(r.target.resets_after_headers, 20);
        // The status line arrived before the reset and is kept in the record.
        let cut: Vec<_> = r.records.iter().filter(|x| x.cls == "failed").collect();
        assert!(cut.iter().all(|x| x.st == Some(200)), "{cut:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_mid_body_h1_is_failed_reset_not_passed() {
    let _guard = TIMING.lock().await;
    let faults = Faults {
        reset_mid_body_share: 0.1,
        pass_body_bytes: Some(64 * 1024),
        ..Faults::default()
    };
    for r in run_h1(passing_target(faults), 200, 400.0, |_| {}).await {
        eprintln!("HTTP/1.1 engine: {:?}", r.engine);
        assert_eq!((r.count("passed"), r.count("failed")), (180, 20));
        assert_eq!(r.errors(), errors(&[("reset", 20)]));
        assert_eq!(r.target.resets_mid_body, 20);
        // Complete bodies are counted in full, cut ones by what arrived (half).
        assert_eq!(
            r.summary.response_body_bytes,
            180 * 64 * 1024 + 20 * 32 * 1024,
            "body bytes"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_rst_stream_before_after_headers_and_mid_body_is_failed_reset() {
    let _guard = TIMING.lock().await;
    let faults = Faults {
        reset_share: 0.05,
        reset_after_headers_share: 0.05,
        reset_mid_body_share: 0.05,
        ..Faults::default()
    };
    for (engine, r) in run_h2(passing_target(faults), 200, 400.0, |_| {}).await {
        assert_eq!(r.summary.run.protocol, "h2");
        assert_eq!((r.count("passed"), r.count("failed")), (170, 30));
        assert_eq!(r.errors(), errors(&[("reset", 30)]));
        let t = &r.target;
        assert_eq!(
            (t.injected_resets, t.resets_after_headers, t.resets_mid_body),
            (10, 10, 10)
        );
        // Stream resets leave the connections up: no reconnects beyond the pool.
        assert!(t.connections <= 3, "connections {}", t.connections);
        // A reset after the head keeps the status it got, like HTTP/1.1.
        let cut = r
            .records
            .iter()
            .filter(|x| x.cls == "failed" && x.st == Some(200));
        assert!(cut.count() >= 10, "{engine:?}");
    }
}

// ---------------------------------------------------------------- connection closes

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_closed_with_connection_close_is_not_a_failure() {
    let _guard = TIMING.lock().await;
    let faults = Faults {
        close_after: Some(5),
        ..Faults::default()
    };
    for r in run_h1(passing_target(faults), 200, 400.0, |p| p.connections = 4).await {
        eprintln!("HTTP/1.1 engine: {:?}", r.engine);
        assert_eq!((r.count("passed"), r.count("failed")), (200, 0));
        assert!(r.errors().is_empty());
        assert!(r.target.closes >= 36, "closes {}", r.target.closes);
        assert_eq!(r.target.requests, 200, "no request was sent twice");
    }
}

/// The server closes kept-alive connections after 20 ms idle (FIN, no warning), and one
/// connection sends every 50 ms: every reuse would write into a closed socket. The client
/// must notice the close before writing and reconnect — POSTs included, nothing failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_closed_by_an_idle_timeout_is_not_a_failure() {
    let _guard = TIMING.lock().await;
    let faults = Faults {
        idle_timeout: Some(Duration::from_millis(20)),
        ..Faults::default()
    };
    for r in run_h1(passing_target(faults), 28, 20.0, |p| p.connections = 1).await {
        eprintln!("HTTP/1.1 engine: {:?}", r.engine);
        assert_eq!(
            (r.count("passed"), r.count("failed")),
            (28, 0),
            "{:?}",
            r.errors()
        );
        assert_eq!(r.target.requests, 28, "no request was sent twice");
        // Every connection but the last (closed by the target shutting down) timed out idle.
        assert!(
            r.target.idle_closes >= 27,
            "idle closes {}",
            r.target.idle_closes
        );
        assert!(
            r.target.connections >= 29,
            "one connection per request plus the preflight"
        );
    }
}

/// The server drops the request that follows the N-th answer on a kept-alive connection
/// (its idle-timeout close crossed our request). Idempotent requests are retried once on a
/// fresh connection; POSTs are not retried (they may have been processed) and fail as
/// resets. With one connection the sequence is deterministic, so the expected counts are
/// computed from the methods of the requests in slot order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_dropped_by_server_retries_only_idempotent_requests() {
    let _guard = TIMING.lock().await;
    let limit = 3;
    let faults = Faults {
        drop_after: Some(limit),
        ..Faults::default()
    };
    for r in run_h1(passing_target(faults), 56, 100.0, |p| p.connections = 1).await {
        eprintln!("HTTP/1.1 engine: {:?}", r.engine);
        let sources = load_sources(&r.dir).unwrap();
        let mut answered_on_conn: Option<u32> = None;
        let (mut expect_failed, mut expect_dropped) = (0u64, 0u64);
        for rec in &r.records {
            let method = sources[rec.src as usize].method.as_str();
            let idempotent = matches!(
                method,
                "GET" | "HEAD" | "OPTIONS" | "TRACE" | "PUT" | "DELETE"
            );
            answered_on_conn = match answered_on_conn {
                Some(n) if n >= limit => {
                    expect_dropped += 1;
                    if idempotent {
                        Some(1)
                    } else {
                        expect_failed += 1;
                        None
                    }
                }
                Some(n) => Some(n + 1),
                None => Some(1),
            };
        }
        assert!(expect_failed > 0 && expect_dropped > expect_failed);
        assert_eq!(r.count("failed"), expect_failed);
        assert_eq!(r.count("passed"), 56 - expect_failed);
        assert_eq!(r.errors(), errors(&[("reset", expect_failed)]));
        assert_eq!(r.target.dropped, expect_dropped);
        assert_eq!(r.target.passed, 56 - expect_failed);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_goaway_reconnects_the_pool_slot_without_failures() {
    let _guard = TIMING.lock().await;
    // A GOAWAY every 3 streams at 1000 req/s: many requests race a GOAWAY (queued on a
    // connection that is going away, or above its last stream id) and must be retried.
    let faults = Faults {
        close_after: Some(3),
        ..Faults::default()
    };
    for (_, r) in run_h2(passing_target(faults), 300, 1000.0, |_| {}).await {
        assert_eq!(r.summary.run.protocol, "h2");
        assert_eq!(
            (r.count("passed"), r.count("failed")),
            (300, 0),
            "{:?}",
            r.errors()
        );
        assert!(r.target.closes >= 60, "GOAWAYs {}", r.target.closes);
        assert!(
            r.target.connections >= 60,
            "connections {}",
            r.target.connections
        );
        assert_eq!(r.target.passed, 300, "no stream was processed twice");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_max_concurrent_streams_of_one_queues_instead_of_failing() {
    let _guard = TIMING.lock().await;
    let faults = Faults {
        h2_max_concurrent_streams: Some(1),
        ..Faults::default()
    };
    // 1000 req/s, 32 streams on one connection: streams opened before the server's SETTINGS
    // arrive can be refused (REFUSED_STREAM), which is safe to retry (see the deterministic
    // `h2_refused_streams_are_retried_once` below); after that the client queues streams.
    let runs = run_h2(passing_target(faults), 300, 1000.0, |p| {
        p.connections = 1;
        p.streams_per_connection = 32;
    });
    for (_, r) in runs.await {
        assert_eq!(
            (r.count("passed"), r.count("failed")),
            (300, 0),
            "{:?}",
            r.errors()
        );
        assert_eq!(r.target.passed, 300);
    }
}

/// The shared HTTP/2 connection outlives every engine thread: requests still in flight on
/// one engine thread when another thread's workers are done (and its runtime ends) must not
/// lose their connection. Each answer takes 40 ms, so the last requests of one thread are
/// always in flight when the other thread finishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_connection_survives_the_end_of_another_engine_thread() {
    let _guard = TIMING.lock().await;
    for (round, engine) in [H2_ENGINES, H2_ENGINES].concat().into_iter().enumerate() {
        let config = TargetConfig {
            delay: wafload::target::Delay::Fixed(Duration::from_millis(40)),
            ..passing_target(Faults::default())
        };
        let r = run_faulted(config, 64, 400.0, |p| {
            p.target.http = HttpVersion::H2;
            p.connections = 1;
            p.streams_per_connection = 16;
            p.h2_engine = engine;
        })
        .await;
        assert_eq!(
            (r.count("passed"), r.count("failed")),
            (64, 0),
            "round {round} ({engine:?}): {:?}",
            r.errors()
        );
    }
}

/// A bare h2 server that refuses every odd-numbered stream of a connection with
/// RST_STREAM(REFUSED_STREAM) and answers the others 200; returns its address and a count
/// of (refused, answered).
async fn refusing_h2_server() -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::Mutex<(u64, u64)>>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let tally = std::sync::Arc::new(std::sync::Mutex::new((0u64, 0u64)));
    let counts = tally.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let counts = counts.clone();
            tokio::spawn(async move {
                let Ok(mut conn) = h2::server::handshake(socket).await else {
                    return;
                };
                let mut streams = 0u64;
                while let Some(Ok((_request, mut respond))) = conn.accept().await {
                    streams += 1;
                    if streams % 2 == 1 {
                        respond.send_reset(h2::Reason::REFUSED_STREAM);
                        counts.lock().unwrap().0 += 1;
                    } else {
                        let response = http::Response::new(());
                        if let Ok(mut body) = respond.send_response(response, false) {
                            let _ = body.send_data(bytes::Bytes::from_static(b"ok\n"), true);
                        }
                        counts.lock().unwrap().1 += 1;
                    }
                }
            });
        }
    });
    (addr, tally)
}

/// REFUSED_STREAM means the server did not process the stream (RFC 9113 §8.7): one retry
/// on the same connection. One stream at a time, so every request's first stream is
/// refused and its retry answered: 28 passes, 28 refusals, no failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_refused_streams_are_retried_once() {
    let _guard = TIMING.lock().await;
    for engine in H2_ENGINES {
        let (addr, tally) = refusing_h2_server().await;
        let summary = run_h2_at(addr, 1, engine).await;
        assert_eq!(
            summary.counts["passed"], 28,
            "{engine:?}: {:?}",
            summary.errors
        );
        assert_eq!(*tally.lock().unwrap(), (28, 28), "{engine:?}");
    }
}

/// A 28-request HTTP/2 run (the `known` fixture, 200 req/s, one connection with `streams`
/// streams) against a server the test started at `addr`, checked for one record per
/// request.
async fn run_h2_at(addr: std::net::SocketAddr, streams: usize, engine: H2Engine) -> Summary {
    let results = tempfile::tempdir().unwrap();
    let mut p = profile(
        &format!("http://{addr}/"),
        &[fixture("known")],
        results.path(),
    );
    p.rate = Some(200.0);
    p.target.http = HttpVersion::H2;
    p.connections = 1;
    p.streams_per_connection = streams;
    p.h2_engine = engine;
    let outcome = run_profile(&p).await;
    check_results(&outcome.dir, &outcome.summary, 28);
    outcome.summary
}

// ---------------------------------------------------------------- slow answers

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stall_longer_than_the_timeout_is_failed_timeout() {
    let _guard = TIMING.lock().await;
    let faults = Faults {
        stall_share: 0.05,
        stall_for: Duration::from_secs(3),
        ..Faults::default()
    };
    for r in run_h1(passing_target(faults), 200, 400.0, |p| {
        p.timeout = Duration::from_millis(800)
    })
    .await
    {
        eprintln!("HTTP/1.1 engine: {:?}", r.engine);
        assert_eq!((r.count("passed"), r.count("failed")), (190, 10));
        assert_eq!(r.errors(), errors(&[("timeout", 10)]));
        let timed_out = r.records.iter().filter(|x| x.cls == "failed");
        // Latency of a timeout is the timeout (plus scheduling), not the stall.
        for x in timed_out {
            assert!(x.lat >= 800_000 && x.lat < 2_000_000, "{x:?}");
        }
    }
}

/// HTTP/2 with prior knowledge to a server that only speaks HTTP/1.1: every request fails
/// as a protocol error (the client names the HTTP/1.x answer), none hangs or passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_prior_knowledge_to_an_http1_server_is_a_protocol_error() {
    let _guard = TIMING.lock().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = socket.read(&mut buf).await;
                let _ = socket
                    .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                    .await;
            });
        }
    });
    let summary = run_h2_at(addr, 2, H2Engine::default()).await;
    assert_eq!(summary.counts["failed"], 28);
    assert_eq!(summary.errors, errors(&[("protocol", 28)]));
}

/// HTTP/2: a stalled stream times out at the timeout, is cancelled (RST_STREAM) and frees
/// its slot; the connection stays up for the other streams — no reconnects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_stall_longer_than_the_timeout_is_failed_timeout_on_a_live_connection() {
    let _guard = TIMING.lock().await;
    let faults = Faults {
        stall_share: 0.05,
        stall_for: Duration::from_secs(3),
        ..Faults::default()
    };
    let runs = run_h2(passing_target(faults), 200, 400.0, |p| {
        p.timeout = Duration::from_millis(800);
    });
    for (engine, r) in runs.await {
        assert_eq!((r.count("passed"), r.count("failed")), (190, 10));
        assert_eq!(r.errors(), errors(&[("timeout", 10)]));
        for x in r.records.iter().filter(|x| x.cls == "failed") {
            assert!(x.lat >= 800_000 && x.lat < 2_000_000, "{engine:?} {x:?}");
        }
        assert!(
            r.target.connections <= 3,
            "{engine:?}: connections {}",
            r.target.connections
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_drip_within_the_timeout_passes_and_counts_every_byte() {
    let _guard = TIMING.lock().await;
    let faults = Faults {
        slow_drip_share: 0.1,
        slow_drip: Drip {
            bytes: 2000,
            chunk: 200,
            every: Duration::from_millis(30),
        },
        ..Faults::default()
    };
    for r in run_h1(passing_target(faults), 200, 400.0, |_| {}).await {
        eprintln!("HTTP/1.1 engine: {:?}", r.engine);
        assert_eq!((r.count("passed"), r.count("failed")), (200, 0));
        assert_eq!(r.target.dripped, 20);
        assert_eq!(r.summary.response_body_bytes, r.target.body_bytes_sent);
        let dripped = r.records.iter().filter(|x| x.lat >= 270_000).count();
        assert_eq!(dripped, 20, "20 answers took at least 9 × 30 ms");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_drip_beyond_the_timeout_is_failed_timeout() {
    let _guard = TIMING.lock().await;
    let faults = Faults {
        slow_drip_share: 0.1,
        slow_drip: Drip {
            bytes: 4000,
            chunk: 100,
            every: Duration::from_millis(50),
        },
        ..Faults::default()
    };
    for r in run_h1(passing_target(faults), 200, 400.0, |p| {
        p.timeout = Duration::from_millis(700)
    })
    .await
    {
        eprintln!("HTTP/1.1 engine: {:?}", r.engine);
        assert_eq!((r.count("passed"), r.count("failed")), (180, 20));
        assert_eq!(r.errors(), errors(&[("timeout", 20)]));
        // The status arrived before the drip stalled: kept in the record.
        assert!(r
            .records
            .iter()
            .filter(|x| x.cls == "failed")
            .all(|x| x.st == Some(200)));
    }
}

fn vm_hwm_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_mib_bodies_are_counted_and_not_held_in_memory() {
    let _guard = TIMING.lock().await;
    const BODY: u64 = 10 * 1024 * 1024;
    let before = vm_hwm_kib();
    let faults = Faults {
        pass_body_bytes: Some(BODY),
        ..Faults::default()
    };
    for r in run_h1(passing_target(faults), 28, 50.0, |p| p.connections = 4).await {
        eprintln!("HTTP/1.1 engine: {:?}", r.engine);
        assert_eq!((r.count("passed"), r.count("failed")), (28, 0));
        assert_eq!(r.summary.response_body_bytes, 28 * BODY);
        assert_eq!(r.target.body_bytes_sent, 28 * BODY);
        let grown_mib = (vm_hwm_kib().saturating_sub(before)) / 1024;
        // 280 MiB went through this process (target and client); holding even two bodies
        // would show. The limit leaves room for the allocator and test-harness noise.
        assert!(grown_mib < 40, "peak RSS grew by {grown_mib} MiB");
    }
}

// ---------------------------------------------------------------- malformed answers

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_status_line_is_failed_protocol() {
    let _guard = TIMING.lock().await;
    let faults = Faults {
        garbage_status_share: 0.1,
        ..Faults::default()
    };
    for r in run_h1(passing_target(faults), 200, 400.0, |_| {}).await {
        eprintln!("HTTP/1.1 engine: {:?}", r.engine);
        assert_eq!((r.count("passed"), r.count("failed")), (180, 20));
        assert_eq!(r.errors(), errors(&[("protocol", 20)]));
        assert_eq!(r.target.garbage_statuses, 20);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_chunked_encoding_is_failed_protocol_not_passed() {
    let _guard = TIMING.lock().await;
    let faults = Faults {
        bad_chunked_share: 0.1,
        ..Faults::default()
    };
    for r in run_h1(passing_target(faults), 200, 400.0, |_| {}).await {
        eprintln!("HTTP/1.1 engine: {:?}", r.engine);
        assert_eq!((r.count("passed"), r.count("failed")), (180, 20));
        assert_eq!(r.errors(), errors(&[("protocol", 20)]));
        assert_eq!(r.target.bad_chunked, 20);
    }
}

// ---------------------------------------------------------------- TLS and restarts

/// Every 2nd TLS connection gets garbage instead of a ServerHello; `close_after: 5` makes
/// the single client connection reconnect every 5 requests. Connection 1 is the preflight,
/// connection 2 fails (request 1), 3 serves 5, 4 fails, … — 5 of 28 requests fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_handshake_failure_is_failed_tls_and_the_run_goes_on() {
    let _guard = TIMING.lock().await;
    let config = TargetConfig {
        tls: true,
        ..passing_target(Faults {
            tls_fail_every: Some(2),
            close_after: Some(5),
            ..Faults::default()
        })
    };
    for r in run_h1(config, 28, 100.0, |p| {
        p.target.http = HttpVersion::H1;
        p.connections = 1;
    })
    .await
    {
        eprintln!("HTTP/1.1 engine: {:?}", r.engine);
        assert_eq!((r.count("passed"), r.count("failed")), (23, 5));
        assert_eq!(r.errors(), errors(&[("tls", 5)]));
        assert_eq!(r.target.tls_failures, 5);
        let failed_slots: Vec<u64> = r
            .records
            .iter()
            .filter(|x| x.cls == "failed")
            .filter_map(|x| x.n)
            .collect();
        assert_eq!(failed_slots, [0, 6, 12, 18, 24]);
    }
}

/// The target is stopped after about a second and a new one started on the same port
/// 300 ms later. Requests in the gap fail to connect (far fewer than the dead-target limit
/// of 200); every request the two targets answered is a pass; nothing else is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_restarted_mid_run_costs_only_the_requests_in_the_gap() {
    let _guard = TIMING.lock().await;
    let config = passing_target(Faults::default());
    let first = target::start(config.clone()).await.unwrap();
    let addr = first.addr;
    let results = tempfile::tempdir().unwrap();
    let mut p = profile(&first.url(), &[fixture("known")], results.path());
    p.requests = Some(300);
    p.rate = Some(100.0);
    p.connections = 4;
    let restart = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let before = first.stop().await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let second = target::start(TargetConfig {
            listen: addr,
            ..config
        })
        .await
        .expect("restart on the same port");
        (before, second)
    });
    let outcome = run_profile(&p).await;
    let (before, second) = restart.await.unwrap();
    let after = second.stop().await;
    let records = check_results(&outcome.dir, &outcome.summary, 300);
    let s = &outcome.summary;
    let failed = s.counts["failed"];
    assert_eq!(s.counts["passed"], before.passed + after.passed);
    assert_eq!(s.counts["passed"] + failed, 300);
    assert!(
        (10..=60).contains(&failed),
        "about 30 requests fall in the 300 ms gap, got {failed}: {:?}",
        s.errors
    );
    for kind in s.errors.keys() {
        assert!(kind == "connect" || kind == "reset", "{:?}", s.errors);
    }
    assert!(s.errors.get("connect").copied().unwrap_or(0) > 0);
    // The failures are one contiguous stretch of slots: the outage, nothing later.
    let failed_slots: Vec<u64> = records
        .iter()
        .filter(|x| x.cls == "failed")
        .filter_map(|x| x.n)
        .collect();
    let span = failed_slots.last().unwrap() - failed_slots.first().unwrap() + 1;
    assert!(span <= failed + 4, "failures scattered: {failed_slots:?}");
}

/// The target goes away for good: after DEAD_TARGET_AFTER (200) connection failures in a
/// row the run stops on its own, says why, and still accounts for every request it sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_gone_for_good_stops_the_run_after_200_refused_connections() {
    let _guard = TIMING.lock().await;
    let first = target::start(passing_target(Faults::default()))
        .await
        .unwrap();
    let results = tempfile::tempdir().unwrap();
    let mut p = profile(&first.url(), &[fixture("known")], results.path());
    p.requests = Some(2000);
    p.rate = Some(500.0);
    p.connections = 4;
    let killer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        first.stop().await
    });
    let started = std::time::Instant::now();
    let outcome = run_profile(&p).await;
    let before = killer.await.unwrap();
    let s = &outcome.summary;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "stopped early, not at the end"
    );
    assert_eq!(
        s.run.interrupted.as_deref(),
        Some("target unreachable: 200 connections in a row were refused")
    );
    assert!(s.sent < 2000, "sent {}", s.sent);
    assert_eq!(s.planned, s.sent + s.not_sent);
    assert_eq!(s.records, s.sent);
    assert_eq!(s.counts.values().sum::<u64>(), s.sent);
    assert_eq!(s.counts["passed"], before.passed);
    assert_eq!(s.counts["passed"] + s.counts["failed"], s.sent);
    assert!(s.errors["connect"] >= 200, "{:?}", s.errors);
    assert_eq!(
        wafload::cli::run::exit_code_after_run(s, 0),
        2,
        "the CLI exits 2 for a run stopped by a dead target"
    );
    let mut n = 0;
    for_each_record(&outcome.dir, |_| n += 1).unwrap();
    assert_eq!(n, s.sent);
}

// ---------------------------------------------------------------- the seed's misconfiguration

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_ext_proc_500s_are_unresolved_explained_and_never_passed() {
    let _guard = TIMING.lock().await;
    let config = TargetConfig {
        // Markers that would block: the 500s must not turn into passes *or* blocks.
        markers: vec!["wafload-evil".into()],
        faults: Faults {
            ext_proc_error_share: 1.0,
            ..Faults::default()
        },
        ..TargetConfig::default()
    };
    for r in run_h1(config, 28, 200.0, |_| {}).await {
        eprintln!("HTTP/1.1 engine: {:?}", r.engine);
        let s = &r.summary;
        assert_eq!(r.count("unresolved"), 28);
        assert_eq!(
            (r.count("passed"), r.count("blocked"), r.count("failed")),
            (0, 0, 0)
        );
        assert_eq!(s.ext_proc_errors, 28);
        assert_eq!(s.statuses, [("500".to_string(), 28)].into_iter().collect());
        assert_eq!(
            s.detection.attacks.rate, None,
            "no detection rate from errors"
        );
        assert_eq!(s.detection.benign.rate, None);
        assert_eq!(s.score.overall, None);
        assert!(
            s.hints
                .iter()
                .any(|h| h.starts_with("28 responses were Envoy ext_proc errors")
                    && h.contains("appProtocol: grpc")),
            "{:?}",
            s.hints
        );
        assert_eq!(r.target.ext_proc_errors, 28);
        let text = wafload::report::terminal::render(s, &r.dir);
        assert!(text.contains("ext_proc"), "{text}");
    }
}

// ---------------------------------------------------------------- signals

/// What a run signalled with SIGTERM 2 s after its start left behind.
struct Signalled {
    status: std::process::ExitStatus,
    /// From the signal to the exit.
    took: Duration,
    stderr: String,
    out_dir: std::path::PathBuf,
    _results: tempfile::TempDir,
}

/// Runs `wafload run` on the `known` fixture with `args` against a calibration target with
/// `faults`, sends SIGTERM after 2 s and waits at most `limit` for the process to exit.
fn run_and_sigterm(faults: Faults, args: &[&str], limit: Duration) -> Signalled {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let target = runtime
        .block_on(target::start(passing_target(faults)))
        .unwrap();
    let results = tempfile::tempdir().unwrap();
    let out_dir = results.path().join("run");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_wafload"))
        .args(["run", "--target", &target.url()])
        .args(["--corpus", "tests/fixtures/known"])
        .args(args)
        .args(["--quiet", "--out"])
        .arg(&out_dir)
        .current_dir(manifest_dir())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    // SAFETY: signalling our own child by its pid.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let signalled = std::time::Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(signalled.elapsed() < limit, "run did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    let took = signalled.elapsed();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    drop(target);
    Signalled {
        status,
        took,
        stderr,
        out_dir,
        _results: results,
    }
}

/// Requests that never get an answer do not hold an interrupted run: after the signal
/// they get `ABORT_GRACE` (1.5 s), then each is recorded as aborted — every sent request
/// has its record, and the run ends long before the 60 s request timeout.
#[test]
fn interrupted_run_with_unanswered_requests_ends_after_the_grace() {
    let stalled = Faults {
        stall_share: 1.0,
        stall_for: Duration::from_secs(120),
        ..Faults::default()
    };
    let args = [
        "--rate",
        "20",
        "--duration",
        "60s",
        "--timeout",
        "60s",
        "--no-preflight",
    ];
    let run = run_and_sigterm(stalled, &args, Duration::from_secs(20));
    let took = run.took;
    assert_eq!(
        run.status.code(),
        Some(143),
        "{:?} after {took:?}: {}",
        run.status,
        run.stderr
    );
    assert!(
        took >= Duration::from_millis(1400) && took < Duration::from_secs(8),
        "stopped {took:?} after the signal (grace 1.5 s)"
    );
    let summary = load_summary(&run.out_dir).expect("partial summary written");
    assert_eq!(summary.run.interrupted.as_deref(), Some("interrupted"));
    assert!((20..=60).contains(&summary.sent), "sent {}", summary.sent);
    assert_eq!(summary.records, summary.sent);
    assert_eq!(summary.counts["failed"], summary.sent);
    assert_eq!(
        summary.errors["aborted"], summary.sent,
        "{:?}",
        summary.errors
    );
}

#[test]
fn sigterm_stops_the_run_with_143_and_flushes_partial_results() {
    let args = ["--rate", "100", "--duration", "60s"];
    let run = run_and_sigterm(Faults::default(), &args, Duration::from_secs(15));
    assert_eq!(run.status.code(), Some(143), "{}", run.stderr);
    let out_dir = &run.out_dir;
    let summary = load_summary(out_dir).expect("partial summary written");
    assert_eq!(summary.run.interrupted.as_deref(), Some("interrupted"));
    assert!((100..=300).contains(&summary.sent), "sent {}", summary.sent);
    assert_eq!(summary.records, summary.sent);
    assert_eq!(summary.counts.values().sum::<u64>(), summary.sent);
    assert_eq!(
        summary.counts["passed"],
        summary.sent - summary.counts["failed"]
    );
    let mut n = 0;
    for_each_record(out_dir, |_| n += 1).unwrap();
    assert_eq!(n, summary.sent);
    assert!(!out_dir.join("requests.jsonl.zst.partial").exists());
}
