//! Gateway EMULATION for tests and demos — not a production gateway, and not Envoy.
//!
//! It lets the target deployment's topology (client → gateway → ext_proc WAF → upstream)
//! run on one machine over loopback, so wafload's HTTP mode can be measured through an
//! "Envoy-like" hop and compared with direct ext_proc mode. Per request it:
//! 1. reads the whole request body (Envoy would stream it; STREAMED chunks are cut from the
//!    received body at `chunk_size`);
//! 2. runs the ext_proc exchange exactly as direct mode does (see
//!    [`crate::transport::extproc`]): headers, then the body per the body mode;
//! 3. answers locally on a decision: the processor's `immediate_response`; 413 for a
//!    BUFFERED body over the limit; 504 on a message timeout; 500 with
//!    `ext_proc_error_gRPC_error_<code>` on a gRPC error — code 14 (UNAVAILABLE) when the
//!    processor cannot be reached or does not speak HTTP/2 (the misconfiguration where a
//!    mesh treats the gRPC port as HTTP/1.1); with failure-mode-allow errors pass instead;
//! 4. otherwise forwards to the upstream over HTTP/1.1 keep-alive and sets
//!    `x-envoy-upstream-service-time` to the whole milliseconds from the complete request
//!    (after the processor released it) to the upstream's response headers, as Envoy's
//!    router does;
//! 5. optionally runs the response phases on the upstream's response.
//!
//! Header/body mutations from the processor are not applied. Every response carries
//! `server: wafload-gateway-emulation`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::target::{TargetError, EXT_PROC_ERROR_BODY, UPSTREAM_SERVICE_TIME_HEADER};
use crate::transport::extproc::{
    finish_detail, process_request, process_response, ExtProcDetail, ExtProcSettings, HttpParts,
    ProcessorClient, ProcessorEndpoint, ProcessorTls, Verdict,
};

/// Value of the `server` header on every answer, so nobody mistakes it for Envoy.
pub const GATEWAY_SERVER_HEADER: &str = "wafload-gateway-emulation";
/// Largest request body the emulation reads (larger: 413 before the processor is asked).
pub const GATEWAY_MAX_BODY: usize = 64 * 1024 * 1024;

/// What the emulation connects and how it behaves.
#[derive(Clone, Debug)]
pub struct GatewayConfig {
    pub listen: SocketAddr,
    /// The processor: `grpc://host:port` (h2c) or `grpcs://host:port`.
    pub ext_proc: String,
    pub ext_proc_tls: ProcessorTls,
    /// HTTP/2 connections to the processor.
    pub ext_proc_connections: usize,
    /// `http://host:port` of the application.
    pub upstream: String,
    pub settings: ExtProcSettings,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            ext_proc: String::new(),
            ext_proc_tls: ProcessorTls::default(),
            ext_proc_connections: 2,
            upstream: String::new(),
            settings: ExtProcSettings::default(),
        }
    }
}

/// Counters of the emulation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayStats {
    pub requests: u64,
    pub forwarded: u64,
    /// Answered with the processor's immediate_response.
    pub immediate: u64,
    pub too_large: u64,
    pub message_timeouts: u64,
    /// Answered 500 ext_proc_error_gRPC_error_*.
    pub ext_proc_errors: u64,
    /// Upstream unreachable or broken (503).
    pub upstream_errors: u64,
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    forwarded: AtomicU64,
    immediate: AtomicU64,
    too_large: AtomicU64,
    message_timeouts: AtomicU64,
    ext_proc_errors: AtomicU64,
    upstream_errors: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

struct State {
    settings: ExtProcSettings,
    clients: Vec<ProcessorClient>,
    next: AtomicUsize,
    upstream_base: Uri,
    upstream: Client<HttpConnector, Full<Bytes>>,
    counters: Counters,
}

/// A running emulation.
pub struct RunningGateway {
    pub addr: SocketAddr,
    state: Arc<State>,
    shutdown_tx: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl RunningGateway {
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    pub fn stats(&self) -> GatewayStats {
        let c = &self.state.counters;
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        GatewayStats {
            requests: g(&c.requests),
            forwarded: g(&c.forwarded),
            immediate: g(&c.immediate),
            too_large: g(&c.too_large),
            message_timeouts: g(&c.message_timeouts),
            ext_proc_errors: g(&c.ext_proc_errors),
            upstream_errors: g(&c.upstream_errors),
        }
    }

    /// Stops accepting; open connections get one second.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown_tx.send(true);
        if let Some(task) = self.task.take() {
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(2), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }
}

impl Drop for RunningGateway {
    fn drop(&mut self) {
        let _ = self.shutdown_tx.send(true);
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Starts the emulation. The processor is connected lazily: an unreachable processor gives
/// 500s per request (as in the real deployment), not a start failure.
pub async fn start_gateway(config: GatewayConfig) -> Result<RunningGateway, TargetError> {
    let endpoint = ProcessorEndpoint::resolve(&config.ext_proc, &config.ext_proc_tls, "--ext-proc")
        .await
        .map_err(|e| TargetError::InvalidConfig(e.to_string()))?;
    let endpoint = Arc::new(endpoint);
    let clients = (0..config.ext_proc_connections.max(1))
        .map(|_| endpoint.connect_lazy())
        .collect();
    let upstream_base: Uri = config.upstream.parse().map_err(|e| {
        TargetError::InvalidConfig(format!("--upstream {:?}: {e}", config.upstream))
    })?;
    if upstream_base.scheme_str() != Some("http") || upstream_base.authority().is_none() {
        return Err(TargetError::InvalidConfig(format!(
            "--upstream {:?} must be http://HOST:PORT (the emulation speaks clear-text HTTP/1.1 upstream)",
            config.upstream
        )));
    }
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let upstream = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(1024)
        .build(connector);
    let (listener, addr) = super::bind(config.listen).await?;
    let state = Arc::new(State {
        settings: config.settings.clone(),
        clients,
        next: AtomicUsize::new(0),
        upstream_base,
        upstream,
        counters: Counters::default(),
    });
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let task = tokio::spawn(accept_loop(listener, state.clone(), shutdown_rx));
    Ok(RunningGateway {
        addr,
        state,
        shutdown_tx,
        task: Some(task),
    })
}

async fn accept_loop(
    listener: TcpListener,
    state: Arc<State>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(1024);
    let builder = Arc::new(builder);
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    let state = state.clone();
                    let builder = builder.clone();
                    connections.spawn(async move {
                        let service = service_fn(move |req| {
                            let state = state.clone();
                            async move { Ok::<_, std::convert::Infallible>(handle(&state, req).await) }
                        });
                        let _ = builder.serve_connection(TokioIo::new(stream), service).await;
                    });
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = stop_requested(&mut shutdown) => break,
        }
    }
    drop(listener);
    let drained = tokio::time::timeout(Duration::from_secs(1), async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        connections.abort_all();
        while connections.join_next().await.is_some() {}
    }
}

async fn stop_requested(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|&stop| stop).await;
}

fn local_reply(status: u16, body: Bytes, headers: &[(String, Vec<u8>)]) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    for (k, v) in headers {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_bytes(v),
        ) {
            if !k.starts_with(':') {
                response.headers_mut().append(name, value);
            }
        }
    }
    if !response.headers().contains_key(http::header::CONTENT_TYPE) {
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain"),
        );
    }
    response
}

/// Envoy's local reply for a failed exchange, or `None` when the request goes on.
fn failure_reply(state: &State, verdict: &Verdict) -> Option<Response<Full<Bytes>>> {
    if verdict.lets_through(state.settings.failure_mode_allow) {
        return None;
    }
    let c = &state.counters;
    Some(match verdict {
        Verdict::Immediate {
            status,
            body,
            headers,
        } => {
            bump(&c.immediate);
            local_reply(*status, body.clone(), headers)
        }
        Verdict::TooLarge => {
            bump(&c.too_large);
            local_reply(413, Bytes::from_static(b"Payload Too Large"), &[])
        }
        Verdict::Timeout => {
            bump(&c.message_timeouts);
            local_reply(504, Bytes::from_static(b"ext_proc message timeout"), &[])
        }
        Verdict::Error { code, connect, .. } => {
            bump(&c.ext_proc_errors);
            let body = if *connect || *code == tonic::Code::Unavailable as i32 {
                EXT_PROC_ERROR_BODY.to_string()
            } else {
                format!("ext_proc_error_gRPC_error_{code}")
            };
            local_reply(500, Bytes::from(body), &[])
        }
        Verdict::Protocol(_) => {
            bump(&c.ext_proc_errors);
            local_reply(
                500,
                Bytes::from_static(b"ext_proc_error_gRPC_error_13"),
                &[],
            )
        }
        Verdict::Continue | Verdict::Closed => return None,
    })
}

/// Headers that belong to one hop and are not forwarded.
fn hop_by_hop(name: &http::HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection" | "keep-alive" | "proxy-connection" | "transfer-encoding" | "te" | "upgrade"
    )
}

async fn handle(state: &State, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let mut response = handle_inner(state, request).await;
    response.headers_mut().insert(
        http::header::SERVER,
        HeaderValue::from_static(GATEWAY_SERVER_HEADER),
    );
    response
}

async fn handle_inner(state: &State, request: Request<Incoming>) -> Response<Full<Bytes>> {
    bump(&state.counters.requests);
    let (parts, body) = request.into_parts();
    let body = match Limited::new(body, GATEWAY_MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            bump(&state.counters.too_large);
            return local_reply(413, Bytes::from_static(b"Payload Too Large"), &[]);
        }
    };
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let authority = parts
        .uri
        .authority()
        .map(|a| a.to_string())
        .or_else(|| {
            parts
                .headers
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_string)
        })
        .unwrap_or_default();
    let request_parts = HttpParts::request(
        parts.method.as_str(),
        &path,
        &authority,
        "http",
        &parts.headers,
        body.clone(),
    );
    let client = &state.clients[state.next.fetch_add(1, Ordering::Relaxed) % state.clients.len()];
    let settings = &state.settings;
    let mut detail = ExtProcDetail::default();
    let (verdict, call) = process_request(client, settings, &request_parts, &mut detail).await;
    if let Some(reply) = failure_reply(state, &verdict) {
        return reply;
    }

    // Forward: the request is complete at the router from here.
    let mut uri_parts = state.upstream_base.clone().into_parts();
    uri_parts.path_and_query = path.parse().ok();
    let Ok(uri) = Uri::from_parts(uri_parts) else {
        return local_reply(400, Bytes::from_static(b"bad request target"), &[]);
    };
    let mut upstream_request = Request::new(Full::new(body));
    *upstream_request.method_mut() = parts.method.clone();
    *upstream_request.uri_mut() = uri;
    let headers: &mut HeaderMap = upstream_request.headers_mut();
    for (name, value) in &parts.headers {
        if !hop_by_hop(name) {
            headers.append(name.clone(), value.clone());
        }
    }
    if !headers.contains_key(http::header::HOST) && !authority.is_empty() {
        if let Ok(v) = HeaderValue::from_str(&authority) {
            headers.insert(http::header::HOST, v);
        }
    }
    let complete = Instant::now();
    let upstream_response = match state.upstream.request(upstream_request).await {
        Ok(r) => r,
        Err(_) => {
            bump(&state.counters.upstream_errors);
            return local_reply(
                503,
                Bytes::from_static(
                    b"upstream connect error or disconnect/reset before headers. reset reason: connection failure",
                ),
                &[],
            );
        }
    };
    let upstream_ms = complete.elapsed().as_millis() as u64;
    let (mut response_parts, upstream_body) = upstream_response.into_parts();
    let response_body = match upstream_body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            bump(&state.counters.upstream_errors);
            return local_reply(
                503,
                Bytes::from_static(b"upstream reset after response started"),
                &[],
            );
        }
    };
    if settings.response_phases {
        if let (Verdict::Continue, Some(mut call)) = (&verdict, call) {
            let seen = HttpParts::response(
                response_parts.status.as_u16(),
                &response_parts.headers,
                response_body.clone(),
            );
            let response_verdict = process_response(&mut call, settings, &seen, &mut detail).await;
            finish_detail(&mut detail, &response_verdict);
            if let Some(mut reply) = failure_reply(state, &response_verdict) {
                reply
                    .headers_mut()
                    .insert(UPSTREAM_SERVICE_TIME_HEADER, HeaderValue::from(upstream_ms));
                return reply;
            }
        }
    }
    bump(&state.counters.forwarded);
    response_parts.headers.retain_hop_by_hop();
    response_parts
        .headers
        .insert(UPSTREAM_SERVICE_TIME_HEADER, HeaderValue::from(upstream_ms));
    Response::from_parts(response_parts, Full::new(response_body))
}

trait RetainHopByHop {
    fn retain_hop_by_hop(&mut self);
}

impl RetainHopByHop for HeaderMap {
    /// Drops hop-by-hop headers (and content-length, which hyper recomputes).
    fn retain_hop_by_hop(&mut self) {
        let drop: Vec<http::HeaderName> = self
            .keys()
            .filter(|k| hop_by_hop(k) || *k == http::header::CONTENT_LENGTH)
            .cloned()
            .collect();
        for k in drop {
            self.remove(k);
        }
    }
}
