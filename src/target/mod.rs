//! Calibration target: a loopback HTTP server that behaves like a WAF whose behaviour is
//! known exactly, so that wafload's own tests can assert detection rates, error shares and
//! latency percentiles against ground truth instead of against a real, opaque WAF.
//!
//! What it does, per request (the health endpoint skips all of it):
//! 1. draws the request's fault outcome and delay from seeded generators, in arrival order;
//! 2. waits out a configured whole-target [`Pause`] if the request arrived inside it;
//! 3. reads the whole body (at most [`MAX_BODY_BYTES`], else 413);
//! 4. looks for [`TargetConfig::markers`] (see [`is_malicious`]);
//! 5. queues for a worker if [`Capacity`] is set, then sleeps the [`Delay`];
//! 6. applies the injected fault (500, Envoy ext_proc 500, reset before / after the headers
//!    / mid-body, garbage status line, broken chunked body, stall, slow drip), if any;
//! 7. blocks (or logs in monitoring mode, or passes when failing open) malicious requests;
//! 8. answers 200 `ok <request id>` otherwise (padded to `pass_body_bytes`), after the
//!    optional upstream service time.
//!
//! Per connection, besides: `close_after` (HTTP/1 `Connection: close`, HTTP/2 GOAWAY),
//! `drop_after`, `idle_timeout`, `h2_max_concurrent_streams` and `tls_fail_every`.
//!
//! Fault shares are exact, not just expected: faults are dealt without replacement in
//! blocks of [`FAULT_BLOCK`] arrivals, so after every 100·k requests each fault kind has been
//! injected `round(share × 100·k)` times (see [`Faults`]).
//!
//! # Default markers
//! [`DEFAULT_MARKERS`] holds 22 ASCII case-insensitive substrings, one or more per attack
//! family that gotestwaf-style corpora exercise:
//!
//! | marker | family |
//! | --- | --- |
//! | `<script`, `javascript:`, `onerror=` | cross-site scripting |
//! | `union select`, `' or '1'='1`, `' or 1=1`, `sleep(`, `drop table`, `xp_cmdshell` | SQL injection |
//! | `../`, `..\`, `/etc/passwd`, `file://` | path traversal / local file inclusion |
//! | `${jndi:` | Log4Shell (JNDI lookup) |
//! | `{{` | server-side template injection |
//! | `<!entity` | XML external entities |
//! | `$where` | NoSQL injection |
//! | `;cat `, `\|id`, `/bin/sh` | shell command injection |
//! | `<?php` | PHP code injection |
//! | `169.254.169.254` | SSRF to cloud metadata |

mod behaviour;
mod duration_serde;
pub mod extproc;
pub mod gateway;
mod markers;
mod server;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use markers::{is_malicious, percent_decode, MarkerMatcher, DEFAULT_MARKERS};

/// Path of the health endpoint; `GET` on it is answered 200 at once, never blocked,
/// faulted, delayed, paused or counted as a request, so readiness probes cannot skew results.
pub const HEALTH_PATH: &str = "/__wafload/health";

/// Largest request body the target reads; larger bodies get 413 so a runaway client cannot
/// exhaust memory.
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// Number of arrivals over which fault shares are made exact (see [`Faults`]).
pub const FAULT_BLOCK: usize = 100;

/// Text every block page contains, so clients and tests can recognise the target's blocks.
pub const BLOCK_PAGE_MARKER: &str = "Request blocked by wafload calibration target";

/// Body Envoy sends as its local reply when its ext_proc server is unreachable; WAFs built on
/// Envoy external processing fail this way, and wafload must classify it as an error, not a pass.
pub const EXT_PROC_ERROR_BODY: &str = "ext_proc_error_gRPC_error_14{upstream_connect_error}";

/// Header carrying the modelled upstream time, as Envoy sets it, so latency breakdowns can
/// separate WAF time from upstream time.
pub const UPSTREAM_SERVICE_TIME_HEADER: &str = "x-envoy-upstream-service-time";

/// How long [`RunningTarget::shutdown`] lets in-flight requests finish before cutting them off.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Everything that defines the target's behaviour; one value gives one reproducible WAF.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TargetConfig {
    /// Where to listen; `127.0.0.1:0` picks a free port (read it back from [`RunningTarget::addr`]).
    pub listen: SocketAddr,
    /// Serve TLS with a self-signed certificate for `localhost`, `127.0.0.1` and `::1`,
    /// generated at start; ALPN offers `h2` and `http/1.1`.
    pub tls: bool,
    /// ASCII case-insensitive substrings that make a request malicious (see [`is_malicious`]).
    pub markers: Vec<String>,
    /// Status of the block page (default 403).
    pub block_status: u16,
    /// Extra time before every response (not before health answers or 413s).
    pub delay: Delay,
    /// Never block: answer 200 and log would-blocks to `log_path`, like a WAF in detection-only mode.
    pub monitoring: bool,
    /// JSON-lines log of every marker hit: `{"ts": <unix seconds, ms precision>, "id": <request
    /// id>, "rule": "marker", "marker": <marker>, "would_block": <monitoring>, "action":
    /// "log"|"block"|"reset"}`. Fail-open passes are not logged (only counted).
    pub log_path: Option<PathBuf>,
    /// Header whose value identifies a request; echoed back, and generated (`tgt-<n>`) when absent.
    pub request_id_header: String,
    /// Injected misbehaviour.
    pub faults: Faults,
    /// Seed for the delay and fault generators: the same seed gives the same sequence.
    pub seed: u64,
}

impl Default for TargetConfig {
    fn default() -> Self {
        TargetConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            tls: false,
            markers: DEFAULT_MARKERS.iter().map(|m| m.to_string()).collect(),
            block_status: 403,
            delay: Delay::None,
            monitoring: false,
            log_path: None,
            request_id_header: "x-request-id".to_string(),
            faults: Faults::default(),
            seed: 0,
        }
    }
}

/// Time added before every response, drawn per request from a seeded generator.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Delay {
    /// No added time.
    #[default]
    None,
    /// Always this long.
    Fixed(#[serde(with = "duration_serde")] Duration),
    /// Uniform in `[min, max]`.
    Uniform {
        #[serde(with = "duration_serde")]
        min: Duration,
        #[serde(with = "duration_serde")]
        max: Duration,
    },
    /// Exponential with this mean (a memoryless service time; long tail for percentile tests).
    Exponential {
        #[serde(with = "duration_serde")]
        mean: Duration,
    },
    /// An inverse CDF given as quantile points, linearly interpolated between them; below the
    /// first point the first value is used, above the last the last. Lets a test pin e.g.
    /// p50 = 2 ms and p99 = 40 ms exactly.
    Table(Vec<QuantilePoint>),
}

/// One point of a [`Delay::Table`]: a fraction `q` of responses take at most `at`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct QuantilePoint {
    /// Quantile in `[0, 1]`; points must be strictly increasing in `q`.
    pub q: f64,
    /// Delay at that quantile; must not decrease with `q`.
    #[serde(with = "duration_serde")]
    pub at: Duration,
}

/// Injected misbehaviour. The nine `*_share` fields (`error_500_share`,
/// `ext_proc_error_share`, `reset_share`, `stall_share`, `reset_after_headers_share`,
/// `reset_mid_body_share`, `garbage_status_share`, `bad_chunked_share`, `slow_drip_share`)
/// are exclusive outcomes of one draw and must sum to at most 1.
/// They are dealt in shuffled blocks of [`FAULT_BLOCK`] arrivals with exact counts, so after
/// `n = 100·k` requests a kind with share `s` has been injected exactly `round(s·n)` times
/// (when the shares sum to 1 rounding may move one request per block between kinds).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Share of requests answered 500 with a plain-text body.
    pub error_500_share: f64,
    /// Share answered 500 with [`EXT_PROC_ERROR_BODY`] (Envoy's reply for an unreachable ext_proc).
    pub ext_proc_error_share: f64,
    /// Share whose connection is reset instead of answered. HTTP/1: the TCP connection is
    /// closed with SO_LINGER 0 (an RST); HTTP/2: only the stream is reset (RST_STREAM), so other
    /// streams on the connection are not disturbed.
    pub reset_share: f64,
    /// Reset (as above) instead of answering the block page for malicious requests, like WAFs
    /// that drop attacks.
    pub reset_attacks: bool,
    /// Share of requests held an extra `stall_for` before being answered normally.
    pub stall_share: f64,
    /// How long a stalled request is held.
    #[serde(with = "duration_serde")]
    pub stall_for: Duration,
    /// A whole-target stall, for coordinated-omission tests.
    pub pause: Option<Pause>,
    /// A throughput ceiling of `workers / service_time` requests per second.
    pub capacity: Option<Capacity>,
    /// Stop blocking (answer 200) while the arrival rate over the last second exceeds this
    /// many requests per second — a WAF that fails open under load.
    pub fail_open_above: Option<f64>,
    /// Sleep this long on passed requests (in addition to `delay`) and report it, in whole
    /// milliseconds, in [`UPSTREAM_SERVICE_TIME_HEADER`] — gateway plus upstream time.
    #[serde(with = "duration_serde::option")]
    pub upstream_service_time: Option<Duration>,
    /// Share answered with status and headers (a 200 promising a body), then reset before
    /// any body byte: HTTP/1 closes the TCP connection with an RST, HTTP/2 resets the stream.
    pub reset_after_headers_share: f64,
    /// Share answered with status, headers and the first half of the body, then reset as above.
    pub reset_mid_body_share: f64,
    /// Share answered with a line that is not an HTTP status line, then the connection is
    /// closed. Plain-text HTTP/1 only (on HTTP/2 the stream is reset instead).
    pub garbage_status_share: f64,
    /// Share answered `200` with `Transfer-Encoding: chunked` and a chunk-size line that is
    /// not hex, then the connection is closed. Plain-text HTTP/1 only (HTTP/2: stream reset).
    pub bad_chunked_share: f64,
    /// Share whose response body is trickled as [`Faults::slow_drip`] describes.
    pub slow_drip_share: f64,
    /// Shape of a slow-drip body.
    pub slow_drip: Drip,
    /// Pad every 200 answer to exactly this many body bytes, streamed from a static buffer
    /// so the target's memory does not grow with it (big-body and memory tests).
    pub pass_body_bytes: Option<u64>,
    /// Close connections after this many requests. HTTP/1: the N-th answer on a connection
    /// carries `Connection: close` and the connection closes after it (nginx
    /// `keepalive_requests`); HTTP/2: a GOAWAY is sent when the N-th stream arrives and the
    /// connection ends once its streams are done.
    pub close_after: Option<u32>,
    /// HTTP/1 only: once a connection has answered this many requests, the next request on
    /// it is read and the connection closed without an answer — what a client sees when its
    /// request crosses the server's idle-timeout close of a kept-alive connection.
    pub drop_after: Option<u32>,
    /// Close a connection (FIN, no `Connection: close` warning) once it has been idle this
    /// long — a server's keep-alive idle timeout. A client that reuses such a connection
    /// writes into a closed socket.
    #[serde(with = "duration_serde::option")]
    pub idle_timeout: Option<Duration>,
    /// HTTP/2 `SETTINGS_MAX_CONCURRENT_STREAMS` the target announces (default 1024).
    pub h2_max_concurrent_streams: Option<u32>,
    /// TLS only: every N-th accepted connection (counting all connections, first = 1) gets
    /// bytes that are not TLS instead of a ServerHello and is closed.
    pub tls_fail_every: Option<u32>,
}

/// A body trickled `chunk` bytes at a time, one chunk every `every`, `bytes` in total.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Drip {
    /// Total body bytes.
    pub bytes: u64,
    /// Bytes per chunk (at least 1).
    pub chunk: u64,
    /// Time between chunks (the first chunk is sent at once).
    #[serde(with = "duration_serde")]
    pub every: Duration,
}

impl Default for Drip {
    fn default() -> Self {
        Drip {
            bytes: 1024,
            chunk: 64,
            every: Duration::from_millis(50),
        }
    }
}

impl Drip {
    /// Time from the first to the last chunk.
    pub fn length(&self) -> Duration {
        let chunks = self.bytes.div_ceil(self.chunk.max(1));
        self.every * chunks.saturating_sub(1).min(u32::MAX as u64) as u32
    }
}

/// Every request arriving in `[after, after + length)` after target start is answered no
/// earlier than `after + length`, and no response at all leaves the target inside that window.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Pause {
    /// Offset from target start (see [`RunningTarget::started_at`]).
    #[serde(with = "duration_serde")]
    pub after: Duration,
    /// Length of the stall.
    #[serde(with = "duration_serde")]
    pub length: Duration,
}

/// At most `workers` requests are in service at once, each for `service_time`; the rest queue.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Capacity {
    /// Concurrent requests in service; at least 1.
    pub workers: usize,
    /// Time each request holds its worker.
    #[serde(with = "duration_serde")]
    pub service_time: Duration,
}

/// Why the target could not start.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// A config field is out of range; the message names the field.
    #[error("target config: {0}")]
    InvalidConfig(String),
    /// The listen address could not be bound.
    #[error("target: cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// Certificate generation or TLS setup failed.
    #[error("target: TLS setup: {0}")]
    Tls(String),
    /// The monitoring log could not be opened.
    #[error("target: cannot open log_path {path}: {source}")]
    LogOpen {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A snapshot of the target's counters, for comparing what wafload saw with what was sent.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TargetStats {
    /// Requests seen, excluding health checks.
    pub requests: u64,
    /// Requests that arrived over HTTP/2.
    pub http2_requests: u64,
    /// Answered 200 (including monitoring-mode and fail-open passes).
    pub passed: u64,
    /// Answered with the block page.
    pub blocked: u64,
    /// Malicious requests passed because of monitoring mode.
    pub would_block: u64,
    /// Malicious requests passed because the target was failing open.
    pub failed_open: u64,
    /// Injected plain 500s.
    pub errors_500: u64,
    /// Injected Envoy ext_proc 500s.
    pub ext_proc_errors: u64,
    /// All resets sent (`injected_resets + attack_resets`).
    pub resets: u64,
    /// Resets from `reset_share`.
    pub injected_resets: u64,
    /// Resets of malicious requests from `reset_attacks`.
    pub attack_resets: u64,
    /// Requests held by `stall_share`.
    pub stalled: u64,
    /// Requests held by the pause window (at arrival or before answering).
    pub paused: u64,
    /// Answered 413 (body over [`MAX_BODY_BYTES`]).
    pub too_large: u64,
    /// Requests whose body could not be read (client went away).
    pub body_errors: u64,
    /// Health-endpoint hits.
    pub health_checks: u64,
    /// Accepted TCP connections.
    pub connections: u64,
    /// Resets after the response headers (`reset_after_headers_share`).
    pub resets_after_headers: u64,
    /// Resets in the middle of the body (`reset_mid_body_share`).
    pub resets_mid_body: u64,
    /// Garbage status lines sent (`garbage_status_share`).
    pub garbage_statuses: u64,
    /// Broken chunked bodies sent (`bad_chunked_share`).
    pub bad_chunked: u64,
    /// Slow-drip bodies started (`slow_drip_share`).
    pub dripped: u64,
    /// Connections told to close: HTTP/1 `Connection: close` answers and HTTP/2 GOAWAYs
    /// (`close_after`).
    pub closes: u64,
    /// Requests dropped by closing their kept-alive connection (`drop_after`).
    pub dropped: u64,
    /// Connections closed for being idle (`idle_timeout`).
    pub idle_closes: u64,
    /// TLS handshakes sabotaged (`tls_fail_every`).
    pub tls_failures: u64,
    /// Response body bytes the target handed to its connections (all answers).
    pub body_bytes_sent: u64,
    /// Requests per method (upper case; unusual methods under `OTHER`).
    pub by_method: BTreeMap<String, u64>,
}

impl TargetStats {
    /// Injected errors of both kinds.
    pub fn errors_injected(&self) -> u64 {
        self.errors_500 + self.ext_proc_errors
    }
}

/// A target serving on a background task. Dropping it stops the server too (without waiting).
pub struct RunningTarget {
    /// The bound address (with the real port when `listen` had port 0).
    pub addr: SocketAddr,
    /// PEM of the self-signed certificate when `tls` is on, for clients to trust.
    pub cert_pem: Option<String>,
    tls: bool,
    started_at: tokio::time::Instant,
    counters: Arc<server::Counters>,
    shutdown_tx: tokio::sync::watch::Sender<bool>,
    server_task: Option<tokio::task::JoinHandle<()>>,
}

/// Starts serving on a background task; returns once the socket is bound (so a client may
/// connect immediately).
pub async fn start(config: TargetConfig) -> Result<RunningTarget, TargetError> {
    server::start(config).await
}

impl RunningTarget {
    /// Base URL, `http://127.0.0.1:PORT/` or `https://…`.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}/", self.addr)
    }

    /// Instant the target counts [`Pause::after`] from (taken right after binding).
    pub fn started_at(&self) -> tokio::time::Instant {
        self.started_at
    }

    /// Current counters.
    pub fn stats(&self) -> TargetStats {
        self.counters.snapshot()
    }

    /// Shuts down like [`RunningTarget::shutdown`] and returns the final counters, which then
    /// include requests that were still in flight when shutdown began.
    pub async fn stop(self) -> TargetStats {
        let counters = self.counters.clone();
        self.shutdown().await;
        counters.snapshot()
    }

    /// Stops accepting, lets in-flight requests finish for at most [`SHUTDOWN_GRACE`], then
    /// cuts off what remains; returns within about `SHUTDOWN_GRACE` + 1 s.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown_tx.send(true);
        if let Some(task) = self.server_task.take() {
            let bound = SHUTDOWN_GRACE + Duration::from_secs(1);
            if let Err(_elapsed) = tokio::time::timeout(bound, task).await {
                // The server task aborts its connections itself; nothing left to wait for.
            }
        }
    }
}

impl Drop for RunningTarget {
    fn drop(&mut self) {
        let _ = self.shutdown_tx.send(true);
    }
}

impl std::fmt::Debug for RunningTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningTarget")
            .field("addr", &self.addr)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

/// Opens (appending) the monitoring log a target writes, when it has one.
pub(crate) fn open_log(
    path: Option<&std::path::Path>,
) -> Result<Option<std::sync::Mutex<std::fs::File>>, TargetError> {
    let Some(path) = path else {
        return Ok(None);
    };
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|source| TargetError::LogOpen {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(Some(std::sync::Mutex::new(file)))
}

/// Binds a target's listener; returns it with the address it got (port 0 = any free one).
pub(crate) async fn bind(
    listen: SocketAddr,
) -> Result<(tokio::net::TcpListener, SocketAddr), TargetError> {
    let bind_error = |source| TargetError::Bind {
        addr: listen,
        source,
    };
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(bind_error)?;
    let addr = listener.local_addr().map_err(bind_error)?;
    Ok((listener, addr))
}
