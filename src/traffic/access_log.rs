//! Access-log import: nginx `combined` and Envoy's default format. Logs carry the method,
//! path, query, a few headers (User-Agent, Referer) and the time, but never the request
//! body: such requests are replayed without one, and the import says how many.

use super::{origin_form, Imported, TrafficRequest};

/// One field of a log line: a bare word, a `[bracketed]` time or a `"quoted"` string
/// (escapes already undone).
#[derive(Debug, PartialEq)]
enum Field {
    Bare(Vec<u8>),
    Bracketed(String),
    Quoted(Vec<u8>),
}

impl Field {
    fn bytes(&self) -> &[u8] {
        match self {
            Field::Bare(b) | Field::Quoted(b) => b,
            Field::Bracketed(s) => s.as_bytes(),
        }
    }
}

/// Splits a log line into fields. Inside quotes `\"`, `\\` and nginx's `\xHH` are undone.
fn fields(line: &str) -> Result<Vec<Field>, String> {
    let bytes = line.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b' ' | b'\t' => i += 1,
            b'[' => {
                let end = line[i..].find(']').ok_or("unterminated [ in the line")?;
                out.push(Field::Bracketed(line[i + 1..i + end].to_string()));
                i += end + 1;
            }
            b'"' => {
                let mut value = Vec::new();
                i += 1;
                loop {
                    match bytes.get(i) {
                        None => return Err("unterminated quoted field".into()),
                        Some(b'"') => {
                            i += 1;
                            break;
                        }
                        Some(b'\\') => match bytes.get(i + 1) {
                            Some(b'x') if i + 4 <= bytes.len() => {
                                match std::str::from_utf8(&bytes[i + 2..i + 4])
                                    .ok()
                                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                                {
                                    Some(b) => {
                                        value.push(b);
                                        i += 4;
                                    }
                                    None => {
                                        value.push(b'\\');
                                        i += 1;
                                    }
                                }
                            }
                            Some(&c @ (b'"' | b'\\')) => {
                                value.push(c);
                                i += 2;
                            }
                            _ => {
                                value.push(b'\\');
                                i += 1;
                            }
                        },
                        Some(&c) => {
                            value.push(c);
                            i += 1;
                        }
                    }
                }
                out.push(Field::Quoted(value));
            }
            _ => {
                let end = line[i..].find([' ', '\t']).map_or(line.len(), |e| i + e);
                out.push(Field::Bare(bytes[i..end].to_vec()));
                i = end;
            }
        }
    }
    Ok(out)
}

/// `GET /a?b HTTP/1.1` → (method, origin-form target).
fn request_line(raw: &[u8]) -> Result<(String, String), String> {
    let text = String::from_utf8_lossy(raw);
    if text == "-" || text.is_empty() {
        return Err("no request line (\"-\": the client sent nothing parseable)".into());
    }
    let (method, rest) = text
        .split_once(' ')
        .ok_or_else(|| format!("request line {text:?} has no target"))?;
    // The protocol is the last word; a target may (wrongly) contain spaces.
    let target = match rest.rsplit_once(' ') {
        Some((t, proto)) if proto.starts_with("HTTP/") => t,
        _ => rest,
    };
    if http::Method::from_bytes(method.as_bytes()).is_err() {
        return Err(format!("method {method:?} is not an HTTP method"));
    }
    let target = origin_form(target).ok_or_else(|| format!("target {target:?} is not a path"))?;
    Ok((method.to_string(), target))
}

fn header_value(field: &Field) -> Option<String> {
    let v = String::from_utf8_lossy(field.bytes()).into_owned();
    (v != "-" && !v.is_empty() && http::HeaderValue::from_str(&v).is_ok()).then_some(v)
}

fn body_note(n: usize, kind: &str) -> Option<String> {
    (n > 0).then(|| {
        format!("{kind} access logs carry no request bodies: {n} POST/PUT/PATCH requests will be replayed with an empty body")
    })
}

fn has_body_method(method: &str) -> bool {
    matches!(method, "POST" | "PUT" | "PATCH")
}

/// Imports nginx `combined` lines:
/// `$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent"`.
/// Fields after the user agent (custom additions) are ignored. Lines are numbered from 1.
pub fn import_nginx(text: &str) -> Imported {
    let mut out = Imported::default();
    let mut without_body = 0;
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match nginx_line(line) {
            Ok(r) => {
                if has_body_method(&r.method) {
                    without_body += 1;
                }
                out.requests.push(r);
            }
            Err(why) => out.skipped.push((i + 1, why)),
        }
    }
    out.notes.extend(body_note(without_body, "nginx"));
    out
}

fn nginx_line(line: &str) -> Result<TrafficRequest, String> {
    let f = fields(line)?;
    let time = match f.get(3) {
        Some(Field::Bracketed(t)) => t,
        _ => return Err("not nginx combined format: no [time] in the 4th field".into()),
    };
    let request = match f.get(4) {
        Some(Field::Quoted(r)) => r,
        _ => return Err("not nginx combined format: no \"request\" in the 5th field".into()),
    };
    let t = chrono::DateTime::parse_from_str(time, "%d/%b/%Y:%H:%M:%S %z")
        .map_err(|e| format!("time [{time}] is not nginx's $time_local: {e}"))?;
    let (method, target) = request_line(request)?;
    let mut headers = Vec::new();
    if let Some(referer) = f.get(7).and_then(header_value) {
        headers.push(("Referer".to_string(), referer));
    }
    if let Some(ua) = f.get(8).and_then(header_value) {
        headers.push(("User-Agent".to_string(), ua));
    }
    Ok(TrafficRequest {
        method,
        target,
        headers,
        t_ms: Some(t.timestamp_millis().max(0) as u64),
        ..Default::default()
    })
}

/// Imports Envoy default-format lines:
/// `[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%"
/// %RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION%
/// %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%"
/// "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%"`.
/// Only the User-Agent header is replayed: X-Forwarded-For, the request id and the
/// authority describe the original hop, not the request.
pub fn import_envoy(text: &str) -> Imported {
    let mut out = Imported::default();
    let mut without_body = 0;
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match envoy_line(line) {
            Ok((r, bytes_received)) => {
                if has_body_method(&r.method) || bytes_received > 0 {
                    without_body += 1;
                }
                out.requests.push(r);
            }
            Err(why) => out.skipped.push((i + 1, why)),
        }
    }
    if without_body > 0 {
        out.notes.push(format!("Envoy access logs carry no request bodies: {without_body} requests that had or usually have one (POST/PUT/PATCH or BYTES_RECEIVED > 0) will be replayed with an empty body"));
    }
    out
}

fn envoy_line(line: &str) -> Result<(TrafficRequest, u64), String> {
    let f = fields(line)?;
    let time = match f.first() {
        Some(Field::Bracketed(t)) => t,
        _ => return Err("not Envoy's default format: the line does not start with [time]".into()),
    };
    let request = match f.get(1) {
        Some(Field::Quoted(r)) => r,
        _ => return Err("not Envoy's default format: no \"request\" after the time".into()),
    };
    let t = chrono::DateTime::parse_from_rfc3339(time)
        .map_err(|e| format!("time [{time}] is not Envoy's START_TIME: {e}"))?;
    let (method, target) = request_line(request)?;
    let bytes_received = f
        .get(4)
        .and_then(|b| std::str::from_utf8(b.bytes()).ok()?.parse::<u64>().ok())
        .unwrap_or(0);
    let mut headers = Vec::new();
    if let Some(ua) = f.get(9).and_then(header_value) {
        headers.push(("User-Agent".to_string(), ua));
    }
    Ok((
        TrafficRequest {
            method,
            target,
            headers,
            t_ms: Some(t.timestamp_millis().max(0) as u64),
            ..Default::default()
        },
        bytes_received,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nginx_escapes_are_undone_and_reencoded_for_the_wire() {
        let line = r#"10.0.0.1 - - [10/Oct/2024:13:55:36 +0000] "GET /s?q=\x22a\x22 HTTP/1.1" 200 5 "-" "curl/8.0""#;
        let r = nginx_line(line).unwrap();
        assert_eq!(r.target, "/s?q=%22a%22");
        assert_eq!(r.headers, vec![("User-Agent".into(), "curl/8.0".into())]);
    }

    #[test]
    fn garbage_lines_are_skipped_with_reasons() {
        let imported = import_nginx(
            "garbage\n10.0.0.1 - - [10/Oct/2024:13:55:36 +0000] \"-\" 400 0 \"-\" \"-\"\n",
        );
        assert!(imported.requests.is_empty());
        assert_eq!(imported.skipped.len(), 2);
        assert_eq!(imported.skipped[1].0, 2);
        let imported = import_envoy("[not a time] \"GET / HTTP/1.1\" 200\n");
        assert!(imported.skipped[0].1.contains("START_TIME"), "{imported:?}");
    }
}
