//! Bad input never panics. Property tests over the four kinds of file a user hands wafload:
//! corpus case YAML, profiles, SLO expressions and results (`summary.json`). Inputs are
//! mutations of valid files (so most reach deep into the parsers) mixed with random text.
//! Every input must either load — and then survive the code that consumes it — or fail
//! with a one-line error that names the file (or, for SLOs, the term).
//!
//! Case counts: `WAFLOAD_PROPTEST_CASES` is the total over the four properties (default
//! 100 000, the CI budget); it is split 40 % corpus, 25 % profiles, 20 % SLOs, 15 % results.
//! The documented longer run is `WAFLOAD_PROPTEST_CASES=2000000 cargo test --release --test
//! proptest_inputs` (see docs/faults.md).

mod common;

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError, TestRunner};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use wafload::analysis::slo::Slo;
use wafload::corpus::{parse_case, Corpus, CorpusSet};
use wafload::profile::Profile;
use wafload::results::{hints_of, load_summary, Summary, SUMMARY_FILE};
use wafload::schedule::RateSchedule;

const DEFAULT_TOTAL_CASES: u32 = 100_000;

/// This property's share of `WAFLOAD_PROPTEST_CASES`.
fn cases(percent: u32) -> u32 {
    let total = std::env::var("WAFLOAD_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.trim().parse::<u32>().ok())
        .unwrap_or(DEFAULT_TOTAL_CASES);
    (total / 100 * percent).max(1)
}

fn runner(percent: u32) -> TestRunner {
    let config = Config {
        cases: cases(percent),
        // Failing inputs are printed (shrunk); no regression files are written into tests/.
        failure_persistence: Some(Box::new(FileFailurePersistence::Off)),
        max_shrink_iters: 2_000,
        ..Config::default()
    };
    TestRunner::new(config)
}

/// A message a user sees must be one line.
fn one_line(what: &str, message: &str) -> Result<(), TestCaseError> {
    prop_assert!(
        !message.contains('\n') && !message.contains('\r'),
        "{what} error spans lines: {message:?}"
    );
    prop_assert!(!message.trim().is_empty(), "{what} error is empty");
    Ok(())
}

// ---------------------------------------------------------------- mutation machinery

/// One edit of a text. Positions are `Index`es so they fit any length.
#[derive(Clone, Debug)]
enum Edit {
    Delete(Index, usize),
    Insert(Index, String),
    Replace(Index, char),
    DuplicateLine(Index),
    SwapLines(Index, Index),
    Truncate(Index),
}

fn edit(tokens: &'static [&'static str]) -> impl Strategy<Value = Edit> {
    let token = prop_oneof![
        4 => proptest::sample::select(tokens).prop_map(str::to_string),
        1 => proptest::collection::vec(any::<char>(), 0..12).prop_map(|c| c.into_iter().collect()),
        1 => (1usize..6, proptest::sample::select(tokens)).prop_map(|(n, t)| t.repeat(n)),
    ];
    prop_oneof![
        3 => (any::<Index>(), 1usize..40).prop_map(|(i, n)| Edit::Delete(i, n)),
        6 => (any::<Index>(), token).prop_map(|(i, t)| Edit::Insert(i, t)),
        2 => (any::<Index>(), any::<char>()).prop_map(|(i, c)| Edit::Replace(i, c)),
        1 => any::<Index>().prop_map(Edit::DuplicateLine),
        1 => (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Edit::SwapLines(a, b)),
        1 => any::<Index>().prop_map(Edit::Truncate),
    ]
}

fn char_boundaries(text: &str) -> Vec<usize> {
    text.char_indices()
        .map(|(i, _)| i)
        .chain(std::iter::once(text.len()))
        .collect()
}

fn apply(text: &str, edit: &Edit) -> String {
    let bounds = char_boundaries(text);
    let at = |i: &Index| bounds[i.index(bounds.len())];
    let mut out = text.to_string();
    match edit {
        Edit::Delete(i, n) => {
            let start = i.index(bounds.len());
            let end = (start + n).min(bounds.len() - 1);
            out.replace_range(bounds[start]..bounds[end], "");
        }
        Edit::Insert(i, token) => out.insert_str(at(i), token),
        Edit::Replace(i, c) => {
            let start = i.index(bounds.len());
            if start + 1 < bounds.len() {
                out.replace_range(bounds[start]..bounds[start + 1], &c.to_string());
            }
        }
        Edit::DuplicateLine(i) => {
            let lines: Vec<&str> = text.split_inclusive('\n').collect();
            if !lines.is_empty() {
                let k = i.index(lines.len());
                let mut v: Vec<&str> = lines.clone();
                v.insert(k, lines[k]);
                out = v.concat();
            }
        }
        Edit::SwapLines(a, b) => {
            let mut lines: Vec<&str> = text.split_inclusive('\n').collect();
            if !lines.is_empty() {
                let (x, y) = (a.index(lines.len()), b.index(lines.len()));
                lines.swap(x, y);
                out = lines.concat();
            }
        }
        Edit::Truncate(i) => out.truncate(at(i)),
    }
    out
}

/// Text inputs: a mutated seed (most cases) or random text.
fn text_input(
    seeds: &'static [String],
    tokens: &'static [&'static str],
) -> impl Strategy<Value = String> {
    // Mostly one or two edits, so that many inputs stay valid and reach the deep code.
    let edits = prop_oneof![
        6 => proptest::collection::vec(edit(tokens), 1..2),
        3 => proptest::collection::vec(edit(tokens), 2..4),
        1 => proptest::collection::vec(edit(tokens), 4..10),
    ];
    let mutated = (proptest::sample::select(seeds), edits)
        .prop_map(|(seed, edits)| edits.iter().fold(seed, |text, e| apply(&text, e)));
    let random_text =
        proptest::collection::vec(any::<char>(), 0..300).prop_map(|c| c.into_iter().collect());
    let random_bytes = proptest::collection::vec(any::<u8>(), 0..300)
        .prop_map(|b| String::from_utf8_lossy(&b).into_owned());
    let token_soup =
        proptest::collection::vec(proptest::sample::select(tokens), 0..40).prop_map(|t| t.concat());
    prop_oneof![
        12 => mutated,
        2 => token_soup,
        1 => random_text,
        1 => random_bytes,
    ]
}

fn read_seeds(files: impl IntoIterator<Item = PathBuf>) -> Vec<String> {
    let mut seeds: Vec<String> = files
        .into_iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .collect();
    seeds.sort();
    assert!(!seeds.is_empty(), "no seed files found");
    seeds
}

fn yaml_files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            yaml_files_under(&path, out);
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yml" | "yaml")
        ) {
            out.push(path);
        }
    }
}

// ---------------------------------------------------------------- corpus YAML

const CORPUS_TOKENS: &[&str] = &[
    "payload:", "encoder:", "placeholder:", "type:", "\n", "\n  - ", "  ", "- ", ": ", "'",
    "\"", "''", "\\", "\\n", "\\'", "{", "}", "[", "]", "&a ", "*a", "!!binary ", "!!str ",
    "~", "null", "true", "0", "-1", "1e999", "#", "---\n", "...\n", "|\n", "> \n", "\t",
    "\u{0}", "\u{feff}", "é", "🙂", "URLParam", "URLPath", "Header", "UserAgent",
    "RequestBody", "JSONBody", "JSONRequest", "XMLBody", "SOAPBody", "HTMLForm",
    "HTMLMultipartForm", "gRPC", "RawRequest", "GraphQL", "Base64", "Base64Flat", "URL",
    "Plain", "XMLEntity", "JSUnicode", "placeholder:\n  - RawRequest:\n      method: POST\n      path: /x\n      headers:\n        A: b\n      body: \"{{payload}}\"\n",
    "  - GraphQL:\n      method: GET\n", "{{payload}}", "%", "%0d%0a", "\r\n", "<script>",
    "Header:\n      name: X", "method: ", "path: ", "body: ", "headers:", "GET", "POST",
];

fn corpus_seeds() -> &'static [String] {
    static SEEDS: OnceLock<Vec<String>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let mut files = Vec::new();
        yaml_files_under(&common::manifest_dir().join("payloads"), &mut files);
        yaml_files_under(&common::fixture("known"), &mut files);
        yaml_files_under(&common::fixture("bad"), &mut files);
        let mut seeds = read_seeds(files);
        seeds.retain(|s| s.contains("payload"));
        seeds.push(
            "payload:\n  - \"x' or '1'='1\"\n  - '<a>'\nencoder:\n  - Plain\n  - Base64Flat\n  - URL\n\
             placeholder:\n  - URLPath\n  - UserAgent\n  - XMLBody\n  - SOAPBody\n  - HTMLMultipartForm\n  - gRPC\n  - JSONRequest\n  - RequestBody\n"
                .to_string(),
        );
        seeds
    })
}

/// A case file either loads (and then expands into requests without panicking) or fails
/// with one line that names the file.
#[test]
fn corpus_yaml_never_panics_and_errors_are_one_line() {
    static SEEDS: OnceLock<Vec<String>> = OnceLock::new();
    let seeds: &'static [String] = SEEDS.get_or_init(|| corpus_seeds().to_vec());
    let file = Path::new("fuzz-set/fuzz-case.yml");
    let loaded = std::cell::Cell::new(0u32);
    let started = std::time::Instant::now();
    runner(40)
        .run(&text_input(seeds, CORPUS_TOKENS), |text| {
            match parse_case("fuzz-set", file, &text) {
                Ok(case) => {
                    loaded.set(loaded.get() + 1);
                    let corpus = Corpus {
                        sets: vec![CorpusSet {
                            name: "fuzz-set".into(),
                            dir: PathBuf::from("fuzz-set"),
                            benign: false,
                            api: false,
                            cases: vec![case],
                        }],
                    };
                    // Bounded: mutations can multiply payloads × encoders × placeholders.
                    if corpus.request_count() <= 5_000 {
                        let requests = corpus.expand("/base/", 1);
                        prop_assert_eq!(requests.len(), corpus.request_count());
                    }
                    let _ = corpus.stats();
                }
                Err(e) => {
                    let message = e.to_string();
                    one_line("corpus", &message)?;
                    prop_assert!(
                        message.starts_with("fuzz-set/fuzz-case.yml"),
                        "corpus error does not name the file: {message:?}"
                    );
                }
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "corpus: {} cases ({} loaded) in {:.1?}",
        cases(40),
        loaded.get(),
        started.elapsed()
    );
}

// ---------------------------------------------------------------- profiles

const PROFILE_TOKENS: &[&str] = &[
    "name:",
    "target:",
    "  url: ",
    "http://127.0.0.1:1/",
    "https://[::1]:443/x",
    "ftp://x",
    "  host: ",
    "  sni: ",
    "  insecure: true",
    "  http: h2",
    "  http: h3",
    "  ca_file: ",
    "headers:",
    "  X-A: b",
    "  \"bad header\": x",
    "corpus: [",
    "]",
    "benign_share: ",
    "rate: ",
    "stages:",
    "  - {duration: ",
    "10s",
    ", rate: ",
    ", to: ",
    "}",
    "duration: ",
    "requests: ",
    "connections: ",
    "streams_per_connection: ",
    "timeout: ",
    "classify:",
    "  block_status: [",
    "  pass_status: [",
    "  block_body: ",
    "  pass_body: ",
    "(",
    "[a-",
    "  reset_is_block: ",
    "seed: ",
    "request_id_header: ",
    "max: true",
    "results_dir: ",
    "0",
    "-1",
    "1e309",
    "-0",
    "0.0000001",
    "1e-300",
    "18446744073709551616",
    "NaN",
    ".nan",
    ".inf",
    "-.inf",
    "1ms",
    "1us",
    "1ns",
    "0s",
    "99999999999999h",
    "5 parsecs",
    "1.5s",
    "\n",
    "  ",
    "- ",
    ": ",
    "'",
    "\"",
    "{",
    "}",
    "&x ",
    "*x",
    "!!float ",
    "~",
    "null",
    "#",
    "\t",
    "é",
    "\u{0}",
    "---\n",
];

fn profile_seeds() -> &'static [String] {
    static SEEDS: OnceLock<Vec<String>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let mut files = Vec::new();
        yaml_files_under(&common::manifest_dir().join("profiles"), &mut files);
        files.push(common::fixture("bad/bad-rate.yaml"));
        files.push(common::fixture("bad/unknown-key.yaml"));
        let mut seeds = read_seeds(files);
        seeds.push(
            "target:\n  url: http://127.0.0.1:8080/\ncorpus: [payloads]\nrate: 100\nduration: 2s\n"
                .to_string(),
        );
        seeds.push(
            "target: {url: \"http://127.0.0.1:1/\"}\nrequests: 10\nmax: true\nconnections: 2\n\
             stages:\n  - {duration: 1s, rate: 1, to: 1000}\n  - {duration: 1ms, rate: 0.5}\n"
                .to_string(),
        );
        seeds
    })
}

/// A profile either loads — and then yields a schedule whose first offsets, count and mean
/// rate compute without panicking — or fails with one line naming the file.
#[test]
fn profiles_never_panic_and_errors_are_one_line() {
    let file = Path::new("fuzz-profile.yaml");
    let loaded = std::cell::Cell::new(0u32);
    let started = std::time::Instant::now();
    runner(25)
        .run(&text_input(profile_seeds(), PROFILE_TOKENS), |text| {
            match Profile::parse(&text, file) {
                Ok(profile) => {
                    loaded.set(loaded.get() + 1);
                    if let Err(e) = profile.validate_runnable("fuzz-profile.yaml") {
                        one_line("profile", &e.to_string())?;
                    }
                    let schedule = RateSchedule::from_profile(&profile);
                    for slot in [0, 1, 2, 1_000, u64::MAX / 2] {
                        let _ = schedule.offset(slot);
                    }
                    let _ = (
                        schedule.arrivals(),
                        schedule.duration(),
                        schedule.mean_rate(),
                    );
                    let _ = serde_json::to_string(&profile);
                }
                Err(e) => {
                    let message = e.to_string();
                    one_line("profile", &message)?;
                    prop_assert!(
                        message.starts_with("fuzz-profile.yaml"),
                        "profile error does not name the file: {message:?}"
                    );
                }
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "profiles: {} cases ({} loaded) in {:.1?}",
        cases(25),
        loaded.get(),
        started.elapsed()
    );
}

// ---------------------------------------------------------------- SLO expressions

const SLO_TOKENS: &[&str] = &[
    "p50",
    "p90",
    "p99",
    "p999",
    "p99.9",
    "max",
    "mean",
    "median",
    "errors",
    "error",
    "detection",
    "fp",
    "false_positives",
    "rate",
    "late",
    "P99",
    "p100",
    "",
    "<",
    "<=",
    ">",
    ">=",
    "=",
    "==",
    "<<",
    "5ms",
    "1s",
    "0.5ms",
    "10us",
    "1m",
    "2h",
    "1%",
    "0.1%",
    "100%",
    "150%",
    "-1%",
    "0.5",
    "1",
    "0",
    "-3",
    "1e309",
    "NaN",
    "nan",
    "inf",
    "-inf",
    "/s",
    "1000/s",
    ",",
    ", ",
    " ",
    "\t",
    "%",
    "ms",
    "µs",
    "é",
    "\n",
];

const LATENCY_METRICS: &[&str] = &[
    "p50", "p90", "p99", "p999", "p99.9", "max", "mean", "median", "P99",
];
const SHARE_METRICS: &[&str] = &[
    "errors",
    "error",
    "detection",
    "fp",
    "false_positives",
    "late",
];
const OPERATORS: &[&str] = &["<", "<=", ">", ">=", " < ", "=", "=<", "<<"];
const GOOD_OPERATORS: &[&str] = &["<", "<=", ">", ">=", " < ", " >= "];
const LATENCY_VALUES: &[&str] = &["5ms", "1s", "0.5ms", "10us", "250ms", "1m", "0ms", "2.5 ms"];
const BAD_LATENCY_VALUES: &[&str] = &[
    "-1ms",
    "1e309ms",
    "NaNms",
    "infs",
    "1.5",
    "ms",
    "",
    "9999999999999999999s",
    "5 parsecs",
];
const SHARE_VALUES: &[&str] = &["1%", "0.1%", "100%", "0.5", "1", "0", "0%", "99.99%"];
const BAD_SHARE_VALUES: &[&str] = &["150%", "-1%", "1e309", "NaN", "inf", "%", "", "0.5%%", "2"];
const RATE_VALUES: &[&str] = &["1000/s", "10", "0", "1.5/s", "-5", "1e309/s", "NaN", "/s"];

fn slo_term() -> impl Strategy<Value = String> {
    let pick = |list: &'static [&'static str]| proptest::sample::select(list);
    let latency = prop_oneof![4 => pick(LATENCY_VALUES), 1 => pick(BAD_LATENCY_VALUES)];
    let share = prop_oneof![4 => pick(SHARE_VALUES), 1 => pick(BAD_SHARE_VALUES)];
    let operator = prop_oneof![6 => pick(GOOD_OPERATORS), 1 => pick(OPERATORS)];
    prop_oneof![
        8 => (pick(LATENCY_METRICS), operator.clone(), latency)
            .prop_map(|(m, o, v)| format!("{m}{o}{v}")),
        6 => (pick(SHARE_METRICS), operator.clone(), share)
            .prop_map(|(m, o, v)| format!("{m}{o}{v}")),
        2 => (operator, pick(RATE_VALUES)).prop_map(|(o, v)| format!("rate{o}{v}")),
        1 => (pick(SLO_TOKENS), pick(SLO_TOKENS), pick(SLO_TOKENS))
            .prop_map(|(a, b, c)| format!("{a}{b}{c}")),
    ]
}

fn slo_input() -> impl Strategy<Value = String> {
    let structured = proptest::collection::vec(slo_term(), 1..4).prop_map(|terms| terms.join(","));
    let soup = proptest::collection::vec(proptest::sample::select(SLO_TOKENS), 0..16)
        .prop_map(|t| t.concat());
    let random =
        proptest::collection::vec(any::<char>(), 0..60).prop_map(|c| c.into_iter().collect());
    prop_oneof![8 => structured, 1 => soup, 1 => random]
}

/// An SLO either parses — and then evaluates against a real summary — or fails with one
/// line naming the term.
#[test]
fn slo_expressions_never_panic_and_errors_are_one_line() {
    let summary = sample_summary();
    let parsed = std::cell::Cell::new(0u32);
    let started = std::time::Instant::now();
    runner(20)
        .run(&slo_input(), |text| {
            match Slo::parse(&text) {
                Ok(slo) => {
                    parsed.set(parsed.get() + 1);
                    let report = slo.evaluate(&summary);
                    let _ = report.failing();
                    let _ = report.to_string();
                }
                Err(message) => one_line("SLO", &message)?,
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "SLOs: {} cases ({} parsed) in {:.1?}",
        cases(20),
        parsed.get(),
        started.elapsed()
    );
}

// ---------------------------------------------------------------- results files

/// A real summary.json from a short run against the calibration target (made once).
fn sample_run() -> &'static (tempfile::TempDir, PathBuf) {
    static RUN: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    RUN.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let target = wafload::target::start(wafload::target::TargetConfig {
                markers: vec!["wafload-evil".into()],
                faults: wafload::target::Faults {
                    error_500_share: 0.1,
                    ext_proc_error_share: 0.1,
                    reset_share: 0.1,
                    upstream_service_time: Some(std::time::Duration::from_millis(1)),
                    ..Default::default()
                },
                ..Default::default()
            })
            .await
            .unwrap();
            let results = tempfile::tempdir().unwrap();
            let mut p = common::profile(&target.url(), &[common::fixture("known")], results.path());
            p.rate = Some(500.0);
            p.requests = Some(100);
            let outcome = common::run_profile(&p).await;
            target.shutdown().await;
            (results, outcome.dir)
        })
    })
}

fn sample_summary() -> Summary {
    load_summary(&sample_run().1).expect("the sample run's summary loads")
}

const JSON_TOKENS: &[&str] = &[
    "null",
    "true",
    "false",
    "0",
    "-1",
    "1.5",
    "1e400",
    "-1e400",
    "18446744073709551616",
    "-9223372036854775809",
    "\"\"",
    "\"x\"",
    "[]",
    "{}",
    "[1,2]",
    "{\"a\":1}",
    ",",
    ":",
    "\"",
    "{",
    "}",
    "[",
    "]",
    "\\u0000",
    "\\ud800",
    "\n",
    " ",
    "é",
    "\"counts\"",
    "\"latency\"",
    "\"p99\"",
    "\"format\"",
    "\"run\"",
    "\"detection\"",
    "\"attacks\"",
    "\"rate\"",
];

/// Changes one node of a JSON tree: mostly to another value of the same type (so the file
/// still parses and the odd values reach the report code), sometimes to anything.
#[derive(Clone, Debug)]
struct JsonEdit {
    node: Index,
    pick: u64,
    any: serde_json::Value,
    same_type: bool,
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::{json, Value};
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|v| json!(v)),
        any::<u64>().prop_map(|v| json!(v)),
        any::<f64>()
            .prop_filter("finite", |v| v.is_finite())
            .prop_map(|v| json!(v)),
        proptest::sample::select(JSON_TOKENS).prop_map(|s| json!(s)),
        Just(json!([])),
        Just(json!({})),
        Just(json!({"p50": 1, "p99": 2})),
    ]
}

fn json_edit() -> impl Strategy<Value = JsonEdit> {
    (
        any::<Index>(),
        any::<u64>(),
        json_value(),
        prop::bool::weighted(0.8),
    )
        .prop_map(|(node, pick, any, same_type)| JsonEdit {
            node,
            pick,
            any,
            same_type,
        })
}

fn count_nodes(v: &serde_json::Value) -> usize {
    1 + match v {
        serde_json::Value::Array(a) => a.iter().map(count_nodes).sum(),
        serde_json::Value::Object(o) => o.values().map(count_nodes).sum(),
        _ => 0,
    }
}

/// A value of the same JSON type as `old`, chosen by `pick`: extremes, zero, random.
fn same_type_value(old: &serde_json::Value, pick: u64) -> serde_json::Value {
    use serde_json::{json, Value};
    match old {
        Value::Number(n) if n.is_f64() => {
            let choices = [0.0, -1.0, 1e300, -1e300, f64::MIN_POSITIVE, 0.5, 100.0];
            let i = (pick % 8) as usize;
            json!(choices.get(i).copied().unwrap_or(pick as f64 / 7.0))
        }
        Value::Number(_) => {
            let choices = [0, 1, u64::MAX, u64::MAX / 2, 1 << 53, 1_000_000_007];
            let i = (pick % 7) as usize;
            json!(choices.get(i).copied().unwrap_or(pick))
        }
        Value::String(_) => {
            let choices = ["", "é🙂", "\n\r\t", "x".repeat(300).leak(), "1", "null"];
            json!(choices[(pick % choices.len() as u64) as usize])
        }
        Value::Bool(b) => json!(!b),
        Value::Null => json!(pick % 1000),
        Value::Array(a) => {
            let mut a = a.clone();
            if !a.is_empty() {
                let k = (pick % a.len() as u64) as usize;
                if pick % 2 == 0 {
                    a.remove(k);
                } else {
                    let dup = a[k].clone();
                    a.push(dup);
                }
            }
            Value::Array(a)
        }
        Value::Object(o) => {
            let mut o = o.clone();
            if !o.is_empty() && pick % 3 != 0 {
                let key = o.keys().nth((pick % o.len() as u64) as usize).cloned();
                if let Some(key) = key {
                    o.remove(&key);
                }
            } else {
                o.insert(format!("extra{}", pick % 10), json!(pick));
            }
            Value::Object(o)
        }
    }
}

/// Applies `edit` at node `k` (pre-order); returns what is left of `k` (`usize::MAX` = done).
fn edit_node(v: &mut serde_json::Value, mut k: usize, edit: &JsonEdit) -> usize {
    if k == 0 {
        *v = if edit.same_type {
            same_type_value(v, edit.pick)
        } else {
            edit.any.clone()
        };
        return usize::MAX;
    }
    k -= 1;
    let children: Vec<&mut serde_json::Value> = match v {
        serde_json::Value::Array(a) => a.iter_mut().collect(),
        serde_json::Value::Object(o) => o.values_mut().collect(),
        _ => return k,
    };
    for child in children {
        k = edit_node(child, k, edit);
        if k == usize::MAX {
            return k;
        }
    }
    k
}

fn results_input(seed: &'static str) -> impl Strategy<Value = String> {
    static SEEDS: OnceLock<Vec<String>> = OnceLock::new();
    let seeds: &'static [String] = SEEDS.get_or_init(|| vec![seed.to_string()]);
    static TREE: OnceLock<serde_json::Value> = OnceLock::new();
    let parsed: &'static serde_json::Value =
        TREE.get_or_init(|| serde_json::from_str(seed).unwrap());
    let tree_edits = proptest::collection::vec(json_edit(), 1..6).prop_map(move |edits| {
        let mut tree = parsed.clone();
        for e in &edits {
            let n = count_nodes(&tree);
            edit_node(&mut tree, e.node.index(n), e);
        }
        serde_json::to_string(&tree).unwrap()
    });
    prop_oneof![
        4 => tree_edits,
        1 => text_input(seeds, JSON_TOKENS),
    ]
}

/// A summary.json either loads — and then renders, gets hints and is judged by an SLO — or
/// fails with one line naming the file.
#[test]
fn results_files_never_panic_and_errors_are_one_line() {
    let (_keep, run_dir) = sample_run();
    static SEED: OnceLock<String> = OnceLock::new();
    let seed: &'static str =
        SEED.get_or_init(|| std::fs::read_to_string(run_dir.join(SUMMARY_FILE)).unwrap());
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().to_path_buf();
    let slo = Slo::parse("p99<1s,errors<1%,detection>=0.5,fp<=0.1,rate>10,late<1%").unwrap();
    let loaded = std::cell::Cell::new(0u32);
    let started = std::time::Instant::now();
    runner(15)
        .run(&results_input(seed), |text| {
            std::fs::write(dir.join(SUMMARY_FILE), &text).unwrap();
            match load_summary(&dir) {
                Ok(summary) => {
                    loaded.set(loaded.get() + 1);
                    let _ = wafload::report::terminal::render(&summary, &dir);
                    let _ = hints_of(&summary);
                    let _ = slo.evaluate(&summary).to_string();
                }
                Err(e) => {
                    let message = e.to_string();
                    one_line("results", &message)?;
                    prop_assert!(
                        message.contains(SUMMARY_FILE),
                        "results error does not name the file: {message:?}"
                    );
                }
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "results: {} cases ({} loaded) in {:.1?}",
        cases(15),
        loaded.get(),
        started.elapsed()
    );
}

// ---------------------------------------------------------------- what the properties found

/// Inputs the properties above found panicking or printing multi-line errors, kept as
/// plain regression tests.
#[test]
fn regressions_found_by_the_properties() {
    let file = Path::new("found.yaml");
    // A YAML key with a line break was quoted raw into the error.
    let text = "target: {url: \"http://127.0.0.1:1/\"}\nstages:\n  - {duration: 1s, r\n\nate: 1}\n";
    let message = Profile::parse(text, file).unwrap_err().to_string();
    assert!(!message.contains('\n'), "{message:?}");
    assert!(message.contains("unknown field `r\\nate`"), "{message}");

    // Durations too large for `Duration::from_secs_f64` panicked while parsing.
    for text in [
        "target: {url: \"http://127.0.0.1:1/\"}\ntimeout: 1e300\n",
        "target: {url: \"http://127.0.0.1:1/\"}\nduration: 1e19\n",
        "target: {url: \"http://127.0.0.1:1/\"}\nstages: [{duration: 5000000000000000000s, rate: 1}]\n",
    ] {
        let message = Profile::parse(text, file).unwrap_err().to_string();
        assert!(message.contains("is longer than 100 years"), "{message}");
        assert!(!message.contains('\u{1}'), "{message:?}");
    }
    assert!(wafload::profile::parse_duration("1e300").is_err());

    // A slow rate and a far slot overflowed the offset computation.
    let profile = Profile::parse("target:\n  url: http://127.0.0.1:9/\nrate: .3\n", file).unwrap();
    let schedule = RateSchedule::from_profile(&profile);
    assert_eq!(schedule.offset(u64::MAX / 2), None);
    assert!(schedule.offset(3).is_some());

    // Counts near u64::MAX overflowed the report's sums.
    let (_keep, run_dir) = sample_run();
    let mut tree: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join(SUMMARY_FILE)).unwrap())
            .unwrap();
    tree["counts"]["failed"] = serde_json::json!(u64::MAX);
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join(SUMMARY_FILE), tree.to_string()).unwrap();
    let message = load_summary(work.path()).unwrap_err().to_string();
    assert!(
        message.contains("counts.failed = 18446744073709551615 is out of range"),
        "{message}"
    );
}
