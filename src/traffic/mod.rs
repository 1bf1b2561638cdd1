//! Bring-your-own traffic: importers (HAR, nginx/Envoy access logs, vegeta targets) that
//! turn recorded requests into a wafload traffic file, secret stripping, and the traffic
//! file's reader and writer. Profiles reference traffic files under `benign:`.
//! It never sends, schedules or classifies anything; the plan turns traffic into requests.

pub mod access_log;
pub mod har;
pub mod secrets;
pub mod vegeta;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};

/// A traffic-file problem, always one line naming the file and, when known, the line.
#[derive(Debug, thiserror::Error)]
pub enum TrafficError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}:{line}: {message}", path.display())]
    Line {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{}: {message}", path.display())]
    File { path: PathBuf, message: String },
}

/// What the WAF is expected to do with an imported request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Legitimate traffic: a block is a false positive.
    Pass,
    /// Known-bad traffic (e.g. from an incident): a pass is a miss.
    Block,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Pass => "pass",
            Verdict::Block => "block",
        })
    }
}

/// One recorded request, as wafload will replay it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TrafficRequest {
    pub method: String,
    /// Origin-form `path[?query]`, as it was on the wire.
    pub target: String,
    /// In recorded order; names as recorded. Host and hop-by-hop headers are never kept.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Milliseconds after the first request of the recording, when the source had times.
    pub t_ms: Option<u64>,
    pub expect: Option<Verdict>,
    /// Label the results group this request under (defaults to the file's stem).
    pub source: Option<String>,
}

/// One line of a traffic file (JSON lines). Text bodies are stored as `body`, others as
/// `body_base64`, so files stay readable and diffable.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    method: String,
    target: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    headers: Vec<(String, String)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    body_base64: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    t_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expect: Option<Verdict>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    source: Option<String>,
}

impl TrafficRequest {
    /// The traffic-file line for this request (no trailing newline).
    pub fn to_line(&self) -> String {
        let (body, body_base64) = if self.body.is_empty() {
            (None, None)
        } else {
            match std::str::from_utf8(&self.body) {
                Ok(text) if !text.contains('\0') => (Some(text.to_string()), None),
                _ => (
                    None,
                    Some(base64::engine::general_purpose::STANDARD.encode(&self.body)),
                ),
            }
        };
        let line = Line {
            method: self.method.clone(),
            target: self.target.clone(),
            headers: self.headers.clone(),
            body,
            body_base64,
            t_ms: self.t_ms,
            expect: self.expect,
            source: self.source.clone(),
        };
        serde_json::to_string(&line).expect("a traffic line always serialises")
    }

    /// Parses one traffic-file line; the error is the message without the position.
    pub fn from_line(text: &str) -> Result<TrafficRequest, String> {
        let line: Line = serde_json::from_str(text).map_err(|e| {
            let s = e.to_string();
            match s.find(" at line ") {
                Some(i) => s[..i].to_string(),
                None => s,
            }
        })?;
        if line.method.is_empty() || http::Method::from_bytes(line.method.as_bytes()).is_err() {
            return Err(format!("method {:?} is not an HTTP method", line.method));
        }
        if !line.target.starts_with('/') {
            return Err(format!(
                "target {:?} must be a path starting with /",
                line.target
            ));
        }
        let body = match (line.body, line.body_base64) {
            (Some(_), Some(_)) => return Err("give body or body_base64, not both".into()),
            (Some(text), None) => text.into_bytes(),
            (None, Some(b64)) => base64::engine::general_purpose::STANDARD
                .decode(b64.as_bytes())
                .map_err(|e| format!("body_base64 is not base64: {e}"))?,
            (None, None) => Vec::new(),
        };
        for (name, _) in &line.headers {
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(format!("{name:?} is not a valid header name"));
            }
        }
        Ok(TrafficRequest {
            method: line.method,
            target: line.target,
            headers: line.headers,
            body,
            t_ms: line.t_ms,
            expect: line.expect,
            source: line.source,
        })
    }

    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A loaded traffic file.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TrafficFile {
    pub path: PathBuf,
    pub requests: Vec<TrafficRequest>,
}

impl TrafficFile {
    /// The source label of requests without one: the file stem (`shop.jsonl` → `shop`).
    pub fn default_source(&self) -> String {
        default_source_name(&self.path)
    }

    /// True when every request carries a timestamp (needed for replay at recorded times).
    pub fn has_times(&self) -> bool {
        !self.requests.is_empty() && self.requests.iter().all(|r| r.t_ms.is_some())
    }
}

/// `dir/shop.har` → `shop`.
pub fn default_source_name(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "traffic".to_string())
}

/// Reads a traffic file: one JSON object per line; blank lines and lines starting with `#`
/// are ignored. Errors name `file:line`.
pub fn read_traffic_file(path: &Path) -> Result<TrafficFile, TrafficError> {
    let text = std::fs::read_to_string(path).map_err(|source| TrafficError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_traffic(&text, path)
}

/// Parses traffic-file text; `path` is used in error messages only.
pub fn parse_traffic(text: &str, path: &Path) -> Result<TrafficFile, TrafficError> {
    let mut requests = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let request = TrafficRequest::from_line(trimmed).map_err(|message| TrafficError::Line {
            path: path.to_path_buf(),
            line: i + 1,
            message,
        })?;
        requests.push(request);
    }
    if requests.is_empty() {
        return Err(TrafficError::File {
            path: path.to_path_buf(),
            message: "no request in this traffic file".into(),
        });
    }
    Ok(TrafficFile {
        path: path.to_path_buf(),
        requests,
    })
}

/// The traffic-file text for these requests (one line each, newline-terminated).
pub fn render_traffic(requests: &[TrafficRequest]) -> String {
    let mut out = String::new();
    for r in requests {
        out.push_str(&r.to_line());
        out.push('\n');
    }
    out
}

/// Input formats `wafload traffic import` understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ImportFormat {
    /// HTTP Archive 1.2 (browser devtools "Save all as HAR").
    Har,
    /// nginx `combined` access log.
    Nginx,
    /// Envoy's default access log format.
    Envoy,
    /// vegeta's HTTP targets format (`GET url`, headers, `@body-file`).
    VegetaHttp,
    /// vegeta's JSON targets format (one object per line, body in base64).
    VegetaJson,
}

/// What an import produced, besides the requests: lines that could not be used and notes
/// the user should read (e.g. "access logs carry no bodies").
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Imported {
    pub requests: Vec<TrafficRequest>,
    /// (line or entry number, reason), 1-based.
    pub skipped: Vec<(usize, String)>,
    pub notes: Vec<String>,
    /// How many headers, query parameters and body fields were removed or redacted.
    pub secrets_stripped: usize,
}

/// Import options that apply to every format.
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    pub keep_secrets: bool,
    pub expect: Option<Verdict>,
    pub source: Option<String>,
}

/// Imports `input` (read from `path`) in `format`. Secrets are stripped unless asked to
/// keep them; `expect` and `source` label every request. Never panics on bad input: lines
/// that cannot be read are listed in `skipped`; only a file with no usable request at all
/// is an error.
pub fn import(
    format: ImportFormat,
    input: &str,
    path: &Path,
    options: &ImportOptions,
) -> Result<Imported, TrafficError> {
    let mut imported = match format {
        ImportFormat::Har => har::import(input, path)?,
        ImportFormat::Nginx => access_log::import_nginx(input),
        ImportFormat::Envoy => access_log::import_envoy(input),
        ImportFormat::VegetaHttp => vegeta::import_http(input, path),
        ImportFormat::VegetaJson => vegeta::import_json(input),
    };
    if imported.requests.is_empty() {
        let first = imported
            .skipped
            .first()
            .map(|(n, why)| format!(" (first problem: entry/line {n}: {why})"))
            .unwrap_or_default();
        return Err(TrafficError::File {
            path: path.to_path_buf(),
            message: format!("no request could be imported as {format:?}{first}"),
        });
    }
    normalise_times(&mut imported.requests);
    for r in &mut imported.requests {
        if !options.keep_secrets {
            imported.secrets_stripped += secrets::strip(r);
        }
        if options.expect.is_some() {
            r.expect = options.expect;
        }
        if options.source.is_some() {
            r.source = options.source.clone();
        }
    }
    Ok(imported)
}

/// Makes times relative to the earliest request and orders requests by time (stable), so
/// replay offsets never go backwards.
fn normalise_times(requests: &mut [TrafficRequest]) {
    if requests.iter().any(|r| r.t_ms.is_none()) {
        for r in requests.iter_mut() {
            r.t_ms = None;
        }
        return;
    }
    let first = requests.iter().filter_map(|r| r.t_ms).min().unwrap_or(0);
    for r in requests.iter_mut() {
        r.t_ms = r.t_ms.map(|t| t - first);
    }
    requests.sort_by_key(|r| r.t_ms);
}

/// Headers that describe one hop or one connection, not the request: never replayed.
/// `Host` comes from the profile's target; lengths are recomputed.
pub fn is_connection_header(name: &str) -> bool {
    name.starts_with(':')
        || [
            "host",
            "content-length",
            "connection",
            "keep-alive",
            "transfer-encoding",
            "te",
            "trailer",
            "upgrade",
            "proxy-connection",
            "http2-settings",
        ]
        .iter()
        .any(|h| name.eq_ignore_ascii_case(h))
}

/// `http://host:1/a?b` or `/a?b` → `/a?b`; `None` when there is no usable path.
pub fn origin_form(url: &str) -> Option<String> {
    let rest = if let Some(i) = url.find("://") {
        let after = &url[i + 3..];
        match after.find(['/', '?']) {
            Some(j) => &after[j..],
            None => "/",
        }
    } else {
        url
    };
    let rest = rest.split('#').next().unwrap_or("");
    if rest.starts_with('?') {
        return Some(format!("/{}", escape_target(rest.as_bytes())));
    }
    if !rest.starts_with('/') {
        return None;
    }
    Some(escape_target(rest.as_bytes()))
}

/// Percent-encodes the bytes a request-target cannot carry (controls, space, non-ASCII,
/// `"<>\^`{|}`), keeping `%` so already-encoded targets stay as they were.
pub fn escape_target(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b > 0x20
            && b < 0x7f
            && !matches!(
                b,
                b'"' | b'<' | b'>' | b'\\' | b'^' | b'`' | b'{' | b'|' | b'}'
            )
        {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Form encoding (`application/x-www-form-urlencoded`, Go's `url.QueryEscape`): space is
/// `+`, only unreserved bytes stay.
pub fn form_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for &b in text.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else if b == b' ' {
            out.push('+');
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip_text_and_binary_bodies() {
        let text = TrafficRequest {
            method: "POST".into(),
            target: "/a?b=1".into(),
            headers: vec![("content-type".into(), "application/json".into())],
            body: br#"{"x":1}"#.to_vec(),
            t_ms: Some(5),
            expect: Some(Verdict::Pass),
            source: Some("s".into()),
        };
        let line = text.to_line();
        assert_eq!(
            line,
            r#"{"method":"POST","target":"/a?b=1","headers":[["content-type","application/json"]],"body":"{\"x\":1}","t_ms":5,"expect":"pass","source":"s"}"#
        );
        assert_eq!(TrafficRequest::from_line(&line).unwrap(), text);
        let binary = TrafficRequest {
            method: "PUT".into(),
            target: "/b".into(),
            body: vec![0xff, 0, 1],
            ..Default::default()
        };
        let line = binary.to_line();
        assert!(line.contains(r#""body_base64":"/wAB""#), "{line}");
        assert_eq!(TrafficRequest::from_line(&line).unwrap(), binary);
    }

    #[test]
    fn bad_lines_name_file_and_line() {
        let err = parse_traffic(
            "# comment\n{\"method\":\"GET\",\"target\":\"/\"}\n{\"method\":\"GET\",\"target\":\"x\"}\n",
            Path::new("t.jsonl"),
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "t.jsonl:3: target \"x\" must be a path starting with /"
        );
        let err = parse_traffic(
            "{\"method\":\"GET\",\"target\":\"/\",\"bogus\":1}",
            Path::new("t"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("t:1: unknown field `bogus`"), "{err}");
        let err = parse_traffic("\n", Path::new("t")).unwrap_err().to_string();
        assert_eq!(err, "t: no request in this traffic file");
    }

    #[test]
    fn origin_form_strips_scheme_and_authority() {
        assert_eq!(origin_form("https://a.b:8/x/y?q=1#f").unwrap(), "/x/y?q=1");
        assert_eq!(origin_form("http://a.b").unwrap(), "/");
        assert_eq!(origin_form("http://a.b?x=1").unwrap(), "/?x=1");
        assert_eq!(origin_form("/a b").unwrap(), "/a%20b");
        assert_eq!(origin_form("*"), None);
    }
}
