//! Known-answer tests for the corpus module. Expected values are written by hand from
//! docs/corpus-format.md and gotestwaf's behaviour, never produced by the code under test.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::corpus::*;

// ---------------------------------------------------------------- helpers

/// The shared reference folder, read in place: `<crate>/../shared`, else `/work/shared`.
fn shared_dir() -> Option<PathBuf> {
    let beside_crate = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared");
    [beside_crate, PathBuf::from("/work/shared")]
        .into_iter()
        .find(|p| p.is_dir())
}

/// The stock gotestwaf corpus, or `None` (with a printed skip message) when absent.
/// With CI=true an absent corpus is a failure, not a skip.
fn stock_corpus_dir() -> Option<PathBuf> {
    let dir = shared_dir().map(|s| s.join("corpora/gotestwaf/testcases"));
    match dir {
        Some(d) if d.is_dir() => Some(d),
        _ => {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("CI=true but ../shared/corpora/gotestwaf/testcases is missing");
            }
            eprintln!("SKIP: ../shared/corpora/gotestwaf/testcases not found (neither beside the crate nor /work/shared)");
            None
        }
    }
}

fn stock_corpus() -> Option<Corpus> {
    let dir = stock_corpus_dir()?;
    Some(load_corpus(&[dir]).expect("stock corpus loads"))
}

/// A scratch folder removed on drop (no tempfile dependency in the module).
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("wafload-corpus-{tag}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn write(&self, rel: &str, content: impl AsRef<[u8]>) -> PathBuf {
        let path = self.0.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, content).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// An RNG whose bytes are 1, 2, 3, ... so random names can be written by hand.
struct CountingRng(u8);

impl RngCore for CountingRng {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0; 4];
        self.fill_bytes(&mut b);
        u32::from_le_bytes(b)
    }
    fn next_u64(&mut self) -> u64 {
        let mut b = [0; 8];
        self.fill_bytes(&mut b);
        u64::from_le_bytes(b)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for byte in dest {
            self.0 = self.0.wrapping_add(1);
            *byte = self.0;
        }
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

fn build(placeholder: &Placeholder, base: &str, payload: &str) -> Result<RequestSpec, Unbuilt> {
    placeholder.build(base, payload, &mut CountingRng(0))
}

fn spec(method: &str, target: &str, headers: &[(&str, &[u8])], body: &[u8]) -> RequestSpec {
    RequestSpec {
        method: method.to_owned(),
        target: target.to_owned(),
        headers: headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_vec()))
            .collect(),
        body: body.to_vec(),
    }
}

fn case_text(encoders: &str, placeholders: &str) -> String {
    format!("payload:\n  - a\nencoder:\n{encoders}placeholder:\n{placeholders}")
}

// R from CountingRng: bytes 01..05.
const R: &str = "0102030405";
// Multipart boundary from CountingRng after R: bytes 06..23 (30 bytes).
const BOUNDARY: &str = "060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20212223";

// ---------------------------------------------------------------- 1. stock corpus counts

#[test]
fn stock_corpus_stats_match_the_doc_table() {
    let Some(corpus) = stock_corpus() else { return };
    let stats = corpus.stats();
    // (set, files, payloads, requests, unsupported) from docs/corpus-format.md
    let expected = [
        ("community", 23, 63, 159, 0),
        ("false-pos", 1, 47, 141, 0),
        ("owasp", 14, 78, 502, 0),
        ("owasp-api", 6, 20, 20, 2),
    ];
    assert_eq!(stats.sets.len(), expected.len());
    for (got, (set, files, payloads, requests, unsupported)) in stats.sets.iter().zip(expected) {
        assert_eq!(
            (
                got.set.as_str(),
                got.files,
                got.payloads,
                got.requests,
                got.unsupported
            ),
            (set, files, payloads, requests, unsupported)
        );
        // Nothing in the stock corpus puts CR/LF/NUL into a header: the Header and
        // UserAgent cases (owasp/rce, owasp/sql-injection, community-user-agent) carry
        // Plain payloads without line breaks or Base64Flat/URL-encoded ones, and no
        // RawRequest header uses {{payload}}. mail-injection has CR/LF but only in
        // URL/body placeholders with Base64Flat/URL encoding.
        assert_eq!(got.unsendable, 0, "set {set}");
    }
    assert_eq!(
        (
            stats.total.files,
            stats.total.payloads,
            stats.total.requests,
            stats.total.unsupported,
            stats.total.unsendable
        ),
        (44, 208, 822, 2, 0)
    );
    assert_eq!(stats.total.buildable(), 820);
    let flags: Vec<(bool, bool)> = stats.sets.iter().map(|s| (s.benign, s.api)).collect();
    assert_eq!(
        flags,
        [(false, false), (true, false), (false, false), (false, true)]
    );
}

#[test]
fn stock_corpus_stats_table_renders() {
    let Some(corpus) = stock_corpus() else { return };
    let expected = "\
set       | files | payloads | requests | unsupported | unsendable
----------|-------|----------|----------|-------------|-----------
community |    23 |       63 |      159 |           0 |          0
false-pos |     1 |       47 |      141 |           0 |          0
owasp     |    14 |       78 |      502 |           0 |          0
owasp-api |     6 |       20 |       20 |           2 |          0
----------|-------|----------|----------|-------------|-----------
total     |    44 |      208 |      822 |           2 |          0
";
    assert_eq!(corpus.stats().to_string(), expected);
}

#[test]
fn stock_corpus_expands_to_822_with_820_built() {
    let Some(corpus) = stock_corpus() else { return };
    let requests = corpus.expand("/", 1);
    assert_eq!(requests.len(), 822);
    assert_eq!(corpus.request_count(), 822);
    let built = requests.iter().filter(|r| r.built.is_ok()).count();
    assert_eq!(built, 820);
    let unsupported: Vec<_> = requests
        .iter()
        .filter_map(|r| match &r.built {
            Err(Unbuilt::Unsupported { placeholder }) => {
                Some((r.case.as_str(), placeholder.as_str()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(unsupported, [("grpc", "gRPC"), ("grpc", "gRPC")]);
    let graphql = requests
        .iter()
        .filter(|r| r.placeholder == "GraphQL")
        .count();
    assert_eq!(graphql, 4);
    // the labels are carried through
    let first = &requests[0];
    assert_eq!(
        (
            first.set.as_str(),
            first.case.as_str(),
            first.benign,
            first.api
        ),
        ("community", "community-128kb-rce", false, false)
    );
    assert!(requests.iter().any(|r| r.benign && r.set == "false-pos"));
}

#[test]
fn stock_crlf_payloads_are_not_encoded_twice() {
    let Some(corpus) = stock_corpus() else { return };
    let requests = corpus.expand("/", 1);
    let crlf: Vec<&str> = requests
        .iter()
        .filter(|r| r.case == "crlf")
        .map(|r| r.built.as_ref().unwrap().target.as_str())
        .collect();
    assert_eq!(crlf[0], "/%0d%0aSet-Cookie:crlf=injection");
    assert_eq!(crlf[6], "/%e5%98%8dSet-cookie%3acrlf%3dinjection");
}

// ---------------------------------------------------------------- 4. the \' quirk

#[test]
fn stock_files_with_backslash_quote_load_as_plain_quote() {
    let Some(dir) = stock_corpus_dir() else {
        return;
    };
    let xss = load_case("owasp", &dir.join("owasp/xss-scripting.yml")).unwrap();
    assert_eq!(xss.payloads.len(), 28);
    assert_eq!(xss.payloads[27], "'-alert(1)//");
    // the payload written `"<<scr\0ipt...` keeps its YAML escape (a NUL)
    assert_eq!(
        xss.payloads[26],
        "<<scr\0ipt/src=http://xss.com/xss.js></script"
    );
    // and plain scalars containing \" stay as written
    assert_eq!(
        xss.payloads[23],
        "\\\"autof<x>ocus o<x>nfocus=alert<x>(1)//"
    );
    for payload in &xss.payloads {
        assert!(!payload.contains("\\'"), "{payload:?}");
    }
    let rest = load_case("owasp-api", &dir.join("owasp-api/rest.yml")).unwrap();
    assert_eq!(rest.payloads[2], "'-alert(1)//");
    let soap = load_case("owasp-api", &dir.join("owasp-api/soap.yml")).unwrap();
    assert_eq!(soap.payloads[0], "'-alert(1)//");
}

#[test]
fn quirk_keeps_line_numbers_for_later_errors() {
    let tmp = TempDir::new("quirk");
    let file = tmp.write(
        "s/q.yml",
        "payload:\n  - \"\\'x\"\nencoder:\n  - Plain\nplaceholder:\n  - Nope\n",
    );
    let err = load_case("s", &file).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!("{}:6:5: ", file.display())),
        "{err}"
    );
}

// ---------------------------------------------------------------- 3. placeholders

const P: &str = "1' or \"x\"<é>#";
// P as a request-target: ' kept; space " < é > # escaped.
const P_TARGET: &str = "1'%20or%20%22x%22%3C%C3%A9%3E%23";

#[test]
fn url_path() {
    assert_eq!(
        build(&Placeholder::UrlPath, "/api/v1/", P),
        Ok(spec("GET", &format!("/api/v1/{P_TARGET}"), &[], b""))
    );
    assert_eq!(
        build(&Placeholder::UrlPath, "/", "/etc/passwd"),
        Ok(spec("GET", "//etc/passwd", &[], b""))
    );
    // already-encoded payloads are not encoded again
    assert_eq!(
        build(&Placeholder::UrlPath, "/", "%0d%0aSet-Cookie:a=b"),
        Ok(spec("GET", "/%0d%0aSet-Cookie:a=b", &[], b""))
    );
}

#[test]
fn url_param() {
    assert_eq!(
        build(&Placeholder::UrlParam, "/", P),
        Ok(spec("GET", &format!("/?{R}={P_TARGET}"), &[], b""))
    );
    assert_eq!(
        build(&Placeholder::UrlParam, "/api/v1/", "a&b=c;d"),
        Ok(spec("GET", &format!("/api/v1/?{R}=a&b=c;d"), &[], b""))
    );
    assert_eq!(
        build(&Placeholder::UrlParam, "/search?q=1", "x"),
        Ok(spec("GET", &format!("/search?q=1&{R}=x"), &[], b""))
    );
}

#[test]
fn header() {
    assert_eq!(
        build(&Placeholder::Header, "/", P),
        Ok(spec(
            "GET",
            "/",
            &[("X-0102030405", "1' or \"x\"<é>#".as_bytes())],
            b""
        ))
    );
    assert_eq!(
        build(&Placeholder::Header, "/", "a\r\nSet-Cookie: x"),
        Err(Unbuilt::Unsendable {
            reason: "header X-0102030405 contains CR".to_owned()
        })
    );
}

#[test]
fn user_agent() {
    assert_eq!(
        build(&Placeholder::UserAgent, "/app", "sqlmap/1.7.4#stable\t(é)"),
        Ok(spec(
            "GET",
            "/app",
            &[("User-Agent", "sqlmap/1.7.4#stable\t(é)".as_bytes())],
            b""
        ))
    );
    assert_eq!(
        build(&Placeholder::UserAgent, "/", "a\nb"),
        Err(Unbuilt::Unsendable {
            reason: "header User-Agent contains LF".to_owned()
        })
    );
    assert_eq!(
        build(&Placeholder::UserAgent, "/", "a\0b\r"),
        Err(Unbuilt::Unsendable {
            reason: "header User-Agent contains NUL".to_owned()
        })
    );
}

#[test]
fn body_placeholders() {
    let body = "a\r\n\0é";
    assert_eq!(
        build(&Placeholder::RequestBody, "/", body),
        Ok(spec("POST", "/", &[], "a\r\n\0é".as_bytes()))
    );
    assert_eq!(
        build(&Placeholder::JsonBody, "/api/", body),
        Ok(spec(
            "POST",
            "/api/",
            &[("Content-Type", b"application/json")],
            "a\r\n\0é".as_bytes()
        ))
    );
    assert_eq!(
        build(&Placeholder::XmlBody, "/", "<x>&y;</x>"),
        Ok(spec(
            "POST",
            "/",
            &[("Content-Type", b"application/xml")],
            b"<x>&y;</x>"
        ))
    );
}

#[test]
fn json_request() {
    assert_eq!(
        build(&Placeholder::JsonRequest, "/", "a'é😀"),
        Ok(spec(
            "POST",
            "/",
            &[("Content-Type", b"application/json")],
            b"{\"test\": true, \"0102030405\": \"\\u0061\\u0027\\u00e9\\ud83d\\ude00\"}"
        ))
    );
}

#[test]
fn soap_body() {
    let expected_body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
<soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\">\n\
<soapenv:Header/>\n\
<soapenv:Body>\n\
<ab0102030405><string>&#39;-alert(1)//&lt;&amp;</string></ab0102030405>\n\
</soapenv:Body>\n\
</soapenv:Envelope>\n";
    assert_eq!(
        build(&Placeholder::SoapBody, "/ws", "'-alert(1)//<&"),
        Ok(spec(
            "POST",
            "/ws",
            &[
                ("Content-Type", b"text/xml"),
                (
                    "SOAPAction",
                    b"\"http://schemas.xmlsoap.org/soap/actor/next\""
                )
            ],
            expected_body.as_bytes()
        ))
    );
}

#[test]
fn html_form_sends_the_field() {
    assert_eq!(
        build(&Placeholder::HtmlForm, "/", "a b&c=%27"),
        Ok(spec(
            "POST",
            "/",
            &[("Content-Type", b"application/x-www-form-urlencoded")],
            b"0102030405=a b&c=%27"
        ))
    );
}

#[test]
fn html_multipart_form() {
    let body = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{R}\"\r\n\r\nx\r\n--y\r\n--{BOUNDARY}--\r\n"
    );
    let content_type = format!("multipart/form-data; boundary={BOUNDARY}");
    assert_eq!(
        build(&Placeholder::HtmlMultipartForm, "/upload", "x\r\n--y"),
        Ok(spec(
            "POST",
            "/upload",
            &[("Content-Type", content_type.as_bytes())],
            body.as_bytes()
        ))
    );
}

fn raw(method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Placeholder {
    Placeholder::RawRequest(RawRequestSettings {
        method: method.to_owned(),
        path: path.to_owned(),
        headers: headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
        body: body.to_owned(),
    })
}

#[test]
fn raw_request() {
    let template = raw(
        "CUST",
        "/x/{{payload}}",
        &[("X-Test", "v={{payload}}"), ("Content-Type", "text/plain")],
        "b={{payload}}&again={{payload}}",
    );
    assert_eq!(
        build(&template, "/api/", "a b"),
        Ok(spec(
            "CUST",
            "/api/x/a%20b",
            &[("X-Test", b"v=a b"), ("Content-Type", b"text/plain")],
            b"b=a b&again=a b"
        ))
    );
    // base path without a trailing slash, default path "/", no body
    assert_eq!(
        build(&raw("GET", "/", &[], ""), "/api", "p"),
        Ok(spec("GET", "/api/", &[], b""))
    );
    assert_eq!(
        build(&raw("POST", "clam.php", &[], "{{payload}}"), "/", "cmd=ls"),
        Ok(spec("POST", "/clam.php", &[], b"cmd=ls"))
    );
    assert_eq!(
        build(&template, "/", "a\r\nb"),
        Err(Unbuilt::Unsendable {
            reason: "header X-Test contains CR".to_owned()
        })
    );
}

#[test]
fn graphql() {
    let get = Placeholder::GraphQl(GraphQlSettings {
        method: GraphQlMethod::Get,
    });
    let post = Placeholder::GraphQl(GraphQlSettings {
        method: GraphQlMethod::Post,
    });
    assert_eq!(
        build(&get, "/graphql", "{\"query\": \"x y\"}"),
        Ok(spec(
            "GET",
            "/graphql?query=%7B%22query%22%3A+%22x+y%22%7D",
            &[],
            b""
        ))
    );
    assert_eq!(
        build(&post, "/graphql", "{\"query\": \"x y\"}"),
        Ok(spec("POST", "/graphql", &[], b"{\"query\": \"x y\"}"))
    );
}

#[test]
fn grpc_is_unsupported() {
    assert_eq!(
        build(&Placeholder::Grpc, "/", "x"),
        Err(Unbuilt::Unsupported {
            placeholder: "gRPC".to_owned()
        })
    );
}

#[test]
fn placeholder_names_are_gotestwaf_names() {
    let all = [
        Placeholder::UrlPath,
        Placeholder::UrlParam,
        Placeholder::Header,
        Placeholder::UserAgent,
        Placeholder::RequestBody,
        Placeholder::JsonBody,
        Placeholder::JsonRequest,
        Placeholder::XmlBody,
        Placeholder::SoapBody,
        Placeholder::HtmlForm,
        Placeholder::HtmlMultipartForm,
        raw("GET", "/", &[], ""),
        Placeholder::GraphQl(GraphQlSettings {
            method: GraphQlMethod::Get,
        }),
        Placeholder::Grpc,
    ];
    let names: Vec<&str> = all.iter().map(Placeholder::name).collect();
    assert_eq!(
        names,
        [
            "URLPath",
            "URLParam",
            "Header",
            "UserAgent",
            "RequestBody",
            "JSONBody",
            "JSONRequest",
            "XMLBody",
            "SOAPBody",
            "HTMLForm",
            "HTMLMultipartForm",
            "RawRequest",
            "GraphQL",
            "gRPC"
        ]
    );
    assert_eq!(names, Placeholder::NAMES);
}

#[test]
fn placeholders_parse_from_yaml_settings() {
    let text = case_text(
        "  - Plain\n",
        "  - URLParam\n  - RawRequest:\n      method: \"POST\"\n      headers:\n        B: \"2\"\n        A: 1\n      body: |\n        {{payload}}\n  - GraphQL:\n      method: GET\n  - RawRequest:\n      method: PUT\n      path: \"\"\n",
    );
    let case = parse_case("s", Path::new("s/c.yml"), &text).unwrap();
    assert_eq!(
        case.placeholders,
        [
            Placeholder::UrlParam,
            raw("POST", "/", &[("B", "2"), ("A", "1")], "{{payload}}\n"),
            Placeholder::GraphQl(GraphQlSettings {
                method: GraphQlMethod::Get
            }),
            raw("PUT", "/", &[], ""),
        ]
    );
    assert_eq!(case.name, "c");
    assert_eq!(case.type_label, "");
}

// ---------------------------------------------------------------- 5. determinism

#[test]
fn same_seed_same_requests_different_seed_different_names() {
    let text = case_text(
        "  - Plain\n  - URL\n",
        "  - URLParam\n  - Header\n  - HTMLMultipartForm\n  - SOAPBody\n",
    );
    let case = parse_case("s", Path::new("s/c.yml"), &text).unwrap();
    let corpus = Corpus {
        sets: vec![CorpusSet {
            name: "s".into(),
            dir: "s".into(),
            benign: false,
            api: false,
            cases: vec![case],
        }],
    };
    let a = corpus.expand("/", 42);
    assert_eq!(a, corpus.expand("/", 42));
    let b = corpus.expand("/", 43);
    assert_eq!(a.len(), 8);
    assert_eq!(b.len(), 8);
    let names = |requests: &[CorpusRequest]| -> Vec<String> {
        requests
            .iter()
            .filter(|r| r.placeholder == "URLParam")
            .map(|r| r.built.as_ref().unwrap().target[2..12].to_owned())
            .collect()
    };
    let (names_a, names_b) = (names(&a), names(&b));
    assert_eq!(names_a.len(), 2);
    for (x, y) in names_a.iter().zip(&names_b) {
        assert_ne!(x, y);
    }
    // Within one expansion every random name is fresh.
    let distinct: BTreeSet<_> = names_a.iter().collect();
    assert_eq!(distinct.len(), names_a.len());
}

#[test]
fn random_names_come_from_chacha8_seeded_with_the_seed() {
    let case = parse_case(
        "s",
        Path::new("s/c.yml"),
        &case_text("  - Plain\n", "  - URLParam\n"),
    )
    .unwrap();
    let corpus = Corpus {
        sets: vec![CorpusSet {
            name: "s".into(),
            dir: "s".into(),
            benign: false,
            api: false,
            cases: vec![case],
        }],
    };
    // The first 5 bytes of ChaCha8Rng::seed_from_u64(42), recorded from rand_chacha 0.3:
    // a portability check that the same seed gives the same plan on every machine.
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let mut first = [0u8; 5];
    rng.fill_bytes(&mut first);
    assert_eq!(first, [0xa1, 0x5b, 0x5d, 0x39, 0xb5]);
    let requests = corpus.expand("/", 42);
    assert_eq!(requests[0].built.as_ref().unwrap().target, "/?a15b5d39b5=a");
}

#[test]
fn stock_expansion_is_reproducible() {
    let Some(corpus) = stock_corpus() else { return };
    let a = corpus.expand("/api/", 7);
    assert_eq!(a, corpus.expand("/api/", 7));
    assert_ne!(a, corpus.expand("/api/", 8));
}

// ---------------------------------------------------------------- 6. bad input

fn load_err(content: &str) -> (PathBuf, CorpusError, TempDir) {
    let tmp = TempDir::new("bad");
    let file = tmp.write("set/case.yml", content);
    let err = load_corpus(std::slice::from_ref(&tmp.0)).unwrap_err();
    let msg = err.to_string();
    assert!(!msg.contains('\n'), "error must be one line: {msg:?}");
    (file, err, tmp)
}

#[test]
fn malformed_yaml_names_file_and_line() {
    let (file, err, _tmp) = load_err("payload:\n  - \"a\\qb\"\nencoder:\n  - Plain\n");
    let msg = err.to_string();
    assert!(msg.starts_with(&format!("{}:2:", file.display())), "{msg}");
    assert!(
        matches!(err.problem(), Some(CaseProblem::Yaml(_))),
        "{err:?}"
    );

    let (file, err, _tmp) =
        load_err("payload:\n  - a\nencoder: [Plain\nplaceholder:\n  - URLParam\n");
    assert!(err.to_string().starts_with(&format!("{}:", file.display())));
    assert!(
        matches!(err, CorpusError::Case { line: Some(_), .. }),
        "{err:?}"
    );
}

#[test]
fn wrong_value_type_names_the_entry() {
    let (file, err, _tmp) =
        load_err("payload:\n  - [a]\nencoder:\n  - Plain\nplaceholder:\n  - URLParam\n");
    assert_eq!(
        err.to_string(),
        format!(
            "{}:2:5: payload[0]: invalid type: sequence, expected a string",
            file.display()
        )
    );
}

#[test]
fn unknown_encoder_is_named_with_valid_list_at_its_line() {
    let (file, err, _tmp) =
        load_err("payload:\n  - a\nencoder:\n  - Plain\n  - Rot13\nplaceholder:\n  - URLParam\n");
    assert_eq!(
        err.to_string(),
        format!(
            "{}:5:5: unknown encoder \"Rot13\" (valid: Plain, URL, Base64, Base64Flat, JSUnicode, XMLEntity)",
            file.display()
        )
    );
    assert_eq!(
        err.problem(),
        Some(&CaseProblem::UnknownEncoder {
            name: "Rot13".into()
        })
    );
}

#[test]
fn unknown_placeholder_is_named_with_valid_list_at_its_line() {
    let (file, err, _tmp) = load_err(
        "payload:\n  - a\nencoder:\n  - Plain\nplaceholder:\n  - URLParam\n  - RawRequest:\n      method: GET\n  - Cookie\n",
    );
    assert_eq!(
        err.to_string(),
        format!(
            "{}:9:5: unknown placeholder \"Cookie\" (valid: URLPath, URLParam, Header, UserAgent, RequestBody, JSONBody, JSONRequest, XMLBody, SOAPBody, HTMLForm, HTMLMultipartForm, RawRequest, GraphQL, gRPC)",
            file.display()
        )
    );
}

#[test]
fn empty_lists_are_errors() {
    let (file, err, _tmp) =
        load_err("payload: []\nencoder:\n  - Plain\nplaceholder:\n  - URLParam\n");
    assert_eq!(
        err.to_string(),
        format!(
            "{}:1:1: `payload` list is empty, the file would send nothing",
            file.display()
        )
    );
    let (_, err, _tmp) = load_err("payload:\nencoder:\n  - Plain\nplaceholder:\n  - URLParam\n");
    assert_eq!(
        err.problem(),
        Some(&CaseProblem::EmptyList { key: "payload" })
    );
    let (file, err, _tmp) = load_err("payload:\n  - a\nencoder: []\nplaceholder:\n  - URLParam\n");
    assert!(err
        .to_string()
        .starts_with(&format!("{}:3:1: `encoder`", file.display())));
    let (_, err, _tmp) = load_err("payload:\n  - a\nencoder:\n  - Plain\nplaceholder: []\n");
    assert_eq!(
        err.problem(),
        Some(&CaseProblem::EmptyList { key: "placeholder" })
    );
}

#[test]
fn missing_keys_are_errors() {
    let (file, err, _tmp) = load_err("payload:\n  - a\nencoder:\n  - Plain\n");
    assert_eq!(
        err.to_string(),
        format!("{}: missing key `placeholder`", file.display())
    );
    let (_, err, _tmp) = load_err("");
    assert_eq!(
        err.problem(),
        Some(&CaseProblem::MissingKey { key: "payload" })
    );
    let (_, err, _tmp) = load_err("# only a comment\n");
    assert_eq!(
        err.problem(),
        Some(&CaseProblem::MissingKey { key: "payload" })
    );
}

#[test]
fn bad_placeholder_settings_are_errors() {
    let (file, err, _tmp) = load_err(&case_text(
        "  - Plain\n",
        "  - RawRequest:\n      path: /x\n",
    ));
    assert_eq!(
        err.to_string(),
        format!("{}:6:5: RawRequest: `method` is required", file.display())
    );
    let (_, err, _tmp) = load_err(&case_text("  - Plain\n", "  - RawRequest\n"));
    assert!(matches!(
        err.problem(),
        Some(CaseProblem::BadSettings {
            placeholder: "RawRequest",
            ..
        })
    ));
    let (_, err, _tmp) = load_err(&case_text(
        "  - Plain\n",
        "  - RawRequest:\n      method: \"BAD METHOD\"\n",
    ));
    assert!(err.to_string().contains("not a valid HTTP method"), "{err}");
    let (_, err, _tmp) = load_err(&case_text(
        "  - Plain\n",
        "  - RawRequest:\n      method: GET\n      headers: [a, b]\n",
    ));
    assert!(err.to_string().contains("`headers` must be a map"), "{err}");
    let (_, err, _tmp) = load_err(&case_text(
        "  - Plain\n",
        "  - GraphQL:\n      method: PUT\n",
    ));
    assert!(
        err.to_string()
            .ends_with("GraphQL: method must be GET or POST, got \"PUT\""),
        "{err}"
    );
    let (_, err, _tmp) = load_err(&case_text("  - Plain\n", "  - {URLParam: 1, Header: 2}\n"));
    assert!(
        matches!(err.problem(), Some(CaseProblem::BadPlaceholderEntry { .. })),
        "{err}"
    );
    let (_, err, _tmp) = load_err(&case_text("  - Plain\n", "  - [URLParam]\n"));
    assert!(
        matches!(err.problem(), Some(CaseProblem::BadPlaceholderEntry { .. })),
        "{err}"
    );
}

#[test]
fn other_bad_inputs_are_errors_not_panics() {
    let (_, err, _tmp) = load_err("- a\n- b\n");
    assert!(matches!(err.problem(), Some(CaseProblem::Yaml(_))), "{err}");
    let (_, err, _tmp) =
        load_err("payload: [a]\nencoder: [Plain]\nplaceholder: [URLParam]\n---\nx: 1\n");
    assert!(matches!(err.problem(), Some(CaseProblem::Yaml(_))), "{err}");
    let (_, err, _tmp) = load_err("\tpayload:\n");
    assert!(matches!(err, CorpusError::Case { .. }), "{err}");

    let tmp = TempDir::new("utf8");
    tmp.write("set/bin.yml", [0xff, 0xfe, 0x00, b'a']);
    let err = load_corpus(std::slice::from_ref(&tmp.0)).unwrap_err();
    assert!(matches!(err, CorpusError::ReadFile { .. }), "{err}");

    let missing = tmp.0.join("does-not-exist");
    let err = load_corpus(std::slice::from_ref(&missing)).unwrap_err();
    assert!(err
        .to_string()
        .starts_with(&format!("{}: cannot read directory", missing.display())));

    let empty = TempDir::new("empty");
    let err = load_corpus(std::slice::from_ref(&empty.0)).unwrap_err();
    assert!(matches!(err, CorpusError::Empty { .. }), "{err}");
}

#[test]
fn unknown_top_level_keys_are_ignored_and_flow_style_works() {
    let tmp = TempDir::new("extra");
    tmp.write(
        "set/a.yml",
        "payload: [x]\nencoder: [Plain]\nplaceholder: [URLParam]\ntype: T\nauthor: someone\nnotes: {a: [1, 2]}\n",
    );
    let corpus = load_corpus(std::slice::from_ref(&tmp.0)).unwrap();
    assert_eq!(corpus.sets[0].cases[0].type_label, "T");
}

#[test]
fn every_prefix_of_stock_files_loads_or_errors_without_panic() {
    let Some(dir) = stock_corpus_dir() else {
        return;
    };
    for rel in [
        "owasp/xss-scripting.yml",
        "owasp-api/rest.yml",
        "community/community-rce-rawrequests.yml",
        "community/community-xxe.yml",
        "owasp-api/graphql.yml",
    ] {
        let text = fs::read_to_string(dir.join(rel)).unwrap();
        for (cut, _) in text.char_indices() {
            if let Err(err) = parse_case("s", Path::new(rel), &text[..cut]) {
                assert!(!err.to_string().contains('\n'));
            }
        }
    }
}

// ---------------------------------------------------------------- folders

#[test]
fn roots_sets_order_and_duplicates() {
    let a = TempDir::new("root-a");
    let ok = "payload: [x]\nencoder: [Plain]\nplaceholder: [URLParam]\n";
    a.write("owasp/b.yml", ok);
    a.write("owasp/a.yaml", ok);
    a.write("owasp/notes.txt", "not a case");
    a.write("false-pos/t.yml", ok);
    a.write("docs/readme.md", "no cases here");
    let b = TempDir::new("my-api");
    b.write("z.yml", ok); // a root holding files is one set named after the folder

    let corpus = load_corpus(&[b.0.clone(), a.0.clone()]).unwrap();
    let sets: Vec<(&str, bool, bool)> = corpus
        .sets
        .iter()
        .map(|s| (s.name.as_str(), s.benign, s.api))
        .collect();
    let b_name = b.0.file_name().unwrap().to_string_lossy().into_owned();
    assert_eq!(
        sets,
        [
            ("false-pos", true, false),
            ("owasp", false, false),
            (b_name.as_str(), false, true),
        ]
    );
    let owasp_cases: Vec<&str> = corpus.sets[1]
        .cases
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(owasp_cases, ["a", "b"]);

    let c = TempDir::new("root-c");
    c.write("owasp/x.yml", ok);
    let err = load_corpus(&[a.0.clone(), c.0.clone()]).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "set \"owasp\" is defined twice: {} and {}",
            a.0.join("owasp").display(),
            c.0.join("owasp").display()
        )
    );
}

#[test]
fn stats_count_unsendable_header_payloads() {
    let text = "payload:\n  - \"a\\r\\nb\"\n  - ok\nencoder:\n  - Plain\n  - URL\nplaceholder:\n  - Header\n  - UserAgent\n  - URLParam\n  - gRPC\n";
    let case = parse_case("s", Path::new("s/c.yml"), text).unwrap();
    let corpus = Corpus {
        sets: vec![CorpusSet {
            name: "s".into(),
            dir: "s".into(),
            benign: false,
            api: false,
            cases: vec![case],
        }],
    };
    let stats = corpus.stats();
    // 2 payloads × 2 encoders × 4 placeholders = 16; gRPC: 4 unsupported;
    // only "a\r\nb" with Plain in Header and UserAgent is unsendable (URL encodes CR LF).
    assert_eq!(
        (
            stats.total.requests,
            stats.total.unsupported,
            stats.total.unsendable
        ),
        (16, 4, 2)
    );
    let requests = corpus.expand("/", 0);
    let unsendable: Vec<_> = requests
        .iter()
        .filter(|r| matches!(r.built, Err(Unbuilt::Unsendable { .. })))
        .map(|r| (r.placeholder, r.encoder, r.payload_index))
        .collect();
    assert_eq!(
        unsendable,
        [("Header", "Plain", 0), ("UserAgent", "Plain", 0)]
    );
}

#[test]
fn stats_serialize_for_json_output() {
    fn assert_serialize<T: serde::Serialize>(_: &T) {}
    let stats = Corpus { sets: vec![] }.stats();
    assert_serialize(&stats);
    assert_eq!(stats.total.requests, 0);
}
