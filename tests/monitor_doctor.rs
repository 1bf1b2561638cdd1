//! Monitoring-mode detection and the doctor against the calibration target (no lab needed):
//! the target's monitoring log, read with its preset and with the generic JSON-lines
//! reading, gives exactly the blocking detection; and each doctor diagnosis is produced by
//! a target that misbehaves in that way (ext_proc 500s, resets, false positives, 404s,
//! refused connections, TLS).

mod common;

use common::*;
use std::time::Duration;
use wafload::classify::monitor::{MonitorPreset, MonitorSpec};
use wafload::doctor::{diagnose, Diagnosis, DoctorOptions, Severity};
use wafload::profile::Profile;
use wafload::record::read_records;
use wafload::target::{self, Faults, TargetConfig};

fn has(findings: &[Diagnosis], pred: impl Fn(&Diagnosis) -> bool) -> bool {
    findings.iter().any(pred)
}

async fn doctor(p: &Profile) -> Vec<Diagnosis> {
    let report = diagnose(p, &DoctorOptions::default()).await.unwrap();
    eprint!("{}", report.render());
    report.findings
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_monitoring_log_gives_the_blocking_detection() {
    let _guard = TIMING.lock().await;
    let results = tempfile::tempdir().unwrap();
    let corpus = [manifest_dir().join("payloads")];

    let blocking = target::start(TargetConfig::default()).await.unwrap();
    let mut p = profile(&blocking.url(), &corpus, results.path());
    p.rate = Some(400.0);
    let reference = run_profile(&p).await.summary;
    blocking.shutdown().await;
    assert!(reference.detection.attacks.blocked > 100);

    let log = results.path().join("target-monitoring.jsonl");
    let monitoring = target::start(TargetConfig {
        monitoring: true,
        log_path: Some(log.clone()),
        ..TargetConfig::default()
    })
    .await
    .unwrap();
    let readings = [
        MonitorSpec::preset(MonitorPreset::WafloadTarget, &log),
        MonitorSpec {
            preset: None,
            id_field: Some("id".into()),
            pattern: Some(r#""would_block":\s*true"#.into()),
            ..MonitorSpec::preset(MonitorPreset::WafloadTarget, &log)
        },
    ];
    for spec in readings {
        let mut p = profile(&monitoring.url(), &corpus, results.path());
        p.rate = Some(400.0);
        p.monitor = Some(spec);
        let outcome = run_profile(&p).await;
        let s = &outcome.summary;
        assert_eq!(
            s.statuses.len(),
            1,
            "monitoring answers 200 only: {:?}",
            s.statuses
        );
        assert_eq!(s.detection.attacks, reference.detection.attacks);
        assert_eq!(s.detection.benign, reference.detection.benign);
        assert_eq!(s.detection.by_case, reference.detection.by_case);
        assert_eq!(s.score, reference.score);
        let m = s.monitor.as_ref().unwrap();
        assert_eq!(
            m.would_block,
            reference.detection.attacks.blocked + reference.detection.benign.blocked
        );
        // Earlier runs' entries in the same log are not read again.
        assert_eq!(m.foreign, 0, "{m:?}");
        assert_eq!(m.lines, m.matched);
        let records = read_records(&outcome.dir).unwrap();
        let wb = records.iter().filter(|r| r["wb"] == true).count() as u64;
        assert_eq!(wb, m.would_block);
        assert_eq!(records.len() as u64, s.sent);
        // Per-second series and latency classes moved too.
        let series = wafload::results::load_series(&outcome.dir).unwrap();
        let blocked: u64 = series.iter().map(|x| x.blocked).sum();
        assert_eq!(blocked, s.counts["blocked"]);
        assert_eq!(s.latency["blocked"].count, s.counts["blocked"]);
    }
    monitoring.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_monitor_log_keeps_the_run_and_says_why() {
    let _guard = TIMING.lock().await;
    let results = tempfile::tempdir().unwrap();
    let t = target::start(TargetConfig {
        monitoring: true,
        ..TargetConfig::default()
    })
    .await
    .unwrap();
    let mut p = profile(&t.url(), &[fixture("known")], results.path());
    p.rate = Some(200.0);
    let mut spec = MonitorSpec::preset(
        MonitorPreset::WafloadTarget,
        results.path().join("never-written.jsonl"),
    );
    spec.settle = Duration::from_millis(50);
    spec.wait = Duration::from_millis(200);
    p.monitor = Some(spec);
    let s = run_profile(&p).await.summary;
    assert_eq!(s.detection.attacks.blocked, 0);
    assert_eq!(s.detection_source.as_deref(), Some("responses"));
    let m = s.monitor.unwrap();
    assert!(m.error.unwrap().contains("does not exist"));
    assert!(s
        .hints
        .iter()
        .any(|h| h.contains("could not be read from the WAF log")));
    t.shutdown().await;
}

fn bare(url: &str) -> Profile {
    let mut p = Profile::default();
    p.target.url = url.to_string();
    p.timeout = Duration::from_secs(3);
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_on_a_blocking_target_is_all_ok() {
    let t = target::start(TargetConfig::default()).await.unwrap();
    let f = doctor(&bare(&t.url())).await;
    assert!(
        f.contains(&Diagnosis::AttacksBlocked { blocked: 4, of: 4 }),
        "{f:?}"
    );
    assert!(f.iter().all(|d| d.severity() == Severity::Ok), "{f:?}");
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_attacks_answered_200_mean_monitoring_or_not_in_path() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("mon.jsonl");
    let t = target::start(TargetConfig {
        monitoring: true,
        log_path: Some(log.clone()),
        ..TargetConfig::default()
    })
    .await
    .unwrap();
    let f = doctor(&bare(&t.url())).await;
    let d = f
        .iter()
        .find(|d| {
            matches!(
                d,
                Diagnosis::NotBlocking {
                    monitor_log: None,
                    ..
                }
            )
        })
        .unwrap_or_else(|| panic!("{f:?}"));
    assert!(d
        .message()
        .contains("monitoring mode, or not in the request path"));
    assert!(d.message().contains("0 %"));
    let mut p = bare(&t.url());
    p.monitor = Some(MonitorSpec::preset(MonitorPreset::WafloadTarget, &log));
    let f = doctor(&p).await;
    assert!(
        has(&f, |d| matches!(
            d,
            Diagnosis::MonitorConfirms { seen: 4, of: 4, .. }
        )),
        "{f:?}"
    );
    // A log path that does not exist.
    p.monitor = Some(MonitorSpec::preset(
        MonitorPreset::WafloadTarget,
        dir.path().join("typo.jsonl"),
    ));
    let f = doctor(&p).await;
    assert!(
        has(&f, |d| matches!(d, Diagnosis::MonitorLogMissing { .. })),
        "{f:?}"
    );
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_ext_proc_500s_point_at_grpc_port_declaration() {
    let t = target::start(TargetConfig {
        faults: Faults {
            ext_proc_error_share: 1.0,
            ..Faults::default()
        },
        ..TargetConfig::default()
    })
    .await
    .unwrap();
    let f = doctor(&bare(&t.url())).await;
    let d = f
        .iter()
        .find(
            |d| matches!(d, Diagnosis::ExtProcUnreachable { requests, .. } if requests.len() == 5),
        )
        .unwrap_or_else(|| panic!("{f:?}"));
    assert!(d.message().contains("appProtocol: grpc"));
    assert!(d.message().contains("ext_proc_error_gRPC_error_14"));
    assert_eq!(d.severity(), Severity::Error);
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_resets_on_attacks_suggest_reset_is_block() {
    let t = target::start(TargetConfig {
        faults: Faults {
            reset_attacks: true,
            ..Faults::default()
        },
        ..TargetConfig::default()
    })
    .await
    .unwrap();
    let mut p = bare(&t.url());
    let f = doctor(&p).await;
    let d = f
        .iter()
        .find(|d| matches!(d, Diagnosis::ResetsOnAttacks { attacks } if attacks.len() == 4))
        .unwrap_or_else(|| panic!("{f:?}"));
    assert!(d.message().contains("reset_is_block"));
    assert!(has(&f, |d| matches!(d, Diagnosis::BenignPassed { .. })));
    p.classify.reset_is_block = true;
    let f = doctor(&p).await;
    assert!(
        f.contains(&Diagnosis::AttacksBlocked { blocked: 4, of: 4 }),
        "{f:?}"
    );
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_names_the_benign_request_that_was_blocked() {
    let mut markers: Vec<String> = wafload::target::DEFAULT_MARKERS
        .iter()
        .map(|m| m.to_string())
        .collect();
    markers.push("hello".into());
    let t = target::start(TargetConfig {
        markers,
        ..TargetConfig::default()
    })
    .await
    .unwrap();
    let f = doctor(&bare(&t.url())).await;
    assert!(
        f.contains(&Diagnosis::BenignBlocked {
            request: "GET /?q=hello (benign)".into(),
            status: Some(403)
        }),
        "{f:?}"
    );
    t.shutdown().await;
}

/// A loopback server that answers every request 404 (a wrong path or virtual host).
async fn not_found_server() -> (String, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        // Bounded: the doctor opens at most a handful of connections.
        for _ in 0..20 {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut seen = Vec::new();
                for _ in 0..64 {
                    let n = match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    seen.extend_from_slice(&buf[..n]);
                    while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                        seen.drain(..end + 4);
                        let reply = b"HTTP/1.1 404 Not Found\r\ncontent-length: 9\r\n\r\nnot found";
                        if socket.write_all(reply).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    (url, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_404s_point_at_path_or_host() {
    let (url, task) = not_found_server().await;
    let f = doctor(&bare(&url)).await;
    let d = f
        .iter()
        .find(|d| matches!(d, Diagnosis::NotFound { requests } if requests.len() == 5))
        .unwrap_or_else(|| panic!("{f:?}"));
    assert!(d.message().contains("target.host"));
    assert!(!has(&f, |d| matches!(d, Diagnosis::NotBlocking { .. })));
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_refused_port_and_tls_problems() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let f = doctor(&bare(&format!("http://127.0.0.1:{port}/"))).await;
    assert!(matches!(&f[..], [Diagnosis::Unreachable { .. }]), "{f:?}");

    let t = target::start(TargetConfig {
        tls: true,
        ..TargetConfig::default()
    })
    .await
    .unwrap();
    let mut p = bare(&t.url());
    let f = doctor(&p).await;
    assert!(
        has(&f, |d| matches!(
            d,
            Diagnosis::CertificateUntrusted {
                insecure: false,
                ..
            }
        )),
        "{f:?}"
    );
    p.target.insecure = true;
    let f = doctor(&p).await;
    assert!(
        has(
            &f,
            |d| matches!(d, Diagnosis::TlsOk { alpn: Some(a), .. } if a == "h2")
        ),
        "{f:?}"
    );
    assert!(f.contains(&Diagnosis::AttacksBlocked { blocked: 4, of: 4 }));
    // Trusting its certificate through ca_file: verified; then another SNI is a name mismatch.
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("target.pem");
    std::fs::write(&ca, t.cert_pem.as_ref().unwrap()).unwrap();
    p.target.insecure = false;
    p.target.ca_file = Some(ca);
    let f = doctor(&p).await;
    assert!(!has(&f, |d| d.severity() >= Severity::Warning), "{f:?}");
    p.target.sni = Some("shop.example.com".into());
    let f = doctor(&p).await;
    assert!(
        has(&f, |d| matches!(
            d,
            Diagnosis::CertificateNameMismatch {
                insecure: false,
                ..
            }
        )),
        "{f:?}"
    );
    // HTTP/2 demanded from an HTTP/1.1-only listener is not possible here (the target offers
    // both); asking for h1 over TLS simply gives ALPN http/1.1.
    p.target.sni = None;
    p.target.http = wafload::profile::HttpVersion::H1;
    let f = doctor(&p).await;
    assert!(
        has(
            &f,
            |d| matches!(d, Diagnosis::TlsOk { alpn: Some(a), .. } if a == "http/1.1")
        ),
        "{f:?}"
    );
    t.shutdown().await;
}

#[test]
fn cli_doctor_exit_codes_and_run_preflight_warnings() {
    use std::process::Command;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let monitoring = runtime
        .block_on(target::start(TargetConfig {
            monitoring: true,
            ..TargetConfig::default()
        }))
        .unwrap();
    let bin = env!("CARGO_BIN_EXE_wafload");
    let out = Command::new(bin)
        .args(["doctor", "--target", &monitoring.url()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("[warning] the WAF is not blocking"),
        "{stdout}"
    );
    let out = Command::new(bin)
        .args(["doctor", "--json", "--target", "http://127.0.0.1:9/"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["worst"], "error");
    assert_eq!(json["findings"][0]["kind"], "unreachable");

    // `run` prints the doctor's warnings first, and still runs.
    let results = tempfile::tempdir().unwrap();
    let out = Command::new(bin)
        .args(["run", "--quiet", "--target", &monitoring.url(), "--corpus"])
        .arg(fixture("known"))
        .arg("--results-dir")
        .arg(results.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.starts_with("preflight warning: the WAF is not blocking"),
        "{stderr}"
    );
    let out = Command::new(bin)
        .args([
            "run",
            "--quiet",
            "--no-preflight",
            "--target",
            &monitoring.url(),
            "--corpus",
        ])
        .arg(fixture("known"))
        .arg("--results-dir")
        .arg(results.path())
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&out.stderr).contains("preflight"));
    drop(monitoring);
    runtime.shutdown_timeout(Duration::from_millis(200));
}
