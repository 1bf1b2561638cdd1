//! Integration tests against the real WAF lab (nginx + ModSecurity v3 + OWASP CRS 3.3.4 on
//! loopback, `lab/lab.sh`): known attacks blocked and benign passed, monitoring-mode
//! detection from the audit log equal to blocking-mode detection, the doctor's diagnosis of
//! each front, and the TLS + HTTP/2 front. Each test starts its own lab; without the
//! packages they skip with a message, under CI=true they fail.

mod common;
#[path = "support/lab.rs"]
mod lab;

use common::*;
use std::path::PathBuf;
use wafload::classify::monitor::{MonitorPreset, MonitorSpec};
use wafload::doctor::{diagnose, Diagnosis, DoctorOptions};
use wafload::profile::Profile;
use wafload::record::read_records;
use wafload::results::Summary;

/// The lab at `paranoia`, or `None` (skip) outside CI when the packages are missing.
fn start_lab(paranoia: u8) -> Option<lab::Lab> {
    match lab::Lab::start(paranoia) {
        Ok(lab) => Some(lab),
        Err(why) if std::env::var("CI").as_deref() != Ok("true") => {
            eprintln!("SKIP: {why}");
            None
        }
        Err(why) => panic!("CI=true requires the WAF lab: {why}"),
    }
}

fn url(port: u16) -> String {
    format!("http://127.0.0.1:{port}/")
}

/// Rate for corpus runs: well below the waf front's ~2.5k req/s ceiling on 2 cores.
const RATE: f64 = 300.0;

fn lab_profile(url: &str, corpus: &[PathBuf], results: &std::path::Path) -> Profile {
    let mut p = profile(url, corpus, results);
    p.rate = Some(RATE);
    p.connections = 16;
    p
}

fn monitored(mut p: Profile, log: PathBuf) -> Profile {
    p.monitor = Some(MonitorSpec::preset(MonitorPreset::Modsecurity, log));
    p
}

fn attack_and_benign(s: &Summary) -> ((u64, u64), (u64, u64)) {
    let d = &s.detection;
    (
        (d.attacks.blocked, d.attacks.passed),
        (d.benign.blocked, d.benign.passed),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn known_attacks_are_blocked_and_benign_passes_and_the_log_sees_them() {
    let _guard = TIMING.lock().await;
    let Some(lab) = start_lab(1) else { return };
    let results = tempfile::tempdir().unwrap();
    let corpus = [fixture("lab")];

    // Blocking front: 10 attacks blocked (403), 8 ordinary requests pass.
    let p = lab_profile(&url(lab.waf), &corpus, results.path());
    let waf = run_profile(&p).await;
    assert_eq!(attack_and_benign(&waf.summary), ((10, 0), (0, 8)));
    assert_eq!(waf.summary.statuses.get("403"), Some(&10));
    // Its audit log holds exactly the 10 blocked requests, under our request ids.
    let prefix = &waf.summary.run.request_id_prefix;
    let entry = lab::Lab::wait_for_log_line(
        &lab.waf_audit_log(),
        &format!("\"{prefix}-"),
        std::time::Duration::from_secs(5),
    );
    assert!(entry.is_some(), "no audit entry with {prefix}");

    // Detection-only front: every answer is 200, the audit log turns the attacks into blocks.
    let p = monitored(
        lab_profile(&url(lab.detect), &corpus, results.path()),
        lab.detect_audit_log(),
    );
    let detect = run_profile(&p).await;
    let s = &detect.summary;
    assert_eq!(s.statuses.get("200"), Some(&18), "{:?}", s.statuses);
    assert_eq!(attack_and_benign(s), ((10, 0), (0, 8)));
    assert_eq!(
        s.detection_source.as_deref(),
        Some("waf log (modsecurity preset)")
    );
    let m = s.monitor.as_ref().unwrap();
    assert_eq!((m.matched, m.would_block, m.already_blocked), (10, 10, 0));
    // Records keep the raw status and say where the block came from.
    let records = read_records(&detect.dir).unwrap();
    let marked: Vec<_> = records.iter().filter(|r| r["wb"] == true).collect();
    assert_eq!(marked.len(), 10);
    assert!(marked
        .iter()
        .all(|r| r["cls"] == "blocked" && r["st"] == 200));
    assert_eq!(s.latency["blocked"].count, 10);
    assert_eq!(s.latency["passed"].count, 8);
}

/// Runs `corpus` against the blocking front and, with the audit log, against the
/// detection-only front; returns both summaries.
async fn blocking_and_monitoring(
    lab: &lab::Lab,
    corpus: &[PathBuf],
    results: &std::path::Path,
) -> (Summary, Summary) {
    let waf = run_profile(&lab_profile(&url(lab.waf), corpus, results))
        .await
        .summary;
    let p = monitored(
        lab_profile(&url(lab.detect), corpus, results),
        lab.detect_audit_log(),
    );
    let detect = run_profile(&p).await.summary;
    (waf, detect)
}

fn assert_within_one_point(label: &str, blocking: Option<f64>, monitoring: Option<f64>) {
    let (b, m) = (blocking.unwrap(), monitoring.unwrap());
    eprintln!(
        "{label}: blocking {:.2} %, monitoring {:.2} %",
        b * 100.0,
        m * 100.0
    );
    assert!(
        (b - m).abs() <= 0.01,
        "{label}: blocking {b:.4} vs monitoring {m:.4} differ by more than 1 point"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitoring_mode_detection_equals_blocking_detection_on_stock_and_our_corpus() {
    let _guard = TIMING.lock().await;
    let Some(shared) = shared_dir() else { return };
    let Some(lab) = start_lab(1) else { return };
    let results = tempfile::tempdir().unwrap();
    let corpora = [
        (
            "gotestwaf stock",
            shared.join("corpora/gotestwaf/testcases"),
        ),
        ("wafload payloads", manifest_dir().join("payloads")),
    ];
    for (label, corpus) in corpora {
        let (waf, detect) = blocking_and_monitoring(&lab, &[corpus], results.path()).await;
        // Nothing was lost: both runs sent everything, and the detect front blocked nothing.
        assert_eq!(waf.sent, detect.sent);
        assert_eq!(detect.statuses.get("403"), None, "{:?}", detect.statuses);
        assert_eq!(waf.counts["failed"] + detect.counts["failed"], 0);
        let m = detect.monitor.as_ref().unwrap();
        assert!(m.error.is_none(), "{m:?}");
        assert_eq!(m.bad_lines, 0);
        assert!(m.would_block > 100, "{label}: {m:?}");
        assert_within_one_point(
            &format!("{label} attacks"),
            waf.detection.attacks.rate,
            detect.detection.attacks.rate,
        );
        assert_within_one_point(
            &format!("{label} false positives"),
            waf.detection.benign.rate,
            detect.detection.benign.rate,
        );
        for set in &waf.detection.by_set {
            let other = detect
                .detection
                .by_set
                .iter()
                .find(|g| g.name == set.name)
                .unwrap();
            eprintln!(
                "  {:<24} blocking {:>5}/{:<5} monitoring {:>5}/{:<5}",
                set.name,
                set.rates.blocked,
                set.rates.blocked + set.rates.passed,
                other.rates.blocked,
                other.rates.blocked + other.rates.passed
            );
        }
    }
}

fn has(findings: &[Diagnosis], pred: impl Fn(&Diagnosis) -> bool) -> bool {
    findings.iter().any(pred)
}

async fn doctor(p: &Profile) -> Vec<Diagnosis> {
    let report = diagnose(p, &DoctorOptions::default()).await.unwrap();
    eprint!("{}", report.render());
    report.findings
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_diagnoses_each_front() {
    let _guard = TIMING.lock().await;
    let Some(lab) = start_lab(1) else { return };
    let results = tempfile::tempdir().unwrap();
    let base = |port: u16| profile(&url(port), &[], results.path());

    // Blocking front: healthy.
    let f = doctor(&base(lab.waf)).await;
    assert!(
        f.contains(&Diagnosis::AttacksBlocked { blocked: 4, of: 4 }),
        "{f:?}"
    );
    assert!(has(&f, |d| matches!(
        d,
        Diagnosis::BenignPassed { status: 200, .. }
    )));

    // Detection-only front without a log: not blocking, detection would read 0 %.
    let f = doctor(&base(lab.detect)).await;
    assert!(has(&f, |d| matches!(
        d,
        Diagnosis::NotBlocking { attacks, monitor_log: None } if attacks.len() == 4
    )));
    // ... with its audit log: the log confirms every attack as would-block.
    let f = doctor(&monitored(base(lab.detect), lab.detect_audit_log())).await;
    assert!(has(&f, |d| matches!(
        d,
        Diagnosis::NotBlocking {
            monitor_log: Some(_),
            ..
        }
    )));
    assert!(
        has(&f, |d| matches!(
            d,
            Diagnosis::MonitorConfirms { seen: 4, of: 4, .. }
        )),
        "{f:?}"
    );

    // Baseline front (no WAF in the path), pointed at the detect log: nothing logged.
    let f = doctor(&monitored(base(lab.baseline), lab.detect_audit_log())).await;
    assert!(has(&f, |d| matches!(d, Diagnosis::NotBlocking { .. })));
    assert!(
        has(&f, |d| matches!(d, Diagnosis::MonitorSilent { .. })),
        "{f:?}"
    );

    // TLS front: self-signed certificate is an error unless insecure; then h2 via ALPN.
    let tls_url = format!("https://127.0.0.1:{}/", lab.tls);
    let mut p = profile(&tls_url, &[], results.path());
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
    assert!(!has(&f, |d| matches!(d, Diagnosis::AttacksBlocked { .. })));
    p.target.insecure = true;
    let f = doctor(&p).await;
    assert!(has(&f, |d| matches!(
        d,
        Diagnosis::CertificateUntrusted { insecure: true, .. }
    )));
    assert!(
        has(
            &f,
            |d| matches!(d, Diagnosis::TlsOk { alpn: Some(a), .. } if a == "h2")
        ),
        "{f:?}"
    );
    assert!(
        f.contains(&Diagnosis::AttacksBlocked { blocked: 4, of: 4 }),
        "{f:?}"
    );

    // An https URL on a plain-HTTP front.
    let mut p = profile(
        &format!("https://127.0.0.1:{}/", lab.waf),
        &[],
        results.path(),
    );
    p.target.insecure = true;
    let f = doctor(&p).await;
    assert!(
        has(&f, |d| matches!(
            d,
            Diagnosis::TlsHandshakeFailed {
                plain_http: true,
                ..
            }
        )),
        "{f:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_h2_front_works_with_insecure() {
    let _guard = TIMING.lock().await;
    let Some(lab) = start_lab(1) else { return };
    let results = tempfile::tempdir().unwrap();
    let mut p = lab_profile(
        &format!("https://127.0.0.1:{}/", lab.tls),
        &[fixture("lab")],
        results.path(),
    );
    p.target.insecure = true;
    let s = run_profile(&p).await.summary;
    assert_eq!(s.run.protocol, "h2");
    assert_eq!(attack_and_benign(&s), ((10, 0), (0, 8)));
    assert_eq!(s.counts["failed"], 0);
}
