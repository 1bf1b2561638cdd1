//! Transport: send one planned request, return what happened (status, a body prefix,
//! timings or the transport error). It never classifies and never records.
//! `http` speaks HTTP/1.1 and HTTP/2 over TCP or rustls.

pub mod extproc;
pub mod h2wire;
pub mod hpack;
pub mod http;
pub mod tls;
pub mod wire;

use crate::plan::PreparedRequest;
use bytes::Bytes;
use std::future::Future;
use std::time::Duration;

/// How much of each response body is kept for classification (block pages, ext_proc
/// errors). The rest is read and counted, never stored.
pub const BODY_PREFIX_LIMIT: usize = 4096;

/// Why a request got no usable response. Kept coarse on purpose: these are the
/// categories a WAF engineer acts on differently.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// TCP connect refused or unreachable.
    Connect,
    /// TLS handshake or certificate failure.
    Tls,
    /// Connection reset or closed before a complete response.
    Reset,
    /// No complete response within the request timeout.
    Timeout,
    /// The peer broke the HTTP protocol (malformed response, h2 protocol error).
    Protocol,
    /// The run was interrupted while this request was in flight.
    Aborted,
    Other,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Connect => "connect",
            ErrorKind::Tls => "tls",
            ErrorKind::Reset => "reset",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Protocol => "protocol",
            ErrorKind::Aborted => "aborted",
            ErrorKind::Other => "other",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransportError {
    pub kind: ErrorKind,
    pub message: String,
}

impl TransportError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        TransportError {
            kind,
            message: message.into(),
        }
    }
}

/// What came back for one request.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    pub status: Option<u16>,
    pub error: Option<TransportError>,
    /// The first `BODY_PREFIX_LIMIT` bytes of the body.
    pub body_prefix: Bytes,
    /// Total body bytes read (may exceed the prefix).
    pub body_len: u64,
    /// `x-envoy-upstream-service-time` in microseconds, when the gateway sent it.
    pub upstream_service_time_us: Option<u64>,
    /// Time from the actual send to the response headers.
    pub time_to_headers: Option<Duration>,
    /// Direct ext_proc mode: which phase decided and each phase's round trips.
    pub ext_proc: Option<Box<extproc::ExtProcDetail>>,
}

impl Outcome {
    pub fn failed(kind: ErrorKind, message: impl Into<String>) -> Self {
        Outcome {
            error: Some(TransportError::new(kind, message)),
            ..Outcome::default()
        }
    }
}

/// A way of sending requests. One `Session` per worker; sessions own or share
/// connections as the protocol needs.
pub trait Transport: Send + Sync + 'static {
    type Session: Session + 'static;
    fn session(&self, worker: usize) -> Self::Session;
    /// Requests in flight at most (HTTP/1.1: connections; HTTP/2: connections × streams).
    fn max_in_flight(&self) -> usize;
}

/// The id a request carries, `<run tag>-<slot>`, held inline: building it costs no
/// allocation per request (the lean clients write its bytes straight into the request).
#[derive(Clone)]
pub struct RequestId {
    bytes: [u8; 64],
    len: usize,
    /// Ids that do not fit inline (a very long tag) live here instead.
    long: Option<Box<[u8]>>,
}

impl RequestId {
    pub fn new(tag: &str, number: u64) -> Self {
        let mut digits = itoa::Buffer::new();
        let digits = digits.format(number).as_bytes();
        let len = tag.len() + 1 + digits.len();
        let mut id = RequestId {
            bytes: [0; 64],
            len,
            long: None,
        };
        if len <= id.bytes.len() {
            id.bytes[..tag.len()].copy_from_slice(tag.as_bytes());
            id.bytes[tag.len()] = b'-';
            id.bytes[tag.len() + 1..len].copy_from_slice(digits);
        } else {
            id.long = Some([tag.as_bytes(), b"-", digits].concat().into());
        }
        id
    }

    pub fn as_bytes(&self) -> &[u8] {
        match &self.long {
            Some(long) => long,
            None => &self.bytes[..self.len],
        }
    }

    /// For clients that take a `HeaderValue` (hyper, h2, tonic). Tags are visible ASCII.
    pub fn header_value(&self) -> ::http::HeaderValue {
        ::http::HeaderValue::from_bytes(self.as_bytes()).expect("request ids are visible ASCII")
    }
}

impl std::fmt::Debug for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&String::from_utf8_lossy(self.as_bytes()))
    }
}

pub trait Session: Send {
    /// Sends one request and waits for its outcome, bounded by the transport's timeout.
    /// `sent` is the caller's send time (it has just read the clock; the timeout and the
    /// time to headers count from it, so the hot path reads the clock once less).
    fn send<'a>(
        &'a mut self,
        request: &'a PreparedRequest,
        request_id: &'a RequestId,
        sent: std::time::Instant,
    ) -> impl Future<Output = Outcome> + Send + 'a;

    /// Opens what the session needs before the schedule starts (its connection), so the
    /// first requests of a run do not pay for connection set-up inside their measured
    /// time — as wrk and h2load connect before they start their clocks. A failure is not
    /// reported here: it becomes the first request's outcome, as that request would have
    /// met it opening the connection itself.
    fn warm(&mut self) -> impl Future<Output = ()> + Send + '_ {
        async {}
    }
}

/// The first `BODY_PREFIX_LIMIT` bytes of a response body and its full length.
#[derive(Default)]
pub(crate) struct BodyPrefix {
    pub prefix: bytes::BytesMut,
    pub len: u64,
}

impl BodyPrefix {
    pub fn push(&mut self, data: &[u8]) {
        self.len += data.len() as u64;
        if self.prefix.len() < BODY_PREFIX_LIMIT {
            let take = (BODY_PREFIX_LIMIT - self.prefix.len()).min(data.len());
            self.prefix.extend_from_slice(&data[..take]);
        }
    }

    pub fn outcome(
        self,
        status: u16,
        error: Option<TransportError>,
        upstream_service_time_us: Option<u64>,
        time_to_headers: Duration,
    ) -> Outcome {
        Outcome {
            status: Some(status),
            error,
            body_prefix: self.prefix.freeze(),
            body_len: self.len,
            upstream_service_time_us,
            time_to_headers: Some(time_to_headers),
            ext_proc: None,
        }
    }
}

/// The gateway's upstream time header (Envoy), in whole milliseconds.
pub(crate) const UPSTREAM_SERVICE_TIME: &str = "x-envoy-upstream-service-time";

/// An `x-envoy-upstream-service-time` value (ms) in µs, when numeric; every client reads it
/// the same way.
pub(crate) fn upstream_service_time_us(value: &[u8]) -> Option<u64> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|ms| ms * 1000)
}

/// Whether a request without its own length header gets a `content-length`: it has a body,
/// or its method expects one (an empty POST says `content-length: 0`). The same rule for
/// HTTP/1.1 and both HTTP/2 clients.
pub(crate) fn sends_content_length(request: &PreparedRequest) -> bool {
    use ::http::Method;
    !request.body.is_empty() || matches!(request.method, Method::POST | Method::PUT | Method::PATCH)
}

/// Whether a planned header must not be sent over HTTP/2 (RFC 9113 §8.2.2): `host` (sent as
/// `:authority`), connection-specific headers, the names the `connection` header lists
/// (`connection_list`), and `te` other than "trailers".
pub(crate) fn h2_connection_specific(
    name: &::http::HeaderName,
    value: &::http::HeaderValue,
    connection_list: Option<&str>,
) -> bool {
    use ::http::header;
    if *name == header::TE {
        return value != "trailers";
    }
    let n = name.as_str();
    *name == header::HOST
        || *name == header::CONNECTION
        || *name == header::TRANSFER_ENCODING
        || *name == header::UPGRADE
        || n == "keep-alive"
        || n == "proxy-connection"
        || connection_list
            .is_some_and(|list| list.split(',').any(|l| l.trim().eq_ignore_ascii_case(n)))
}

/// An error and its sources in one line, skipping a source whose text is already said.
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}
