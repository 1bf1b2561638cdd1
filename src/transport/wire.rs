//! A lean HTTP/1.1 client for the load path: each request is serialised into one reusable
//! buffer and written with one syscall; responses are parsed in place with httparse
//! (Content-Length, chunked and close-delimited bodies), keeping only a prefix of the
//! body. Like wrk, no per-request task hand-offs and almost no allocation — the load
//! generator must not be slower than the gateway it tests. HTTP/2 has its own lean client
//! (`h2wire.rs`).

use super::{BodyPrefix, ErrorKind, Outcome, TransportError};
use crate::plan::PreparedRequest;
use bytes::{Buf, BytesMut};
use http::{HeaderName, Method};
use std::io::Write as _;
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Largest response head accepted (status line + headers).
pub const MAX_HEAD: usize = 64 * 1024;
const MAX_HEADERS: usize = 128;

/// Bodies up to this size are copied into the request buffer (one write); larger ones are
/// written separately.
const INLINE_BODY: usize = 64 * 1024;

/// One kept-alive connection and its read buffer.
pub struct WireConn<S> {
    stream: S,
    buf: BytesMut,
    out: Vec<u8>,
    /// Requests completed on this connection (a reused connection may be stale).
    pub served: u64,
}

/// What a single exchange produced, and whether the connection can be reused.
pub struct Exchange {
    pub outcome: Outcome,
    pub reusable: bool,
    /// The server closed the connection before sending a single byte of the response —
    /// on a reused connection this is a stale keep-alive, safe to retry when idempotent.
    pub closed_before_response: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> WireConn<S> {
    pub fn new(stream: S) -> Self {
        WireConn {
            stream,
            buf: BytesMut::with_capacity(16 * 1024),
            out: Vec::with_capacity(1024),
            served: 0,
        }
    }

    /// Writes the request and reads the whole response; the time to headers counts from
    /// `started`, the caller's send time. `head_seen` gets the status and
    /// time to headers as soon as the head is parsed, so that a caller whose timeout cuts
    /// the body short can still record the status.
    pub async fn exchange(
        &mut self,
        req: &PreparedRequest,
        id_header: &HeaderName,
        id: &[u8],
        started: Instant,
        head_seen: &mut Option<(u16, std::time::Duration)>,
    ) -> Exchange {
        serialize(&mut self.out, req, id_header, id);
        let write = async {
            self.stream.write_all(&self.out).await?;
            if req.body.len() > INLINE_BODY {
                self.stream.write_all(&req.body).await?;
            }
            self.stream.flush().await
        };
        if let Err(e) = write.await {
            return Exchange {
                outcome: io_failure(&e),
                reusable: false,
                closed_before_response: matches!(
                    e.kind(),
                    std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
                ),
            };
        }
        let head_only = req.method == Method::HEAD;
        let result = self.read_response(started, head_only, head_seen).await;
        if let Ok((_, true)) = &result {
            self.served += 1;
        }
        match result {
            Ok((outcome, reusable)) => Exchange {
                outcome,
                reusable,
                closed_before_response: false,
            },
            Err(Failure {
                error,
                status,
                nothing_received,
                body_len,
            }) => Exchange {
                outcome: Outcome {
                    status,
                    error: Some(error),
                    body_len,
                    ..Outcome::default()
                },
                reusable: false,
                closed_before_response: nothing_received,
            },
        }
    }

    /// Whether the server has closed this idle connection (or sent bytes nobody asked
    /// for): one non-blocking read. A kept-alive connection is checked before reuse, so a
    /// server's idle-timeout close costs a reconnect, not a failed request.
    pub fn peer_closed(&mut self) -> bool {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        let mut probe = [0u8; 1];
        let mut read_buf = tokio::io::ReadBuf::new(&mut probe);
        // Ready means EOF, stray bytes or an error: either way not reusable.
        std::pin::Pin::new(&mut self.stream)
            .poll_read(&mut cx, &mut read_buf)
            .is_ready()
    }

    async fn fill(&mut self) -> std::io::Result<usize> {
        if self.buf.capacity() - self.buf.len() < 4096 {
            self.buf.reserve(16 * 1024);
        }
        self.stream.read_buf(&mut self.buf).await
    }

    async fn read_response(
        &mut self,
        started: Instant,
        head_only: bool,
        head_seen: &mut Option<(u16, std::time::Duration)>,
    ) -> Result<(Outcome, bool), Failure> {
        self.buf.clear();
        // Head: skip 1xx informational responses.
        let (status, head_len, framing, keep_alive, upstream) = loop {
            let parsed = parse_head(&self.buf);
            match parsed {
                Ok(Some(h)) if (100..200).contains(&h.status) && h.status != 101 => {
                    self.buf.advance(h.head_len);
                    continue;
                }
                Ok(Some(h)) => {
                    break (h.status, h.head_len, h.framing, h.keep_alive, h.upstream_us)
                }
                Ok(None) => {
                    if self.buf.len() > MAX_HEAD {
                        return Err(Failure::protocol("response head larger than 64 KiB", None));
                    }
                    // Only a clean close (EOF) or EPIPE with nothing received marks a stale
                    // keep-alive. EPIPE is what Linux reports when the server had closed the
                    // connection (FIN) and then reset our late request; an RST on a live
                    // connection (ECONNRESET) is the server's answer to our request — a WAF
                    // dropping it — and is never retried.
                    let n = self.fill().await.map_err(|e| {
                        let stale = e.kind() == std::io::ErrorKind::BrokenPipe;
                        Failure::io(&e, stale && self.buf.is_empty())
                    })?;
                    if n == 0 {
                        let nothing = self.buf.is_empty();
                        return Err(Failure {
                            error: TransportError::new(
                                ErrorKind::Reset,
                                "connection closed before a complete response head",
                            ),
                            status: None,
                            nothing_received: nothing,
                            body_len: 0,
                        });
                    }
                }
                Err(e) => return Err(Failure::protocol(&format!("malformed response: {e}"), None)),
            }
        };
        let time_to_headers = started.elapsed();
        *head_seen = Some((status, time_to_headers));
        self.buf.advance(head_len);
        let no_body = head_only || status == 204 || status == 304;
        let mut body = BodyPrefix::default();
        let framing = if no_body { Framing::Length(0) } else { framing };
        let complete = match framing {
            Framing::Length(n) => self.read_length(n, &mut body).await,
            Framing::Chunked => self.read_chunked(&mut body).await,
            Framing::Close => self.read_to_close(&mut body).await,
        };
        if let Err(mut f) = complete {
            f.status = Some(status);
            // What arrived before the cut still counts in response_body_bytes.
            f.body_len = body.len;
            return Err(f);
        }
        let reusable = keep_alive && !matches!(framing, Framing::Close) && self.buf.is_empty();
        Ok((
            Outcome {
                status: Some(status),
                error: None,
                body_prefix: body.prefix.freeze(),
                body_len: body.len,
                upstream_service_time_us: upstream,
                time_to_headers: Some(time_to_headers),
                ext_proc: None,
            },
            reusable,
        ))
    }

    async fn read_length(
        &mut self,
        mut remaining: u64,
        body: &mut BodyPrefix,
    ) -> Result<(), Failure> {
        loop {
            let take = (self.buf.len() as u64).min(remaining) as usize;
            body.push(&self.buf[..take]);
            self.buf.advance(take);
            remaining -= take as u64;
            if remaining == 0 {
                return Ok(());
            }
            let n = self.fill().await.map_err(|e| Failure::io(&e, false))?;
            if n == 0 {
                return Err(Failure::reset(
                    "connection closed in the middle of the body",
                ));
            }
        }
    }

    async fn read_to_close(&mut self, body: &mut BodyPrefix) -> Result<(), Failure> {
        loop {
            body.push(&self.buf);
            self.buf.clear();
            match self.fill().await {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(Failure::io(&e, false)),
            }
        }
    }

    async fn read_chunked(&mut self, body: &mut BodyPrefix) -> Result<(), Failure> {
        loop {
            // Chunk-size line.
            let line_end = loop {
                if let Some(i) = find_crlf(&self.buf) {
                    break i;
                }
                if self.buf.len() > 4096 {
                    return Err(Failure::protocol("chunk size line too long", None));
                }
                let n = self.fill().await.map_err(|e| Failure::io(&e, false))?;
                if n == 0 {
                    return Err(Failure::reset("connection closed inside a chunked body"));
                }
            };
            let size = parse_chunk_size(&self.buf[..line_end])
                .ok_or_else(|| Failure::protocol("invalid chunk size", None))?;
            self.buf.advance(line_end + 2);
            if size == 0 {
                // Trailers until an empty line.
                loop {
                    if let Some(i) = find_crlf(&self.buf) {
                        self.buf.advance(i + 2);
                        if i == 0 {
                            return Ok(());
                        }
                        continue;
                    }
                    let n = self.fill().await.map_err(|e| Failure::io(&e, false))?;
                    if n == 0 {
                        return Err(Failure::reset("connection closed inside chunked trailers"));
                    }
                }
            }
            self.read_length(size, body).await?;
            // CRLF after the chunk data.
            while self.buf.len() < 2 {
                let n = self.fill().await.map_err(|e| Failure::io(&e, false))?;
                if n == 0 {
                    return Err(Failure::reset("connection closed inside a chunked body"));
                }
            }
            if &self.buf[..2] != b"\r\n" {
                return Err(Failure::protocol("chunk data not followed by CRLF", None));
            }
            self.buf.advance(2);
        }
    }
}

struct Failure {
    error: TransportError,
    status: Option<u16>,
    nothing_received: bool,
    /// Body bytes read before the failure.
    body_len: u64,
}

impl Failure {
    fn protocol(message: &str, status: Option<u16>) -> Failure {
        Failure {
            error: TransportError::new(ErrorKind::Protocol, message),
            status,
            nothing_received: false,
            body_len: 0,
        }
    }
    fn reset(message: &str) -> Failure {
        Failure {
            error: TransportError::new(ErrorKind::Reset, message),
            status: None,
            nothing_received: false,
            body_len: 0,
        }
    }
    fn io(e: &std::io::Error, nothing_received: bool) -> Failure {
        Failure {
            error: io_error(e),
            status: None,
            nothing_received,
            body_len: 0,
        }
    }
}

fn io_error(e: &std::io::Error) -> TransportError {
    use std::io::ErrorKind as K;
    let kind = match e.kind() {
        K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::UnexpectedEof => {
            ErrorKind::Reset
        }
        K::ConnectionRefused => ErrorKind::Connect,
        K::TimedOut => ErrorKind::Timeout,
        // rustls reports TLS alerts and bad records as InvalidData.
        K::InvalidData => ErrorKind::Tls,
        _ => ErrorKind::Other,
    };
    TransportError::new(kind, e.to_string())
}

fn io_failure(e: &std::io::Error) -> Outcome {
    Outcome {
        error: Some(io_error(e)),
        ..Outcome::default()
    }
}

enum Framing {
    Length(u64),
    Chunked,
    Close,
}

struct Head {
    status: u16,
    head_len: usize,
    framing: Framing,
    keep_alive: bool,
    upstream_us: Option<u64>,
}

/// Parses a response head if complete (`Ok(None)` = need more bytes).
fn parse_head(buf: &[u8]) -> Result<Option<Head>, String> {
    // Uninitialised header slots: initialising 128 of them cost more than the parse.
    let mut headers = [const { std::mem::MaybeUninit::<httparse::Header>::uninit() }; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut resp,
        buf,
        &mut headers,
    );
    let head_len = match parsed {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    let status = resp.code.ok_or("no status code")?;
    let http11 = resp.version == Some(1);
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut close = !http11;
    let mut upstream = None;
    for h in resp.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("content-length") {
            let v = std::str::from_utf8(h.value)
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .ok_or("invalid content-length")?;
            if length.is_some_and(|l| l != v) {
                return Err("conflicting content-length headers".into());
            }
            length = Some(v);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = h
                .value
                .trim_ascii_end()
                .to_ascii_lowercase()
                .ends_with(b"chunked");
        } else if name.eq_ignore_ascii_case("connection") {
            // Compared in place: this header is on nearly every response.
            if contains_ignore_case(h.value, b"close") {
                close = true;
            } else if contains_ignore_case(h.value, b"keep-alive") {
                close = false;
            }
        } else if name.eq_ignore_ascii_case(super::UPSTREAM_SERVICE_TIME) {
            upstream = super::upstream_service_time_us(h.value);
        }
    }
    let framing = if chunked {
        Framing::Chunked
    } else if let Some(n) = length {
        Framing::Length(n)
    } else {
        Framing::Close
    };
    Ok(Some(Head {
        status,
        head_len,
        framing,
        keep_alive: !close,
        upstream_us: upstream,
    }))
}

fn contains_ignore_case(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

fn find_crlf(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\r\n")
}

fn parse_chunk_size(line: &[u8]) -> Option<u64> {
    let hex = line.split(|&b| b == b';').next()?;
    let text = std::str::from_utf8(hex).ok()?.trim();
    if text.is_empty() || text.len() > 15 {
        return None;
    }
    u64::from_str_radix(text, 16).ok()
}

/// Serialises a request into `out`: request line, headers (in the plan's order),
/// Content-Length, the request id, and the body when it is small.
pub fn serialize(out: &mut Vec<u8>, req: &PreparedRequest, id_header: &HeaderName, id: &[u8]) {
    out.clear();
    out.extend_from_slice(req.h1_head.get_or_init(|| request_head(req)));
    out.extend_from_slice(id_header.as_str().as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(id);
    out.extend_from_slice(b"\r\n\r\n");
    if req.body.len() <= INLINE_BODY {
        out.extend_from_slice(&req.body);
    }
}

/// The request line and headers (with content-length where one is due), without the
/// request id and the blank line: the same bytes every time the request is sent, so they
/// are built once per planned request and copied after that.
fn request_head(req: &PreparedRequest) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(req.method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(req.path.as_str().as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let mut has_length = false;
    for (name, value) in req.headers.iter() {
        if name == http::header::CONTENT_LENGTH || name == http::header::TRANSFER_ENCODING {
            has_length = true;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if !has_length && super::sends_content_length(req) {
        let _ = write!(out, "content-length: {}\r\n", req.body.len());
    }
    out
}

/// Methods a client may resend when the first attempt provably never reached the server.
pub fn idempotent(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_with_each_framing_parse() {
        let h = parse_head(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 12\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.status, 403);
        assert!(matches!(h.framing, Framing::Length(12)));
        assert!(h.keep_alive);
        let h = parse_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\nx-envoy-upstream-service-time: 7\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(matches!(h.framing, Framing::Chunked));
        assert!(!h.keep_alive);
        assert_eq!(h.upstream_us, Some(7000));
        let h = parse_head(b"HTTP/1.0 200 OK\r\n\r\n").unwrap().unwrap();
        assert!(matches!(h.framing, Framing::Close));
        assert!(!h.keep_alive);
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nconte").unwrap().is_none());
        assert!(parse_head(b"HTTTP/1.1 200 OK\r\n\r\n").is_err());
        assert!(
            parse_head(b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n")
                .is_err()
        );
    }

    #[test]
    fn chunk_sizes_parse_with_extensions() {
        assert_eq!(parse_chunk_size(b"1a"), Some(26));
        assert_eq!(parse_chunk_size(b"0;ext=1"), Some(0));
        assert_eq!(parse_chunk_size(b"zz"), None);
        assert_eq!(parse_chunk_size(b""), None);
    }

    async fn exchange_with(response: &'static [u8], method: Method) -> Exchange {
        let (client, mut server) = tokio::io::duplex(1 << 20);
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            let _ = server.read(&mut buf).await;
            let _ = server.write_all(response).await;
            // Keep the pipe open briefly so keep-alive responses are not close-delimited.
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        });
        let mut conn = WireConn::new(client);
        let req = PreparedRequest {
            method,
            path: http::uri::PathAndQuery::from_static("/x?q=1"),
            headers: http::HeaderMap::new(),
            body: bytes::Bytes::new(),
            source: 0,
            h1_head: Default::default(),
        };
        conn.exchange(
            &req,
            &HeaderName::from_static("x-request-id"),
            b"r-1",
            Instant::now(),
            &mut None,
        )
        .await
    }

    #[tokio::test]
    async fn chunked_body_is_decoded_and_counted() {
        let e = exchange_with(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n6;x=y\r\n world\r\n0\r\nX-T: 1\r\n\r\n",
            Method::GET,
        )
        .await;
        assert!(e.outcome.error.is_none(), "{:?}", e.outcome.error);
        assert_eq!(&e.outcome.body_prefix[..], b"hello world");
        assert_eq!(e.outcome.body_len, 11);
        assert!(e.reusable);
    }

    #[tokio::test]
    async fn body_cut_short_is_a_reset_with_its_status() {
        let e = exchange_with(
            b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly this",
            Method::GET,
        )
        .await;
        assert_eq!(e.outcome.error.as_ref().unwrap().kind, ErrorKind::Reset);
        assert_eq!(e.outcome.status, Some(200));
        assert!(!e.closed_before_response);
    }

    #[tokio::test]
    async fn broken_chunked_encoding_is_a_protocol_error() {
        let e = exchange_with(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
            Method::GET,
        )
        .await;
        assert_eq!(e.outcome.error.as_ref().unwrap().kind, ErrorKind::Protocol);
    }

    #[tokio::test]
    async fn informational_responses_are_skipped_and_head_has_no_body() {
        let e = exchange_with(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nabc",
            Method::GET,
        )
        .await;
        assert_eq!(e.outcome.status, Some(200));
        assert_eq!(&e.outcome.body_prefix[..], b"abc");
        let e = exchange_with(
            b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\n",
            Method::HEAD,
        )
        .await;
        assert_eq!(e.outcome.body_len, 0);
        assert!(e.outcome.error.is_none());
    }

    #[tokio::test]
    async fn nothing_at_all_is_marked_closed_before_response() {
        let e = exchange_with(b"", Method::GET).await;
        assert!(e.closed_before_response);
        assert_eq!(e.outcome.error.as_ref().unwrap().kind, ErrorKind::Reset);
    }

    #[test]
    fn requests_serialise_with_id_and_length() {
        let mut headers = http::HeaderMap::new();
        headers.insert("host", http::HeaderValue::from_static("a.example"));
        let req = PreparedRequest {
            method: Method::POST,
            path: http::uri::PathAndQuery::from_static("/p?x=1'"),
            headers,
            body: bytes::Bytes::from_static(b"a=b"),
            source: 0,
            h1_head: Default::default(),
        };
        let mut out = Vec::new();
        serialize(
            &mut out,
            &req,
            &HeaderName::from_static("x-request-id"),
            b"wl1-7",
        );
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            "POST /p?x=1' HTTP/1.1\r\nhost: a.example\r\ncontent-length: 3\r\nx-request-id: wl1-7\r\n\r\na=b"
        );
        // The head is built once; the next send copies it and carries its own id.
        serialize(
            &mut out,
            &req,
            &HeaderName::from_static("x-request-id"),
            b"wl1-12345",
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "POST /p?x=1' HTTP/1.1\r\nhost: a.example\r\ncontent-length: 3\r\nx-request-id: wl1-12345\r\n\r\na=b"
        );
    }
}
