//! Sockets, TLS and the per-request pipeline of the calibration target.

use std::io::Write;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{CONNECTION, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderName, HeaderValue, Method, Request, Response, StatusCode, Version};
use http_body_util::BodyExt;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

use crate::target::behaviour::{validate, Dice, FaultOutcome, RateWindow};
use crate::target::{
    MarkerMatcher, RunningTarget, TargetConfig, TargetError, TargetStats, BLOCK_PAGE_MARKER,
    EXT_PROC_ERROR_BODY, HEALTH_PATH, MAX_BODY_BYTES, SHUTDOWN_GRACE, UPSTREAM_SERVICE_TIME_HEADER,
};

/// A TLS client that never finishes its handshake must not hold a task forever.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// An oversized body is still read (and discarded) up to this many bytes, for at most
/// [`DRAIN_TIME`], so that the client gets its 413 instead of a broken pipe mid-upload.
const DRAIN_CAP_BYTES: u64 = 4 * MAX_BODY_BYTES as u64;
const DRAIN_TIME: Duration = Duration::from_secs(2);

/// Backstop for an HTTP/1 reset whose connection task did not drop the request in time.
const RESET_BACKSTOP: Duration = Duration::from_secs(5);

/// Pause between the last bytes of a cut-off answer and the reset, so that those bytes
/// leave the socket before the RST (which would otherwise discard them).
const FLUSH_BEFORE_RESET: Duration = Duration::from_millis(20);

/// Frame size for padded bodies.
const PAD_FRAME: usize = 64 * 1024;

/// Padding for big and dripped bodies, sent in slices of this static buffer so that a
/// 10 MiB answer costs no memory.
static PAD: [u8; PAD_FRAME] = [b'.'; PAD_FRAME];

/// What `garbage_status_share` answers instead of a status line.
pub(crate) const GARBAGE_STATUS: &[u8] =
    b"WAFLOAD GARBAGE 2OO this is not an HTTP status line\r\n\r\n";

/// What `bad_chunked_share` answers: a valid head, one valid chunk, then a chunk-size line
/// that is not hex.
pub(crate) const BAD_CHUNKED: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n4\r\nok 1\r\nzz; not a chunk size\r\n\r\n";

const METHODS: [&str; 10] = [
    "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE", "OTHER",
];

/// Live counters behind [`RunningTarget::stats`].
#[derive(Default)]
pub(crate) struct Counters {
    requests: AtomicU64,
    http2_requests: AtomicU64,
    passed: AtomicU64,
    blocked: AtomicU64,
    would_block: AtomicU64,
    failed_open: AtomicU64,
    errors_500: AtomicU64,
    ext_proc_errors: AtomicU64,
    injected_resets: AtomicU64,
    attack_resets: AtomicU64,
    stalled: AtomicU64,
    paused: AtomicU64,
    too_large: AtomicU64,
    body_errors: AtomicU64,
    health_checks: AtomicU64,
    connections: AtomicU64,
    resets_after_headers: AtomicU64,
    resets_mid_body: AtomicU64,
    garbage_statuses: AtomicU64,
    bad_chunked: AtomicU64,
    dripped: AtomicU64,
    closes: AtomicU64,
    dropped: AtomicU64,
    idle_closes: AtomicU64,
    tls_failures: AtomicU64,
    body_bytes_sent: AtomicU64,
    by_method: [AtomicU64; METHODS.len()],
}

fn bump(counter: &AtomicU64) -> u64 {
    counter.fetch_add(1, Ordering::Relaxed) + 1
}

impl Counters {
    fn count_method(&self, method: &Method) {
        let name = method.as_str();
        let slot = METHODS[..METHODS.len() - 1]
            .iter()
            .position(|m| *m == name)
            .unwrap_or(METHODS.len() - 1);
        bump(&self.by_method[slot]);
    }

    pub(crate) fn snapshot(&self) -> TargetStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let injected_resets = get(&self.injected_resets);
        let attack_resets = get(&self.attack_resets);
        TargetStats {
            requests: get(&self.requests),
            http2_requests: get(&self.http2_requests),
            passed: get(&self.passed),
            blocked: get(&self.blocked),
            would_block: get(&self.would_block),
            failed_open: get(&self.failed_open),
            errors_500: get(&self.errors_500),
            ext_proc_errors: get(&self.ext_proc_errors),
            resets: injected_resets + attack_resets,
            injected_resets,
            attack_resets,
            stalled: get(&self.stalled),
            paused: get(&self.paused),
            too_large: get(&self.too_large),
            body_errors: get(&self.body_errors),
            health_checks: get(&self.health_checks),
            connections: get(&self.connections),
            resets_after_headers: get(&self.resets_after_headers),
            resets_mid_body: get(&self.resets_mid_body),
            garbage_statuses: get(&self.garbage_statuses),
            bad_chunked: get(&self.bad_chunked),
            dripped: get(&self.dripped),
            closes: get(&self.closes),
            dropped: get(&self.dropped),
            idle_closes: get(&self.idle_closes),
            tls_failures: get(&self.tls_failures),
            body_bytes_sent: get(&self.body_bytes_sent),
            by_method: METHODS
                .iter()
                .zip(&self.by_method)
                .filter(|(_, c)| get(c) > 0)
                .map(|(name, c)| (name.to_string(), get(c)))
                .collect(),
        }
    }
}

/// Everything a request handler needs, shared by all connections.
struct State {
    config: TargetConfig,
    matcher: MarkerMatcher,
    request_id_header: HeaderName,
    block_status: StatusCode,
    dice: Mutex<Dice>,
    rate: Option<Mutex<RateWindow>>,
    capacity: Option<(Semaphore, Duration)>,
    /// Absolute pause window `[from, until)`.
    pause: Option<(Instant, Instant)>,
    log: Option<Mutex<std::fs::File>>,
    counters: Arc<Counters>,
    builder: auto::Builder<TokioExecutor>,
}

/// A poisoned lock only means another handler panicked mid-draw; the data is still usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The error a handler returns to make hyper reset an HTTP/2 stream.
#[derive(Debug, thiserror::Error)]
#[error("reset injected by the wafload calibration target")]
struct InjectedReset;

type Answer = Result<Response<TargetBody>, InjectedReset>;

/// How a [`TargetBody`] ends after its bytes.
enum BodyEnd {
    /// Normally.
    Finish,
    /// Reset the whole connection with an RST (HTTP/1).
    ResetConnection(Arc<ConnState>),
    /// Reset only the stream (HTTP/2 RST_STREAM).
    ResetStream,
}

/// Every answer's body: a text head, optionally padded from [`PAD`] to a declared length,
/// optionally trickled, optionally cut off by a reset. Padding is never allocated, so the
/// target's memory does not depend on the body sizes it serves.
struct TargetBody {
    head: Bytes,
    /// Declared length (`Content-Length`): `head` then padding.
    total: u64,
    /// Bytes actually sent before `end` (less than `total` when the answer is cut off).
    send: u64,
    sent: u64,
    chunk: u64,
    /// Wait between chunks (slow drip).
    every: Option<Duration>,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    end: BodyEnd,
    /// The pause before a reset has been taken.
    flushed: bool,
    counters: Arc<Counters>,
    /// Keeps the connection counted as busy until the answer is done (idle timeout).
    in_flight: Option<InFlight>,
}

impl TargetBody {
    fn text(counters: &Arc<Counters>, text: impl Into<Bytes>) -> TargetBody {
        let head = text.into();
        let total = head.len() as u64;
        TargetBody {
            head,
            total,
            send: total,
            sent: 0,
            chunk: PAD_FRAME as u64,
            every: None,
            sleep: None,
            end: BodyEnd::Finish,
            flushed: false,
            counters: counters.clone(),
            in_flight: None,
        }
    }

    /// Pads the body to `bytes` (no-op when the text is longer).
    fn padded_to(mut self, bytes: u64) -> TargetBody {
        self.total = self.total.max(bytes);
        self.send = self.total;
        self
    }

    fn dripped(mut self, chunk: u64, every: Duration) -> TargetBody {
        self.chunk = chunk.max(1);
        self.every = Some(every);
        self
    }

    /// Sends only the first `send` bytes, then ends as `end` says.
    fn cut(mut self, send: u64, end: BodyEnd) -> TargetBody {
        self.send = send.min(self.total);
        self.end = end;
        self
    }

    fn next_chunk(&mut self) -> Bytes {
        let left = self.send - self.sent;
        let head_len = self.head.len() as u64;
        let chunk = if self.sent < head_len {
            let end = (self.sent + left.min(self.chunk)).min(head_len);
            self.head.slice(self.sent as usize..end as usize)
        } else {
            let n = left.min(self.chunk).min(PAD_FRAME as u64) as usize;
            Bytes::from_static(&PAD[..n])
        };
        self.sent += chunk.len() as u64;
        self.counters
            .body_bytes_sent
            .fetch_add(chunk.len() as u64, Ordering::Relaxed);
        chunk
    }
}

impl hyper::body::Body for TargetBody {
    type Data = Bytes;
    type Error = InjectedReset;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, InjectedReset>>> {
        let this = &mut *self;
        loop {
            if let Some(sleep) = this.sleep.as_mut() {
                if std::future::Future::poll(sleep.as_mut(), cx).is_pending() {
                    return Poll::Pending;
                }
                this.sleep = None;
            }
            if this.sent < this.send {
                let chunk = this.next_chunk();
                if let Some(every) = this.every {
                    if this.sent < this.send {
                        this.sleep = Some(Box::pin(tokio::time::sleep(every)));
                    }
                }
                return Poll::Ready(Some(Ok(Frame::data(chunk))));
            }
            match &this.end {
                BodyEnd::Finish => {
                    this.in_flight = None;
                    return Poll::Ready(None);
                }
                _ if !this.flushed => {
                    this.flushed = true;
                    this.sleep = Some(Box::pin(tokio::time::sleep(FLUSH_BEFORE_RESET)));
                }
                BodyEnd::ResetStream => return Poll::Ready(Some(Err(InjectedReset))),
                BodyEnd::ResetConnection(conn) => {
                    conn.act(ConnAction::Reset);
                    // The connection task drops this body together with the connection.
                    return Poll::Pending;
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.sent >= self.send && matches!(self.end, BodyEnd::Finish)
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.total)
    }
}

/// What a request handler asks of its connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ConnAction {
    /// Close with an RST (SO_LINGER 0).
    Reset,
    /// Close normally (FIN), without a further answer.
    Close,
    /// HTTP/2 GOAWAY: finish the open streams, accept no new ones.
    GoAway,
}

/// A request being answered on a connection; dropping it marks the connection idle again.
struct InFlight(Arc<ConnState>);

impl InFlight {
    fn start(conn: &Arc<ConnState>) -> InFlight {
        conn.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(conn.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        *lock(&self.0.last_done) = Instant::now();
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Per-connection state shared by the connection task and its request handlers.
struct ConnState {
    /// Requests seen on this connection (health checks excluded).
    requests: AtomicU64,
    /// Answers in progress, and when the last one finished (for `idle_timeout`).
    in_flight: AtomicU64,
    last_done: Mutex<Instant>,
    actions: Mutex<Vec<ConnAction>>,
    wake: Notify,
    /// A duplicate of the socket's descriptor: SO_LINGER 0 for resets, and raw writes of
    /// malformed answers on plain-text connections. Taken (closed) when the connection ends
    /// so that a still-running handler cannot keep the socket open.
    duplicate: Mutex<Option<std::net::TcpStream>>,
    plain_text: bool,
}

impl ConnState {
    fn act(&self, action: ConnAction) {
        lock(&self.actions).push(action);
        self.wake.notify_one();
    }

    fn take_actions(&self) -> Vec<ConnAction> {
        std::mem::take(&mut *lock(&self.actions))
    }

    /// Makes the next close send an RST instead of a FIN.
    fn set_zero_linger(&self) {
        if let Some(socket) = lock(&self.duplicate).as_ref() {
            let linger = libc::linger {
                l_onoff: 1,
                l_linger: 0,
            };
            // SAFETY: a valid descriptor we own and a correctly sized linger struct.
            unsafe {
                libc::setsockopt(
                    socket.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_LINGER,
                    &linger as *const libc::linger as *const libc::c_void,
                    std::mem::size_of::<libc::linger>() as libc::socklen_t,
                );
            }
        }
    }

    /// Writes bytes straight to a plain-text socket, bypassing hyper; false when impossible.
    /// The bytes are small and the socket idle, so a non-blocking write takes them at once.
    fn write_raw(&self, bytes: &[u8]) -> bool {
        if !self.plain_text {
            return false;
        }
        match lock(&self.duplicate).as_ref() {
            Some(mut socket) => socket.write_all(bytes).is_ok(),
            None => false,
        }
    }
}

pub(crate) async fn start(config: TargetConfig) -> Result<RunningTarget, TargetError> {
    validate(&config)?;
    let matcher = MarkerMatcher::new(&config.markers);
    let request_id_header = HeaderName::from_bytes(config.request_id_header.as_bytes())
        .map_err(|e| TargetError::InvalidConfig(format!("request_id_header: {e}")))?;
    let block_status = StatusCode::from_u16(config.block_status)
        .map_err(|e| TargetError::InvalidConfig(format!("block_status: {e}")))?;
    let log = super::open_log(config.log_path.as_deref())?;
    let tls = if config.tls { Some(make_tls()?) } else { None };

    let (listener, addr) = super::bind(config.listen).await?;
    let started_at = Instant::now();

    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(config.faults.h2_max_concurrent_streams.unwrap_or(1024));

    let faults = &config.faults;
    let counters = Arc::new(Counters::default());
    let state = Arc::new(State {
        matcher,
        request_id_header,
        block_status,
        dice: Mutex::new(Dice::new(config.seed, faults, &config.delay)),
        rate: faults
            .fail_open_above
            .map(|_| Mutex::new(RateWindow::new(started_at))),
        capacity: faults
            .capacity
            .as_ref()
            .map(|c| (Semaphore::new(c.workers), c.service_time)),
        pause: faults
            .pause
            .as_ref()
            .map(|p| (started_at + p.after, started_at + p.after + p.length)),
        log,
        counters: counters.clone(),
        builder,
        config,
    });

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (acceptor, cert_pem) = match tls {
        Some((acceptor, pem)) => (Some(acceptor), Some(pem)),
        None => (None, None),
    };
    let tls_on = acceptor.is_some();
    let server_task = tokio::spawn(accept_loop(listener, state, acceptor, shutdown_rx));
    Ok(RunningTarget {
        addr,
        cert_pem,
        tls: tls_on,
        started_at,
        counters,
        shutdown_tx,
        server_task: Some(server_task),
    })
}

/// A fresh self-signed certificate and a ring-backed rustls server offering h2 and http/1.1.
fn make_tls() -> Result<(TlsAcceptor, String), TargetError> {
    let names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    let certified = rcgen::generate_simple_self_signed(names)
        .map_err(|e| TargetError::Tls(format!("generating the self-signed certificate: {e}")))?;
    let cert_pem = certified.cert.pem();
    let cert_der: CertificateDer<'static> = certified.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server_config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TargetError::Tls(format!("protocol versions: {e}")))?
        .with_no_client_auth()
        .with_single_cert(vec![cert_der], key)
        .map_err(|e| TargetError::Tls(format!("certificate: {e}")))?;
    server_config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok((TlsAcceptor::from(Arc::new(server_config)), cert_pem))
}

/// Resolves once shutdown is requested or the [`RunningTarget`] is gone.
async fn shutdown_requested(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|&stop| stop).await;
}

async fn accept_loop(
    listener: TcpListener,
    state: Arc<State>,
    tls: Option<TlsAcceptor>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    let number = bump(&state.counters.connections);
                    connections.spawn(serve_connection(
                        state.clone(),
                        stream,
                        number,
                        tls.clone(),
                        shutdown.clone(),
                    ));
                }
                // Out of file descriptors and the like: back off briefly instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = shutdown_requested(&mut shutdown) => break,
        }
    }
    drop(listener);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        connections.abort_all();
        while connections.join_next().await.is_some() {}
    }
}

/// Keeps a duplicate of the socket's descriptor so that an injected fault can set SO_LINGER
/// 0 on it, or write raw bytes, after the stream itself has been handed to hyper.
fn split_for_faults(stream: TcpStream) -> Option<(TcpStream, Option<std::net::TcpStream>)> {
    let std_stream = stream.into_std().ok()?;
    let duplicate = std_stream.try_clone().ok();
    let stream = TcpStream::from_std(std_stream).ok()?;
    Some((stream, duplicate))
}

/// `tls_fail_every`: reads the ClientHello, answers bytes that are not TLS, closes.
async fn sabotage_tls(state: &State, mut stream: TcpStream) {
    bump(&state.counters.tls_failures);
    let mut hello = [0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_secs(2), stream.read(&mut hello)).await;
    let _ = stream
        .write_all(b"HTTP/1.1 400 this is not TLS\r\n\r\n")
        .await;
    let _ = stream.shutdown().await;
}

async fn serve_connection(
    state: Arc<State>,
    stream: TcpStream,
    number: u64,
    tls: Option<TlsAcceptor>,
    mut shutdown: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    if tls.is_some() {
        if let Some(every) = state.config.faults.tls_fail_every {
            if number % u64::from(every) == 0 {
                return sabotage_tls(&state, stream).await;
            }
        }
    }
    let Some((stream, duplicate)) = split_for_faults(stream) else {
        return;
    };
    let conn = Arc::new(ConnState {
        requests: AtomicU64::new(0),
        in_flight: AtomicU64::new(0),
        last_done: Mutex::new(Instant::now()),
        actions: Mutex::new(Vec::new()),
        wake: Notify::new(),
        duplicate: Mutex::new(duplicate),
        plain_text: tls.is_none(),
    });
    match tls {
        None => drive(state, TokioIo::new(stream), conn, shutdown).await,
        Some(acceptor) => {
            let handshake = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream));
            let tls_stream = tokio::select! {
                result = handshake => match result {
                    Ok(Ok(tls_stream)) => tls_stream,
                    _ => return,
                },
                _ = shutdown_requested(&mut shutdown) => return,
            };
            drive(state, TokioIo::new(tls_stream), conn, shutdown).await
        }
    }
}

/// Serves one connection (h1 or h2, detected by hyper-util) until it ends, a handler resets
/// or closes it, or shutdown drains it.
async fn drive<I>(
    state: Arc<State>,
    io: I,
    conn_state: Arc<ConnState>,
    mut shutdown: watch::Receiver<bool>,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = {
        let state = state.clone();
        let conn_state = conn_state.clone();
        service_fn(move |req| handle(state.clone(), conn_state.clone(), req))
    };
    // Boxed (not stack-pinned) so that it can be dropped before the duplicate descriptor.
    let mut conn = Box::pin(state.builder.serve_connection(io, service));
    let mut draining = false;
    let idle_timeout = state.config.faults.idle_timeout;
    'serve: loop {
        tokio::select! {
            _ = conn.as_mut() => break,
            _ = idle_expired(&conn_state, idle_timeout) => {
                bump(&state.counters.idle_closes);
                break 'serve;
            }
            _ = conn_state.wake.notified() => {
                for action in conn_state.take_actions() {
                    match action {
                        ConnAction::Reset => {
                            conn_state.set_zero_linger();
                            // Leaving drops the connection and the duplicate: the kernel sends RST.
                            break 'serve;
                        }
                        ConnAction::Close => break 'serve,
                        ConnAction::GoAway if !draining => {
                            conn.as_mut().graceful_shutdown();
                            draining = true;
                        }
                        ConnAction::GoAway => {}
                    }
                }
            }
            _ = shutdown_requested(&mut shutdown), if !draining => {
                conn.as_mut().graceful_shutdown();
                draining = true;
            }
        }
    }
    drop(conn);
    lock(&conn_state.duplicate).take();
}

/// Resolves once the connection has had no answer in progress for `timeout` (never when
/// `timeout` is `None`).
async fn idle_expired(conn: &ConnState, timeout: Option<Duration>) {
    let Some(timeout) = timeout else {
        return std::future::pending().await;
    };
    loop {
        let deadline = *lock(&conn.last_done) + timeout;
        tokio::time::sleep_until(deadline).await;
        let idle_since = *lock(&conn.last_done);
        if conn.in_flight.load(Ordering::Relaxed) == 0 && idle_since + timeout <= Instant::now() {
            return;
        }
        if conn.in_flight.load(Ordering::Relaxed) > 0 {
            // Busy: look again a timeout from now (the answer's end moves `last_done`).
            tokio::time::sleep(timeout).await;
        }
    }
}

fn plain_response(
    counters: &Arc<Counters>,
    status: StatusCode,
    content_type: &'static str,
    body: String,
) -> Response<TargetBody> {
    let mut response = Response::new(TargetBody::text(counters, body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn block_page(status: StatusCode, request_id: &str) -> String {
    let code = status.as_u16();
    let reason = status.canonical_reason().unwrap_or("Blocked");
    let id = html_escape(request_id);
    format!(
        "<!DOCTYPE html>\n<html><head><title>{code} {reason}</title></head>\n<body>\n\
         <h1>{BLOCK_PAGE_MARKER}</h1>\n<p>Request ID: {id}</p>\n</body></html>\n"
    )
}

impl State {
    /// Holds the caller until the pause window ends if `now` is inside it; true if it held.
    async fn hold_if_paused(&self) -> bool {
        if let Some((from, until)) = self.pause {
            let now = Instant::now();
            if now >= from && now < until {
                tokio::time::sleep_until(until).await;
                return true;
            }
        }
        false
    }

    /// Sends nothing while the target is paused; tags every answer with the request id.
    async fn finish(
        &self,
        mut response: Response<TargetBody>,
        request_id: &HeaderValue,
        already_paused: bool,
    ) -> Response<TargetBody> {
        self.hold_unless_held(already_paused).await;
        response
            .headers_mut()
            .insert(self.request_id_header.clone(), request_id.clone());
        response
    }

    async fn hold_unless_held(&self, already_paused: bool) {
        if self.hold_if_paused().await && !already_paused {
            bump(&self.counters.paused);
        }
    }

    /// HTTP/1: close the TCP connection with an RST; HTTP/2: reset only this stream.
    async fn reset(&self, conn: &ConnState, version: Version, already_paused: bool) -> Answer {
        self.hold_unless_held(already_paused).await;
        if version != Version::HTTP_2 {
            conn.act(ConnAction::Reset);
            // The connection task drops this future together with the connection.
            tokio::time::sleep(RESET_BACKSTOP).await;
        }
        Err(InjectedReset)
    }

    /// HTTP/1 on plain text: writes `bytes` in place of an answer and closes the connection.
    /// Elsewhere the stream or connection is reset instead (see [`Faults`]).
    async fn malformed(
        &self,
        conn: &ConnState,
        version: Version,
        bytes: &[u8],
        already_paused: bool,
    ) -> Answer {
        self.hold_unless_held(already_paused).await;
        if version == Version::HTTP_2 {
            return Err(InjectedReset);
        }
        let action = if conn.write_raw(bytes) {
            ConnAction::Close
        } else {
            ConnAction::Reset
        };
        conn.act(action);
        tokio::time::sleep(RESET_BACKSTOP).await;
        Err(InjectedReset)
    }

    /// How an answer cut off by a fault ends on this protocol.
    fn cut_end(conn: &Arc<ConnState>, version: Version) -> BodyEnd {
        if version == Version::HTTP_2 {
            BodyEnd::ResetStream
        } else {
            BodyEnd::ResetConnection(conn.clone())
        }
    }

    fn log_marker_hit(&self, request_id: &str, marker: &str, action: &str) {
        let Some(log) = &self.log else {
            return;
        };
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| (d.as_millis() as f64) / 1000.0)
            .unwrap_or(0.0);
        let line = serde_json::json!({
            "ts": ts,
            "id": request_id,
            "rule": "marker",
            "marker": marker,
            "would_block": self.config.monitoring,
            "action": action,
        });
        let mut text = line.to_string();
        text.push('\n');
        // One write per line so concurrent lines never interleave; a full disk must not
        // break answering, so write errors are ignored.
        let _ = lock(log).write_all(text.as_bytes());
    }
}

/// Every request: marks the connection busy until its answer is done (for `idle_timeout`).
async fn handle(state: Arc<State>, conn: Arc<ConnState>, req: Request<Incoming>) -> Answer {
    let in_flight = InFlight::start(&conn);
    let mut answer = counted(state, conn, req).await;
    if let Ok(response) = &mut answer {
        // The connection is busy until the body is done, not just the head.
        response.body_mut().in_flight = Some(in_flight);
    }
    answer
}

/// Per-connection faults around the pipeline: `drop_after` drops the request,
/// `close_after` closes the connection (HTTP/1 `Connection: close`, HTTP/2 GOAWAY).
async fn counted(state: Arc<State>, conn: Arc<ConnState>, req: Request<Incoming>) -> Answer {
    let is_health =
        req.uri().path() == HEALTH_PATH && matches!(*req.method(), Method::GET | Method::HEAD);
    if is_health {
        return answer(state, conn, req).await;
    }
    let on_connection = conn.requests.fetch_add(1, Ordering::Relaxed) + 1;
    let faults = &state.config.faults;
    let version = req.version();
    if version != Version::HTTP_2 {
        if let Some(limit) = faults.drop_after {
            if on_connection > u64::from(limit) {
                bump(&state.counters.requests);
                state.counters.count_method(req.method());
                bump(&state.counters.dropped);
                // Read the request fully first: unread bytes would turn the close into an RST.
                let _ = tokio::time::timeout(DRAIN_TIME, read_body(req.into_body())).await;
                conn.act(ConnAction::Close);
                tokio::time::sleep(RESET_BACKSTOP).await;
                return Err(InjectedReset);
            }
        }
    }
    let closing = faults
        .close_after
        .is_some_and(|limit| on_connection == u64::from(limit));
    if closing && version == Version::HTTP_2 {
        bump(&state.counters.closes);
        conn.act(ConnAction::GoAway);
    }
    let mut answer = answer(state.clone(), conn, req).await;
    if closing && version != Version::HTTP_2 {
        if let Ok(response) = &mut answer {
            bump(&state.counters.closes);
            response
                .headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
        }
    }
    answer
}

/// The per-request pipeline described in the module docs.
async fn answer(state: Arc<State>, conn: Arc<ConnState>, req: Request<Incoming>) -> Answer {
    let arrived = Instant::now();
    let counters = &state.counters;
    if req.uri().path() == HEALTH_PATH && matches!(*req.method(), Method::GET | Method::HEAD) {
        bump(&counters.health_checks);
        return Ok(plain_response(
            counters,
            StatusCode::OK,
            "text/plain; charset=utf-8",
            "ok\n".to_string(),
        ));
    }
    let sequence = bump(&counters.requests);
    counters.count_method(req.method());
    let version = req.version();
    if version == Version::HTTP_2 {
        bump(&counters.http2_requests);
    }
    let request_id = match req.headers().get(&state.request_id_header) {
        Some(value) => value.clone(),
        None => HeaderValue::try_from(format!("tgt-{sequence}"))
            .unwrap_or(HeaderValue::from_static("tgt")),
    };
    let request_id_text = String::from_utf8_lossy(request_id.as_bytes()).into_owned();
    let (fault, delay) = lock(&state.dice).draw();
    let failing_open = match (&state.rate, state.config.faults.fail_open_above) {
        (Some(rate), Some(limit)) => lock(rate).record(arrived) as f64 > limit,
        _ => false,
    };
    let paused = state.hold_if_paused().await;
    if paused {
        bump(&counters.paused);
    }

    let (parts, body) = req.into_parts();
    let declared_length = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let body = if declared_length.is_some_and(|len| len > DRAIN_CAP_BYTES) {
        BodyRead::TooLarge
    } else {
        read_body(body).await
    };
    let body = match body {
        BodyRead::Complete(bytes) => bytes,
        BodyRead::TooLarge => return Ok(too_large(&state, &request_id, paused).await),
        BodyRead::Failed => {
            bump(&counters.body_errors);
            let response = plain_response(
                counters,
                StatusCode::BAD_REQUEST,
                "text/plain; charset=utf-8",
                "unreadable request body\n".to_string(),
            );
            return Ok(state.finish(response, &request_id, paused).await);
        }
    };
    let request_target = parts
        .uri
        .path_and_query()
        .map(|pq| pq.as_str())
        .unwrap_or("/");
    let matched = state.matcher.find_index(
        request_target.as_bytes(),
        parts.headers.values().map(HeaderValue::as_bytes),
        &body,
    );

    if let Some((workers, service_time)) = &state.capacity {
        // A closed semaphore cannot happen (it is never closed); serve without a worker then.
        let _worker = workers.acquire().await.ok();
        crate::timer::sleep(*service_time).await;
    }
    if !delay.is_zero() {
        // Sub-millisecond precise: known-answer tests compare delays of ±0.3 ms.
        crate::timer::sleep(delay).await;
    }

    let faults = &state.config.faults;
    let pass_text = format!("ok {request_id_text}\n");
    let pass_body = || {
        TargetBody::text(counters, pass_text.clone()).padded_to(faults.pass_body_bytes.unwrap_or(0))
    };
    let mut drip = false;
    match fault {
        FaultOutcome::Reset => {
            bump(&counters.injected_resets);
            return state.reset(&conn, version, paused).await;
        }
        FaultOutcome::Error500 => {
            bump(&counters.errors_500);
            let response = plain_response(
                counters,
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain; charset=utf-8",
                "internal server error (injected by wafload calibration target)\n".to_string(),
            );
            return Ok(state.finish(response, &request_id, paused).await);
        }
        FaultOutcome::ExtProcError => {
            bump(&counters.ext_proc_errors);
            let response = plain_response(
                counters,
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain",
                EXT_PROC_ERROR_BODY.to_string(),
            );
            return Ok(state.finish(response, &request_id, paused).await);
        }
        FaultOutcome::ResetAfterHeaders | FaultOutcome::ResetMidBody => {
            let body = pass_body();
            let send = if fault == FaultOutcome::ResetAfterHeaders {
                bump(&counters.resets_after_headers);
                0
            } else {
                bump(&counters.resets_mid_body);
                body.total / 2
            };
            let mut response = Response::new(body.cut(send, State::cut_end(&conn, version)));
            response.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            return Ok(state.finish(response, &request_id, paused).await);
        }
        FaultOutcome::GarbageStatus => {
            bump(&counters.garbage_statuses);
            return state
                .malformed(&conn, version, GARBAGE_STATUS, paused)
                .await;
        }
        FaultOutcome::BadChunked => {
            bump(&counters.bad_chunked);
            return state.malformed(&conn, version, BAD_CHUNKED, paused).await;
        }
        FaultOutcome::Stall => {
            bump(&counters.stalled);
            tokio::time::sleep(state.config.faults.stall_for).await;
        }
        FaultOutcome::SlowDrip => {
            bump(&counters.dripped);
            drip = true;
        }
        FaultOutcome::Normal => {}
    }
    let drip_body = |body: TargetBody| {
        if drip {
            let shape = &faults.slow_drip;
            body.padded_to(shape.bytes)
                .dripped(shape.chunk, shape.every)
        } else {
            body
        }
    };

    if let Some(index) = matched {
        let marker = state.config.markers[index].as_str();
        if state.config.monitoring {
            state.log_marker_hit(&request_id_text, marker, "log");
            bump(&counters.would_block);
        } else if failing_open {
            bump(&counters.failed_open);
        } else if state.config.faults.reset_attacks {
            state.log_marker_hit(&request_id_text, marker, "reset");
            bump(&counters.attack_resets);
            return state.reset(&conn, version, paused).await;
        } else {
            state.log_marker_hit(&request_id_text, marker, "block");
            bump(&counters.blocked);
            let response = plain_response(
                counters,
                state.block_status,
                "text/html; charset=utf-8",
                block_page(state.block_status, &request_id_text),
            )
            .map(drip_body);
            return Ok(state.finish(response, &request_id, paused).await);
        }
    }

    let mut response = Response::new(drip_body(pass_body()));
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if let Some(upstream) = state.config.faults.upstream_service_time {
        crate::timer::sleep(upstream).await;
        response.headers_mut().insert(
            HeaderName::from_static(UPSTREAM_SERVICE_TIME_HEADER),
            HeaderValue::from(upstream.as_millis() as u64),
        );
    }
    bump(&counters.passed);
    Ok(state.finish(response, &request_id, paused).await)
}

enum BodyRead {
    Complete(Bytes),
    TooLarge,
    Failed,
}

/// Reads the whole body if it fits in [`MAX_BODY_BYTES`]; otherwise drains (bounded) and
/// reports it too large.
async fn read_body(mut body: Incoming) -> BodyRead {
    let mut kept: Vec<u8> = Vec::new();
    let mut seen: u64 = 0;
    let mut drain_deadline: Option<Instant> = None;
    loop {
        let next = match drain_deadline {
            None => body.frame().await,
            Some(deadline) => match tokio::time::timeout_at(deadline, body.frame()).await {
                Ok(next) => next,
                Err(_) => return BodyRead::TooLarge,
            },
        };
        let frame = match next {
            None => break,
            Some(Ok(frame)) => frame,
            Some(Err(_)) if drain_deadline.is_some() => return BodyRead::TooLarge,
            Some(Err(_)) => return BodyRead::Failed,
        };
        let Ok(data) = frame.into_data() else {
            continue; // trailers carry no body bytes
        };
        seen += data.len() as u64;
        if seen > DRAIN_CAP_BYTES {
            return BodyRead::TooLarge;
        }
        if seen > MAX_BODY_BYTES as u64 {
            if drain_deadline.is_none() {
                kept = Vec::new();
                drain_deadline = Some(Instant::now() + DRAIN_TIME);
            }
        } else {
            kept.extend_from_slice(&data);
        }
    }
    if drain_deadline.is_some() {
        BodyRead::TooLarge
    } else {
        BodyRead::Complete(Bytes::from(kept))
    }
}

async fn too_large(state: &State, request_id: &HeaderValue, paused: bool) -> Response<TargetBody> {
    bump(&state.counters.too_large);
    let response = plain_response(
        &state.counters,
        StatusCode::PAYLOAD_TOO_LARGE,
        "text/plain; charset=utf-8",
        format!("request body larger than {MAX_BODY_BYTES} bytes\n"),
    );
    state.finish(response, request_id, paused).await
}
