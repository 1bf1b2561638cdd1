//! HAR 1.2 import (Chromium/Firefox devtools "Save all as HAR"): method, URL, headers,
//! body and start time of every entry. Entries are read one by one, so one odd entry is
//! skipped with its number instead of failing the file.

use super::{is_connection_header, origin_form, Imported, TrafficError, TrafficRequest};
use base64::Engine as _;
use serde::Deserialize;
use std::path::Path;

#[derive(Deserialize)]
struct Har {
    log: HarLog,
}

#[derive(Deserialize)]
struct HarLog {
    #[serde(default)]
    entries: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    #[serde(default)]
    started_date_time: Option<String>,
    request: Request,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Request {
    method: String,
    url: String,
    #[serde(default)]
    headers: Vec<NameValue>,
    #[serde(default)]
    post_data: Option<PostData>,
}

#[derive(Deserialize)]
struct NameValue {
    name: String,
    #[serde(default)]
    value: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PostData {
    #[serde(default)]
    mime_type: Option<String>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    params: Vec<NameValue>,
    /// Not in HAR 1.2 for requests, but some exporters mark binary bodies this way.
    #[serde(default)]
    encoding: Option<String>,
}

/// Imports a HAR document. Entries are numbered from 1 in `skipped`.
pub fn import(text: &str, path: &Path) -> Result<Imported, TrafficError> {
    let har: Har = serde_json::from_str(text).map_err(|e| TrafficError::Line {
        path: path.to_path_buf(),
        line: e.line(),
        message: format!("not a HAR document: {e}"),
    })?;
    let mut out = Imported::default();
    let mut times: Vec<Option<i64>> = Vec::new();
    for (i, value) in har.log.entries.into_iter().enumerate() {
        let n = i + 1;
        let entry: Entry = match serde_json::from_value(value) {
            Ok(e) => e,
            Err(e) => {
                out.skipped
                    .push((n, format!("entry is not a HAR entry: {e}")));
                continue;
            }
        };
        match request_of(entry.request) {
            Ok(r) => {
                times.push(
                    entry
                        .started_date_time
                        .as_deref()
                        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                        .map(|t| t.timestamp_millis()),
                );
                out.requests.push(r);
            }
            Err(why) => out.skipped.push((n, why)),
        }
    }
    if let Some(first) = times.iter().flatten().min().copied() {
        if times.iter().all(Option::is_some) {
            for (r, t) in out.requests.iter_mut().zip(&times) {
                r.t_ms = t.map(|t| (t - first).max(0) as u64);
            }
        }
    }
    Ok(out)
}

fn request_of(r: Request) -> Result<TrafficRequest, String> {
    if http::Method::from_bytes(r.method.as_bytes()).is_err() {
        return Err(format!("method {:?} is not an HTTP method", r.method));
    }
    let lower = r.url.to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://")) {
        return Err(format!("URL {:?} is not http(s)", r.url));
    }
    let target = origin_form(&r.url).ok_or_else(|| format!("URL {:?} has no path", r.url))?;
    let headers: Vec<(String, String)> = r
        .headers
        .into_iter()
        .filter(|h| !is_connection_header(&h.name))
        .filter(|h| http::HeaderName::from_bytes(h.name.as_bytes()).is_ok())
        .map(|h| (h.name, h.value))
        .collect();
    let mut body = Vec::new();
    let mut content_type = None;
    if let Some(post) = r.post_data {
        content_type = post.mime_type.filter(|m| !m.is_empty());
        body = match (post.text, post.encoding.as_deref()) {
            (Some(text), Some("base64")) => base64::engine::general_purpose::STANDARD
                .decode(text.as_bytes())
                .map_err(|e| format!("postData.text is marked base64 but is not: {e}"))?,
            (Some(text), _) => text.into_bytes(),
            (None, _) => post
                .params
                .iter()
                .map(|p| {
                    format!(
                        "{}={}",
                        super::form_escape(&p.name),
                        super::form_escape(&p.value)
                    )
                })
                .collect::<Vec<_>>()
                .join("&")
                .into_bytes(),
        };
    }
    let mut request = TrafficRequest {
        method: r.method,
        target,
        headers,
        body,
        ..Default::default()
    };
    if let Some(ct) = content_type {
        if !request.body.is_empty() && request.header("content-type").is_none() {
            request.headers.push(("content-type".into(), ct));
        }
    }
    Ok(request)
}
