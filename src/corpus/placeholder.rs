//! Placeholders: where an encoded payload goes in an HTTP request, and how that request
//! is built. Building is pure (no I/O); randomness comes from the caller's seeded RNG so a
//! plan is reproducible.

use std::fmt;

use rand::RngCore;

use crate::corpus::encoder::Encoder;
use crate::corpus::escape::{escape_request_target, form_escape, hex_lower};

/// The text replaced by the payload in RawRequest path, header values and body.
pub const PAYLOAD_MARKER: &str = "{{payload}}";

/// SOAPAction value gotestwaf sends with SOAPBody (quoted, as SOAP 1.1 requires).
pub const SOAP_ACTION: &str = "\"http://schemas.xmlsoap.org/soap/actor/next\"";

/// Where a payload is placed. Names follow gotestwaf exactly (see [`Placeholder::name`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placeholder {
    UrlPath,
    UrlParam,
    Header,
    UserAgent,
    RequestBody,
    JsonBody,
    JsonRequest,
    XmlBody,
    SoapBody,
    HtmlForm,
    HtmlMultipartForm,
    RawRequest(RawRequestSettings),
    GraphQl(GraphQlSettings),
    Grpc,
}

/// Settings of a RawRequest placeholder: a request template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRequestSettings {
    /// Sent as written (custom methods such as `CUST` are part of the test).
    pub method: String,
    /// Joined to the base path; defaults to `/`.
    pub path: String,
    /// In file order, so requests are deterministic.
    pub headers: Vec<(String, String)>,
    /// Empty means no body.
    pub body: String,
}

/// How a GraphQL payload is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GraphQlMethod {
    /// Payload as the form-encoded query parameter `query`.
    Get,
    /// Payload as the request body.
    Post,
}

/// Settings of a GraphQL placeholder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GraphQlSettings {
    pub method: GraphQlMethod,
}

impl Placeholder {
    /// The names a case file may use (gotestwaf's, case-sensitive).
    pub const NAMES: [&'static str; 14] = [
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
        "gRPC",
    ];

    /// The gotestwaf name, used in case files and in results.
    pub fn name(&self) -> &'static str {
        match self {
            Placeholder::UrlPath => "URLPath",
            Placeholder::UrlParam => "URLParam",
            Placeholder::Header => "Header",
            Placeholder::UserAgent => "UserAgent",
            Placeholder::RequestBody => "RequestBody",
            Placeholder::JsonBody => "JSONBody",
            Placeholder::JsonRequest => "JSONRequest",
            Placeholder::XmlBody => "XMLBody",
            Placeholder::SoapBody => "SOAPBody",
            Placeholder::HtmlForm => "HTMLForm",
            Placeholder::HtmlMultipartForm => "HTMLMultipartForm",
            Placeholder::RawRequest(_) => "RawRequest",
            Placeholder::GraphQl(_) => "GraphQL",
            Placeholder::Grpc => "gRPC",
        }
    }

    /// The placeholder of a name that takes no settings; `None` for unknown names and for
    /// RawRequest/GraphQL, which cannot exist without settings.
    pub fn from_simple_name(name: &str) -> Option<Placeholder> {
        Some(match name {
            "URLPath" => Placeholder::UrlPath,
            "URLParam" => Placeholder::UrlParam,
            "Header" => Placeholder::Header,
            "UserAgent" => Placeholder::UserAgent,
            "RequestBody" => Placeholder::RequestBody,
            "JSONBody" => Placeholder::JsonBody,
            "JSONRequest" => Placeholder::JsonRequest,
            "XMLBody" => Placeholder::XmlBody,
            "SOAPBody" => Placeholder::SoapBody,
            "HTMLForm" => Placeholder::HtmlForm,
            "HTMLMultipartForm" => Placeholder::HtmlMultipartForm,
            "gRPC" => Placeholder::Grpc,
            _ => return None,
        })
    }

    /// Why a request with this (already encoded) payload cannot be sent, without building
    /// it. Independent of randomness, so stats need no seed.
    pub fn unbuildable(&self, encoded: &str) -> Option<Unbuilt> {
        match self {
            Placeholder::Grpc => Some(Unbuilt::Unsupported {
                placeholder: self.name().to_owned(),
            }),
            Placeholder::Header => forbidden_header_byte(encoded).map(|what| Unbuilt::Unsendable {
                reason: format!("header X-<random> contains {what}"),
            }),
            Placeholder::UserAgent => header_unsendable("User-Agent", encoded),
            Placeholder::RawRequest(raw) => raw.headers.iter().find_map(|(name, value)| {
                header_unsendable(name, &value.replace(PAYLOAD_MARKER, encoded))
            }),
            _ => None,
        }
    }

    /// Builds the request for an encoded payload. `base_path` is the target URL's path
    /// (already normalised by [`normalize_base_path`]). Draws random names from `rng`.
    pub fn build(
        &self,
        base_path: &str,
        encoded: &str,
        rng: &mut impl RngCore,
    ) -> Result<RequestSpec, Unbuilt> {
        let get = |target: String, headers: Vec<(String, Vec<u8>)>| RequestSpec {
            method: "GET".to_owned(),
            target: escape_request_target(&target),
            headers,
            body: Vec::new(),
        };
        let post = |content_type: Option<String>, body: Vec<u8>| RequestSpec {
            method: "POST".to_owned(),
            target: escape_request_target(base_path),
            headers: content_type
                .map(|ct| vec![("Content-Type".to_owned(), ct.into_bytes())])
                .unwrap_or_default(),
            body,
        };
        match self {
            Placeholder::UrlPath => Ok(get(
                format!("{}/{encoded}", base_path.trim_end_matches('/')),
                Vec::new(),
            )),
            Placeholder::UrlParam => {
                let name = random_name(rng);
                Ok(get(
                    format!("{base_path}{}{name}={encoded}", query_separator(base_path)),
                    Vec::new(),
                ))
            }
            Placeholder::Header => {
                let header = format!("X-{}", random_name(rng));
                if let Some(unbuilt) = header_unsendable(&header, encoded) {
                    return Err(unbuilt);
                }
                Ok(get(
                    base_path.to_owned(),
                    vec![(header, encoded.as_bytes().to_vec())],
                ))
            }
            Placeholder::UserAgent => {
                if let Some(unbuilt) = header_unsendable("User-Agent", encoded) {
                    return Err(unbuilt);
                }
                Ok(get(
                    base_path.to_owned(),
                    vec![("User-Agent".to_owned(), encoded.as_bytes().to_vec())],
                ))
            }
            Placeholder::RequestBody => Ok(post(None, encoded.as_bytes().to_vec())),
            Placeholder::JsonBody => Ok(post(
                Some("application/json".to_owned()),
                encoded.as_bytes().to_vec(),
            )),
            Placeholder::JsonRequest => {
                let name = random_name(rng);
                let body = format!(
                    "{{\"test\": true, \"{name}\": \"{}\"}}",
                    Encoder::JsUnicode.encode(encoded)
                );
                Ok(post(Some("application/json".to_owned()), body.into_bytes()))
            }
            Placeholder::XmlBody => Ok(post(
                Some("application/xml".to_owned()),
                encoded.as_bytes().to_vec(),
            )),
            Placeholder::SoapBody => {
                let element = format!("ab{}", random_name(rng));
                let mut spec = post(
                    Some("text/xml".to_owned()),
                    soap_envelope(&element, encoded).into_bytes(),
                );
                spec.headers
                    .push(("SOAPAction".to_owned(), SOAP_ACTION.as_bytes().to_vec()));
                Ok(spec)
            }
            Placeholder::HtmlForm => {
                let name = random_name(rng);
                Ok(post(
                    Some("application/x-www-form-urlencoded".to_owned()),
                    format!("{name}={encoded}").into_bytes(),
                ))
            }
            Placeholder::HtmlMultipartForm => {
                let name = random_name(rng);
                let boundary = random_boundary(rng);
                Ok(post(
                    Some(format!("multipart/form-data; boundary={boundary}")),
                    multipart_body(&boundary, &name, encoded),
                ))
            }
            Placeholder::RawRequest(raw) => build_raw_request(raw, base_path, encoded),
            Placeholder::GraphQl(settings) => Ok(match settings.method {
                GraphQlMethod::Get => get(
                    format!(
                        "{base_path}{}query={}",
                        query_separator(base_path),
                        form_escape(encoded)
                    ),
                    Vec::new(),
                ),
                GraphQlMethod::Post => post(None, encoded.as_bytes().to_vec()),
            }),
            Placeholder::Grpc => Err(Unbuilt::Unsupported {
                placeholder: self.name().to_owned(),
            }),
        }
    }
}

impl fmt::Display for Placeholder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A fully built HTTP request relative to the target. The transport adds Host,
/// Content-Length and X-Request-Id; they are deliberately absent here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestSpec {
    pub method: String,
    /// Origin-form `path[?query]`, already escaped per the request-target rules.
    pub target: String,
    /// Values are bytes: payloads may hold any byte HTTP allows in a header.
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

impl RequestSpec {
    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }
}

/// Why a planned request has no [`RequestSpec`]; it is still counted, never dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unbuilt {
    /// wafload cannot send this placeholder at all (gRPC).
    Unsupported { placeholder: String },
    /// HTTP cannot carry this payload here (e.g. CR/LF in a header value).
    Unsendable { reason: String },
}

impl fmt::Display for Unbuilt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unbuilt::Unsupported { placeholder } => {
                write!(f, "unsupported placeholder {placeholder}")
            }
            Unbuilt::Unsendable { reason } => write!(f, "unsendable: {reason}"),
        }
    }
}

/// Normalises a target URL path: empty becomes `/`, a missing leading `/` is added.
pub fn normalize_base_path(base_path: &str) -> String {
    if base_path.starts_with('/') {
        base_path.to_owned()
    } else {
        format!("/{base_path}")
    }
}

fn query_separator(base_path: &str) -> &'static str {
    match base_path.find('?') {
        None => "?",
        Some(_) if base_path.ends_with('?') || base_path.ends_with('&') => "",
        Some(_) => "&",
    }
}

/// R: 5 random bytes as 10 lower-case hex characters, like gotestwaf's `RandomHex(5)`.
fn random_name(rng: &mut impl RngCore) -> String {
    let mut bytes = [0u8; 5];
    rng.fill_bytes(&mut bytes);
    hex_lower(&bytes)
}

/// 30 random bytes as hex, the shape of Go's `multipart.Writer` boundaries.
fn random_boundary(rng: &mut impl RngCore) -> String {
    let mut bytes = [0u8; 30];
    rng.fill_bytes(&mut bytes);
    hex_lower(&bytes)
}

/// The byte layout Go's `multipart.Writer` produces for one `CreateFormField`.
fn multipart_body(boundary: &str, field: &str, value: &str) -> Vec<u8> {
    let mut body = Vec::with_capacity(value.len() + 2 * boundary.len() + 80);
    body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
    body.extend_from_slice(
        format!("Content-Disposition: form-data; name=\"{field}\"\r\n\r\n").as_bytes(),
    );
    body.extend_from_slice(value.as_bytes());
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    body
}

/// A SOAP 1.1 envelope whose body holds the payload, XMLEntity-encoded as gotestwaf does
/// (so the text sits inside `<string>…</string>` inside the random element).
fn soap_envelope(element: &str, payload: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\">\n\
         <soapenv:Header/>\n\
         <soapenv:Body>\n\
         <{element}>{}</{element}>\n\
         </soapenv:Body>\n\
         </soapenv:Envelope>\n",
        Encoder::XmlEntity.encode(payload)
    )
}

fn build_raw_request(
    raw: &RawRequestSettings,
    base_path: &str,
    encoded: &str,
) -> Result<RequestSpec, Unbuilt> {
    let mut headers = Vec::with_capacity(raw.headers.len());
    for (name, value) in &raw.headers {
        let value = value.replace(PAYLOAD_MARKER, encoded);
        if let Some(unbuilt) = header_unsendable(name, &value) {
            return Err(unbuilt);
        }
        headers.push((name.clone(), value.into_bytes()));
    }
    // gotestwaf: target URL with a trailing '/', then the path without its leading '/'.
    let mut target = base_path.to_owned();
    if !target.ends_with('/') {
        target.push('/');
    }
    target.push_str(raw.path.strip_prefix('/').unwrap_or(&raw.path));
    let target = target.replace(PAYLOAD_MARKER, encoded);
    Ok(RequestSpec {
        method: raw.method.clone(),
        target: escape_request_target(&target),
        headers,
        body: raw.body.replace(PAYLOAD_MARKER, encoded).into_bytes(),
    })
}

fn header_unsendable(name: &str, value: &str) -> Option<Unbuilt> {
    forbidden_header_byte(value).map(|what| Unbuilt::Unsendable {
        reason: format!("header {name} contains {what}"),
    })
}

/// The first byte that no HTTP header value may carry (CR, LF or NUL), by name.
pub(crate) fn forbidden_header_byte(value: &str) -> Option<&'static str> {
    value.bytes().find_map(|b| match b {
        b'\r' => Some("CR"),
        b'\n' => Some("LF"),
        0 => Some("NUL"),
        _ => None,
    })
}
