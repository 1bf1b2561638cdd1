//! Known-answer tests for the calibration target. Clients are hyper's low-level connections so
//! the tests exercise exactly the protocols the target serves (h1, h2c, TLS + ALPN h2).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::behaviour::{table_quantile, validate, Dice, FaultOutcome, RateWindow};
use super::*;

/// Every test's network part is bounded in time.
const TEST_BOUND: Duration = Duration::from_secs(30);

async fn bounded<F: std::future::Future>(future: F) -> F::Output {
    tokio::time::timeout(TEST_BOUND, future)
        .await
        .expect("test exceeded its time bound")
}

#[derive(Debug)]
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
    version: Version,
}

fn markers(list: &[&str]) -> Vec<String> {
    list.iter().map(|m| m.to_string()).collect()
}

fn request(method: &str, target: &str, body: &str) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri(target)
        .header("host", "127.0.0.1")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("valid test request")
}

fn get(target: &str) -> Request<Full<Bytes>> {
    request("GET", target, "")
}

fn with_header(
    mut req: Request<Full<Bytes>>,
    name: &'static str,
    value: &str,
) -> Request<Full<Bytes>> {
    req.headers_mut()
        .insert(name, value.parse().expect("valid header value"));
    req
}

async fn h1_connect(addr: SocketAddr) -> http1::SendRequest<Full<Bytes>> {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (sender, conn) = http1::handshake(TokioIo::new(stream))
        .await
        .expect("h1 handshake");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    sender
}

async fn h1_send(
    sender: &mut http1::SendRequest<Full<Bytes>>,
    req: Request<Full<Bytes>>,
) -> Result<Reply, hyper::Error> {
    sender.ready().await?;
    let response = sender.send_request(req).await?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await?.to_bytes();
    Ok(Reply {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8_lossy(&body).into_owned(),
        version: parts.version,
    })
}

/// One request on a fresh HTTP/1.1 connection.
async fn h1_once(addr: SocketAddr, req: Request<Full<Bytes>>) -> Result<Reply, hyper::Error> {
    let mut sender = h1_connect(addr).await;
    h1_send(&mut sender, req).await
}

async fn h2_send(
    sender: &mut http2::SendRequest<Full<Bytes>>,
    req: Request<Full<Bytes>>,
) -> Result<Reply, hyper::Error> {
    sender.ready().await?;
    let response = sender.send_request(req).await?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await?.to_bytes();
    Ok(Reply {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8_lossy(&body).into_owned(),
        version: parts.version,
    })
}

async fn start_with(config: TargetConfig) -> RunningTarget {
    start(config).await.expect("target starts")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

fn temp_log_path(tag: &str) -> std::path::PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    std::env::temp_dir().join(format!(
        "wafload-target-{tag}-{}-{nanos}.jsonl",
        std::process::id()
    ))
}

// ---------------------------------------------------------------- matching (no sockets)

#[test]
fn percent_decode_handles_plus_and_bad_escapes() {
    assert_eq!(percent_decode(b"a%20b+c", true), b"a b c");
    assert_eq!(percent_decode(b"a%20b+c", false), b"a b+c");
    assert_eq!(percent_decode(b"100%", false), b"100%");
    assert_eq!(percent_decode(b"%zz%4", false), b"%zz%4");
    assert_eq!(percent_decode(b"%253C", false), b"%3C");
}

#[test]
fn is_malicious_known_answers() {
    let m = markers(DEFAULT_MARKERS);
    let none: &[(&str, &str)] = &[];
    assert_eq!(
        is_malicious(&m, "/search?q=<script>alert(1)</script>", none, b""),
        Some("<script")
    );
    assert_eq!(
        is_malicious(&m, "/%3Cscript%3E", none, b""),
        Some("<script")
    );
    assert_eq!(
        is_malicious(&m, "/%253CScRiPt%253E", none, b""),
        Some("<script")
    );
    assert_eq!(
        is_malicious(&m, "/?id=1+UNION+SELECT+1", none, b""),
        Some("union select")
    );
    // '+' is a space only in the query, not in the path.
    assert_eq!(is_malicious(&m, "/union+select", none, b""), None);
    assert_eq!(
        is_malicious(&m, "/static/../../etc/passwd", none, b""),
        Some("../")
    );
    assert_eq!(
        is_malicious(&m, "/", &[("user-agent", "${jndi:ldap://x/a}")], b""),
        Some("${jndi:")
    );
    assert_eq!(
        is_malicious(&m, "/", none, br#"{"name":"{{7*7}}"}"#),
        Some("{{")
    );
    assert_eq!(
        is_malicious(&m, "/", none, b"user=%27+or+%271%27%3D%271"),
        Some("' or '1'='1")
    );
    assert_eq!(
        is_malicious(
            &m,
            "/api/pets?limit=10",
            &[("accept", "application/json")],
            br#"{"id":1}"#
        ),
        None
    );
    // Header names are not searched.
    assert_eq!(is_malicious(&m, "/", &[("x-<script", "fine")], b""), None);
    // Several markers: the first in list order wins, wherever it occurs.
    let ordered = markers(&["zzz", "aaa"]);
    assert_eq!(is_malicious(&ordered, "/aaa", none, b"zzz"), Some("zzz"));
    // Empty markers never match.
    let with_empty = markers(&["", "x"]);
    assert_eq!(is_malicious(&with_empty, "/abc", none, b""), None);
    // Non-UTF-8 bodies are searched as bytes.
    assert_eq!(
        is_malicious(&m, "/", none, b"\xff\xfe<SCRIPT"),
        Some("<script")
    );
}

#[test]
fn marker_matcher_naive_and_set_agree() {
    let m = markers(DEFAULT_MARKERS);
    let matcher = MarkerMatcher::new(&m);
    let naive = MarkerMatcher::new_naive(&m);
    let samples: &[(&str, &[u8])] = &[
        ("/a?b=%2527%2520or%25201%253D1", b""),
        ("/", b"cmd=ls;cat /etc/shadow"),
        ("/x", b"<!ENTITY xxe SYSTEM"),
        ("/ok", b"hello"),
    ];
    for (target, body) in samples {
        let via_set = matcher.find_index(target.as_bytes(), std::iter::empty(), body);
        let via_fn = is_malicious(&m, target, &[] as &[(&str, &str)], body)
            .and_then(|found| m.iter().position(|x| x == found));
        let via_naive = naive.find_index(target.as_bytes(), std::iter::empty(), body);
        assert_eq!(via_set, via_fn, "{target}");
        assert_eq!(via_set, via_naive, "{target}");
        let none: &[(&str, &str)] = &[];
        assert_eq!(
            matcher.find(target, none, body),
            via_set.map(|i| m[i].as_str()),
            "{target}"
        );
    }
    assert_eq!(
        matcher.find_index(b"/a?b=%2527%2520or%25201%253D1", std::iter::empty(), b""),
        m.iter().position(|x| x == "' or 1=1")
    );
}

// ---------------------------------------------------------------- behaviour (no sockets)

#[test]
fn fault_shares_are_exact_per_block_and_seeded() {
    let faults = Faults {
        error_500_share: 0.1,
        ext_proc_error_share: 0.05,
        reset_share: 0.02,
        stall_share: 0.03,
        ..Faults::default()
    };
    let draw_all = |seed: u64| {
        let mut dice = Dice::new(seed, &faults, &Delay::None);
        (0..1000).map(|_| dice.draw().0).collect::<Vec<_>>()
    };
    let outcomes = draw_all(7);
    let count = |kind: FaultOutcome, n: usize| outcomes[..n].iter().filter(|o| **o == kind).count();
    for n in [100, 500, 1000] {
        assert_eq!(count(FaultOutcome::Error500, n), n / 10);
        assert_eq!(count(FaultOutcome::ExtProcError, n), n / 20);
        assert_eq!(count(FaultOutcome::Reset, n), n * 2 / 100);
        assert_eq!(count(FaultOutcome::Stall, n), n * 3 / 100);
    }
    assert_eq!(outcomes, draw_all(7));
    assert_ne!(outcomes, draw_all(8));
    // Shares finer than 1/100 are carried across blocks.
    let rare = Faults {
        error_500_share: 0.005,
        ..Faults::default()
    };
    let mut dice = Dice::new(1, &rare, &Delay::None);
    let errors = (0..1000)
        .filter(|_| dice.draw().0 == FaultOutcome::Error500)
        .count();
    assert_eq!(errors, 5);
}

#[test]
fn delays_follow_their_distribution_and_seed() {
    let uniform = Delay::Uniform {
        min: Duration::from_millis(2),
        max: Duration::from_millis(4),
    };
    let sample = |delay: &Delay, seed: u64| {
        let mut dice = Dice::new(seed, &Faults::default(), delay);
        (0..2000).map(|_| dice.draw().1).collect::<Vec<_>>()
    };
    let a = sample(&uniform, 3);
    assert_eq!(a, sample(&uniform, 3));
    assert!(a
        .iter()
        .all(|d| *d >= Duration::from_millis(2) && *d <= Duration::from_millis(4)));
    let mean_ms = a.iter().map(|d| d.as_secs_f64()).sum::<f64>() / a.len() as f64 * 1e3;
    assert!((mean_ms - 3.0).abs() < 0.1, "uniform mean {mean_ms}");

    let expo = sample(
        &Delay::Exponential {
            mean: Duration::from_millis(10),
        },
        4,
    );
    let mean_ms = expo.iter().map(|d| d.as_secs_f64()).sum::<f64>() / expo.len() as f64 * 1e3;
    assert!((mean_ms - 10.0).abs() < 1.0, "exponential mean {mean_ms}");

    let table = Delay::Table(vec![
        QuantilePoint {
            q: 0.0,
            at: Duration::from_millis(1),
        },
        QuantilePoint {
            q: 0.5,
            at: Duration::from_millis(2),
        },
        QuantilePoint {
            q: 0.99,
            at: Duration::from_millis(40),
        },
        QuantilePoint {
            q: 1.0,
            at: Duration::from_millis(50),
        },
    ]);
    let Delay::Table(points) = &table else {
        unreachable!()
    };
    let ms = |u: f64| table_quantile(points, u).as_secs_f64() * 1e3;
    assert!((ms(0.25) - 1.5).abs() < 1e-6);
    assert!((ms(0.5) - 2.0).abs() < 1e-6);
    assert!((ms(0.99) - 40.0).abs() < 1e-6);
    assert!((ms(0.995) - 45.0).abs() < 1e-6);
    let mut t = sample(&table, 5);
    t.sort();
    let p25 = percentile(&t, 0.25).as_secs_f64() * 1e3;
    let p99 = percentile(&t, 0.99).as_secs_f64() * 1e3;
    assert!((p25 - 1.5).abs() < 0.1, "table p25 {p25}");
    assert!((p99 - 40.0).abs() < 5.0, "table p99 {p99}");
    assert_eq!(
        sample(&Delay::Fixed(Duration::from_millis(5)), 0)[17],
        Duration::from_millis(5)
    );
}

#[test]
fn rate_window_counts_the_last_second() {
    let origin = tokio::time::Instant::now();
    let mut window = RateWindow::new(origin);
    for i in 0..50 {
        window.record(origin + Duration::from_millis(i * 10));
    }
    assert_eq!(window.record(origin + Duration::from_millis(500)), 51);
    // At 1.6 s only arrivals after 0.6 s count: none of the earlier 51, just this one.
    assert_eq!(window.record(origin + Duration::from_millis(1600)), 1);
}

#[test]
fn validation_names_the_field() {
    let mut config = TargetConfig::default();
    config.faults.error_500_share = 0.7;
    config.faults.reset_share = 0.7;
    let message = validate(&config).unwrap_err().to_string();
    assert!(message.contains("exceeds 1"), "{message}");

    let mut config = TargetConfig::default();
    config.markers.push(String::new());
    assert!(validate(&config)
        .unwrap_err()
        .to_string()
        .contains("markers[22]"));

    let config = TargetConfig {
        delay: Delay::Uniform {
            min: Duration::from_millis(5),
            max: Duration::from_millis(1),
        },
        ..TargetConfig::default()
    };
    assert!(validate(&config)
        .unwrap_err()
        .to_string()
        .contains("delay.uniform"));

    let mut config = TargetConfig::default();
    config.faults.capacity = Some(Capacity {
        workers: 0,
        service_time: Duration::from_millis(1),
    });
    assert!(validate(&config)
        .unwrap_err()
        .to_string()
        .contains("workers"));
    assert!(validate(&TargetConfig::default()).is_ok());
    assert_eq!(DEFAULT_MARKERS.len(), 22);
}

#[test]
fn config_reads_human_durations() {
    let json = r#"{
        "listen": "127.0.0.1:0",
        "delay": {"uniform": {"min": "1ms", "max": "1.5s"}},
        "faults": {"stall_share": 0.1, "stall_for": "250us", "upstream_service_time": "7ms",
                   "pause": {"after": 2, "length": "500ms"}}
    }"#;
    let config: TargetConfig = serde_json::from_str(json).expect("parses");
    assert_eq!(
        config.delay,
        Delay::Uniform {
            min: Duration::from_millis(1),
            max: Duration::from_millis(1500)
        }
    );
    assert_eq!(config.faults.stall_for, Duration::from_micros(250));
    assert_eq!(
        config.faults.upstream_service_time,
        Some(Duration::from_millis(7))
    );
    assert_eq!(
        config.faults.pause.as_ref().map(|p| p.after),
        Some(Duration::from_secs(2))
    );
    assert_eq!(config.block_status, 403);
    assert_eq!(config.markers.len(), DEFAULT_MARKERS.len());
    let round_trip: TargetConfig =
        serde_json::from_str(&serde_json::to_string(&config).expect("serializes"))
            .expect("reparses");
    assert_eq!(round_trip.delay, config.delay);
    assert!(serde_json::from_str::<TargetConfig>(r#"{"delay": {"fixed": "5 parsecs"}}"#).is_err());
    assert_eq!(
        duration_serde::format(Duration::from_millis(1500)),
        "1500ms"
    );
}

// ---------------------------------------------------------------- server, known answers

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_markers_and_passes_benign() {
    bounded(async {
        let target = start_with(TargetConfig::default()).await;
        let addr = target.addr;
        assert_eq!(target.url(), format!("http://{addr}/"));
        let mut conn = h1_connect(addr).await;

        let blocked_cases = vec![
            with_header(get("/search?q=%3Cscript%3Ealert(1)"), "x-request-id", "q-1"),
            with_header(
                get("/files/%2e%2e%2f%2e%2e%2fetc%2fpasswd"),
                "x-request-id",
                "p-1",
            ),
            with_header(
                with_header(get("/"), "user-agent", "${jndi:ldap://127.0.0.1/a}"),
                "x-request-id",
                "h-1",
            ),
            with_header(
                request("POST", "/api/pets", r#"{"name":"x' OR '1'='1"}"#),
                "x-request-id",
                "b-1",
            ),
        ];
        for req in blocked_cases {
            let id = req.headers()["x-request-id"].to_str().unwrap().to_string();
            let reply = h1_send(&mut conn, req).await.expect("answered");
            assert_eq!(reply.status, StatusCode::FORBIDDEN, "{id}");
            assert!(reply.body.contains(BLOCK_PAGE_MARKER), "{}", reply.body);
            assert!(reply.body.contains(&id), "{}", reply.body);
            assert_eq!(reply.headers["x-request-id"], id.as_str());
        }

        let reply = h1_send(
            &mut conn,
            with_header(get("/api/pets?limit=10"), "x-request-id", "ok-1"),
        )
        .await
        .expect("answered");
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.body, "ok ok-1\n");
        assert_eq!(reply.headers["x-request-id"], "ok-1");

        // Without an id header the target makes one up and still echoes it.
        let reply = h1_send(&mut conn, get("/plain")).await.expect("answered");
        assert_eq!(reply.status, StatusCode::OK);
        let generated = reply.headers["x-request-id"].to_str().unwrap().to_string();
        assert!(generated.starts_with("tgt-"), "{generated}");
        assert_eq!(reply.body, format!("ok {generated}\n"));

        let reply = h1_send(&mut conn, get("/__wafload/health?x=%3Cscript%3E"))
            .await
            .expect("answered");
        assert_eq!(reply.status, StatusCode::OK);

        let stats = target.stats();
        assert_eq!(stats.requests, 6);
        assert_eq!(stats.blocked, 4);
        assert_eq!(stats.passed, 2);
        assert_eq!(stats.health_checks, 1);
        assert_eq!(stats.by_method.get("GET"), Some(&5));
        assert_eq!(stats.by_method.get("POST"), Some(&1));
        assert_eq!(stats.connections, 1, "keep-alive reused one connection");
        target.shutdown().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_never_faulted_or_blocked() {
    bounded(async {
        let mut config = TargetConfig::default();
        config.faults.error_500_share = 1.0;
        config.block_status = 406;
        let target = start_with(config).await;
        let reply = h1_once(target.addr, get("/__wafload/health"))
            .await
            .expect("answered");
        assert_eq!(reply.status, StatusCode::OK);
        let reply = h1_once(target.addr, get("/anything"))
            .await
            .expect("answered");
        assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(target.stats().errors_500, 1);
        target.shutdown().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitoring_passes_and_logs_would_blocks() {
    bounded(async {
        let log_path = temp_log_path("monitoring");
        let config = TargetConfig {
            monitoring: true,
            log_path: Some(log_path.clone()),
            ..TargetConfig::default()
        };
        let target = start_with(config).await;
        let reply = h1_once(
            target.addr,
            with_header(
                get("/?q=%3Cscript%3Ealert(1)%3C/script%3E"),
                "x-request-id",
                "mon-42",
            ),
        )
        .await
        .expect("answered");
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.body, "ok mon-42\n");
        let benign = h1_once(target.addr, get("/fine")).await.expect("answered");
        assert_eq!(benign.status, StatusCode::OK);
        let stats = target.stats();
        assert_eq!((stats.would_block, stats.blocked, stats.passed), (1, 0, 2));
        target.shutdown().await;

        let text = std::fs::read_to_string(&log_path).expect("log written");
        let _ = std::fs::remove_file(&log_path);
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("JSON line"))
            .collect();
        assert_eq!(lines.len(), 1, "{text}");
        let line = &lines[0];
        assert_eq!(line["id"], "mon-42");
        assert_eq!(line["rule"], "marker");
        assert_eq!(line["marker"], "<script");
        assert_eq!(line["would_block"], true);
        assert!(line["ts"].as_f64().is_some_and(|ts| ts > 1.6e9));
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixed_delay_sets_the_latency_floor() {
    bounded(async {
        let config = TargetConfig {
            delay: Delay::Fixed(Duration::from_millis(5)),
            ..TargetConfig::default()
        };
        let target = start_with(config).await;
        let mut conn = h1_connect(target.addr).await;
        let mut latencies = Vec::with_capacity(50);
        for _ in 0..50 {
            let sent = std::time::Instant::now();
            let reply = h1_send(&mut conn, get("/timed")).await.expect("answered");
            latencies.push(sent.elapsed());
            assert_eq!(reply.status, StatusCode::OK);
        }
        latencies.sort();
        let (min, median, max) = (latencies[0], percentile(&latencies, 0.5), latencies[49]);
        eprintln!(
            "fixed 5ms delay, 50 sequential requests: min {min:?} median {median:?} max {max:?}"
        );
        assert!(min >= Duration::from_millis(5), "min {min:?}");
        assert!(median < Duration::from_millis(10), "median {median:?}");
        target.shutdown().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_holds_requests_until_the_window_ends() {
    bounded(async {
        let mut config = TargetConfig::default();
        config.faults.pause = Some(Pause {
            after: Duration::from_millis(300),
            length: Duration::from_millis(400),
        });
        let target = start_with(config).await;
        let started = target.started_at();

        let before = tokio::time::Instant::now();
        let reply = h1_once(target.addr, get("/early")).await.expect("answered");
        assert_eq!(reply.status, StatusCode::OK);
        assert!(
            before.elapsed() < Duration::from_millis(250),
            "pre-pause request was held"
        );

        tokio::time::sleep_until(started + Duration::from_millis(400)).await;
        let sent = tokio::time::Instant::now();
        let reply = h1_once(target.addr, get("/during"))
            .await
            .expect("answered");
        let done = tokio::time::Instant::now();
        assert_eq!(reply.status, StatusCode::OK);
        eprintln!(
            "pause [300ms, 700ms): request sent at {:?} answered at {:?} after start",
            sent - started,
            done - started
        );
        assert!(done >= started + Duration::from_millis(700));
        assert!(done < started + Duration::from_millis(1200));

        let reply = h1_once(target.addr, get("/after")).await.expect("answered");
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(target.stats().paused, 1);
        target.shutdown().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capacity_limits_throughput() {
    bounded(async {
        let mut config = TargetConfig::default();
        config.faults.capacity = Some(Capacity {
            workers: 2,
            service_time: Duration::from_millis(10),
        });
        let target = start_with(config).await;
        let addr = target.addr;
        let began = std::time::Instant::now();
        let tasks: Vec<_> = (0..40)
            .map(|i| tokio::spawn(async move { h1_once(addr, get(&format!("/c{i}"))).await }))
            .collect();
        for task in tasks {
            let reply = task.await.expect("task").expect("answered");
            assert_eq!(reply.status, StatusCode::OK);
        }
        let total = began.elapsed();
        eprintln!("capacity 2 workers x 10ms: 40 concurrent requests took {total:?}");
        assert!(total >= Duration::from_millis(200), "{total:?}");
        assert!(total < Duration::from_secs(3), "{total:?}");
        target.shutdown().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_fault_sends_tcp_rst_not_a_response() {
    bounded(async {
        let mut config = TargetConfig::default();
        config.faults.reset_share = 1.0;
        let target = start_with(config).await;

        let error = h1_once(target.addr, get("/r"))
            .await
            .expect_err("no response");
        eprintln!("hyper client error on injected reset: {error}");

        // At the socket level the close is an RST (SO_LINGER 0), not an orderly FIN.
        let mut raw = TcpStream::connect(target.addr).await.expect("connect");
        raw.write_all(b"GET /r HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
            .await
            .expect("write");
        let mut buffer = [0u8; 64];
        let read = raw.read(&mut buffer).await;
        assert!(
            matches!(&read, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset),
            "expected ECONNRESET, got {read:?}"
        );
        let stats = target.stats();
        assert_eq!(
            (stats.injected_resets, stats.resets, stats.passed),
            (2, 2, 0)
        );
        target.shutdown().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_attacks_h1_and_h2_streams() {
    bounded(async {
        let mut config = TargetConfig::default();
        config.faults.reset_attacks = true;
        let target = start_with(config).await;

        assert!(h1_once(target.addr, get("/?q=%3Cscript%3E")).await.is_err());
        let reply = h1_once(target.addr, get("/fine")).await.expect("answered");
        assert_eq!(reply.status, StatusCode::OK);

        // HTTP/2 (h2c prior knowledge): only the attack's stream is reset.
        let stream = TcpStream::connect(target.addr).await.expect("connect");
        let (mut sender, conn) = http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("h2c handshake");
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let base = format!("http://{}", target.addr);
        let attack = h2_send(&mut sender, get(&format!("{base}/?q=union%20select"))).await;
        assert!(attack.is_err(), "{attack:?}");
        let reply = h2_send(&mut sender, get(&format!("{base}/after")))
            .await
            .expect("same connection still answers");
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.version, Version::HTTP_2);

        let stats = target.stats();
        assert_eq!(
            (stats.attack_resets, stats.blocked, stats.http2_requests),
            (2, 0, 2)
        );
        target.shutdown().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ext_proc_error_is_envoys_500() {
    bounded(async {
        let mut config = TargetConfig::default();
        config.faults.ext_proc_error_share = 1.0;
        let target = start_with(config).await;
        let reply = h1_once(target.addr, with_header(get("/x"), "x-request-id", "e-1"))
            .await
            .expect("answered");
        assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            reply.body,
            "ext_proc_error_gRPC_error_14{upstream_connect_error}"
        );
        assert_eq!(reply.headers["x-request-id"], "e-1");
        assert_eq!(target.stats().ext_proc_errors, 1);
        target.shutdown().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_shares_are_exact_over_100_requests() {
    bounded(async {
        let mut config = TargetConfig::default();
        config.faults.error_500_share = 0.1;
        config.faults.ext_proc_error_share = 0.05;
        config.seed = 99;
        let target = start_with(config).await;
        let mut conn = h1_connect(target.addr).await;
        let (mut plain, mut envoy, mut ok) = (0, 0, 0);
        for i in 0..100 {
            let reply = h1_send(&mut conn, get(&format!("/n{i}")))
                .await
                .expect("answered");
            match (reply.status, reply.body.as_str()) {
                (StatusCode::OK, _) => ok += 1,
                (StatusCode::INTERNAL_SERVER_ERROR, EXT_PROC_ERROR_BODY) => envoy += 1,
                (StatusCode::INTERNAL_SERVER_ERROR, _) => plain += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!((plain, envoy, ok), (10, 5, 85));
        assert_eq!(target.stats().errors_injected(), 15);
        target.shutdown().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_negotiates_h2_via_alpn() {
    bounded(async {
        let config = TargetConfig {
            tls: true,
            ..TargetConfig::default()
        };
        let target = start_with(config).await;
        assert!(target.url().starts_with("https://127.0.0.1:"));
        let pem = target.cert_pem.clone().expect("certificate PEM");

        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
            roots.add(cert.expect("PEM parses")).expect("trusted");
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let client_config = |alpn: &[&[u8]]| {
            let mut c = rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .expect("versions")
                .with_root_certificates(roots.clone())
                .with_no_client_auth();
            c.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
            tokio_rustls::TlsConnector::from(Arc::new(c))
        };

        // h2 offered first: the target picks h2, and the request is served over HTTP/2.
        let tcp = TcpStream::connect(target.addr).await.expect("connect");
        let tls = client_config(&[b"h2", b"http/1.1"])
            .connect(ServerName::try_from("localhost").expect("name"), tcp)
            .await
            .expect("TLS handshake with the generated certificate");
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        let (mut sender, conn) = http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .expect("h2 handshake");
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let base = format!("https://localhost:{}", target.addr.port());
        let reply = h2_send(
            &mut sender,
            with_header(get(&format!("{base}/tls")), "x-request-id", "t-2"),
        )
        .await
        .expect("answered");
        assert_eq!(
            (reply.status, reply.version),
            (StatusCode::OK, Version::HTTP_2)
        );
        assert_eq!(reply.body, "ok t-2\n");
        let reply = h2_send(&mut sender, get(&format!("{base}/?x=%3CSCRIPT%3E")))
            .await
            .expect("answered");
        assert_eq!(reply.status, StatusCode::FORBIDDEN);

        // http/1.1 only, by IP address: the certificate covers 127.0.0.1 too.
        let tcp = TcpStream::connect(target.addr).await.expect("connect");
        let tls = client_config(&[b"http/1.1"])
            .connect(ServerName::try_from("127.0.0.1").expect("ip"), tcp)
            .await
            .expect("TLS handshake by IP");
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
        let (mut sender, conn) = http1::handshake(TokioIo::new(tls))
            .await
            .expect("h1 handshake");
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let reply = h1_send(&mut sender, get("/tls1")).await.expect("answered");
        assert_eq!(
            (reply.status, reply.version),
            (StatusCode::OK, Version::HTTP_11)
        );

        let stats = target.stats();
        assert_eq!((stats.requests, stats.http2_requests), (3, 2));
        target.shutdown().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_service_time_header_and_sleep() {
    bounded(async {
        let mut config = TargetConfig::default();
        config.faults.upstream_service_time = Some(Duration::from_millis(7));
        let target = start_with(config).await;
        let sent = std::time::Instant::now();
        let reply = h1_once(target.addr, get("/up")).await.expect("answered");
        let took = sent.elapsed();
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.headers[UPSTREAM_SERVICE_TIME_HEADER], "7");
        assert!(took >= Duration::from_millis(7), "{took:?}");
        // Blocked requests never reach the upstream: no header.
        let reply = h1_once(target.addr, get("/?a=../../x"))
            .await
            .expect("answered");
        assert_eq!(reply.status, StatusCode::FORBIDDEN);
        assert!(reply.headers.get(UPSTREAM_SERVICE_TIME_HEADER).is_none());
        target.shutdown().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fails_open_above_the_arrival_rate() {
    bounded(async {
        let mut config = TargetConfig::default();
        config.faults.fail_open_above = Some(20.0);
        let target = start_with(config).await;
        let mut conn = h1_connect(target.addr).await;
        let began = std::time::Instant::now();
        let mut statuses = Vec::new();
        for _ in 0..50 {
            let reply = h1_send(&mut conn, get("/?q=%3Cscript%3E"))
                .await
                .expect("answered");
            statuses.push(reply.status);
        }
        let elapsed = began.elapsed();
        let stats = target.stats();
        eprintln!(
            "fail-open above 20 req/s: 50 attacks in {elapsed:?}: blocked {} failed open {}",
            stats.blocked, stats.failed_open
        );
        assert!(statuses[..20].iter().all(|s| *s == StatusCode::FORBIDDEN));
        assert_eq!(stats.blocked + stats.failed_open, 50);
        if elapsed < Duration::from_millis(900) {
            assert_eq!((stats.blocked, stats.failed_open), (20, 30));
        }
        target.shutdown().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_body_gets_413() {
    bounded(async {
        let target = start_with(TargetConfig::default()).await;
        let big = "a".repeat(MAX_BODY_BYTES + 1);
        let reply = h1_once(target.addr, request("POST", "/upload", &big))
            .await
            .expect("answered");
        assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
        let fits = "a".repeat(MAX_BODY_BYTES);
        let reply = h1_once(target.addr, request("POST", "/upload", &fits))
            .await
            .expect("answered");
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(target.stats().too_large, 1);
        target.shutdown().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_is_bounded_with_a_stalled_request() {
    bounded(async {
        let mut config = TargetConfig::default();
        config.faults.stall_share = 1.0;
        config.faults.stall_for = Duration::from_secs(60);
        let target = start_with(config).await;
        let addr = target.addr;
        let in_flight = tokio::spawn(async move { h1_once(addr, get("/stuck")).await });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(target.stats().stalled, 1, "counted when the stall starts");
        let began = std::time::Instant::now();
        target.shutdown().await;
        let took = began.elapsed();
        eprintln!("shutdown with a 60s-stalled request took {took:?}");
        assert!(
            took < SHUTDOWN_GRACE + Duration::from_millis(1500),
            "{took:?}"
        );
        assert!(in_flight.await.expect("task").is_err());
        assert!(TcpStream::connect(addr).await.is_err(), "still listening");
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_fault_over_tls_h1() {
    bounded(async {
        let mut config = TargetConfig {
            tls: true,
            ..TargetConfig::default()
        };
        config.faults.reset_share = 1.0;
        let target = start_with(config).await;
        let pem = target.cert_pem.clone().expect("certificate PEM");
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
            roots.add(cert.expect("PEM parses")).expect("trusted");
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        client.alpn_protocols = vec![b"http/1.1".to_vec()];
        let tcp = TcpStream::connect(target.addr).await.expect("connect");
        let tls = tokio_rustls::TlsConnector::from(Arc::new(client))
            .connect(ServerName::try_from("localhost").expect("name"), tcp)
            .await
            .expect("TLS handshake");
        let (mut sender, conn) = http1::handshake(TokioIo::new(tls))
            .await
            .expect("h1 handshake");
        tokio::spawn(async move {
            let _ = conn.await;
        });
        assert!(h1_send(&mut sender, get("/r")).await.is_err());
        assert_eq!(target.stats().injected_resets, 1);
        target.shutdown().await;
    })
    .await
}

#[test]
fn new_fault_fields_are_validated_by_name() {
    let message = |config: &TargetConfig| validate(config).unwrap_err().to_string();
    let mut config = TargetConfig::default();
    config.faults.reset_mid_body_share = 0.6;
    config.faults.slow_drip_share = 0.6;
    assert!(message(&config).contains("exceeds 1"));

    let mut config = TargetConfig::default();
    config.faults.garbage_status_share = 1.5;
    assert!(message(&config).contains("faults.garbage_status_share = 1.5"));

    let mut config = TargetConfig {
        tls: true,
        ..TargetConfig::default()
    };
    config.faults.bad_chunked_share = 0.1;
    assert!(message(&config).contains("plain-text target"));

    let mut config = TargetConfig::default();
    config.faults.tls_fail_every = Some(2);
    assert!(message(&config).contains("faults.tls_fail_every needs tls: true"));

    for field in ["close_after", "drop_after", "h2_max_concurrent_streams"] {
        let mut config = TargetConfig::default();
        match field {
            "close_after" => config.faults.close_after = Some(0),
            "drop_after" => config.faults.drop_after = Some(0),
            _ => config.faults.h2_max_concurrent_streams = Some(0),
        }
        assert!(message(&config).contains(&format!("faults.{field} must be at least 1")));
    }

    let mut config = TargetConfig::default();
    config.faults.slow_drip_share = 0.1;
    config.faults.slow_drip.chunk = 0;
    assert!(message(&config).contains("slow_drip.chunk"));
}

#[test]
fn old_fault_configs_still_parse_and_new_fields_default_off() {
    let yaml = "faults:\n  reset_share: 0.1\n  stall_for: 2s\n";
    let config: TargetConfig = serde_yaml_ng::from_str(yaml).unwrap();
    assert_eq!(config.faults.reset_share, 0.1);
    assert_eq!(config.faults.reset_mid_body_share, 0.0);
    assert_eq!(config.faults.close_after, None);
    assert_eq!(config.faults.slow_drip, Drip::default());
    let yaml = "faults:\n  slow_drip: {bytes: 10, chunk: 3, every: 5ms}\n  close_after: 7\n";
    let config: TargetConfig = serde_yaml_ng::from_str(yaml).unwrap();
    assert_eq!(config.faults.close_after, Some(7));
    assert_eq!(config.faults.slow_drip.length(), Duration::from_millis(15));
}

#[test]
fn new_kinds_are_dealt_with_exact_counts() {
    let all = Faults {
        reset_after_headers_share: 0.1,
        reset_mid_body_share: 0.1,
        garbage_status_share: 0.1,
        bad_chunked_share: 0.1,
        slow_drip_share: 0.1,
        ..Faults::default()
    };
    let mut dice = Dice::new(9, &all, &Delay::None);
    let mut counts = std::collections::HashMap::new();
    for _ in 0..200 {
        *counts.entry(dice.draw().0).or_insert(0) += 1;
    }
    for kind in [
        FaultOutcome::ResetAfterHeaders,
        FaultOutcome::ResetMidBody,
        FaultOutcome::GarbageStatus,
        FaultOutcome::BadChunked,
        FaultOutcome::SlowDrip,
    ] {
        assert_eq!(counts[&kind], 20, "{kind:?}");
    }
    assert_eq!(counts[&FaultOutcome::Normal], 100);
}
