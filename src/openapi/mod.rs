//! OpenAPI-shaped attacks: reads an OpenAPI 3.0 document (YAML or JSON) with the
//! `openapiv3` types and places attack payloads into the real parameters of real operations
//! (path, query, header, JSON and form body fields), every other part of the request filled
//! with valid values, so a WAF sees attacks in the shapes the API accepts.
//!
//! Partial or invalid documents are used as far as they parse: each operation, parameter
//! and request body is read on its own, and what cannot be used is reported with its JSON
//! pointer. Loading only fails when the file is unreadable or not YAML/JSON at all.
//! It never sends anything; the plan turns its requests into prepared requests.

mod shape;

pub use shape::Shape;

use crate::corpus::{Corpus, CorpusRequest, RequestSpec, Unbuilt};
use openapiv3::{Parameter, ParameterSchemaOrContent, ReferenceOr, RequestBody};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;
use std::path::{Path, PathBuf};

/// Why a spec could not be used at all.
#[derive(Debug, thiserror::Error)]
pub enum OpenApiError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
}

/// A part of the document that was left out, and why.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Skipped {
    /// JSON pointer into the document, e.g. `/paths/~1pet~1{petId}/get`.
    pub pointer: String,
    pub reason: String,
}

/// Where a parameter lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamIn {
    Path,
    Query,
    Header,
}

/// One usable parameter with its schema resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct Param {
    pub name: String,
    pub location: ParamIn,
    pub required: bool,
    pub shape: Shape,
}

/// A request body wafload knows how to fill.
#[derive(Clone, Debug, PartialEq)]
pub struct Body {
    /// The media type as written in the document (`application/json`, …).
    pub media_type: String,
    pub form: bool,
    pub required: bool,
    pub shape: Shape,
}

/// One operation: method, path template and what it accepts.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiOperation {
    /// Upper-case HTTP method.
    pub method: String,
    /// Path template as in the document, e.g. `/pet/{petId}`.
    pub path: String,
    /// `operationId`, or `METHOD path` when the document gives none.
    pub operation_id: String,
    pub pointer: String,
    pub params: Vec<Param>,
    pub body: Option<Body>,
}

/// Where one payload goes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum InjectionPoint {
    Path(String),
    Query(String),
    Header(String),
    /// JSON pointer of a string field inside the body ("" = the whole body is a string).
    JsonBody(String),
    /// Top-level field of a form body.
    FormBody(String),
}

impl InjectionPoint {
    /// The location kind; also the placeholder label `OpenAPI:<kind>`.
    pub fn kind(&self) -> Location {
        match self {
            InjectionPoint::Path(_) => Location::Path,
            InjectionPoint::Query(_) => Location::Query,
            InjectionPoint::Header(_) => Location::Header,
            InjectionPoint::JsonBody(_) => Location::JsonBody,
            InjectionPoint::FormBody(_) => Location::FormBody,
        }
    }
}

impl fmt::Display for InjectionPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InjectionPoint::Path(n) => write!(f, "path:{n}"),
            InjectionPoint::Query(n) => write!(f, "query:{n}"),
            InjectionPoint::Header(n) => write!(f, "header:{n}"),
            InjectionPoint::JsonBody(p) => write!(f, "json-body:{p}"),
            InjectionPoint::FormBody(n) => write!(f, "form-body:{n}"),
        }
    }
}

/// Kinds of injection points a profile can select.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Location {
    Path,
    Query,
    Header,
    JsonBody,
    FormBody,
}

impl Location {
    pub const ALL: [Location; 5] = [
        Location::Path,
        Location::Query,
        Location::Header,
        Location::JsonBody,
        Location::FormBody,
    ];

    /// Placeholder label in results.
    pub fn placeholder(self) -> &'static str {
        match self {
            Location::Path => "OpenAPI:path",
            Location::Query => "OpenAPI:query",
            Location::Header => "OpenAPI:header",
            Location::JsonBody => "OpenAPI:json-body",
            Location::FormBody => "OpenAPI:form-body",
        }
    }
}

/// How many injection points each payload visits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Coverage {
    /// One point per location kind per payload, taking the points in turn, so every point
    /// is used once the corpus has as many payloads as there are points.
    #[default]
    Rotate,
    /// Every payload into every point (requests = payloads × points).
    All,
}

impl ApiOperation {
    /// Every place a payload can go in this operation, in document order.
    pub fn injection_points(&self) -> Vec<InjectionPoint> {
        let mut points = Vec::new();
        for p in &self.params {
            points.push(match p.location {
                ParamIn::Path => InjectionPoint::Path(p.name.clone()),
                ParamIn::Query => InjectionPoint::Query(p.name.clone()),
                ParamIn::Header => InjectionPoint::Header(p.name.clone()),
            });
        }
        if let Some(body) = &self.body {
            for pointer in body.shape.string_fields() {
                if body.form {
                    // Form bodies are flat: only top-level fields.
                    if pointer.matches('/').count() == 1 {
                        points.push(InjectionPoint::FormBody(unescape_pointer(&pointer[1..])));
                    }
                } else {
                    points.push(InjectionPoint::JsonBody(pointer));
                }
            }
        }
        points
    }

    /// A request valid for this operation, with `payload` (already encoded) at `point`
    /// when given. `prefix` is the target URL's path joined with the API's base path.
    pub fn build(
        &self,
        prefix: &str,
        point: Option<&InjectionPoint>,
        payload: &str,
    ) -> Result<RequestSpec, Unbuilt> {
        let mut path = self.path.clone();
        let mut query = Vec::new();
        let mut headers: Vec<(String, Vec<u8>)> = Vec::new();
        for p in &self.params {
            let injected = match (point, p.location) {
                (Some(InjectionPoint::Path(n)), ParamIn::Path)
                | (Some(InjectionPoint::Query(n)), ParamIn::Query)
                | (Some(InjectionPoint::Header(n)), ParamIn::Header) => *n == p.name,
                _ => false,
            };
            if !injected && !p.required {
                continue;
            }
            let value = if injected {
                payload.to_string()
            } else {
                p.shape.example_text()
            };
            match p.location {
                ParamIn::Path => {
                    path = path.replace(&format!("{{{}}}", p.name), &escape_component(&value));
                }
                ParamIn::Query => query.push(format!(
                    "{}={}",
                    escape_component(&p.name),
                    escape_component(&value)
                )),
                ParamIn::Header => {
                    if let Some(what) = forbidden_header_byte(&value) {
                        return Err(Unbuilt::Unsendable {
                            reason: format!("header {} contains {what}", p.name),
                        });
                    }
                    headers.push((p.name.clone(), value.into_bytes()));
                }
            }
        }
        let mut target = format!("{}{}", prefix.trim_end_matches('/'), path);
        if !query.is_empty() {
            target.push('?');
            target.push_str(&query.join("&"));
        }
        let mut body = Vec::new();
        if let Some(b) = &self.body {
            let injected = matches!(
                point,
                Some(InjectionPoint::JsonBody(_)) | Some(InjectionPoint::FormBody(_))
            );
            if injected || b.required {
                let mut value = b.shape.example();
                match point {
                    Some(InjectionPoint::JsonBody(pointer)) => {
                        set_pointer(&mut value, pointer, Value::String(payload.to_string()))
                    }
                    Some(InjectionPoint::FormBody(name)) => {
                        if let Value::Object(map) = &mut value {
                            map.insert(name.clone(), Value::String(payload.to_string()));
                        }
                    }
                    _ => {}
                }
                body = if b.form {
                    form_body(&value).into_bytes()
                } else {
                    serde_json::to_vec(&value).unwrap_or_default()
                };
                headers.push((
                    "Content-Type".to_string(),
                    b.media_type.clone().into_bytes(),
                ));
            }
        }
        Ok(RequestSpec {
            method: self.method.clone(),
            target: crate::traffic::escape_target(target.as_bytes()),
            headers,
            body,
        })
    }
}

/// A loaded document: what can be used, and what was skipped.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiSpec {
    pub path: PathBuf,
    /// Path of the first server URL (`/api/v3`), or "" when there is none.
    pub base_path: String,
    pub operations: Vec<ApiOperation>,
    pub skipped: Vec<Skipped>,
}

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

impl ApiSpec {
    pub fn load(path: &Path) -> Result<ApiSpec, OpenApiError> {
        let text = std::fs::read_to_string(path).map_err(|source| OpenApiError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        ApiSpec::parse(&text, path)
    }

    /// Parses a document; `path` is used in messages only.
    pub fn parse(text: &str, path: &Path) -> Result<ApiSpec, OpenApiError> {
        let invalid = |message: String| OpenApiError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let yaml: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).map_err(|e| {
            let loc = e
                .location()
                .map(|l| format!("{}:{}: ", l.line(), l.column()))
                .unwrap_or_default();
            invalid(format!("{loc}not YAML or JSON: {e}"))
        })?;
        let doc = yaml_to_json(yaml);
        if !doc.is_object() {
            return Err(invalid(
                "not an OpenAPI document (the top level is not a map)".into(),
            ));
        }
        let mut skipped = Vec::new();
        match doc.get("openapi").and_then(Value::as_str) {
            Some(v) if v.starts_with("3.") => {}
            Some(v) => skipped.push(Skipped {
                pointer: "/openapi".into(),
                reason: format!("version {v} is not OpenAPI 3.x; reading it as 3.0 anyway"),
            }),
            None => skipped.push(Skipped {
                pointer: "/openapi".into(),
                reason: "no openapi version (Swagger 2.0 documents are not supported); reading it as 3.0 anyway".into(),
            }),
        }
        let base_path = server_base_path(&doc, &mut skipped);
        let mut operations = Vec::new();
        let resolver = Resolver { doc: &doc };
        match doc.get("paths") {
            Some(Value::Object(paths)) => {
                for (template, item) in paths {
                    let item_ptr = format!("/paths/{}", escape_pointer(template));
                    if !template.starts_with('/') {
                        skipped.push(Skipped {
                            pointer: item_ptr,
                            reason: "path does not start with /".into(),
                        });
                        continue;
                    }
                    let Some(item) = item.as_object() else {
                        skipped.push(Skipped {
                            pointer: item_ptr,
                            reason: "path item is not a map".into(),
                        });
                        continue;
                    };
                    let shared = item
                        .get("parameters")
                        .map(|p| (p, format!("{item_ptr}/parameters")));
                    for method in METHODS {
                        let Some(op) = item.get(method) else { continue };
                        let pointer = format!("{item_ptr}/{method}");
                        match resolver.operation(
                            template,
                            method,
                            op,
                            &pointer,
                            shared.as_ref(),
                            &mut skipped,
                        ) {
                            Ok(o) => operations.push(o),
                            Err(reason) => skipped.push(Skipped { pointer, reason }),
                        }
                    }
                }
            }
            Some(_) => skipped.push(Skipped {
                pointer: "/paths".into(),
                reason: "paths is not a map".into(),
            }),
            None => skipped.push(Skipped {
                pointer: "/paths".into(),
                reason: "the document has no paths".into(),
            }),
        }
        Ok(ApiSpec {
            path: path.to_path_buf(),
            base_path,
            operations,
            skipped,
        })
    }
}

fn server_base_path(doc: &Value, skipped: &mut Vec<Skipped>) -> String {
    let Some(url) = doc.pointer("/servers/0/url").and_then(Value::as_str) else {
        return String::new();
    };
    let path = match url.find("://") {
        Some(i) => url[i + 3..].find('/').map_or("", |j| &url[i + 3 + j..]),
        None => url,
    };
    if path.contains('{') {
        skipped.push(Skipped {
            pointer: "/servers/0/url".into(),
            reason: "server URL has variables; using no base path (set openapi.base_path)".into(),
        });
        return String::new();
    }
    if !path.starts_with('/') {
        return String::new();
    }
    path.trim_end_matches('/').to_string()
}

/// Looks up local `$ref`s in the document and reads each part on its own.
struct Resolver<'a> {
    doc: &'a Value,
}

/// Nesting beyond this is cut (recursive schemas such as trees).
const MAX_DEPTH: usize = 8;

impl Resolver<'_> {
    /// The value a local `$ref` points at, with the pointer it came from.
    fn follow<'v>(
        &'v self,
        value: &'v Value,
        pointer: &str,
    ) -> Result<(&'v Value, String), String> {
        let mut value = value;
        let mut pointer = pointer.to_string();
        for _ in 0..16 {
            match value.get("$ref").and_then(Value::as_str) {
                Some(r) => {
                    let Some(local) = r.strip_prefix('#') else {
                        return Err(format!("external $ref {r:?} is not supported"));
                    };
                    value = self
                        .doc
                        .pointer(local)
                        .ok_or_else(|| format!("$ref {r:?} points at nothing"))?;
                    pointer = local.to_string();
                }
                None => return Ok((value, pointer)),
            }
        }
        Err("$ref chain is too long (a cycle?)".into())
    }

    fn operation(
        &self,
        template: &str,
        method: &str,
        op: &Value,
        pointer: &str,
        shared: Option<&(&Value, String)>,
        skipped: &mut Vec<Skipped>,
    ) -> Result<ApiOperation, String> {
        let Some(map) = op.as_object() else {
            return Err("operation is not a map".into());
        };
        // The operation's own fields first, without the parts read one by one below.
        let mut bare = map.clone();
        bare.remove("parameters");
        bare.remove("requestBody");
        let parsed: openapiv3::Operation = serde_json::from_value(Value::Object(bare))
            .map_err(|e| format!("not an OpenAPI operation: {e}"))?;
        let operation_id = parsed
            .operation_id
            .clone()
            .unwrap_or_else(|| format!("{} {template}", method.to_ascii_uppercase()));
        let mut params: Vec<Param> = Vec::new();
        let lists = shared.map(|(v, p)| (*v, p.clone())).into_iter().chain(
            map.get("parameters")
                .map(|v| (v, format!("{pointer}/parameters"))),
        );
        for (list, list_ptr) in lists {
            let Some(items) = list.as_array() else {
                skipped.push(Skipped {
                    pointer: list_ptr,
                    reason: "parameters is not a list".into(),
                });
                continue;
            };
            for (i, raw) in items.iter().enumerate() {
                let p_ptr = format!("{list_ptr}/{i}");
                match self.parameter(raw, &p_ptr) {
                    Ok(Some(p)) => {
                        // Operation-level parameters override path-level ones.
                        params.retain(|q| !(q.name == p.name && q.location == p.location));
                        params.push(p);
                    }
                    Ok(None) => {}
                    Err(reason) => {
                        let needed = raw.get("required") == Some(&Value::Bool(true))
                            || raw.get("in").and_then(Value::as_str) == Some("path");
                        if needed {
                            return Err(format!("required parameter {p_ptr} unusable: {reason}"));
                        }
                        skipped.push(Skipped {
                            pointer: p_ptr,
                            reason,
                        });
                    }
                }
            }
        }
        for segment in template.split('/') {
            if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                if !params
                    .iter()
                    .any(|p| p.location == ParamIn::Path && p.name == name)
                {
                    return Err(format!("path parameter {{{name}}} is not described"));
                }
            }
        }
        let body = match map.get("requestBody") {
            None => None,
            Some(raw) => {
                let b_ptr = format!("{pointer}/requestBody");
                match self.request_body(raw, &b_ptr) {
                    Ok(b) => b,
                    Err(reason) => {
                        if raw.get("required") == Some(&Value::Bool(true)) {
                            return Err(format!("required request body unusable: {reason}"));
                        }
                        skipped.push(Skipped {
                            pointer: b_ptr,
                            reason,
                        });
                        None
                    }
                }
            }
        };
        Ok(ApiOperation {
            method: method.to_ascii_uppercase(),
            path: template.to_string(),
            operation_id,
            pointer: pointer.to_string(),
            params,
            body,
        })
    }

    /// `Ok(None)` for parameters wafload does not fill (cookies, and the headers OpenAPI
    /// says to ignore).
    fn parameter(&self, raw: &Value, pointer: &str) -> Result<Option<Param>, String> {
        let (value, at) = self.follow(raw, pointer)?;
        let p: Parameter = serde_json::from_value(value.clone())
            .map_err(|e| format!("not an OpenAPI parameter ({at}): {e}"))?;
        let location = match &p {
            Parameter::Path { .. } => ParamIn::Path,
            Parameter::Query { .. } => ParamIn::Query,
            Parameter::Header { parameter_data, .. } => {
                let n = parameter_data.name.to_ascii_lowercase();
                if n == "accept" || n == "content-type" || n == "authorization" {
                    return Ok(None);
                }
                ParamIn::Header
            }
            Parameter::Cookie { .. } => return Ok(None),
        };
        let data = p.parameter_data();
        if location == ParamIn::Header
            && http::HeaderName::from_bytes(data.name.as_bytes()).is_err()
        {
            return Err(format!("{:?} is not a valid header name", data.name));
        }
        let shape = match &data.format {
            ParameterSchemaOrContent::Schema(s) => self.schema(s, &format!("{at}/schema"), 0)?,
            ParameterSchemaOrContent::Content(content) => match content.iter().next() {
                Some((media, m)) => match &m.schema {
                    Some(s) => self.schema(
                        s,
                        &format!("{at}/content/{}/schema", escape_pointer(media)),
                        0,
                    )?,
                    None => Shape::any(),
                },
                None => Shape::any(),
            },
        };
        let shape = match &data.example {
            Some(example) => shape.with_example(example.clone()),
            None => shape,
        };
        Ok(Some(Param {
            name: data.name,
            location,
            required: data.required || location == ParamIn::Path,
            shape,
        }))
    }

    /// The first JSON (or `+json`) media type, else the first form media type; `Ok(None)`
    /// when the body has neither (XML, octet-stream, multipart are not filled).
    fn request_body(&self, raw: &Value, pointer: &str) -> Result<Option<Body>, String> {
        let (value, at) = self.follow(raw, pointer)?;
        let b: RequestBody = serde_json::from_value(value.clone())
            .map_err(|e| format!("not an OpenAPI request body ({at}): {e}"))?;
        let is_json = |m: &str| {
            let m = m
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            m == "application/json" || m.ends_with("+json")
        };
        let is_form = |m: &str| {
            m.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        };
        let chosen = b
            .content
            .iter()
            .find(|(m, _)| is_json(m))
            .or_else(|| b.content.iter().find(|(m, _)| is_form(m)));
        let Some((media, m)) = chosen else {
            return Ok(None);
        };
        let form = is_form(media);
        let schema_ptr = format!("{at}/content/{}/schema", escape_pointer(media));
        let shape = match &m.schema {
            Some(s) => self.schema(s, &schema_ptr, 0)?,
            None => Shape::any(),
        };
        if form && !matches!(shape.kind, shape::Kind::Object { .. }) {
            return Err(format!("{schema_ptr}: a form body needs an object schema"));
        }
        Ok(Some(Body {
            media_type: media.clone(),
            form,
            required: b.required,
            shape,
        }))
    }

    fn schema(
        &self,
        s: &ReferenceOr<openapiv3::Schema>,
        pointer: &str,
        depth: usize,
    ) -> Result<Shape, String> {
        match s {
            ReferenceOr::Item(schema) => shape::from_schema(self, schema, pointer, depth),
            ReferenceOr::Reference { reference } => self.schema_ref(reference, depth),
        }
    }

    fn schema_ref(&self, reference: &str, depth: usize) -> Result<Shape, String> {
        if depth > MAX_DEPTH {
            return Ok(Shape::any());
        }
        let Some(local) = reference.strip_prefix('#') else {
            return Err(format!("external $ref {reference:?} is not supported"));
        };
        let value = self
            .doc
            .pointer(local)
            .ok_or_else(|| format!("$ref {reference:?} points at nothing"))?;
        let s: ReferenceOr<openapiv3::Schema> = serde_json::from_value(value.clone())
            .map_err(|e| format!("{local}: not a schema: {e}"))?;
        self.schema(&s, local, depth + 1)
    }
}

/// YAML → JSON value; non-string map keys (`200:`) become strings.
fn yaml_to_json(v: serde_yaml_ng::Value) -> Value {
    use serde_yaml_ng::Value as Y;
    match v {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                n.as_f64()
                    .and_then(serde_json::Number::from_f64)
                    .map(Value::Number)
                    .unwrap_or(Value::Null)
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(items.into_iter().map(yaml_to_json).collect()),
        Y::Mapping(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let key = match k {
                        Y::String(s) => s,
                        Y::Number(n) => n.to_string(),
                        Y::Bool(b) => b.to_string(),
                        other => serde_yaml_ng::to_string(&other)
                            .unwrap_or_default()
                            .trim()
                            .to_string(),
                    };
                    (key, yaml_to_json(v))
                })
                .collect(),
        ),
        Y::Tagged(t) => yaml_to_json(t.value),
    }
}

/// CR, LF or NUL: bytes no header value may carry.
fn forbidden_header_byte(value: &str) -> Option<&'static str> {
    value.bytes().find_map(|b| match b {
        b'\r' => Some("CR"),
        b'\n' => Some("LF"),
        0 => Some("NUL"),
        _ => None,
    })
}

/// RFC 6901 escaping of one pointer token.
pub fn escape_pointer(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

fn unescape_pointer(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

fn set_pointer(value: &mut Value, pointer: &str, new: Value) {
    if pointer.is_empty() {
        *value = new;
    } else if let Some(slot) = value.pointer_mut(pointer) {
        *slot = new;
    }
}

/// Escapes what would end a path segment or a query value (`/ ? # & = +`, space,
/// controls, non-ASCII), keeping `%` so URL-encoded payloads are not encoded twice.
pub fn escape_component(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for &b in text.as_bytes() {
        if b > 0x20
            && b < 0x7f
            && !matches!(
                b,
                b'/' | b'?'
                    | b'#'
                    | b'&'
                    | b'='
                    | b'+'
                    | b'"'
                    | b'<'
                    | b'>'
                    | b'\\'
                    | b'^'
                    | b'`'
                    | b'{'
                    | b'|'
                    | b'}'
            )
        {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Top-level fields of an object as `a=1&b=x`; arrays repeat the name, objects are JSON.
fn form_body(value: &Value) -> String {
    let Value::Object(map) = value else {
        return String::new();
    };
    let mut parts = Vec::new();
    for (k, v) in map {
        let items: Vec<&Value> = match v {
            Value::Array(a) => a.iter().collect(),
            other => vec![other],
        };
        for item in items {
            let text = match item {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            parts.push(format!(
                "{}={}",
                escape_component(k),
                escape_component(&text)
            ));
        }
    }
    parts.join("&")
}

/// Which payloads go where, from the profile's `openapi:` section.
#[derive(Clone, Debug, PartialEq)]
pub struct ExpandOptions {
    pub locations: Vec<Location>,
    pub coverage: Coverage,
    /// Replaces the document's server path; `None` = use it.
    pub base_path: Option<String>,
}

impl Default for ExpandOptions {
    fn default() -> Self {
        ExpandOptions {
            locations: Location::ALL.to_vec(),
            coverage: Coverage::Rotate,
            base_path: None,
        }
    }
}

/// One OpenAPI-shaped attack request with where its payload went (`query:status`, …).
pub struct OpenApiRequest {
    pub request: CorpusRequest,
    pub point: String,
}

/// Attack requests: every attack payload of the corpus (each encoder of its case) placed
/// into the operations' injection points. Benign sets are not used (their payloads are
/// not attacks). `target_base` is the target URL's path.
pub fn expand(
    spec: &ApiSpec,
    corpus: &Corpus,
    target_base: &str,
    options: &ExpandOptions,
) -> Vec<OpenApiRequest> {
    let api_base = options
        .base_path
        .clone()
        .unwrap_or_else(|| spec.base_path.clone());
    let prefix = format!(
        "{}{}",
        target_base.trim_end_matches('/'),
        if api_base.is_empty() || api_base.starts_with('/') {
            api_base.trim_end_matches('/').to_string()
        } else {
            format!("/{}", api_base.trim_end_matches('/'))
        }
    );
    // Points of each selected kind across all operations, in document order.
    let mut by_kind: Vec<(Location, Vec<(usize, InjectionPoint)>)> =
        options.locations.iter().map(|&k| (k, Vec::new())).collect();
    for (i, op) in spec.operations.iter().enumerate() {
        for point in op.injection_points() {
            if let Some((_, list)) = by_kind.iter_mut().find(|(k, _)| *k == point.kind()) {
                list.push((i, point));
            }
        }
    }
    let mut turn = vec![0usize; by_kind.len()];
    let mut out = Vec::new();
    for set in corpus.sets.iter().filter(|s| !s.benign) {
        for case in &set.cases {
            for (payload_index, payload) in case.payloads.iter().enumerate() {
                for encoder in &case.encoders {
                    let encoded = encoder.encode(payload);
                    for (k, (kind, points)) in by_kind.iter().enumerate() {
                        if points.is_empty() {
                            continue;
                        }
                        let chosen: Vec<&(usize, InjectionPoint)> = match options.coverage {
                            Coverage::All => points.iter().collect(),
                            Coverage::Rotate => {
                                let p = &points[turn[k] % points.len()];
                                turn[k] += 1;
                                vec![p]
                            }
                        };
                        for (op_index, point) in chosen {
                            let op = &spec.operations[*op_index];
                            out.push(OpenApiRequest {
                                point: point.to_string(),
                                request: CorpusRequest {
                                    set: set.name.clone(),
                                    case: op.operation_id.clone(),
                                    benign: false,
                                    api: true,
                                    type_label: if case.type_label.is_empty() {
                                        case.name.clone()
                                    } else {
                                        case.type_label.clone()
                                    },
                                    placeholder: kind.placeholder(),
                                    encoder: encoder.name(),
                                    payload_index,
                                    payload: payload.clone(),
                                    built: op.build(&prefix, Some(point), &encoded),
                                },
                            });
                        }
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINI: &str = r#"
openapi: 3.0.3
servers: [{url: "https://api.example.com/v1/"}]
paths:
  /items/{id}:
    parameters:
      - {name: id, in: path, required: true, schema: {type: integer, minimum: 5}}
    get:
      operationId: getItem
      parameters:
        - {name: fields, in: query, schema: {type: string}}
        - {name: X-Trace, in: header, required: true, schema: {type: string, enum: [on, off]}}
      responses: {200: {description: ok}}
    put:
      operationId: putItem
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: '#/components/schemas/Item'}
      responses: {200: {description: ok}}
    delete:
      parameters: [{name: broken, in: query, schema: 12}]
      responses: {204: {description: gone}}
    patch:
      description: no responses
  /bad/{x}:
    get:
      responses: {200: {description: ok}}
components:
  schemas:
    Item:
      type: object
      required: [name]
      properties:
        name: {type: string, example: lamp}
        count: {type: integer}
        tags: {type: array, items: {type: string}}
"#;

    #[test]
    fn partial_documents_keep_what_parses_and_name_what_not() {
        let spec = ApiSpec::parse(MINI, Path::new("mini.yaml")).unwrap();
        assert_eq!(spec.base_path, "/v1");
        // Paths are read in sorted order (document order is not kept by the JSON model).
        let ids: Vec<&str> = spec
            .operations
            .iter()
            .map(|o| o.operation_id.as_str())
            .collect();
        assert_eq!(ids, ["getItem", "putItem", "DELETE /items/{id}"]);
        let pointers: Vec<&str> = spec.skipped.iter().map(|s| s.pointer.as_str()).collect();
        assert_eq!(
            pointers,
            [
                "/paths/~1bad~1{x}/get",
                "/paths/~1items~1{id}/delete/parameters/0",
                "/paths/~1items~1{id}/patch",
            ],
            "{:#?}",
            spec.skipped
        );
        let points: Vec<String> = spec.operations[1]
            .injection_points()
            .iter()
            .map(|p| p.to_string())
            .collect();
        assert_eq!(points, ["path:id", "json-body:/name", "json-body:/tags/0"]);
    }

    #[test]
    fn requests_are_valid_except_the_payload() {
        let spec = ApiSpec::parse(MINI, Path::new("mini.yaml")).unwrap();
        let get = &spec.operations[0];
        let r = get
            .build(
                "/v1",
                Some(&InjectionPoint::Query("fields".into())),
                "' or 1=1 --",
            )
            .unwrap();
        assert_eq!(r.method, "GET");
        assert_eq!(r.target, "/v1/items/5?fields='%20or%201%3D1%20--");
        assert_eq!(r.headers, vec![("X-Trace".to_string(), b"on".to_vec())]);
        let put = &spec.operations[1];
        let r = put
            .build(
                "/v1",
                Some(&InjectionPoint::JsonBody("/tags/0".into())),
                "<script>",
            )
            .unwrap();
        assert_eq!(r.target, "/v1/items/5");
        assert_eq!(
            String::from_utf8(r.body).unwrap(),
            r#"{"count":1,"name":"lamp","tags":["<script>"]}"#
        );
        let r = put
            .build(
                "/v1",
                Some(&InjectionPoint::Path("id".into())),
                "../etc/passwd",
            )
            .unwrap();
        assert_eq!(r.target, "/v1/items/..%2Fetc%2Fpasswd");
        assert!(!r.body.is_empty(), "required body is always sent");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(ApiSpec::parse("[1, 2", Path::new("x")).is_err());
        assert!(ApiSpec::parse("- a\n- b\n", Path::new("x")).is_err());
        let spec = ApiSpec::parse("openapi: 3.0.0\npaths: 5\n", Path::new("x")).unwrap();
        assert!(spec.operations.is_empty());
        assert_eq!(spec.skipped[0].pointer, "/paths");
    }
}
