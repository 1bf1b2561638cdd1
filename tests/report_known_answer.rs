//! Known-answer test of `wafload report`: a synthetic run with fixed counts, and the
//! detection rates and Wilson 95 % intervals every output prints, checked against values
//! computed independently (Newcombe 1998 for 81/263, 15/148, 1/29; the others from the
//! textbook formula) to 0.1 %.

use std::path::Path;
use wafload::report::fixture::{source, write_results, FixtureOptions};
use wafload::report::{generate, Limits, ReportOptions};

/// (set, case, placeholder, encoder, benign, payload, [blocked, passed, unresolved, failed, unsendable])
type Row = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    bool,
    &'static str,
    [u64; 5],
);

const ROWS: &[Row] = &[
    (
        "alpha",
        "a1",
        "URLParam",
        "Plain",
        false,
        "' OR 1=1 --",
        [50, 5, 0, 0, 0],
    ),
    (
        "alpha",
        "a1",
        "URLParam",
        "Plain",
        false,
        "<script>x</script>",
        [45, 0, 0, 0, 0],
    ),
    (
        "alpha",
        "a2",
        "Header",
        "Base64",
        false,
        "${jndi:ldap://x}",
        [0, 20, 0, 3, 0],
    ),
    (
        "beta",
        "b1",
        "URLParam",
        "URL",
        false,
        "../../etc/passwd",
        [81, 182, 2, 0, 0],
    ),
    (
        "clean",
        "c1",
        "HTMLForm",
        "Plain",
        true,
        "hello world",
        [15, 133, 0, 0, 0],
    ),
    (
        "clean",
        "c2",
        "URLParam",
        "Plain",
        true,
        "select a colour",
        [1, 28, 0, 0, 1],
    ),
];

/// (row label in the HTML tables, rate, low, high) in percent, one decimal.
const EXPECTED: &[(&str, &str, &str)] = &[
    ("a1", "95.0 %", "88.8–97.8 %"),
    ("a2", "0.0 %", "0.0–16.1 %"),
    ("alpha", "79.2 %", "71.1–85.5 %"),
    ("b1", "30.8 %", "25.5–36.6 %"),
    ("beta", "30.8 %", "25.5–36.6 %"),
    ("c1", "10.1 %", "6.2–16.0 %"),
    ("c2", "3.4 %", "0.6–17.2 %"),
    ("clean", "9.0 %", "5.6–14.2 %"),
];

fn build(dir: &Path, records: bool) {
    let sources: Vec<_> = ROWS
        .iter()
        .map(|r| source(r.0, r.1, r.2, r.3, r.4, r.5))
        .collect();
    let counts: Vec<[u64; 5]> = ROWS.iter().map(|r| r.6).collect();
    write_results(
        dir,
        &sources,
        &counts,
        &FixtureOptions {
            records,
            ext_proc_errors: 2,
            ..FixtureOptions::default()
        },
    )
    .expect("synthetic results");
}

fn close(v: &serde_json::Value, expected: f64) {
    let got = v.as_f64().unwrap_or(f64::NAN);
    assert!(
        (got - expected).abs() < 0.001,
        "got {got}, expected {expected} (to 0.1 %)"
    );
}

/// The `<tr>…</tr>` of the first table row whose first cell is exactly `name`.
fn html_row<'a>(html: &'a str, name: &str) -> &'a str {
    let cell = format!("<td>{name}</td>");
    let at = html
        .find(&cell)
        .unwrap_or_else(|| panic!("no row {name} in report.html"));
    let start = html[..at].rfind("<tr").unwrap();
    let end = at + html[at..].find("</tr>").unwrap();
    &html[start..end]
}

#[test]
fn printed_rates_and_intervals_match_known_answers() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    build(&run, true);
    let written = generate(&run, &ReportOptions::default()).expect("report");
    let out = run.join("report");
    for name in [
        "report.html",
        "summary.md",
        "report.json",
        "detection.svg",
        "matrix.svg",
        "spectrum.svg",
        "timeline.svg",
        "breakdown.svg",
        "detection.png",
        "matrix.png",
        "spectrum.png",
        "timeline.png",
        "breakdown.png",
    ] {
        assert!(out.join(name).is_file(), "{name} missing");
        assert!(written.files.contains(&out.join(name)));
    }

    // report.json: the numbers, to 0.1 %.
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    let d = &json["detection"];
    close(&d["attacks"]["rate"]["rate"], 176.0 / 383.0);
    close(&d["attacks"]["rate"]["low"], 0.4103);
    close(&d["attacks"]["rate"]["high"], 0.5096);
    close(&d["benign"]["rate"]["rate"], 16.0 / 177.0);
    close(&d["benign"]["rate"]["low"], 0.0564);
    close(&d["benign"]["rate"]["high"], 0.1418);
    let beta = d["attack_sets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["set"]["name"] == "beta")
        .unwrap();
    close(&beta["cases"][0]["rate"]["low"], 0.2553);
    close(&beta["cases"][0]["rate"]["high"], 0.3662);
    let clean = &d["benign_sets"][0];
    close(&clean["cases"][0]["rate"]["low"], 0.0624);
    close(&clean["cases"][0]["rate"]["high"], 0.1605);
    close(&clean["cases"][1]["rate"]["low"], 0.0061);
    close(&clean["cases"][1]["rate"]["high"], 0.1718);
    assert_eq!(
        clean["cases"][1]["other"], 1,
        "unsendable is not in the rate"
    );
    let cell = &json["matrix"];
    let p = cell["placeholders"].as_array().unwrap();
    let e = cell["encoders"].as_array().unwrap();
    let pi = p.iter().position(|x| x == "URLParam").unwrap();
    let ei = e.iter().position(|x| x == "URL").unwrap();
    close(&cell["cells"][pi][ei]["rate"]["rate"], 81.0 / 263.0);

    // report.html: each row prints the rate and the interval.
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    for (name, rate, interval) in EXPECTED {
        let row = html_row(&html, name);
        assert!(
            row.contains(rate) && row.contains(interval),
            "row {name}: expected {rate} and {interval} in {row}"
        );
    }
    assert!(html.contains("46.0 %") && html.contains("41.0–51.0 %"));
    // summary.md: the same figures.
    let md = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(
        md.contains("| alpha | 79.2 % | 71.1–85.5 % | 95 | 25 | 3 |"),
        "{md}"
    );
    assert!(md.contains("| **detection** (attacks) | 46.0 % | 41.0–51.0 % | 176 | 207 |"));
    assert!(md.contains("| clean (benign) | 9.0 % | 5.6–14.2 % | 16 | 161 | 1 |"));
    // The detection chart prints them too (SVG text).
    let svg = std::fs::read_to_string(out.join("detection.svg")).unwrap();
    assert!(svg.contains("95.0 %  [88.8–97.8]  95/100"), "detection.svg");
    assert!(svg.contains("30.8 %  [25.5–36.6]  81/263"));

    // Evasions: the attack sources that passed, grouped by case, with their request.
    assert!(html.contains("alpha/a2"));
    assert!(html.contains("$\u{7b}jndi:ldap://x}"));
    assert!(html.contains("&#39; OR 1=1 --"), "payload escaped verbatim");
    // The source that never passed is not an evasion.
    let evasions =
        &html[html.find("id=\"evasions\"").unwrap()..html.find("id=\"false-positives\"").unwrap()];
    assert!(!evasions.contains("&lt;script&gt;x&lt;/script&gt;"));
    // False positives: both benign cases had a block.
    let fps = &html[html.find("id=\"false-positives\"").unwrap()..];
    assert!(fps.contains("clean/c1") && fps.contains("clean/c2"));

    // Secrets from the profile never reach a report file.
    for f in &written.files {
        if f.extension().is_some_and(|x| x == "png") {
            continue;
        }
        let text = std::fs::read_to_string(f).unwrap();
        assert!(!text.contains("SYNTHETIC-SECRET-TOKEN"), "{}", f.display());
        assert!(!text.contains("hunter2"), "{}", f.display());
    }
    // Breakdown: ext_proc 500s counted.
    assert_eq!(json["breakdown"]["classes"][5][0], "ext_proc 500s");
    assert_eq!(json["breakdown"]["classes"][5][1], 2);
}

#[test]
fn evasion_table_is_capped_and_says_what_it_left_out() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    build(&run, true);
    let options = ReportOptions {
        formats: wafload::report::Format::parse_list("html,json").unwrap(),
        out: Some(tmp.path().join("out")),
        limits: Limits {
            evasions: 1,
            ..Limits::default()
        },
    };
    generate(&run, &options).unwrap();
    let html = std::fs::read_to_string(tmp.path().join("out/report.html")).unwrap();
    // Three attack sources passed (a1 #0, a2, b1); one row shown, two left out.
    assert!(
        html.contains("2 more distinct requests left out"),
        "cap note missing"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("out/report.json")).unwrap())
            .unwrap();
    assert_eq!(json["evasions"]["shown"], 1);
    assert_eq!(json["evasions"]["omitted"], 2);
    assert!(
        !tmp.path().join("out/detection.png").exists(),
        "only html,json"
    );
}

#[test]
fn a_run_without_records_still_reports_its_numbers() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    build(&run, false);
    generate(&run, &ReportOptions::default()).unwrap();
    let html = std::fs::read_to_string(run.join("report/report.html")).unwrap();
    assert!(html_row(&html, "a1").contains("95.0 %"));
    assert!(html.contains("kept no request records"));
}

#[test]
fn cli_reports_an_old_run_from_its_results_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    build(&run, true);
    let out = tmp.path().join("cli-out");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_wafload"))
        .args(["report", "--format", "html,md", "--out"])
        .arg(&out)
        .arg(&run)
        .output()
        .unwrap();
    assert!(status.status.success(), "{status:?}");
    assert!(out.join("report.html").is_file() && out.join("summary.md").is_file());
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_wafload"))
        .args(["report", "--format", "pdf"])
        .arg(&run)
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--format"));
    let missing = std::process::Command::new(env!("CARGO_BIN_EXE_wafload"))
        .args(["report"])
        .arg(tmp.path().join("nope"))
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
}

#[test]
fn a_damaged_records_file_still_gives_a_report_that_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    build(&run, true);
    let records = run.join(wafload::record::RECORDS_FILE);
    let bytes = std::fs::read(&records).unwrap();
    std::fs::write(&records, &bytes[..bytes.len() / 2]).unwrap();
    generate(&run, &ReportOptions::default()).unwrap();
    let html = std::fs::read_to_string(run.join("report/report.html")).unwrap();
    assert!(html_row(&html, "b1").contains("30.8 %"));
    assert!(html.contains("The request records could not be read"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_with_report_writes_the_report_at_the_end() {
    let target = wafload::target::start(wafload::target::TargetConfig::default())
        .await
        .expect("calibration target");
    let tmp = tempfile::tempdir().unwrap();
    let payloads = Path::new(env!("CARGO_MANIFEST_DIR")).join("payloads");
    let url = target.url();
    let results = tmp.path().to_path_buf();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_wafload"))
            .args(["run", "--target", &url, "--corpus"])
            .arg(&payloads)
            .args([
                "--rate",
                "200",
                "--requests",
                "100",
                "--report",
                "--quiet",
                "--results-dir",
            ])
            .arg(&results)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    target.shutdown().await;
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let html = stdout
        .lines()
        .find(|l| l.ends_with("report.html"))
        .expect("report path printed");
    let page = std::fs::read_to_string(html).unwrap();
    assert!(page.contains("Content-Security-Policy") && page.contains("<svg"));
    let report_dir = Path::new(html).parent().unwrap();
    for f in [
        "summary.md",
        "report.json",
        "detection.png",
        "breakdown.svg",
    ] {
        assert!(report_dir.join(f).is_file(), "{f}");
    }
}
