//! OpenAPI-shaped attacks on a real public document, the Swagger Petstore 3 spec
//! (Apache-2.0, read in place from ../shared): attacks land in path, query, header and JSON
//! body parameters, and every generated request is valid for its operation except the
//! payload. The validator here is independent of wafload's OpenAPI code: it reads the
//! document as plain JSON values.

mod common;

use common::{fixture, shared_dir};
use serde_json::Value;
use std::collections::BTreeMap;
use wafload::plan::Plan;
use wafload::profile::{OpenApiSource, Profile};

fn petstore() -> Option<std::path::PathBuf> {
    Some(shared_dir()?.join("corpora/openapi/petstore/openapi.yaml"))
}

fn decode(s: &str) -> String {
    String::from_utf8_lossy(&wafload::target::percent_decode(s.as_bytes(), true)).into_owned()
}

fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => resolve(doc, doc.pointer(&r[1..]).expect("ref resolves")),
        None => v,
    }
}

/// Checks `value` against `schema`; `skip` is the JSON pointer of the payload field.
fn check_value(
    doc: &Value,
    schema: &Value,
    value: &Value,
    at: &str,
    skip: Option<&str>,
    errors: &mut Vec<String>,
) {
    if Some(at) == skip {
        return;
    }
    let schema = resolve(doc, schema);
    if let Some(options) = schema.get("enum").and_then(Value::as_array) {
        if !options.contains(value) {
            errors.push(format!("{at}: {value} not in enum"));
        }
    }
    match schema.get("type").and_then(Value::as_str) {
        Some("string") if !value.is_string() => errors.push(format!("{at}: not a string")),
        Some("integer") if !value.is_i64() => errors.push(format!("{at}: not an integer")),
        Some("boolean") if !value.is_boolean() => errors.push(format!("{at}: not a boolean")),
        Some("array") => match value.as_array() {
            None => errors.push(format!("{at}: not an array")),
            Some(items) => {
                for (i, item) in items.iter().enumerate() {
                    check_value(
                        doc,
                        &schema["items"],
                        item,
                        &format!("{at}/{i}"),
                        skip,
                        errors,
                    );
                }
            }
        },
        Some("object") => match value.as_object() {
            None => errors.push(format!("{at}: not an object")),
            Some(map) => {
                for name in schema["required"].as_array().into_iter().flatten() {
                    if !map.contains_key(name.as_str().unwrap()) {
                        errors.push(format!("{at}: missing required {name}"));
                    }
                }
                for (k, v) in map {
                    match schema["properties"].get(k) {
                        Some(s) => check_value(doc, s, v, &format!("{at}/{k}"), skip, errors),
                        None => errors.push(format!("{at}/{k}: not declared")),
                    }
                }
            }
        },
        _ => {}
    }
}

/// A parameter value as text, checked against its schema.
fn check_text(doc: &Value, schema: &Value, text: &str, what: &str, errors: &mut Vec<String>) {
    let schema = resolve(doc, schema);
    let value = match schema["type"].as_str() {
        Some("integer") => match text.parse::<i64>() {
            Ok(i) => Value::from(i),
            Err(_) => return errors.push(format!("{what}: {text:?} is not an integer")),
        },
        Some("array") => {
            return check_text(doc, &schema["items"], text, what, errors);
        }
        _ => Value::String(text.to_string()),
    };
    check_value(doc, schema, &value, what, None, errors);
}

/// The operation a request is for: the template with the most literal segments that
/// matches the path.
fn find_operation<'a>(doc: &'a Value, method: &str, path: &str) -> Option<(String, &'a Value)> {
    let segments: Vec<&str> = path.split('/').collect();
    let mut best: Option<(usize, String, &Value)> = None;
    for (template, item) in doc["paths"].as_object()? {
        let t: Vec<&str> = template.split('/').collect();
        if t.len() != segments.len() {
            continue;
        }
        let mut literal = 0;
        let ok = t.iter().zip(&segments).all(|(a, b)| {
            if a.starts_with('{') {
                !b.is_empty()
            } else {
                literal += 1;
                a == b
            }
        });
        if let (true, Some(op)) = (ok, item.get(method.to_ascii_lowercase())) {
            if best.as_ref().is_none_or(|(l, _, _)| literal > *l) {
                best = Some((literal, template.clone(), op));
            }
        }
    }
    best.map(|(_, t, op)| (t, op))
}

#[test]
fn petstore_attacks_are_valid_requests_except_the_payload() {
    let Some(spec_path) = petstore() else { return };
    let doc: Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(&spec_path).unwrap()).unwrap();
    let mut profile = Profile {
        corpus: vec![fixture("known")],
        openapi: Some(OpenApiSource {
            file: spec_path.clone(),
            locations: Vec::new(),
            coverage: wafload::openapi::Coverage::All,
            base_path: None,
        }),
        ..Profile::default()
    };
    profile.target.url = "http://127.0.0.1:9/".into();
    let corpus = wafload::corpus::load_corpus(&profile.corpus).unwrap();
    let plan = Plan::build(&profile, &corpus).unwrap();
    assert!(
        plan.notes.is_empty(),
        "the Petstore document parses whole: {:?}",
        plan.notes
    );

    let mut by_placeholder: BTreeMap<String, usize> = BTreeMap::new();
    let mut operations = std::collections::BTreeSet::new();
    let mut checked = 0;
    for request in &plan.requests {
        let source = &plan.sources[request.source as usize];
        if !source.placeholder.starts_with("OpenAPI:") {
            continue;
        }
        *by_placeholder
            .entry(source.placeholder.clone())
            .or_default() += 1;
        let location = source
            .location
            .clone()
            .expect("OpenAPI sources name their location");
        let (kind, name) = location.split_once(':').unwrap();
        let plain = source.encoder == "Plain";
        let mut errors = Vec::new();
        let target = request.path.as_str();
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let path = path
            .strip_prefix("/api/v3")
            .expect("base path from servers[0]");
        let (template, op) = find_operation(&doc, request.method.as_str(), path)
            .unwrap_or_else(|| panic!("no operation for {} {target}", request.method));
        assert_eq!(
            op["operationId"].as_str(),
            Some(source.case.as_str()),
            "case is the operationId"
        );
        operations.insert(source.case.clone());
        let params: Vec<&Value> = op["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| resolve(&doc, p))
            .collect();
        // Path parameters.
        for (t, value) in template.split('/').zip(path.split('/')) {
            let Some(pname) = t.strip_prefix('{').and_then(|t| t.strip_suffix('}')) else {
                continue;
            };
            if kind == "path" && pname == name {
                if plain && decode(value) != source.payload {
                    errors.push(format!("path {pname}: {value:?} is not the payload"));
                }
                continue;
            }
            let p = params
                .iter()
                .find(|p| p["name"] == pname && p["in"] == "path")
                .unwrap();
            check_text(
                &doc,
                &p["schema"],
                &decode(value),
                &format!("path {pname}"),
                &mut errors,
            );
        }
        // Query parameters: declared, valid, required ones present.
        let pairs: Vec<(String, String)> = query
            .split('&')
            .filter(|s| !s.is_empty())
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                (decode(k), v.to_string())
            })
            .collect();
        for (k, raw) in &pairs {
            let Some(p) = params
                .iter()
                .find(|p| p["name"] == k.as_str() && p["in"] == "query")
            else {
                errors.push(format!("query {k}: not declared"));
                continue;
            };
            if kind == "query" && k == name {
                if plain && decode(raw) != source.payload {
                    errors.push(format!("query {k}: {raw:?} is not the payload"));
                }
                continue;
            }
            check_text(
                &doc,
                &p["schema"],
                &decode(raw),
                &format!("query {k}"),
                &mut errors,
            );
        }
        for p in params.iter().filter(|p| p["required"] == true) {
            let pname = p["name"].as_str().unwrap();
            match p["in"].as_str() {
                Some("query") if !pairs.iter().any(|(k, _)| k == pname) => {
                    errors.push(format!("required query {pname} missing"))
                }
                Some("header") if request.headers.get(pname).is_none() => {
                    errors.push(format!("required header {pname} missing"))
                }
                _ => {}
            }
        }
        if kind == "query" && !pairs.iter().any(|(k, _)| k == name) {
            errors.push(format!("injected query {name} missing"));
        }
        // Header parameters.
        for p in params.iter().filter(|p| p["in"] == "header") {
            let pname = p["name"].as_str().unwrap();
            if let Some(v) = request.headers.get(pname) {
                let v = v.to_str().unwrap_or("");
                if kind == "header" && pname == name {
                    if plain && v != source.payload {
                        errors.push(format!("header {pname}: {v:?} is not the payload"));
                    }
                } else {
                    check_text(
                        &doc,
                        &p["schema"],
                        v,
                        &format!("header {pname}"),
                        &mut errors,
                    );
                }
            }
        }
        // Body: present when required or injected, declared media type, valid JSON.
        let body_spec = op.get("requestBody").map(|b| resolve(&doc, b));
        let required = body_spec.is_some_and(|b| b["required"] == true);
        if required || kind == "json-body" {
            let content_type = request
                .headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let media = &body_spec.unwrap()["content"][content_type];
            if media.is_null() {
                errors.push(format!("content-type {content_type:?} not declared"));
            } else {
                match serde_json::from_slice::<Value>(&request.body) {
                    Err(e) => errors.push(format!("body is not JSON: {e}")),
                    Ok(body) => {
                        let skip = (kind == "json-body").then_some(name);
                        if let Some(pointer) = skip {
                            match body.pointer(pointer) {
                                Some(Value::String(s)) if !plain || *s == source.payload => {}
                                other => errors
                                    .push(format!("body {pointer}: {other:?} is not the payload")),
                            }
                        }
                        check_value(&doc, &media["schema"], &body, "", skip, &mut errors);
                    }
                }
            }
        } else if !request.body.is_empty() {
            errors.push("body sent where none is needed".into());
        }
        assert!(
            errors.is_empty(),
            "{} {target} ({location}, {}): {errors:?}",
            request.method,
            source.encoder
        );
        checked += 1;
    }
    eprintln!("checked {checked} OpenAPI requests: {by_placeholder:?}");
    for kind in [
        "OpenAPI:path",
        "OpenAPI:query",
        "OpenAPI:header",
        "OpenAPI:json-body",
    ] {
        assert!(
            by_placeholder.get(kind).copied().unwrap_or(0) > 0,
            "no attack in {kind}: {by_placeholder:?}"
        );
    }
    // Every operation with an injection point got attacks (getInventory and logoutUser
    // take no parameter and no body).
    assert_eq!(operations.len(), 17, "{operations:?}");
}

#[test]
fn rotate_coverage_uses_one_point_per_kind_per_payload() {
    let Some(spec_path) = petstore() else { return };
    let mut profile = Profile {
        corpus: vec![fixture("known")],
        openapi: Some(OpenApiSource {
            file: spec_path,
            locations: vec![wafload::openapi::Location::Query],
            coverage: wafload::openapi::Coverage::Rotate,
            base_path: Some("/".into()),
        }),
        ..Profile::default()
    };
    profile.target.url = "http://127.0.0.1:9/gw/".into();
    let corpus = wafload::corpus::load_corpus(&profile.corpus).unwrap();
    let plan = Plan::build(&profile, &corpus).unwrap();
    let openapi: Vec<_> = plan
        .requests
        .iter()
        .filter(|r| {
            plan.sources[r.source as usize]
                .placeholder
                .starts_with("OpenAPI:")
        })
        .collect();
    // One query point per attack payload × encoder pair.
    let attack_pairs: usize = corpus
        .sets
        .iter()
        .filter(|s| !s.benign)
        .flat_map(|s| &s.cases)
        .map(|c| c.payloads.len() * c.encoders.len())
        .sum();
    assert_eq!(openapi.len(), attack_pairs);
    assert!(openapi
        .iter()
        .all(|r| r.path.as_str().starts_with("/gw/") && r.path.as_str().contains('?')));
}
