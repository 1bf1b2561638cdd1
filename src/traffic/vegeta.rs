//! vegeta targets import, so vegeta users can reuse what they have:
//! - HTTP format: `METHOD URL`, then `Name: value` header lines, then an optional
//!   `@path/to/body` line; targets are separated by blank lines; `#` starts a comment.
//! - JSON format: one `{"method", "url", "header": {name: [values]}, "body": base64}`
//!   object per line.
//!
//! vegeta targets carry no times, so they replay at the profile's rate only.

use super::{is_connection_header, origin_form, Imported, TrafficRequest};
use base64::Engine as _;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Imports the HTTP targets format. `path` locates `@body` files: as given (vegeta reads
/// them relative to its working directory), else relative to the targets file's folder.
pub fn import_http(text: &str, path: &Path) -> Imported {
    let mut out = Imported::default();
    let base = path.parent().unwrap_or(Path::new("."));
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].trim();
        if line.is_empty() || line.starts_with('#') {
            i += 1;
            continue;
        }
        let start = i + 1;
        let mut problem = None;
        let mut request = match request_line(line) {
            Ok(r) => Some(r),
            Err(why) => {
                problem = Some(why);
                None
            }
        };
        i += 1;
        // Header and body lines up to a blank line or the next request line.
        while i < lines.len() {
            let l = lines[i].trim();
            if l.is_empty() || (looks_like_request_line(l) && !l.starts_with('@')) {
                break;
            }
            i += 1;
            if l.starts_with('#') {
                continue;
            }
            let Some(r) = request.as_mut() else { continue };
            if let Some(file) = l.strip_prefix('@') {
                match read_body(file.trim(), base) {
                    Ok(body) => r.body = body,
                    Err(why) => {
                        problem = Some(why);
                        request = None;
                    }
                }
            } else if let Some((name, value)) = l.split_once(':') {
                let (name, value) = (name.trim(), value.trim());
                if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                    problem = Some(format!("line {}: {name:?} is not a header name", i));
                    request = None;
                } else if !is_connection_header(name) {
                    r.headers.push((name.to_string(), value.to_string()));
                }
            } else {
                problem = Some(format!("line {i}: {l:?} is neither a header nor @body"));
                request = None;
            }
        }
        match (request, problem) {
            (Some(r), None) => out.requests.push(r),
            (_, Some(why)) => out.skipped.push((start, why)),
            (None, None) => {}
        }
    }
    out
}

fn looks_like_request_line(line: &str) -> bool {
    match line.split_once(' ') {
        Some((method, rest)) => {
            !method.is_empty()
                && method.bytes().all(|b| b.is_ascii_uppercase())
                && !rest.trim().contains(' ')
                && !method.contains(':')
        }
        None => false,
    }
}

fn request_line(line: &str) -> Result<TrafficRequest, String> {
    let (method, url) = line
        .split_once(' ')
        .ok_or_else(|| format!("{line:?} is not \"METHOD URL\""))?;
    let url = url.trim();
    if http::Method::from_bytes(method.as_bytes()).is_err() {
        return Err(format!("method {method:?} is not an HTTP method"));
    }
    request_for(method, url)
}

/// A request for `METHOD URL`; URL user-info becomes Basic auth, as vegeta does.
fn request_for(method: &str, url: &str) -> Result<TrafficRequest, String> {
    let lower = url.to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://")) {
        return Err(format!("URL {url:?} is not http(s)"));
    }
    let target = origin_form(url).ok_or_else(|| format!("URL {url:?} has no path"))?;
    let mut headers = Vec::new();
    let authority = url[url.find("://").map_or(0, |i| i + 3)..]
        .split(['/', '?', '#'])
        .next()
        .unwrap_or("");
    if let Some((userinfo, _)) = authority.rsplit_once('@') {
        let encoded = base64::engine::general_purpose::STANDARD.encode(userinfo.as_bytes());
        headers.push(("Authorization".to_string(), format!("Basic {encoded}")));
    }
    Ok(TrafficRequest {
        method: method.to_string(),
        target,
        headers,
        ..Default::default()
    })
}

fn read_body(file: &str, base: &Path) -> Result<Vec<u8>, String> {
    let given = PathBuf::from(file);
    let candidates = if given.is_absolute() {
        vec![given]
    } else {
        vec![given.clone(), base.join(&given)]
    };
    for c in &candidates {
        if let Ok(body) = std::fs::read(c) {
            return Ok(body);
        }
    }
    Err(format!(
        "body file {file:?} not found (looked in the working directory and {})",
        base.display()
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonTarget {
    method: String,
    url: String,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    header: BTreeMap<String, Vec<String>>,
}

/// Imports the JSON targets format (one object per line). Lines are numbered from 1.
pub fn import_json(text: &str) -> Imported {
    let mut out = Imported::default();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        match json_target(line) {
            Ok(r) => out.requests.push(r),
            Err(why) => out.skipped.push((i + 1, why)),
        }
    }
    out
}

fn json_target(line: &str) -> Result<TrafficRequest, String> {
    let t: JsonTarget =
        serde_json::from_str(line).map_err(|e| format!("not a vegeta JSON target: {e}"))?;
    if http::Method::from_bytes(t.method.as_bytes()).is_err() {
        return Err(format!("method {:?} is not an HTTP method", t.method));
    }
    let mut r = request_for(&t.method, &t.url)?;
    for (name, values) in t.header {
        if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(format!("{name:?} is not a header name"));
        }
        if is_connection_header(&name) {
            continue;
        }
        for v in values {
            r.headers.push((name.clone(), v));
        }
    }
    if let Some(body) = t.body {
        r.body = base64::engine::general_purpose::STANDARD
            .decode(body.as_bytes())
            .map_err(|e| format!("body is not base64 (vegeta JSON bodies are): {e}"))?;
    }
    Ok(r)
}
