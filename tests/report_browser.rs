//! The report in a real browser: a report built from every request of the stock
//! gotestwaf corpus (../shared) and our own payloads, plus hostile payloads and hostile
//! set/case/header names of our own, all listed as evasions or false positives, loaded
//! in headless Chromium. Checked:
//! - no script ran: payloads that would run compute a sentinel ("PW"+"NED",
//!   "EXEC"+"UTED") that never appears literally, and it is absent from the DOM after
//!   load; the DOM has no <script>, no event-handler attribute, no element or URL
//!   attribute that is not the report's own (structure allowlist);
//! - no network request: Chromium's proxy is a loopback canary (loopback not bypassed),
//!   and payloads point at it directly; it must see no connection;
//! - every payload is in the DOM verbatim (as the report shows it: control characters as
//!   symbols, cut to the report's limit);
//! - the method works: positive controls show this Chromium runs an unescaped script,
//!   reaches the canary, and that our CSP alone blocks the script.
//!
//! `alert()` itself is not observed (that needs the DevTools protocol); the checks
//! above prove no script of any kind executed.

#[path = "support/chromium.rs"]
mod chromium;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use wafload::plan::{Plan, Source};
use wafload::report::escape::{truncate, visible};
use wafload::report::fixture::{source, write_results, FixtureOptions};
use wafload::report::{generate, Format, Limits, ReportOptions};

const SENTINELS: &[&str] = &["PWNED", "EXECUTED"];

fn shared_corpus() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpora/gotestwaf/testcases");
    if p.is_dir() {
        return Some(p);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{} is missing and CI=true", p.display());
    }
    eprintln!(
        "SKIP: {} not found (the stock gotestwaf corpus)",
        p.display()
    );
    None
}

/// Payloads that do something visible if they ever run or load.
fn hostile_payloads(canary: &str) -> Vec<String> {
    let title = "document.title='PW'+'NED'";
    let attr = "document.body.setAttribute('data-x','EXEC'+'UTED')";
    vec![
        format!("<script>{title}</script>"),
        format!("<img src=x onerror=\"{title}\">"),
        format!("\"><img src=x onerror={attr}>"),
        format!("'><svg onload={title}>"),
        format!("</pre></td></tr></table><script>{title}</script>"),
        format!("</textarea></title></style></code><script>{title}</script>"),
        format!("--><script>{title}</script><!--"),
        format!("]]><script>{title}</script><![CDATA["),
        format!("</text></svg><script>{title}</script>"),
        format!("<video><source onerror=\"{title}\"></video>"),
        format!("<details open ontoggle={attr}>"),
        format!("<form action=\"{canary}/form\"><input autofocus onfocus={attr}></form>"),
        format!("javascript:{title}"),
        format!("{{{{constructor.constructor(\"{title}\")()}}}}"),
        format!("<img src=\"{canary}/img\">"),
        format!("<link rel=stylesheet href=\"{canary}/css\">"),
        format!("<style>@import url({canary}/import);</style>"),
        format!("<iframe src=\"{canary}/iframe\"></iframe>"),
        format!("<meta http-equiv=\"refresh\" content=\"0;url={canary}/refresh\">"),
        format!("<base href=\"{canary}/base/\">"),
        format!("<object data=\"{canary}/object\"></object>"),
        format!("<svg><image href=\"{canary}/svgimage\"/></svg>"),
        "<plaintext>".to_string(),
        "\nleading newline, CR LF\r\nSet-Cookie: x=1\u{0}nul\u{7f}del\u{2028}ls &amp; &lt;"
            .to_string(),
        "&lt;script&gt; already-escaped &#x3C;img&#x3E; &nbsp;\u{a0}nbsp".to_string(),
    ]
}

/// Every request of the corpora as sources, plus the hostile ones.
fn sources(corpus: &Path, canary: &str) -> Vec<Source> {
    let payloads = Path::new(env!("CARGO_MANIFEST_DIR")).join("payloads");
    let loaded = wafload::corpus::load_corpus(&[corpus.to_path_buf(), payloads]).expect("corpora");
    let mut profile = wafload::profile::Profile::default();
    profile.target.url = "http://127.0.0.1:9/".to_string();
    let plan = Plan::build(&profile, &loaded).expect("plan");
    let mut sources = plan.sources.clone();
    let hostile_set = "set\"><script>document.title='PW'+'NED'</script>";
    let hostile_case = "case<img src=x onerror=document.title='PW'+'NED'>";
    for (i, p) in hostile_payloads(canary).into_iter().enumerate() {
        let mut s = source(hostile_set, hostile_case, "Header", "Plain", i % 5 == 4, &p);
        s.headers = vec![("X-Evil<script>".to_string(), p.clone())];
        s.body = p.clone();
        s.body_len = p.len();
        s.method = "POST".to_string();
        if i % 3 == 0 {
            s.placeholder = "Header\"><script>document.title='PW'+'NED'</script>".to_string();
        }
        sources.push(s);
    }
    sources
}

/// Serialises text as Chromium's DOM dump does in a text node.
fn serialized_text(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('\u{a0}', "&nbsp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A start tag: name and attribute names, from a serialised DOM (quotes respected).
fn tags(dom: &str) -> Vec<(String, Vec<(String, String)>)> {
    let bytes = dom.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(off) = dom[i..].find('<') {
        i += off + 1;
        if dom[i..].starts_with('/') || dom[i..].starts_with('!') {
            continue;
        }
        let name_end = dom[i..]
            .find(|c: char| c.is_whitespace() || c == '>' || c == '/')
            .map(|e| i + e)
            .unwrap_or(dom.len());
        let name = dom[i..name_end].to_ascii_lowercase();
        let mut attrs = Vec::new();
        let mut j = name_end;
        while j < bytes.len() && bytes[j] != b'>' {
            if bytes[j].is_ascii_whitespace() || bytes[j] == b'/' {
                j += 1;
                continue;
            }
            let a_start = j;
            while j < bytes.len() && !b" \t\n=>".contains(&bytes[j]) {
                j += 1;
            }
            let a_name = dom[a_start..j].to_ascii_lowercase();
            let mut value = String::new();
            if j < bytes.len() && bytes[j] == b'=' {
                j += 1;
                if j < bytes.len() && (bytes[j] == b'"' || bytes[j] == b'\'') {
                    let q = bytes[j];
                    let v_start = j + 1;
                    j = v_start;
                    while j < bytes.len() && bytes[j] != q {
                        j += 1;
                    }
                    value = dom[v_start..j.min(dom.len())].to_string();
                    j += 1;
                } else {
                    let v_start = j;
                    while j < bytes.len() && !bytes[j].is_ascii_whitespace() && bytes[j] != b'>' {
                        j += 1;
                    }
                    value = dom[v_start..j].to_string();
                }
            }
            attrs.push((a_name, value));
        }
        out.push((name, attrs));
        i = j.min(dom.len());
    }
    out
}

const ALLOWED_TAGS: &[&str] = &[
    "html",
    "head",
    "meta",
    "title",
    "style",
    "body",
    "main",
    "h1",
    "h2",
    "h3",
    "p",
    "div",
    "span",
    "code",
    "b",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
    "colgroup",
    "col",
    "figure",
    "figcaption",
    "details",
    "summary",
    "pre",
    "br",
    "svg",
    "rect",
    "text",
    "polyline",
    "polygon",
    "line",
    "circle",
    "path",
    "g",
];
const FORBIDDEN_ATTRS: &[&str] = &[
    "href",
    "xlink:href",
    "src",
    "srcset",
    "srcdoc",
    "action",
    "formaction",
    "data",
    "poster",
    "background",
    "ping",
    "autofocus",
    "open",
];

/// The DOM holds only the report's own structure.
fn assert_structure(dom: &str) {
    let mut csp = 0;
    for (name, attrs) in tags(dom) {
        assert!(
            ALLOWED_TAGS.contains(&name.as_str()),
            "element <{name}> in the DOM"
        );
        for (a, v) in &attrs {
            assert!(!a.starts_with("on"), "event handler {a} on <{name}>");
            assert!(
                !FORBIDDEN_ATTRS.contains(&a.as_str()),
                "attribute {a} on <{name}>"
            );
            if a == "http-equiv" {
                assert_eq!(v.to_ascii_lowercase(), "content-security-policy");
                csp += 1;
            }
            if a == "style" {
                assert_eq!(name, "col", "inline style on <{name}>");
            }
        }
    }
    assert_eq!(csp, 1, "exactly one CSP meta");
    // Elements that are allowed once, in the head, are there exactly as often as the
    // report writes them.
    let all = tags(dom);
    let count = |n: &str| all.iter().filter(|(name, _)| name == n).count();
    assert_eq!(count("style"), 1, "<style> elements");
    assert_eq!(count("title"), 1, "<title> elements");
    assert_eq!(count("meta"), 4, "<meta> elements");
    assert_eq!(count("html") + count("head") + count("body"), 3);
}

/// Texts of `<pre class="payload">` elements in a DOM dump.
fn payload_cells(dom: &str) -> HashSet<String> {
    let open = "<pre class=\"payload\">";
    let mut set = HashSet::new();
    let mut rest = dom;
    while let Some(at) = rest.find(open) {
        let body = &rest[at + open.len()..];
        let end = body.find("</pre>").expect("closed pre");
        let text = &body[..end];
        set.insert(text.to_string());
        set.insert(text.strip_prefix('\n').unwrap_or(text).to_string());
        rest = &body[end..];
    }
    set
}

#[test]
fn report_payloads_never_execute_or_load_in_chromium() {
    let Some(chromium) = chromium::require("report_payloads_never_execute_or_load_in_chromium")
    else {
        return;
    };
    let Some(corpus) = shared_corpus() else {
        return;
    };
    let canary = chromium::Canary::start();
    let tmp = tempfile::tempdir().unwrap();

    // Positive controls: the harness detects execution and loads, and our CSP blocks.
    let control = tmp.path().join("control.html");
    std::fs::write(
        &control,
        format!(
            "<!DOCTYPE html><html><head><title>t</title></head><body><script>document.title='PW'+'NED'</script><img src=\"{}/control-img\"></body></html>",
            canary.url()
        ),
    )
    .unwrap();
    let dom = chromium::dump_dom(&chromium, &control, &chromium::proxy_args(&canary)).stdout;
    assert!(
        dom.contains("<title>PWNED</title>"),
        "control: script did not run:\n{dom}"
    );
    assert!(
        canary.page_hits().iter().any(|h| h.contains("control-img")),
        "control: canary saw no request: {:?}",
        canary.hits()
    );
    let with_csp = tmp.path().join("control-csp.html");
    std::fs::write(
        &with_csp,
        format!(
            "<!DOCTYPE html><html><head><meta http-equiv=\"Content-Security-Policy\" content=\"{}\"><title>t</title></head><body><script>document.title='PW'+'NED'</script></body></html>",
            wafload::report::html::CSP.replace('\'', "&#39;")
        ),
    )
    .unwrap();
    let dom = chromium::dump_dom(&chromium, &with_csp, &[]).stdout;
    assert!(
        dom.contains("<title>t</title>"),
        "CSP did not block the script:\n{dom}"
    );

    // The report.
    let before = canary.page_hits().len();
    let sources = sources(&corpus, &canary.url());
    for s in &sources {
        for host in chromium::BROWSER_SERVICE_HOSTS {
            let text = format!("{} {} {:?} {}", s.payload, s.target, s.headers, s.body);
            assert!(
                !text.to_ascii_lowercase().contains(host),
                "a payload mentions {host}; the canary filter would hide its requests"
            );
        }
    }
    let counts: Vec<[u64; 5]> = sources
        .iter()
        .map(|s| {
            if s.benign {
                [1, 0, 0, 0, 0]
            } else {
                [0, 1, 0, 0, 0]
            }
        })
        .collect();
    let run = tmp.path().join("run");
    write_results(&run, &sources, &counts, &FixtureOptions::default()).unwrap();
    let limits = Limits {
        evasions: 100_000,
        evasions_per_case: 100_000,
        false_positives: 100_000,
        text: 4096,
    };
    let written = generate(
        &run,
        &ReportOptions {
            formats: Format::parse_list("html,svg").unwrap(),
            out: None,
            limits: limits.clone(),
        },
    )
    .unwrap();
    let html = run.join("report/report.html");
    let out = chromium::dump_dom(&chromium, &html, &chromium::proxy_args(&canary));
    let dom = out.stdout;
    assert!(
        dom.len() > 10_000,
        "empty DOM dump; stderr:\n{}",
        out.stderr
    );
    eprintln!(
        "report.html {} bytes, {} sources; chromium --dump-dom {:?}",
        std::fs::metadata(&html).unwrap().len(),
        sources.len(),
        out.elapsed
    );

    for s in SENTINELS {
        assert!(!dom.contains(s), "sentinel {s} in the DOM: a payload ran");
    }
    assert!(dom.contains("<title>wafload report synthetic</title>"));
    assert_structure(&dom);
    let new_hits: Vec<String> = canary.page_hits()[before..].to_vec();
    assert!(
        new_hits.is_empty(),
        "the report made network requests: {new_hits:?}"
    );

    // Every payload is in the DOM, verbatim as the report shows it.
    let cells = payload_cells(&dom);
    let mut missing = Vec::new();
    for s in &sources {
        let shown = visible(truncate(&s.payload, limits.text).0);
        if !cells.contains(&serialized_text(&shown)) {
            missing.push(s.payload.chars().take(80).collect::<String>());
        }
    }
    assert!(
        missing.is_empty(),
        "{} of {} payloads not verbatim in the DOM, e.g. {:?}",
        missing.len(),
        sources.len(),
        &missing[..missing.len().min(5)]
    );
    // Hostile names are shown as text too.
    assert!(dom.contains(&serialized_text(
        "set\"><script>document.title='PW'+'NED'</script>/case<img src=x onerror=document.title='PW'+'NED'>"
    )));

    // Each chart as a standalone SVG document: hostile labels stay text.
    for f in written
        .files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "svg"))
    {
        let out = chromium::dump_dom(&chromium, f, &chromium::proxy_args(&canary));
        for s in SENTINELS {
            assert!(!out.stdout.contains(s), "{}: sentinel {s}", f.display());
        }
        assert!(out.stdout.contains("<svg"), "{}: not rendered", f.display());
    }
    let hits = canary.page_hits()[before..].to_vec();
    assert!(hits.is_empty(), "network requests from SVGs: {hits:?}");
}
