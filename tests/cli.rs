//! The binary's contract: clear one-line errors naming file:line or the flag, exit code 2
//! for bad input, 130 after SIGINT with valid partial results, and the corpus table.

mod common;

use common::*;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn wafload(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wafload"))
        .args(args)
        .current_dir(manifest_dir())
        .output()
        .expect("run wafload")
}

/// Asserts exit code 2 and exactly one stderr line starting with "error: " containing `needle`.
fn assert_input_error(out: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(
        lines[0].starts_with("error: "),
        "first line should be the error: {stderr}"
    );
    assert!(lines[0].contains(needle), "{needle:?} not in {stderr:?}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn malformed_corpus_yaml_names_file_and_line() {
    let out = wafload(&["corpus", "stats", "tests/fixtures/bad/malformed"]);
    assert_input_error(&out, "tests/fixtures/bad/malformed/s/case.yml:");
    assert_eq!(String::from_utf8_lossy(&out.stderr).lines().count(), 1);
}

#[test]
fn unknown_encoder_and_placeholder_are_named_with_their_line() {
    let out = wafload(&["corpus", "stats", "tests/fixtures/bad/unknown-encoder"]);
    assert_input_error(&out, "case.yml:5:5: unknown encoder \"Rot13\"");
    let out = wafload(&["corpus", "stats", "tests/fixtures/bad/unknown-placeholder"]);
    assert_input_error(&out, "case.yml:7:5: unknown placeholder \"Cookie\"");
}

#[test]
fn empty_payload_list_is_an_input_error() {
    let out = wafload(&["corpus", "stats", "tests/fixtures/bad/empty-payloads"]);
    assert_input_error(&out, "case.yml:1:1: `payload` list is empty");
}

#[test]
fn profile_errors_name_file_line_and_field() {
    let out = wafload(&["run", "--profile", "tests/fixtures/bad/unknown-key.yaml"]);
    assert_input_error(&out, "unknown-key.yaml:5:1: unknown field `duratoin`");
    let out = wafload(&["run", "--profile", "tests/fixtures/bad/bad-rate.yaml"]);
    assert_input_error(&out, "bad-rate.yaml:4:1: rate: must be a positive number");
}

#[test]
fn bad_flags_name_the_flag() {
    let out = wafload(&["run", "--target", "http://127.0.0.1:9/", "--rate", "0"]);
    assert_input_error(&out, "--rate");
    let out = wafload(&[
        "run",
        "--target",
        "http://127.0.0.1:9/",
        "--benign-share",
        "2",
    ]);
    assert_input_error(&out, "--benign-share");
    let out = wafload(&[
        "run",
        "--target",
        "ftp://127.0.0.1/",
        "--corpus",
        "payloads",
    ]);
    assert_input_error(&out, "--target");
    let out = wafload(&["run", "--corpus", "payloads"]);
    assert_input_error(&out, "--target");
}

#[test]
fn unreachable_target_is_an_input_error_not_a_run() {
    // Port 9 (discard) on loopback: nothing listens there.
    let results = tempfile::tempdir().unwrap();
    let out = wafload(&[
        "run",
        "--target",
        "http://127.0.0.1:9/",
        "--corpus",
        "tests/fixtures/known",
        "--results-dir",
        results.path().to_str().unwrap(),
    ]);
    assert_input_error(&out, "target http://127.0.0.1:9/: connect 127.0.0.1:9");
    assert_eq!(std::fs::read_dir(results.path()).unwrap().count(), 0);
}

/// Runs a calibration target on a background runtime for the life of the guard.
struct BackgroundTarget {
    url: String,
    _runtime: tokio::runtime::Runtime,
}

fn background_target(config: wafload::target::TargetConfig) -> BackgroundTarget {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let target = runtime.block_on(wafload::target::start(config)).unwrap();
    let url = target.url();
    runtime.spawn(async move {
        let _keep = target;
        std::future::pending::<()>().await
    });
    BackgroundTarget {
        url,
        _runtime: runtime,
    }
}

#[test]
fn untrusted_certificate_is_a_clear_tls_error_and_insecure_works() {
    let target = background_target(wafload::target::TargetConfig {
        tls: true,
        ..Default::default()
    });
    let results = tempfile::tempdir().unwrap();
    let dir = results.path().to_str().unwrap();
    let out = wafload(&[
        "run",
        "--target",
        &target.url,
        "--corpus",
        "tests/fixtures/known",
        "--results-dir",
        dir,
    ]);
    assert_input_error(&out, "TLS");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("certificate"), "{stderr}");
    let out = wafload(&[
        "run",
        "--target",
        &target.url,
        "--corpus",
        "tests/fixtures/known",
        "--results-dir",
        dir,
        "--insecure",
        "--quiet",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run_dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let summary = wafload::results::load_summary(Path::new(&run_dir)).unwrap();
    assert_eq!(summary.run.protocol, "h2", "ALPN should pick h2 over TLS");
    assert_eq!(summary.sent, 28);
}

#[test]
fn sigint_stops_the_run_and_leaves_valid_partial_results() {
    let target = background_target(wafload::target::TargetConfig::default());
    let results = tempfile::tempdir().unwrap();
    let out_dir = results.path().join("run");
    let mut child = Command::new(env!("CARGO_BIN_EXE_wafload"))
        .args([
            "run",
            "--target",
            &target.url,
            "--corpus",
            "payloads",
            "--benign-share",
            "0.5",
            "--rate",
            "100",
            "--duration",
            "60s",
            "--quiet",
            "--out",
        ])
        .arg(&out_dir)
        .current_dir(manifest_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "run did not stop"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(130));
    let summary = wafload::results::load_summary(&out_dir).unwrap();
    assert_eq!(summary.run.interrupted.as_deref(), Some("interrupted"));
    assert!(
        summary.sent >= 100 && summary.sent <= 300,
        "sent {}",
        summary.sent
    );
    assert_eq!(summary.records, summary.sent);
    let records = wafload::record::read_records(&out_dir).unwrap();
    assert_eq!(records.len() as u64, summary.sent);
    let counted: u64 = summary.counts.values().sum();
    assert_eq!(counted, summary.sent);
    assert!(!out_dir.join("requests.jsonl.zst.partial").exists());
}

#[test]
fn corpus_stats_matches_the_documented_table() {
    let Some(shared) = shared_dir() else { return };
    let dir = shared.join("corpora/gotestwaf/testcases");
    let out = wafload(&["corpus", "stats", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    let table = String::from_utf8_lossy(&out.stdout);
    let row = |set: &str| -> Vec<u64> {
        table
            .lines()
            .find(|l| l.split('|').next().map(str::trim) == Some(set))
            .unwrap_or_else(|| panic!("no row {set} in {table}"))
            .split('|')
            .skip(1)
            .map(|c| c.trim().parse().unwrap())
            .collect()
    };
    assert_eq!(row("community")[..3], [23, 63, 159]);
    assert_eq!(row("false-pos")[..3], [1, 47, 141]);
    assert_eq!(row("owasp")[..3], [14, 78, 502]);
    assert_eq!(row("owasp-api")[..4], [6, 20, 20, 2]);
    assert_eq!(row("total")[..4], [44, 208, 822, 2]);
}

#[test]
fn slo_gate_exits_zero_when_met_and_one_when_missed() {
    let target = background_target(wafload::target::TargetConfig {
        markers: vec!["wafload-evil".into()],
        ..Default::default()
    });
    let results = tempfile::tempdir().unwrap();
    let dir = results.path().to_str().unwrap();
    let base = [
        "run",
        "--target",
        &target.url,
        "--corpus",
        "tests/fixtures/known",
        "--results-dir",
        dir,
        "--quiet",
        "--rate",
        "200",
    ];
    let met = wafload(
        &[
            &base[..],
            &["--slo", "p99<5s,errors<1%,detection>=0.3,fp<=0.34"],
        ]
        .concat(),
    );
    assert_eq!(
        met.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&met.stderr)
    );
    let missed = wafload(&[&base[..], &["--slo", "p99<1us,detection>=0.9,fp<=0.01"]].concat());
    assert_eq!(missed.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&missed.stderr);
    assert!(stderr.contains("SLO MISSED"), "{stderr}");
    for term in ["FAIL p99<1us", "FAIL detection>=0.9", "FAIL fp<=0.01"] {
        assert!(stderr.contains(term), "{term} not in {stderr}");
    }
    // A malformed SLO is a usage error naming the flag.
    let bad = wafload(&[&base[..], &["--slo", "p99=5ms"]].concat());
    assert_input_error(&bad, "--slo");

    // compare: the two runs above hit the same target; the verdict table prints.
    let runs: Vec<String> = [met, missed]
        .iter()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .collect();
    let cmp = wafload(&["compare", &runs[0], &runs[1]]);
    assert_eq!(
        cmp.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&cmp.stderr)
    );
    let text = String::from_utf8_lossy(&cmp.stdout);
    assert!(
        text.contains("detection: no significant difference"),
        "{text}"
    );
    assert!(text.contains("p50"), "{text}");
}
