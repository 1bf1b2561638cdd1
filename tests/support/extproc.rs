//! Helpers for the ext_proc tests: tiny generated corpora and direct-mode runs on loopback.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;
use wafload::profile::Profile;
use wafload::run::extproc::{run_ext_proc, ExtProcTarget};
use wafload::run::{RunOptions, RunOutcome};
use wafload::transport::extproc::{BodyMode, ExtProcSettings, ProcessorTls};

/// One case file: a POST with `body` as its only payload. `set` names the folder (a set
/// whose name contains "false" is benign).
pub fn write_case(root: &Path, set: &str, case: &str, body: &str) {
    let dir = root.join(set);
    std::fs::create_dir_all(&dir).unwrap();
    let escaped = body.replace('\\', "\\\\").replace('"', "\\\"");
    let yaml = format!(
        "payload:\n  - \"{escaped}\"\nencoder:\n  - Plain\nplaceholder:\n  - RawRequest:\n      method: POST\n      path: /upload\n      headers:\n        Content-Type: application/octet-stream\n      body: \"{{{{payload}}}}\"\ntype: test\n"
    );
    std::fs::write(dir.join(format!("{case}.yml")), yaml).unwrap();
}

/// A corpus with one benign POST whose body is `size` bytes of `a`.
pub fn benign_body_corpus(root: &Path, size: usize) -> PathBuf {
    let corpus = root.join("corpus");
    write_case(&corpus, "calib-false-pos", "body", &"a".repeat(size));
    corpus
}

/// A closed-loop profile: `requests` requests over `connections` streams.
pub fn profile(corpus: &Path, results: &Path, requests: u64, connections: usize) -> Profile {
    let mut p = Profile::default();
    p.target.url = "http://app.test/".into();
    p.corpus = vec![corpus.to_path_buf()];
    p.requests = Some(requests);
    p.max = true;
    p.connections = connections;
    p.timeout = Duration::from_secs(10);
    p.results_dir = results.to_path_buf();
    p
}

/// Envoy-like settings with one body mode for requests and responses.
pub fn settings(mode: BodyMode) -> ExtProcSettings {
    ExtProcSettings {
        request_body_mode: mode,
        response_body_mode: mode,
        ..ExtProcSettings::default()
    }
}

/// A direct-mode run with BUFFERED bodies over plain gRPC.
pub async fn run_buffered(p: &Profile, url: &str) -> RunOutcome {
    run_direct(
        p,
        url,
        settings(BodyMode::Buffered),
        ProcessorTls::default(),
    )
    .await
}

pub async fn run_direct(
    profile: &Profile,
    url: &str,
    settings: ExtProcSettings,
    tls: ProcessorTls,
) -> RunOutcome {
    let target = ExtProcTarget {
        url: url.to_string(),
        connections: 1,
        tls,
        settings,
    };
    let options = RunOptions {
        origin: "test".into(),
        ..RunOptions::default()
    };
    run_ext_proc(
        profile,
        &options,
        &target,
        tokio_util::sync::CancellationToken::new(),
    )
    .await
    .expect("direct ext_proc run")
}

/// Every record of a run folder.
pub fn records(dir: &Path) -> Vec<serde_json::Value> {
    wafload::record::read_records(dir).unwrap()
}

/// The upstream application behind the gateway emulation: a calibration target that
/// never blocks and adds `delay`.
pub async fn upstream(delay: Duration) -> wafload::target::RunningTarget {
    wafload::target::start(wafload::target::TargetConfig {
        markers: vec![],
        delay: wafload::target::Delay::Fixed(delay),
        ..wafload::target::TargetConfig::default()
    })
    .await
    .unwrap()
}

/// The gateway emulation in front of `upstream`, asking `ext_proc` in `mode`.
pub async fn gateway(
    ext_proc: String,
    upstream: String,
    mode: wafload::transport::extproc::BodyMode,
) -> wafload::target::gateway::RunningGateway {
    wafload::target::gateway::start_gateway(wafload::target::gateway::GatewayConfig {
        ext_proc,
        upstream,
        settings: ExtProcSettings {
            request_body_mode: mode,
            response_body_mode: mode,
            ..ExtProcSettings::default()
        },
        ..wafload::target::gateway::GatewayConfig::default()
    })
    .await
    .unwrap()
}

/// A bounded HTTP run of `n` requests through `url`.
pub async fn http_run(
    url: &str,
    corpus: &std::path::Path,
    results: &std::path::Path,
    n: u64,
) -> wafload::run::RunOutcome {
    let mut p = profile(corpus, results, n, 1);
    p.target.url = url.to_string();
    wafload::run::run(
        &p,
        &RunOptions {
            origin: "test".into(),
            ..RunOptions::default()
        },
        tokio_util::sync::CancellationToken::new(),
    )
    .await
    .expect("HTTP run through the gateway emulation")
}
