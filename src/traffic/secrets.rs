//! Secret stripping on import: recorded traffic carries credentials (Authorization,
//! cookies, API keys, tokens in query strings and login forms) that must not end up in a
//! traffic file that gets committed or shared. Header secrets are removed; query and body
//! secrets keep their name and get the value `REDACTED`, so the request keeps its shape.

use super::TrafficRequest;

/// The value secret query parameters and body fields get.
pub const REDACTED: &str = "REDACTED";

/// Headers removed on import (case-insensitive).
pub const SECRET_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
    "api-key",
    "apikey",
    "x-auth-token",
    "x-access-token",
    "x-csrf-token",
    "x-xsrf-token",
    "x-amz-security-token",
    "x-goog-api-key",
];

/// Query parameter and body field names (case-insensitive, `-` and `_` alike) whose values
/// are redacted.
pub const SECRET_NAMES: &[&str] = &[
    "token",
    "access_token",
    "id_token",
    "refresh_token",
    "auth",
    "auth_token",
    "api_key",
    "apikey",
    "key",
    "secret",
    "client_secret",
    "password",
    "passwd",
    "pwd",
    "session",
    "sessionid",
    "session_id",
    "sid",
    "jwt",
    "signature",
    "sig",
    "code",
    "x_amz_signature",
    "x_amz_credential",
    "x_amz_security_token",
];

/// Whether a query parameter or body field name looks like it holds a secret.
pub fn is_secret_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase().replace('-', "_");
    SECRET_NAMES.contains(&n.as_str())
        || n.ends_with("_token")
        || n.ends_with("_secret")
        || n.ends_with("_password")
        || n.ends_with("_api_key")
        || n.ends_with("apikey")
}

pub fn is_secret_header(name: &str) -> bool {
    SECRET_HEADERS.iter().any(|h| name.eq_ignore_ascii_case(h))
}

/// Removes or redacts every secret in `r`; returns how many were found.
pub fn strip(r: &mut TrafficRequest) -> usize {
    let before = r.headers.len();
    r.headers.retain(|(name, _)| !is_secret_header(name));
    let mut n = before - r.headers.len();
    if let Some(q) = r.target.find('?') {
        let (redacted, count) = redact_form(&r.target[q + 1..]);
        if count > 0 {
            r.target = format!("{}?{}", &r.target[..q], redacted);
            n += count;
        }
    }
    if !r.body.is_empty() {
        let content_type = r.header("content-type").unwrap_or("").to_ascii_lowercase();
        if content_type.starts_with("application/x-www-form-urlencoded") {
            if let Ok(text) = std::str::from_utf8(&r.body) {
                let (redacted, count) = redact_form(text);
                if count > 0 {
                    r.body = redacted.into_bytes();
                    n += count;
                }
            }
        } else if content_type.contains("json") {
            if let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(&r.body) {
                let count = redact_json(&mut value);
                if count > 0 {
                    r.body = serde_json::to_vec(&value).unwrap_or_default();
                    n += count;
                }
            }
        }
    }
    n
}

/// `a=1&token=x` → `a=1&token=REDACTED`; names are compared percent-decoded.
fn redact_form(query: &str) -> (String, usize) {
    let mut count = 0;
    let parts: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, value)) if !value.is_empty() && is_secret_name(&decode_name(name)) => {
                count += 1;
                format!("{name}={REDACTED}")
            }
            _ => pair.to_string(),
        })
        .collect();
    (parts.join("&"), count)
}

fn decode_name(name: &str) -> String {
    String::from_utf8_lossy(&crate::target::percent_decode(name.as_bytes(), true)).into_owned()
}

fn redact_json(value: &mut serde_json::Value) -> usize {
    match value {
        serde_json::Value::Object(map) => {
            let mut n = 0;
            for (k, v) in map.iter_mut() {
                if is_secret_name(k) && !v.is_object() && !v.is_array() && !v.is_null() {
                    *v = serde_json::Value::String(REDACTED.into());
                    n += 1;
                } else {
                    n += redact_json(v);
                }
            }
            n
        }
        serde_json::Value::Array(items) => items.iter_mut().map(redact_json).sum(),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_query_and_bodies_are_cleaned() {
        let mut r = TrafficRequest {
            method: "POST".into(),
            target: "/login?next=/home&access_token=abc&API-KEY=k&keyword=shoes".into(),
            headers: vec![
                ("Authorization".into(), "Bearer x".into()),
                ("cookie".into(), "a=b".into()),
                (
                    "content-type".into(),
                    "application/x-www-form-urlencoded".into(),
                ),
                ("accept".into(), "*/*".into()),
            ],
            body: b"user=ann&password=hunter2".to_vec(),
            ..Default::default()
        };
        assert_eq!(strip(&mut r), 5);
        assert_eq!(
            r.target,
            "/login?next=/home&access_token=REDACTED&API-KEY=REDACTED&keyword=shoes"
        );
        assert_eq!(
            r.headers,
            vec![
                (
                    "content-type".to_string(),
                    "application/x-www-form-urlencoded".to_string()
                ),
                ("accept".to_string(), "*/*".to_string())
            ]
        );
        assert_eq!(r.body, b"user=ann&password=REDACTED");
    }

    #[test]
    fn json_bodies_are_redacted_by_field_name() {
        let mut r = TrafficRequest {
            method: "POST".into(),
            target: "/api".into(),
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: br#"{"user":{"name":"a","refresh_token":"t"},"items":[{"password":"p"}]}"#
                .to_vec(),
            ..Default::default()
        };
        assert_eq!(strip(&mut r), 2);
        assert_eq!(
            String::from_utf8(r.body).unwrap(),
            r#"{"items":[{"password":"REDACTED"}],"user":{"name":"a","refresh_token":"REDACTED"}}"#
        );
    }
}
