//! HTTP/1.1 and HTTP/2 over TCP or TLS, with connections under our control: one
//! connection per worker for HTTP/1.1 (keep-alive; our lean `wire` client, or hyper's
//! low-level connection API), a few shared multiplexed connections for HTTP/2 (our lean
//! `h2wire` client, or the `h2` crate directly).
//!
//! The `h2` crate is used without hyper in between: hyper's h2 client hands every request
//! through a channel to its connection task and spawns one task per request to drive the
//! response, which cost ~25 % of wafload's CPU per HTTP/2 request.

use super::h2wire::{Failure, H2WireConn, RequestHead};
use super::wire::{self, WireConn};
use super::{BodyPrefix, ErrorKind, Outcome, RequestId, Session, Transport, TransportError};
use crate::error::Error;
use crate::plan::PreparedRequest;
use crate::profile::{HttpVersion, Profile};
use bytes::Bytes;
use http::uri::{Authority, Scheme};
use http::{HeaderValue, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Which HTTP/1.1 client sends requests: `wire` (our lean client, the default) or `hyper`.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum H1Engine {
    #[default]
    Wire,
    Hyper,
}

/// Which HTTP/2 client sends requests: `wire` (our lean client, the default) or `h2` (the
/// `h2` crate, kept for cross-checks).
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum H2Engine {
    #[default]
    Wire,
    H2,
}

/// The protocol actually spoken (after ALPN).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Negotiated {
    H1,
    H2,
}

/// Everything needed to open a connection to the target, resolved once before the run.
pub struct Endpoint {
    pub url: String,
    pub scheme: Scheme,
    /// Authority used for HTTP/2 `:authority` (the `Host` override when given).
    pub authority: Authority,
    pub addrs: Vec<SocketAddr>,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    pub version: Negotiated,
    pub timeout: Duration,
    pub connections: usize,
    pub streams_per_connection: usize,
    pub request_id_header: http::HeaderName,
    pub engine: H1Engine,
    pub h2_engine: H2Engine,
}

impl Endpoint {
    /// Resolves the target, opens one connection (TCP, TLS, ALPN) and fixes the protocol.
    /// A failure here is an input error: the run does not start.
    pub async fn prepare(profile: &Profile) -> Result<Endpoint, Error> {
        let url = &profile.target.url;
        let target_err = |message: String| Error::Target {
            url: url.clone(),
            message,
        };
        let uri: Uri = url
            .parse()
            .map_err(|e| Error::flag("--target", format!("{url:?} is not a URL: {e}")))?;
        let scheme = uri.scheme().cloned().unwrap_or(Scheme::HTTP);
        let https = scheme == Scheme::HTTPS;
        let host = uri
            .host()
            .ok_or_else(|| Error::flag("--target", format!("{url:?} has no host")))?
            .to_string();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let host_for_lookup = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host_for_lookup.as_str(), port))
            .await
            .map_err(|e| target_err(format!("cannot resolve {host}: {e}")))?
            .collect();
        if addrs.is_empty() {
            return Err(target_err(format!("{host} resolves to no address")));
        }
        let authority_text = match &profile.target.host {
            Some(h) => h.clone(),
            None => uri
                .authority()
                .map(|a| a.to_string())
                .unwrap_or(host.clone()),
        };
        let authority: Authority = authority_text.parse().map_err(|e| {
            Error::flag(
                "--host",
                format!("{authority_text:?} is not a valid host: {e}"),
            )
        })?;

        let tls = if https {
            let alpn: Vec<&[u8]> = match profile.target.http {
                HttpVersion::Auto => vec![b"h2", b"http/1.1"],
                HttpVersion::H1 => vec![b"http/1.1"],
                HttpVersion::H2 => vec![b"h2"],
            };
            let config = super::tls::client_config(
                profile.target.insecure,
                profile.target.ca_file.as_deref(),
                &alpn,
            )?;
            let name = super::tls::server_name(profile.target.sni.as_deref().unwrap_or(&host))?;
            Some((TlsConnector::from(Arc::new(config)), name))
        } else {
            None
        };

        let mut endpoint = Endpoint {
            url: url.clone(),
            scheme,
            authority,
            addrs,
            tls,
            version: match profile.target.http {
                HttpVersion::H2 => Negotiated::H2,
                _ => Negotiated::H1,
            },
            timeout: profile.timeout,
            connections: profile.connections,
            streams_per_connection: profile.streams_per_connection,
            request_id_header: http::HeaderName::from_bytes(profile.request_id_header.as_bytes())
                .map_err(|e| Error::flag("--request-id-header", e.to_string()))?,
            engine: profile.h1_engine,
            h2_engine: profile.h2_engine,
        };
        // Preflight connection: proves reachability and learns the ALPN result.
        let probe = tokio::time::timeout(profile.timeout, endpoint.open())
            .await
            .map_err(|_| target_err(format!("no connection within {:?}", profile.timeout)))?
            .map_err(|e| target_err(e.message))?;
        if let Some(alpn) = probe.alpn {
            if profile.target.http == HttpVersion::Auto {
                endpoint.version = if alpn == b"h2" {
                    Negotiated::H2
                } else {
                    Negotiated::H1
                };
            }
        }
        Ok(endpoint)
    }

    /// Opens a TCP (and TLS) connection with TCP_NODELAY set.
    async fn open(&self) -> Result<Opened, TransportError> {
        let mut last = None;
        let mut tcp = None;
        for addr in &self.addrs {
            match TcpStream::connect(addr).await {
                Ok(s) => {
                    tcp = Some(s);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let tcp = match tcp {
            Some(t) => t,
            None => {
                let e = last.expect("at least one address");
                return Err(TransportError::new(
                    ErrorKind::Connect,
                    format!("connect {}: {e}", self.addrs[0]),
                ));
            }
        };
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            None => Ok(Opened {
                io: Io::Plain(tcp),
                alpn: None,
            }),
            Some((connector, name)) => {
                let stream = connector
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(|e| TransportError::new(ErrorKind::Tls, format!("TLS: {e}")))?;
                let alpn = stream.get_ref().1.alpn_protocol().map(|p| p.to_vec());
                Ok(Opened {
                    io: Io::Tls(Box::new(stream)),
                    alpn,
                })
            }
        }
    }

    async fn handshake_h1(&self) -> Result<http1::SendRequest<Full<Bytes>>, TransportError> {
        let opened = self.open().await?;
        macro_rules! hs {
            ($io:expr) => {{
                let (sender, conn) = http1::Builder::new()
                    .handshake(TokioIo::new($io))
                    .await
                    .map_err(|e| map_hyper_error(&e))?;
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                Ok(sender)
            }};
        }
        match opened.io {
            Io::Plain(s) => hs!(s),
            Io::Tls(s) => hs!(*s),
        }
    }

    async fn handshake_h2(&self) -> Result<H2Conn, TransportError> {
        let opened = self.open().await?;
        let (send, connection) = h2::client::Builder::new()
            .initial_window_size(1 << 20)
            .initial_connection_window_size(8 << 20)
            .enable_push(false)
            .handshake::<_, Bytes>(opened.io)
            .await
            .map_err(|e| map_h2_error(&e))?;
        let closed = Arc::new(AtomicBool::new(false));
        let flag = closed.clone();
        tokio::spawn(async move {
            let _ = connection.await;
            flag.store(true, Ordering::Release);
        });
        Ok(H2Conn { send, closed })
    }

    async fn handshake_h2_wire(&self) -> Result<H2WireConn, TransportError> {
        let opened = self.open().await?;
        Ok(H2WireConn::start(opened.io))
    }

    fn request(&self, planned: &PreparedRequest, id: HeaderValue) -> Request<Full<Bytes>> {
        let mut request = Request::new(Full::new(planned.body.clone()));
        *request.method_mut() = planned.method.clone();
        *request.headers_mut() = planned.headers.clone();
        request
            .headers_mut()
            .insert(self.request_id_header.clone(), id);
        *request.uri_mut() = Uri::from(planned.path.clone());
        request
    }

    /// The HTTP/2 request head: `:scheme`/`:authority` from the endpoint, no `Host`, no
    /// connection-specific headers (RFC 9113 §8.2.2), and a `content-length` like HTTP/1.1.
    fn h2_request(&self, planned: &PreparedRequest, id: HeaderValue) -> Request<()> {
        use http::header;
        let mut request = Request::new(());
        *request.method_mut() = planned.method.clone();
        let listed_in_connection = planned
            .headers
            .get(header::CONNECTION)
            .and_then(|v| v.to_str().ok());
        let headers = request.headers_mut();
        for (name, value) in &planned.headers {
            if !super::h2_connection_specific(name, value, listed_in_connection) {
                headers.append(name.clone(), value.clone());
            }
        }
        if !headers.contains_key(header::CONTENT_LENGTH) && super::sends_content_length(planned) {
            headers.insert(
                header::CONTENT_LENGTH,
                HeaderValue::from(planned.body.len()),
            );
        }
        // Never indexed (HPACK): every id is unique, so indexing it only churned the dynamic
        // table — each request walked all the earlier ids' entries comparing values, then
        // evicted one (~5 % of the CPU per HTTP/2 request).
        let mut id = id;
        id.set_sensitive(true);
        headers.insert(self.request_id_header.clone(), id);
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(self.scheme.clone());
        parts.authority = Some(self.authority.clone());
        parts.path_and_query = Some(planned.path.clone());
        *request.uri_mut() = Uri::from_parts(parts).expect("valid parts");
        *request.version_mut() = http::Version::HTTP_2;
        request
    }
}

/// One pooled HTTP/2 connection: the `h2` handle and whether its connection task ended.
#[derive(Clone)]
struct H2Conn {
    send: h2::client::SendRequest<Bytes>,
    closed: Arc<AtomicBool>,
}

impl H2Conn {
    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

/// A pooled connection: cheap to clone, and able to say it takes no new streams.
trait Pooled: Clone {
    fn is_closed(&self) -> bool;
}

impl Pooled for H2Conn {
    fn is_closed(&self) -> bool {
        H2Conn::is_closed(self)
    }
}

impl Pooled for H2WireConn {
    fn is_closed(&self) -> bool {
        H2WireConn::is_closed(self)
    }
}

/// Makes sure `cached` holds a usable connection of the pool slot: the cached one, the
/// slot's current one, or a new one opened with `open` (the slot's lock is taken only
/// then). `retired` is a generation this session saw go away.
async fn checkout<C: Pooled, F: std::future::Future<Output = Result<C, TransportError>>>(
    slot: &tokio::sync::Mutex<Option<(u64, C)>>,
    cached: &mut Option<(u64, C)>,
    retired: Option<u64>,
    open: impl FnOnce() -> F,
) -> Result<(), TransportError> {
    if matches!(cached, Some((g, c)) if !c.is_closed() && retired != Some(*g)) {
        return Ok(());
    }
    let mut slot = slot.lock().await;
    let current = match slot.as_ref() {
        Some((generation, c)) if !c.is_closed() && retired != Some(*generation) => {
            (*generation, c.clone())
        }
        current => {
            let generation = current.map_or(0, |(g, _)| g + 1);
            // Boxed: connecting (TCP, TLS) is rare, and its future is large.
            let c = Box::pin(open()).await?;
            *slot = Some((generation, c.clone()));
            (generation, c)
        }
    };
    *cached = Some(current);
    Ok(())
}

struct Opened {
    io: Io,
    alpn: Option<Vec<u8>>,
}

enum Io {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl tokio::io::AsyncRead for Io {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => std::pin::Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl tokio::io::AsyncWrite for Io {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => std::pin::Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => std::pin::Pin::new(s).poll_flush(cx),
            Io::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => std::pin::Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Shared HTTP/2 connections, one slot per connection, (re)connected lazily.
/// Each slot holds its connection with a generation number, so that a session that saw the
/// connection go away retires exactly that one (and not a newer one another session opened).
type Pool<C> = Arc<Vec<tokio::sync::Mutex<Option<(u64, C)>>>>;
type H2Pool = Pool<H2Conn>;

/// The HTTP transport: HTTP/1.1 (one connection per worker) or HTTP/2 (shared pool).
pub struct HttpTransport {
    endpoint: Arc<Endpoint>,
    h2_pool: H2Pool,
    h2_wire_pool: Pool<H2WireConn>,
}

impl HttpTransport {
    pub fn new(endpoint: Endpoint) -> Self {
        fn slots<C>(n: usize) -> Pool<C> {
            Arc::new((0..n).map(|_| tokio::sync::Mutex::new(None)).collect())
        }
        HttpTransport {
            h2_pool: slots(endpoint.connections),
            h2_wire_pool: slots(endpoint.connections),
            endpoint: Arc::new(endpoint),
        }
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }
}

impl Transport for HttpTransport {
    type Session = HttpSession;

    fn session(&self, worker: usize) -> HttpSession {
        HttpSession {
            endpoint: self.endpoint.clone(),
            h1: None,
            wire: None,
            h2_pool: self.h2_pool.clone(),
            h2_wire_pool: self.h2_wire_pool.clone(),
            h2_slot: worker % self.endpoint.connections,
            h2_cached: None,
            h2_wire_cached: None,
            head_seen: None,
            timer: None,
            warm_failure: None,
        }
    }

    fn max_in_flight(&self) -> usize {
        match self.endpoint.version {
            Negotiated::H1 => self.endpoint.connections,
            Negotiated::H2 => self.endpoint.connections * self.endpoint.streams_per_connection,
        }
    }
}

pub struct HttpSession {
    endpoint: Arc<Endpoint>,
    h1: Option<http1::SendRequest<Full<Bytes>>>,
    /// The HTTP/1.1 connection of the wire engine (the default for HTTP/1.1).
    wire: Option<WireConn<Io>>,
    h2_pool: H2Pool,
    h2_slot: usize,
    /// This session's clone of its pool slot's connection, with the slot generation.
    h2_cached: Option<(u64, H2Conn)>,
    h2_wire_pool: Pool<H2WireConn>,
    h2_wire_cached: Option<(u64, H2WireConn)>,
    /// Status and time to headers of the exchange in progress, so that a timeout after the
    /// headers (a stalled or trickled body) still records the status it got.
    head_seen: Option<(u16, Duration)>,
    /// The request timeout, re-armed for each request.
    timer: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
    /// Why opening the connection before the run failed; the first request's outcome.
    warm_failure: Option<TransportError>,
}

impl Session for HttpSession {
    /// HTTP/1.1 opens the worker's connection, HTTP/2 its pool slot's (shared with the
    /// slot's other workers) — with every client, the cross-check ones (hyper, the `h2`
    /// crate) too, so that switching clients does not change when a run's clock starts.
    async fn warm(&mut self) {
        let endpoint = self.endpoint.clone();
        // A connection not opened within the timeout is left to the first request.
        let within_timeout = |r: Result<Result<(), TransportError>, _>| r.unwrap_or(Ok(()));
        let opened: Result<(), TransportError> = match endpoint.version {
            Negotiated::H1 if endpoint.engine == H1Engine::Wire => {
                let open = tokio::time::timeout(endpoint.timeout, Box::pin(endpoint.open()));
                within_timeout(
                    open.await
                        .map(|r| r.map(|opened| self.wire = Some(WireConn::new(opened.io)))),
                )
            }
            Negotiated::H1 => {
                let open =
                    tokio::time::timeout(endpoint.timeout, Box::pin(endpoint.handshake_h1()));
                within_timeout(open.await.map(|r| r.map(|sender| self.h1 = Some(sender))))
            }
            Negotiated::H2 if endpoint.h2_engine == H2Engine::Wire => {
                let slot = &self.h2_wire_pool[self.h2_slot];
                let open = checkout(slot, &mut self.h2_wire_cached, None, || {
                    endpoint.handshake_h2_wire()
                });
                within_timeout(tokio::time::timeout(endpoint.timeout, open).await)
            }
            Negotiated::H2 => {
                let slot = &self.h2_pool[self.h2_slot];
                let open = checkout(slot, &mut self.h2_cached, None, || endpoint.handshake_h2());
                within_timeout(tokio::time::timeout(endpoint.timeout, Box::pin(open)).await)
            }
        };
        // The first request reports a failure, as it would have met it opening the
        // connection itself: a handshake that fails one time in N still counts once.
        if let Err(e) = opened {
            self.warm_failure = Some(e);
        }
    }

    async fn send(
        &mut self,
        request: &PreparedRequest,
        request_id: &RequestId,
        sent: Instant,
    ) -> Outcome {
        if let Some(e) = self.warm_failure.take() {
            return outcome_error(e);
        }
        let timeout = self.endpoint.timeout;
        self.head_seen = None;
        // One timer per session, and not re-armed per request: it keeps the deadline of
        // an earlier request, and when it fires before this request's deadline `within`
        // moves it on then. Requests are much shorter than the timeout, so the timer is
        // touched about once per timeout period instead of once per request (re-arming
        // was ~2.5 % of the CPU per request; a `timeout()` per request cost about as much).
        let deadline = tokio::time::Instant::from_std(sent) + timeout;
        let mut timer = self
            .timer
            .take()
            .unwrap_or_else(|| Box::pin(tokio::time::sleep_until(deadline)));
        if timer.deadline() > deadline {
            timer.as_mut().reset(deadline);
        }
        // Each exchange is pinned here and `within` gets a reference: taken by value it
        // would be stored twice in this future (argument and `select!` slot).
        let result = match self.endpoint.version {
            Negotiated::H1 if self.endpoint.engine == H1Engine::Wire => {
                // On timeout the connection (taken out of `self.wire` for the exchange)
                // is dropped with the future: a connection mid-request is never reused.
                let work = std::pin::pin!(self.exchange_wire(request, request_id, sent));
                within(&mut timer, deadline, work).await
            }
            Negotiated::H1 => {
                // Boxed, like the `h2` crate's exchange below: their futures are
                // kilobytes, and unboxed they would make every worker's future (and
                // the cache lines a resumed worker touches) that large.
                let mut work = Box::pin(self.exchange_h1(request, request_id.header_value()));
                let r = within(&mut timer, deadline, work.as_mut()).await;
                drop(work);
                if r.is_none() {
                    // The connection is mid-request; it cannot be reused.
                    self.h1 = None;
                }
                r
            }
            Negotiated::H2 if self.endpoint.h2_engine == H2Engine::Wire => {
                let work = std::pin::pin!(self.exchange_h2_wire(request, request_id, sent));
                within(&mut timer, deadline, work).await
            }
            Negotiated::H2 => {
                let mut work = Box::pin(self.exchange_h2(request, request_id.header_value()));
                within(&mut timer, deadline, work.as_mut()).await
            }
        };
        self.timer = Some(timer);
        match result {
            Some(outcome) => outcome,
            None => {
                let mut outcome = Outcome::failed(
                    ErrorKind::Timeout,
                    format!("no complete response within {timeout:?}"),
                );
                if let Some((status, time_to_headers)) = self.head_seen.take() {
                    outcome.status = Some(status);
                    outcome.time_to_headers = Some(time_to_headers);
                }
                outcome
            }
        }
    }
}

/// `work`'s output, or `None` when `deadline` passes first. `timer` may be set earlier
/// than `deadline` (an earlier request's deadline); it is moved on when it fires early.
async fn within<F: std::future::Future>(
    timer: &mut std::pin::Pin<Box<tokio::time::Sleep>>,
    deadline: tokio::time::Instant,
    mut work: std::pin::Pin<&mut F>,
) -> Option<F::Output> {
    loop {
        tokio::select! {
            biased;
            out = work.as_mut() => return Some(out),
            _ = timer.as_mut() => {
                if tokio::time::Instant::now() >= deadline {
                    return None;
                }
                timer.as_mut().reset(deadline);
            }
        }
    }
}

impl HttpSession {
    async fn exchange_wire(
        &mut self,
        planned: &PreparedRequest,
        id: &RequestId,
        sent: Instant,
    ) -> Outcome {
        for attempt in 0..2 {
            // A kept-alive connection the server has closed meanwhile (idle timeout) is
            // replaced before anything is written to it.
            let kept = self
                .wire
                .take()
                .and_then(|mut c| (!c.peer_closed()).then_some(c));
            let (mut conn, reused) = match kept {
                Some(c) => (c, true),
                None => match Box::pin(self.endpoint.open()).await {
                    Ok(opened) => (WireConn::new(opened.io), false),
                    Err(e) => return outcome_error(e),
                },
            };
            let ex = conn
                .exchange(
                    planned,
                    &self.endpoint.request_id_header,
                    id.as_bytes(),
                    sent,
                    &mut self.head_seen,
                )
                .await;
            if ex.reusable {
                self.wire = Some(conn);
            }
            // A kept-alive connection the server had already closed: nothing of ours was
            // processed, so an idempotent request is sent once more on a fresh connection.
            if ex.outcome.error.is_some()
                && reused
                && ex.closed_before_response
                && attempt == 0
                && wire::idempotent(&planned.method)
            {
                continue;
            }
            return ex.outcome;
        }
        Outcome::failed(
            ErrorKind::Reset,
            "connection closed before the request was answered",
        )
    }

    async fn exchange_h1(&mut self, planned: &PreparedRequest, id: HeaderValue) -> Outcome {
        // One retry, only on a kept-alive (reused) connection that the server closed under
        // us — it may close idle connections at any time — and only when that is safe:
        // - the connection was found closed before our request was written (any method);
        // - or it was closed cleanly (FIN) before a single response byte arrived and the
        //   method is idempotent (RFC 9110 §9.2.2), so a repeat cannot do harm if the
        //   server did process it. Non-idempotent requests are reported, not repeated.
        // An RST is never retried: a WAF that resets a request has given its verdict.
        for attempt in 0..2 {
            let reused = matches!(&self.h1, Some(s) if !s.is_closed());
            let mut sender = match self.h1.take() {
                Some(s) if !s.is_closed() => s,
                _ => match self.endpoint.handshake_h1().await {
                    Ok(s) => s,
                    Err(e) => return outcome_error(e),
                },
            };
            if let Err(e) = sender.ready().await {
                if reused && attempt == 0 {
                    continue;
                }
                return outcome_error(map_hyper_error(&e));
            }
            let started = Instant::now();
            let request = self.endpoint.request(planned, id.clone());
            match sender.send_request(request).await {
                Ok(response) => {
                    let outcome = read_response(response, started, &mut self.head_seen).await;
                    if outcome.error.is_none() {
                        self.h1 = Some(sender);
                    }
                    return outcome;
                }
                Err(e) if reused && attempt == 0 && e.is_canceled() => continue,
                Err(e)
                    if reused
                        && attempt == 0
                        && e.is_incomplete_message()
                        && is_idempotent(&planned.method) =>
                {
                    continue
                }
                Err(e) => return outcome_error(map_hyper_error(&e)),
            }
        }
        Outcome::failed(
            ErrorKind::Reset,
            "connection closed before the request was sent",
        )
    }

    async fn exchange_h2(&mut self, planned: &PreparedRequest, id: HeaderValue) -> Outcome {
        // One retry when the server provably did not process the stream (RFC 9113 §8.7):
        // it refused it (REFUSED_STREAM, e.g. beyond SETTINGS_MAX_CONCURRENT_STREAMS before
        // our client learned the limit), its id is above a GOAWAY's last stream id, or the
        // connection closed before the request was sent. A GOAWAY or a closed connection
        // also retires the pool slot's connection so the retry opens a new one.
        let mut retired: Option<u64> = None;
        for attempt in 0..2 {
            // The session keeps its own handle on the slot's connection and uses it by
            // reference: the pool's lock is taken only to (re)connect, and no handle is
            // cloned per request (a clone and its drop each lock h2's stream store).
            let endpoint = &self.endpoint;
            let slot = &self.h2_pool[self.h2_slot];
            if let Err(e) = checkout(slot, &mut self.h2_cached, retired, || {
                endpoint.handshake_h2()
            })
            .await
            {
                return outcome_error(e);
            }
            let (generation, conn) = self.h2_cached.as_mut().expect("set above");
            let generation = *generation;
            // Until the request has left, any failure means the server never saw it.
            let mut sent = false;
            let result = match std::future::poll_fn(|cx| conn.send.poll_ready(cx)).await {
                Ok(()) => {
                    let started = Instant::now();
                    let request = self.endpoint.h2_request(planned, id.clone());
                    let end_of_stream = planned.body.is_empty();
                    match conn.send.send_request(request, end_of_stream) {
                        Ok((response, body_tx)) => {
                            sent = true;
                            match h2_response(response, body_tx, planned.body.clone()).await {
                                Ok(response) => {
                                    return read_h2_response(response, started, &mut self.head_seen)
                                        .await
                                }
                                Err(e) => e,
                            }
                        }
                        Err(e) => e,
                    }
                }
                Err(e) => e,
            };
            match h2_unprocessed(&result, sent) {
                Some(Unprocessed::Refused) if attempt == 0 => continue,
                Some(Unprocessed::ConnectionGone) if attempt == 0 => {
                    retired = Some(generation);
                    continue;
                }
                _ => return outcome_error(map_h2_error(&result)),
            }
        }
        unreachable!("the second attempt always returns")
    }

    /// HTTP/2 on the lean client; the same retry rules as `exchange_h2`, but the client
    /// knows exactly which streams the server did not process.
    async fn exchange_h2_wire(
        &mut self,
        planned: &PreparedRequest,
        id: &RequestId,
        sent: Instant,
    ) -> Outcome {
        let mut retired: Option<u64> = None;
        let endpoint = &self.endpoint;
        let head = RequestHead {
            https: endpoint.scheme == Scheme::HTTPS,
            authority: endpoint.authority.as_str().as_bytes(),
            request_id_name: endpoint.request_id_header.as_str().as_bytes(),
        };
        for attempt in 0..2 {
            let slot = &self.h2_wire_pool[self.h2_slot];
            if let Err(e) = checkout(slot, &mut self.h2_wire_cached, retired, || {
                endpoint.handshake_h2_wire()
            })
            .await
            {
                return outcome_error(e);
            }
            let (generation, conn) = self.h2_wire_cached.as_ref().expect("set above");
            let exchange = conn.exchange(planned, &head, id.as_bytes(), sent, &mut self.head_seen);
            match exchange.await {
                Ok(outcome) => return outcome,
                Err(Failure::Refused) if attempt == 0 => continue,
                Err(Failure::ConnectionGone) if attempt == 0 => retired = Some(*generation),
                Err(Failure::Refused) => {
                    return Outcome::failed(
                        ErrorKind::Reset,
                        "stream error: stream reset by the server: REFUSED_STREAM, twice",
                    )
                }
                Err(Failure::ConnectionGone) => {
                    return Outcome::failed(
                        ErrorKind::Reset,
                        "the connection went away before the request was processed, twice",
                    )
                }
            }
        }
        unreachable!("the second attempt always returns")
    }
}

/// Methods whose repetition has the same effect as one request (RFC 9110 §9.2.2).
fn is_idempotent(method: &http::Method) -> bool {
    use http::Method as M;
    [M::GET, M::HEAD, M::OPTIONS, M::TRACE, M::PUT, M::DELETE].contains(method)
}

/// Why an HTTP/2 request was certainly not processed by the server.
enum Unprocessed {
    /// RST_STREAM(REFUSED_STREAM): the connection is fine, the stream was refused.
    Refused,
    /// A graceful GOAWAY below our stream id, or the connection closed before the request
    /// left.
    ConnectionGone,
}

fn h2_unprocessed(h2e: &h2::Error, sent: bool) -> Option<Unprocessed> {
    if !sent && (h2e.is_io() || h2e.is_go_away()) {
        return Some(Unprocessed::ConnectionGone);
    }
    // Only a graceful GOAWAY (NO_ERROR) errors exactly the streams above its last stream id;
    // after an error GOAWAY every stream left gets that error, processed or not.
    if h2e.is_go_away() && h2e.is_remote() && h2e.reason() == Some(h2::Reason::NO_ERROR) {
        Some(Unprocessed::ConnectionGone)
    } else if h2e.is_reset() && h2e.reason() == Some(h2::Reason::REFUSED_STREAM) {
        Some(Unprocessed::Refused)
    } else {
        None
    }
}

fn outcome_error(e: TransportError) -> Outcome {
    Outcome {
        error: Some(e),
        ..Outcome::default()
    }
}

/// Sends the request body (as flow control allows) while waiting for the response head;
/// once the head arrives, an unsent rest of the body is abandoned (a WAF may answer 403
/// before reading it all).
async fn h2_response(
    response: h2::client::ResponseFuture,
    mut body_tx: h2::SendStream<Bytes>,
    mut body: Bytes,
) -> Result<http::Response<h2::RecvStream>, h2::Error> {
    if body.is_empty() {
        return response.await;
    }
    let send_body = async move {
        body_tx.reserve_capacity(body.len());
        while !body.is_empty() {
            match std::future::poll_fn(|cx| body_tx.poll_capacity(cx)).await {
                Some(Ok(0)) => {}
                Some(Ok(n)) => {
                    let chunk = body.split_to(n.min(body.len()));
                    if body_tx.send_data(chunk, body.is_empty()).is_err() {
                        break;
                    }
                }
                // The stream was reset or closed; the response future reports why.
                Some(Err(_)) | None => break,
            }
        }
        std::future::pending::<()>().await
    };
    tokio::select! {
        response = response => response,
        _ = send_body => unreachable!("the body sender never finishes"),
    }
}

/// Reads a whole HTTP/2 response body, keeping only a prefix and returning flow-control
/// credit as it goes.
async fn read_h2_response(
    response: http::Response<h2::RecvStream>,
    started: Instant,
    head_seen: &mut Option<(u16, Duration)>,
) -> Outcome {
    let (status, time_to_headers, upstream) = note_head(&response, started, head_seen);
    let mut body = response.into_body();
    let mut prefix = BodyPrefix::default();
    let mut error = None;
    while let Some(chunk) = body.data().await {
        match chunk {
            Ok(data) => {
                let _ = body.flow_control().release_capacity(data.len());
                prefix.push(&data);
            }
            Err(e) => {
                error = Some(map_h2_error(&e));
                break;
            }
        }
    }
    prefix.outcome(status, error, upstream, time_to_headers)
}

/// Status, time to headers and upstream service time of a response head; `head_seen` gets
/// the first two at once, so a timeout during the body still reports them.
fn note_head<B>(
    response: &http::Response<B>,
    started: Instant,
    head_seen: &mut Option<(u16, Duration)>,
) -> (u16, Duration, Option<u64>) {
    let time_to_headers = started.elapsed();
    let status = response.status().as_u16();
    *head_seen = Some((status, time_to_headers));
    (
        status,
        time_to_headers,
        response
            .headers()
            .get(super::UPSTREAM_SERVICE_TIME)
            .and_then(|v| super::upstream_service_time_us(v.as_bytes())),
    )
}

/// Reads the whole body, keeping only a prefix; memory stays bounded for any body size.
async fn read_response(
    response: http::Response<hyper::body::Incoming>,
    started: Instant,
    head_seen: &mut Option<(u16, Duration)>,
) -> Outcome {
    let (status, time_to_headers, upstream) = note_head(&response, started, head_seen);
    let mut body = response.into_body();
    let mut prefix = BodyPrefix::default();
    let mut error = None;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if let Ok(data) = frame.into_data() {
                    prefix.push(&data);
                }
            }
            Err(e) => {
                error = Some(map_hyper_error(&e));
                break;
            }
        }
    }
    prefix.outcome(status, error, upstream, time_to_headers)
}

/// Maps hyper/h2/io errors to the coarse kinds a user acts on.
pub fn map_hyper_error(e: &hyper::Error) -> TransportError {
    let message = super::error_chain(e);
    let kind = if e.is_parse() || e.is_parse_status() || e.is_parse_too_large() {
        ErrorKind::Protocol
    } else if e.is_timeout() {
        ErrorKind::Timeout
    } else if e.is_incomplete_message() || e.is_canceled() || e.is_closed() {
        ErrorKind::Reset
    } else {
        kind_from_sources(e)
    };
    TransportError::new(kind, message)
}

/// Maps h2 errors (resets, GOAWAYs, I/O) to the coarse kinds a user acts on.
fn map_h2_error(e: &h2::Error) -> TransportError {
    TransportError::new(kind_from_sources(e), super::error_chain(e))
}

fn kind_from_sources(e: &(dyn std::error::Error + 'static)) -> ErrorKind {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind as K;
            if io
                .get_ref()
                .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some())
            {
                return ErrorKind::Tls;
            }
            return match io.kind() {
                K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::UnexpectedEof => {
                    ErrorKind::Reset
                }
                K::ConnectionRefused => ErrorKind::Connect,
                K::TimedOut => ErrorKind::Timeout,
                // hyper's body decoder reports a broken chunked encoding (or a body longer
                // than its Content-Length) this way: the peer broke HTTP.
                K::InvalidInput | K::InvalidData => ErrorKind::Protocol,
                _ => ErrorKind::Other,
            };
        }
        if let Some(h2e) = err.downcast_ref::<h2::Error>() {
            if h2e.is_io() {
                return ErrorKind::Reset;
            }
            if h2e.is_go_away() || h2e.is_reset() {
                return match h2e.reason() {
                    Some(h2::Reason::PROTOCOL_ERROR) | Some(h2::Reason::COMPRESSION_ERROR) => {
                        ErrorKind::Protocol
                    }
                    _ => ErrorKind::Reset,
                };
            }
            return ErrorKind::Protocol;
        }
        source = err.source();
    }
    ErrorKind::Other
}
