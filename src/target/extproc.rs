//! Calibration ext_proc server: an Envoy `ExternalProcessor` (gRPC) with the calibration
//! target's marker rules and exactly known per-phase delays, so that direct mode and the
//! gateway emulation can be checked against ground truth.
//!
//! Per stream it answers every message in order, one at a time (like a WAF working through
//! a queue): the reply to a message leaves `delay(phase)` after the later of its arrival and
//! the previous reply. Delays are kept by [`crate::timer`] (a dedicated thread), not by
//! tokio's 1 ms timer wheel, so a 1 ms delay measures as 1 ms plus the round trip.
//!
//! Verdicts: a marker in the request-target or a header value blocks at `request_headers`;
//! a marker in the body blocks at the body message that completes it (matching also spans
//! chunk boundaries). A block is an `immediate_response` with `block_status` (403) and the
//! calibration block page. Monitoring mode never blocks and logs would-blocks (JSON lines
//! with the request id) instead. Faults: a gRPC error, a stall past the message timeout, or
//! an HTTP/2 stream reset, on an exact share of streams at their first message.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use envoy_types::pb::envoy::r#type::v3::HttpStatus;
use envoy_types::pb::envoy::service::ext_proc::v3::{
    external_processor_server::{ExternalProcessor, ExternalProcessorServer},
    processing_request, processing_response, BodyResponse, CommonResponse, HeadersResponse,
    ImmediateResponse, ProcessingRequest, ProcessingResponse, TrailersResponse,
};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::target::{duration_serde, MarkerMatcher, TargetError, BLOCK_PAGE_MARKER};
use crate::transport::extproc::MAX_GRPC_MESSAGE;

/// How the processor misbehaves on its faulted streams.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ProcessorFault {
    /// End the stream with a gRPC error status (`fault_grpc_code`, default 14 UNAVAILABLE).
    GrpcError,
    /// Hold the first reply for `stall_for` (default 1 s, past Envoy's 200 ms message timeout).
    Stall,
    /// Reset the HTTP/2 stream (RST_STREAM) instead of answering.
    Reset,
}

/// Everything that defines the calibration processor.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExtProcTargetConfig {
    /// `127.0.0.1:0` picks a free port (read it back from [`RunningExtProc::addr`]).
    pub listen: SocketAddr,
    /// gRPC over TLS with a self-signed certificate for localhost/127.0.0.1/::1.
    pub tls: bool,
    pub markers: Vec<String>,
    /// Status of the `immediate_response` for blocks.
    pub block_status: u16,
    #[serde(with = "duration_serde")]
    pub request_headers_delay: Duration,
    #[serde(with = "duration_serde")]
    pub request_body_delay: Duration,
    #[serde(with = "duration_serde")]
    pub response_headers_delay: Duration,
    #[serde(with = "duration_serde")]
    pub response_body_delay: Duration,
    /// Never block: always CONTINUE, log the first would-block of each stream to `log_path`.
    pub monitoring: bool,
    /// JSON lines `{"ts", "id", "rule": "marker", "marker", "phase", "would_block", "action"}`.
    pub log_path: Option<PathBuf>,
    /// Header whose value identifies a request in the log.
    pub request_id_header: String,
    pub fault: Option<ProcessorFault>,
    /// Share of streams that get `fault`, dealt evenly (exactly round(share × n) of n streams).
    pub fault_share: f64,
    pub fault_grpc_code: i32,
    #[serde(with = "duration_serde")]
    pub stall_for: Duration,
}

impl Default for ExtProcTargetConfig {
    fn default() -> Self {
        ExtProcTargetConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            tls: false,
            markers: crate::target::DEFAULT_MARKERS
                .iter()
                .map(|m| m.to_string())
                .collect(),
            block_status: 403,
            request_headers_delay: Duration::ZERO,
            request_body_delay: Duration::ZERO,
            response_headers_delay: Duration::ZERO,
            response_body_delay: Duration::ZERO,
            monitoring: false,
            log_path: None,
            request_id_header: "x-request-id".into(),
            fault: None,
            fault_share: 1.0,
            fault_grpc_code: tonic::Code::Unavailable as i32,
            stall_for: Duration::from_secs(1),
        }
    }
}

/// Counters of the calibration processor.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtProcStats {
    pub streams: u64,
    pub request_headers: u64,
    pub request_body: u64,
    pub response_headers: u64,
    pub response_body: u64,
    pub blocked: u64,
    pub blocked_at_headers: u64,
    pub blocked_at_body: u64,
    /// Streams that ended with every message answered CONTINUE.
    pub passed: u64,
    pub would_block: u64,
    pub faults: u64,
    /// Streams the client reset or broke before they ended.
    pub client_errors: u64,
}

#[derive(Default)]
struct Counters {
    streams: AtomicU64,
    request_headers: AtomicU64,
    request_body: AtomicU64,
    response_headers: AtomicU64,
    response_body: AtomicU64,
    blocked: AtomicU64,
    blocked_at_headers: AtomicU64,
    blocked_at_body: AtomicU64,
    passed: AtomicU64,
    would_block: AtomicU64,
    faults: AtomicU64,
    client_errors: AtomicU64,
}

fn bump(c: &AtomicU64) -> u64 {
    c.fetch_add(1, Ordering::Relaxed)
}

impl Counters {
    fn snapshot(&self) -> ExtProcStats {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ExtProcStats {
            streams: g(&self.streams),
            request_headers: g(&self.request_headers),
            request_body: g(&self.request_body),
            response_headers: g(&self.response_headers),
            response_body: g(&self.response_body),
            blocked: g(&self.blocked),
            blocked_at_headers: g(&self.blocked_at_headers),
            blocked_at_body: g(&self.blocked_at_body),
            passed: g(&self.passed),
            would_block: g(&self.would_block),
            faults: g(&self.faults),
            client_errors: g(&self.client_errors),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Stream resets

/// Set by a handler to make its response body fail, which makes hyper reset the stream.
#[derive(Clone, Default)]
struct ResetFlag(Arc<AtomicBool>);

#[derive(Clone)]
struct ResetService<S> {
    inner: S,
}

impl<S, B> tower::Service<http::Request<B>> for ResetService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<ResettableBody>;
    type Error = S::Error;
    type Future =
        Pin<Box<dyn std::future::Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let flag = ResetFlag::default();
        request.extensions_mut().insert(flag.clone());
        let future = self.inner.call(request);
        Box::pin(async move {
            let response = future.await?;
            Ok(response.map(|inner| ResettableBody { inner, flag }))
        })
    }
}

struct ResettableBody {
    inner: tonic::body::Body,
    flag: ResetFlag,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl hyper::body::Body for ResettableBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, BoxError>>> {
        let reset = || Poll::Ready(Some(Err("stream reset injected by wafload".into())));
        if self.flag.0.load(Ordering::SeqCst) {
            return reset();
        }
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if polled.is_ready() && self.flag.0.load(Ordering::SeqCst) {
            return reset();
        }
        polled.map(|frame| frame.map(|r| r.map_err(BoxError::from)))
    }

    fn is_end_stream(&self) -> bool {
        !self.flag.0.load(Ordering::SeqCst) && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

// ---------------------------------------------------------------------------------------
// The processor

struct State {
    config: ExtProcTargetConfig,
    matcher: MarkerMatcher,
    /// Bytes of earlier body chunks kept so a marker split across chunks is still found;
    /// long enough for a double-percent-encoded marker.
    window: usize,
    log: Option<Mutex<std::fs::File>>,
    counters: Counters,
}

struct Processor {
    state: Arc<State>,
}

#[tonic::async_trait]
impl ExternalProcessor for Processor {
    type ProcessStream = ReceiverStream<Result<ProcessingResponse, Status>>;

    async fn process(
        &self,
        request: Request<Streaming<ProcessingRequest>>,
    ) -> Result<Response<Self::ProcessStream>, Status> {
        // The first message came with the stream: its delay counts from here, so the
        // server's own stream setup is inside the delay rather than added to it.
        let arrived = Instant::now();
        let state = self.state.clone();
        let n = bump(&state.counters.streams);
        let share = state.config.fault_share.clamp(0.0, 1.0);
        let faulted = state.config.fault.is_some()
            && ((n + 1) as f64 * share).floor() > (n as f64 * share).floor();
        let fault = if faulted { state.config.fault } else { None };
        let flag = request.extensions().get::<ResetFlag>().cloned();
        let inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(serve_stream(state, inbound, tx, fault, flag, arrived));
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

fn header_list(
    h: &envoy_types::pb::envoy::service::ext_proc::v3::HttpHeaders,
) -> Vec<(String, Vec<u8>)> {
    h.headers
        .as_ref()
        .map(|m| {
            m.headers
                .iter()
                .map(|v| {
                    let value = if v.raw_value.is_empty() {
                        v.value.as_bytes().to_vec()
                    } else {
                        v.raw_value.clone()
                    };
                    (v.key.to_ascii_lowercase(), value)
                })
                .collect()
        })
        .unwrap_or_default()
}

fn continue_common() -> Option<CommonResponse> {
    Some(CommonResponse::default())
}

fn reply(response: processing_response::Response) -> ProcessingResponse {
    ProcessingResponse {
        response: Some(response),
        ..ProcessingResponse::default()
    }
}

/// Where a marker was found, for counters and the log.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Where {
    Headers,
    Body(u32),
}

impl State {
    fn block_reply(&self, request_id: &str) -> ProcessingResponse {
        let status = http::StatusCode::from_u16(self.config.block_status)
            .unwrap_or(http::StatusCode::FORBIDDEN);
        let body = format!(
            "<!DOCTYPE html>\n<html><head><title>{} {}</title></head>\n<body>\n\
             <h1>{BLOCK_PAGE_MARKER}</h1>\n<p>Request ID: {}</p>\n</body></html>\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or("Blocked"),
            request_id
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                .collect::<String>()
        );
        reply(processing_response::Response::ImmediateResponse(
            ImmediateResponse {
                status: Some(HttpStatus {
                    code: status.as_u16() as i32,
                }),
                body: body.into_bytes(),
                details: "wafload_calibration_marker".into(),
                ..ImmediateResponse::default()
            },
        ))
    }

    fn log_hit(&self, request_id: &str, marker: &str, at: Where, action: &str) {
        let Some(log) = &self.log else {
            return;
        };
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| (d.as_millis() as f64) / 1000.0)
            .unwrap_or(0.0);
        let phase = match at {
            Where::Headers => "request_headers".to_string(),
            Where::Body(k) => format!("request_body#{k}"),
        };
        let line = serde_json::json!({
            "ts": ts,
            "id": request_id,
            "rule": "marker",
            "marker": marker,
            "phase": phase,
            "would_block": self.config.monitoring,
            "action": action,
        });
        let mut text = line.to_string();
        text.push('\n');
        if let Ok(mut file) = log.lock() {
            let _ = file.write_all(text.as_bytes());
        }
    }

    /// A marker hit: the block reply, or `None` in monitoring mode, where only the first
    /// hit of a stream is counted and logged (one would-block per request).
    fn hit(
        &self,
        request_id: &str,
        marker_index: usize,
        at: Where,
        already_logged: &mut bool,
    ) -> Option<ProcessingResponse> {
        let marker = self
            .config
            .markers
            .get(marker_index)
            .map(String::as_str)
            .unwrap_or("");
        if self.config.monitoring {
            if !std::mem::replace(already_logged, true) {
                bump(&self.counters.would_block);
                self.log_hit(request_id, marker, at, "log");
            }
            return None;
        }
        bump(&self.counters.blocked);
        match at {
            Where::Headers => bump(&self.counters.blocked_at_headers),
            Where::Body(_) => bump(&self.counters.blocked_at_body),
        };
        self.log_hit(request_id, marker, at, "block");
        Some(self.block_reply(request_id))
    }
}

async fn serve_stream(
    state: Arc<State>,
    mut inbound: Streaming<ProcessingRequest>,
    tx: mpsc::Sender<Result<ProcessingResponse, Status>>,
    mut fault: Option<ProcessorFault>,
    flag: Option<ResetFlag>,
    arrived: Instant,
) {
    use processing_request::Request as Rq;
    use processing_response::Response as Rs;
    let c = &state.config;
    let mut request_id = String::new();
    let mut body_chunks = 0u32;
    let mut logged = false;
    let mut tail: Vec<u8> = Vec::new();
    let mut first = Some(arrived);
    let mut last_reply = arrived;
    loop {
        let message = match inbound.message().await {
            Ok(Some(m)) => m,
            Ok(None) => {
                bump(&state.counters.passed);
                return;
            }
            Err(_) => {
                bump(&state.counters.client_errors);
                return;
            }
        };
        let start = first.take().unwrap_or_else(Instant::now).max(last_reply);
        if let Some(kind) = fault.take() {
            bump(&state.counters.faults);
            match kind {
                ProcessorFault::GrpcError => {
                    let status = Status::new(
                        tonic::Code::from_i32(c.fault_grpc_code),
                        "error injected by the wafload calibration processor",
                    );
                    let _ = tx.send(Err(status)).await;
                    return;
                }
                ProcessorFault::Reset => {
                    if let Some(f) = &flag {
                        f.0.store(true, Ordering::SeqCst);
                    }
                    return;
                }
                ProcessorFault::Stall => crate::timer::sleep_until(start + c.stall_for).await,
            }
        }
        let (delay, response, ends) = match message.request {
            Some(Rq::RequestHeaders(h)) => {
                bump(&state.counters.request_headers);
                let headers = header_list(&h);
                let mut target: &[u8] = b"";
                let mut values: Vec<&[u8]> = Vec::new();
                for (k, v) in &headers {
                    match k.as_str() {
                        ":path" => target = v,
                        ":method" | ":scheme" => {}
                        _ => values.push(v),
                    }
                    if *k == c.request_id_header {
                        request_id = String::from_utf8_lossy(v).into_owned();
                    }
                }
                let found = state.matcher.find_index(target, values, b"");
                match found.and_then(|i| state.hit(&request_id, i, Where::Headers, &mut logged)) {
                    Some(block) => (c.request_headers_delay, block, true),
                    None => (
                        c.request_headers_delay,
                        reply(Rs::RequestHeaders(HeadersResponse {
                            response: continue_common(),
                        })),
                        false,
                    ),
                }
            }
            Some(Rq::RequestBody(b)) => {
                bump(&state.counters.request_body);
                body_chunks += 1;
                let mut haystack = std::mem::take(&mut tail);
                haystack.extend_from_slice(&b.body);
                let found = state.matcher.find_index(b"", std::iter::empty(), &haystack);
                let keep = haystack.len().min(state.window);
                tail = haystack.split_off(haystack.len() - keep);
                match found
                    .and_then(|i| state.hit(&request_id, i, Where::Body(body_chunks), &mut logged))
                {
                    Some(block) => (c.request_body_delay, block, true),
                    None => (
                        c.request_body_delay,
                        reply(Rs::RequestBody(BodyResponse {
                            response: continue_common(),
                        })),
                        false,
                    ),
                }
            }
            Some(Rq::ResponseHeaders(_)) => {
                bump(&state.counters.response_headers);
                (
                    c.response_headers_delay,
                    reply(Rs::ResponseHeaders(HeadersResponse {
                        response: continue_common(),
                    })),
                    false,
                )
            }
            Some(Rq::ResponseBody(_)) => {
                bump(&state.counters.response_body);
                (
                    c.response_body_delay,
                    reply(Rs::ResponseBody(BodyResponse {
                        response: continue_common(),
                    })),
                    false,
                )
            }
            Some(Rq::RequestTrailers(_)) => (
                Duration::ZERO,
                reply(Rs::RequestTrailers(TrailersResponse::default())),
                false,
            ),
            Some(Rq::ResponseTrailers(_)) => (
                Duration::ZERO,
                reply(Rs::ResponseTrailers(TrailersResponse::default())),
                false,
            ),
            None => continue,
        };
        crate::timer::sleep_until(start + delay).await;
        if tx.send(Ok(response)).await.is_err() {
            bump(&state.counters.client_errors);
            return;
        }
        last_reply = Instant::now();
        if ends {
            return;
        }
    }
}

// ---------------------------------------------------------------------------------------
// Serving

/// A calibration processor serving on a background task.
pub struct RunningExtProc {
    pub addr: SocketAddr,
    /// PEM of the self-signed certificate when `tls` is on.
    pub cert_pem: Option<String>,
    tls: bool,
    state: Arc<State>,
    shutdown_tx: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl RunningExtProc {
    /// `grpc://127.0.0.1:PORT` or `grpcs://localhost:PORT` (the certificate's name).
    pub fn url(&self) -> String {
        if self.tls {
            format!("grpcs://localhost:{}", self.addr.port())
        } else {
            format!("grpc://{}", self.addr)
        }
    }

    pub fn stats(&self) -> ExtProcStats {
        self.state.counters.snapshot()
    }

    /// Stops serving; in-flight streams get one second, then are cut off.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown_tx.send(true);
        if let Some(task) = self.task.take() {
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(1), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }
}

impl Drop for RunningExtProc {
    fn drop(&mut self) {
        let _ = self.shutdown_tx.send(true);
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Starts the processor; returns once the socket is bound.
pub async fn start_ext_proc(config: ExtProcTargetConfig) -> Result<RunningExtProc, TargetError> {
    if !(0.0..=1.0).contains(&config.fault_share) {
        return Err(TargetError::InvalidConfig(format!(
            "fault_share {} must be between 0 and 1",
            config.fault_share
        )));
    }
    if !(100..=599).contains(&config.block_status) {
        return Err(TargetError::InvalidConfig(format!(
            "block_status {} is not an HTTP status",
            config.block_status
        )));
    }
    let log = super::open_log(config.log_path.as_deref())?;
    let longest = config.markers.iter().map(|m| m.len()).max().unwrap_or(1);
    let state = Arc::new(State {
        matcher: MarkerMatcher::new(&config.markers),
        window: (longest * 9).max(64),
        log,
        counters: Counters::default(),
        config,
    });
    let (listener, addr) = super::bind(state.config.listen).await?;
    let mut builder = tonic::transport::Server::builder()
        .initial_stream_window_size(Some(2 << 20))
        .initial_connection_window_size(Some(16 << 20))
        .max_concurrent_streams(Some(4096));
    let mut cert_pem = None;
    if state.config.tls {
        let certified = rcgen::generate_simple_self_signed(vec![
            "localhost".to_string(),
            "127.0.0.1".to_string(),
            "::1".to_string(),
        ])
        .map_err(|e| TargetError::Tls(format!("generating the self-signed certificate: {e}")))?;
        let pem = certified.cert.pem();
        let identity =
            tonic::transport::Identity::from_pem(&pem, certified.key_pair.serialize_pem());
        builder = builder
            .tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))
            .map_err(|e| TargetError::Tls(e.to_string()))?;
        cert_pem = Some(pem);
    }
    let service = ExternalProcessorServer::new(Processor {
        state: state.clone(),
    })
    .max_decoding_message_size(MAX_GRPC_MESSAGE)
    .max_encoding_message_size(MAX_GRPC_MESSAGE);
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    let (shutdown_tx, mut shutdown_rx) = watch::channel(false);
    let server = builder.layer(tower::layer::layer_fn(|inner| ResetService { inner }));
    let task = tokio::spawn(async move {
        let _ = server
            .serve_with_incoming_shutdown(service, incoming, async move {
                let _ = shutdown_rx.wait_for(|&stop| stop).await;
            })
            .await;
    });
    Ok(RunningExtProc {
        addr,
        cert_pem,
        tls: state.config.tls,
        state,
        shutdown_tx,
        task: Some(task),
    })
}
