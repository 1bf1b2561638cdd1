//! Importers on hand-written fixtures (a Chromium HAR, nginx combined and Envoy default
//! access-log lines, vegeta HTTP and JSON targets): exact expected requests, secrets
//! stripped, unusable entries reported by number, and a lossless round trip through the
//! traffic file format.

mod common;

use common::fixture;
use std::path::Path;
use wafload::traffic::{
    import, parse_traffic, render_traffic, ImportFormat, ImportOptions, Imported, TrafficRequest,
    Verdict,
};

fn run(format: ImportFormat, name: &str, options: &ImportOptions) -> Imported {
    let path = fixture(&format!("traffic/{name}"));
    let text = std::fs::read_to_string(&path).unwrap();
    let imported = import(format, &text, &path, options).unwrap_or_else(|e| panic!("{e}"));
    // Every import survives a trip through the traffic file format unchanged.
    let file = render_traffic(&imported.requests);
    let back = parse_traffic(&file, Path::new("roundtrip.jsonl")).unwrap();
    assert_eq!(back.requests, imported.requests, "round trip of {name}");
    imported
}

fn req(method: &str, target: &str, headers: &[(&str, &str)]) -> TrafficRequest {
    TrafficRequest {
        method: method.into(),
        target: target.into(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    }
}

fn at(mut r: TrafficRequest, t_ms: u64) -> TrafficRequest {
    r.t_ms = Some(t_ms);
    r
}

fn with_body(mut r: TrafficRequest, body: &[u8]) -> TrafficRequest {
    r.body = body.to_vec();
    r
}

#[test]
fn chromium_har_gives_exact_requests() {
    let imported = run(ImportFormat::Har, "chromium.har", &ImportOptions::default());
    let expected = vec![
        at(
            req(
                "GET",
                "/search?q=red+shoes&session_id=REDACTED",
                &[
                    ("accept", "text/html,application/xhtml+xml"),
                    ("accept-language", "en-GB,en;q=0.9"),
                    ("user-agent", "Mozilla/5.0 (X11; Linux x86_64) Chrome/124.0"),
                ],
            ),
            0,
        ),
        at(
            with_body(
                req(
                    "POST",
                    "/api/cart",
                    &[
                        ("content-type", "application/json"),
                        ("x-requested-with", "XMLHttpRequest"),
                    ],
                ),
                br#"{"sku":"A-1","quantity":2}"#,
            ),
            1500,
        ),
        at(
            with_body(
                req(
                    "POST",
                    "/login",
                    &[
                        ("Content-Type", "application/x-www-form-urlencoded"),
                        ("Origin", "https://shop.example"),
                    ],
                ),
                b"user=ann&password=REDACTED&keep=1",
            ),
            2880,
        ),
    ];
    assert_eq!(imported.requests, expected);
    // Cookie, session_id, Authorization, password.
    assert_eq!(imported.secrets_stripped, 4);
    assert_eq!(imported.skipped.len(), 1);
    assert_eq!(imported.skipped[0].0, 3);
    assert!(imported.skipped[0].1.contains("is not http(s)"));
}

#[test]
fn har_with_keep_secrets_keeps_them_and_labels_apply() {
    let options = ImportOptions {
        keep_secrets: true,
        expect: Some(Verdict::Block),
        source: Some("incident-42".into()),
    };
    let imported = run(ImportFormat::Har, "chromium.har", &options);
    let first = &imported.requests[0];
    assert_eq!(first.target, "/search?q=red+shoes&session_id=abc123");
    assert_eq!(first.header("cookie"), Some("sid=s3cr3t; theme=dark"));
    assert_eq!(
        imported.requests[1].header("authorization"),
        Some("Bearer eyJhbGciOi.x.y")
    );
    assert_eq!(imported.secrets_stripped, 0);
    assert!(imported
        .requests
        .iter()
        .all(|r| r.expect == Some(Verdict::Block) && r.source.as_deref() == Some("incident-42")));
}

#[test]
fn nginx_combined_gives_exact_requests_and_says_bodies_are_absent() {
    let imported = run(
        ImportFormat::Nginx,
        "nginx-combined.log",
        &ImportOptions::default(),
    );
    let expected = vec![
        at(
            req(
                "GET",
                "/products?page=2&sort=price",
                &[
                    ("Referer", "https://shop.example/"),
                    (
                        "User-Agent",
                        "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) Safari/605.1.15",
                    ),
                ],
            ),
            0,
        ),
        at(
            req(
                "POST",
                "/api/reviews?access_token=REDACTED",
                &[("User-Agent", "okhttp/4.12.0")],
            ),
            2000,
        ),
        at(
            req(
                "GET",
                "/search?q=%22summer%20dress%22",
                &[("User-Agent", "curl/8.5.0")],
            ),
            5000,
        ),
    ];
    assert_eq!(imported.requests, expected);
    assert_eq!(imported.secrets_stripped, 1);
    // The TLS handshake sent to the plain-text port is not a request.
    assert_eq!(imported.skipped.len(), 1);
    assert_eq!(imported.skipped[0].0, 3);
    assert_eq!(
        imported.notes,
        vec!["nginx access logs carry no request bodies: 1 POST/PUT/PATCH requests will be replayed with an empty body".to_string()]
    );
}

#[test]
fn envoy_default_format_gives_exact_requests() {
    let imported = run(
        ImportFormat::Envoy,
        "envoy-default.log",
        &ImportOptions::default(),
    );
    let ua = "shop-ios/3.2 (iPhone; iOS 17.4)";
    let expected = vec![
        at(
            req(
                "GET",
                "/api/v1/orders/42?expand=items",
                &[("User-Agent", ua)],
            ),
            0,
        ),
        at(req("PUT", "/api/v1/orders/42", &[("User-Agent", ua)]), 500),
        at(req("GET", "/healthz", &[]), 1750),
    ];
    assert_eq!(imported.requests, expected);
    assert!(imported.skipped.is_empty());
    assert_eq!(imported.notes.len(), 1);
    assert!(imported.notes[0].contains("no request bodies: 1 requests"));
}

#[test]
fn vegeta_http_targets_give_exact_requests() {
    let imported = run(
        ImportFormat::VegetaHttp,
        "vegeta-targets.http",
        &ImportOptions::default(),
    );
    let expected = vec![
        req(
            "GET",
            "/api/catalog?category=garden",
            &[("Accept", "application/json"), ("X-Client-Version", "7.1")],
        ),
        with_body(
            req(
                "POST",
                "/api/orders",
                &[("Content-Type", "application/json")],
            ),
            b"{\"sku\":\"G-7\",\"quantity\":1}\n",
        ),
        req("DELETE", "/api/sessions/current", &[]),
    ];
    assert_eq!(imported.requests, expected);
    // URL user-info (as Basic auth) and Authorization.
    assert_eq!(imported.secrets_stripped, 2);
    let kept = run(
        ImportFormat::VegetaHttp,
        "vegeta-targets.http",
        &ImportOptions {
            keep_secrets: true,
            ..Default::default()
        },
    );
    assert_eq!(
        kept.requests[1].headers,
        vec![
            (
                "Authorization".to_string(),
                "Basic c3ZjOnNlY3JldA==".to_string()
            ),
            ("Content-Type".to_string(), "application/json".to_string())
        ]
    );
}

#[test]
fn vegeta_json_targets_give_exact_requests() {
    let imported = run(
        ImportFormat::VegetaJson,
        "vegeta-targets.json",
        &ImportOptions::default(),
    );
    let expected = vec![
        req(
            "GET",
            "/api/profile?fields=name,email",
            &[
                ("Accept", "application/json"),
                ("X-Trace", "a"),
                ("X-Trace", "b"),
            ],
        ),
        with_body(
            req(
                "POST",
                "/api/upload",
                &[("Content-Type", "application/octet-stream")],
            ),
            &[0, 1, 2, 255],
        ),
    ];
    assert_eq!(imported.requests, expected);
    assert_eq!(imported.secrets_stripped, 1);
    assert_eq!(imported.skipped.len(), 1);
    assert_eq!(imported.skipped[0].0, 3);
}

#[test]
fn a_file_with_nothing_usable_is_one_clear_error() {
    let err = import(
        ImportFormat::Envoy,
        "this is not a log\n",
        Path::new("x.log"),
        &ImportOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with(
            "x.log: no request could be imported as Envoy (first problem: entry/line 1:"
        ),
        "{err}"
    );
    let err = import(
        ImportFormat::Har,
        "{\"log\": ",
        Path::new("x.har"),
        &ImportOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.starts_with("x.har:1: not a HAR document"), "{err}");
}

#[test]
fn cli_import_writes_a_traffic_file_and_reports() {
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("web.jsonl");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_wafload"))
        .args(["traffic", "import", "--from", "nginx"])
        .arg(fixture("traffic/nginx-combined.log"))
        .arg("-o")
        .arg(&file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("imported 3 requests"), "{stdout}");
    assert!(stdout.contains("spanning 5.0 s"), "{stdout}");
    assert!(stdout.contains("1 secrets removed or redacted"), "{stdout}");
    assert!(
        stdout.contains("note: nginx access logs carry no request bodies"),
        "{stdout}"
    );
    assert!(stderr.contains("nginx-combined.log:3: "), "{stderr}");
    let written = wafload::traffic::read_traffic_file(&file).unwrap();
    assert_eq!(written.requests.len(), 3);
    assert_eq!(written.default_source(), "web");

    // A bad flag value names the flag and exits 2.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_wafload"))
        .args(["traffic", "import", "--from", "pcap", "x", "-o", "y"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--from"));
}
