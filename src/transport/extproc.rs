//! Envoy's ext_proc protocol spoken directly to the external processor (the WAF), with no
//! Envoy in the loop: one bidirectional `envoy.service.ext_proc.v3.ExternalProcessor/Process`
//! stream per request, carrying what Envoy would send. It measures what the processor itself
//! costs per phase and per body size.
//!
//! Envoy behaviour emulated here (and by the gateway emulation, which reuses this exchange):
//! - `request_headers` first, with the pseudo-headers `:method`, `:path`, `:authority`,
//!   `:scheme` and `end_of_stream` when there is no body to send;
//! - the body is held until the headers reply; then BUFFERED sends one `request_body` with
//!   `end_of_stream: true` (a body over the buffer limit, default 1 MiB, is a 413 and is never
//!   sent); BUFFERED_PARTIAL sends at most the limit in one message; STREAMED sends one message
//!   per chunk without waiting for replies and matches the replies in order;
//! - every reply must come within `message_timeout` (default 200 ms) of its message being sent
//!   (or of the previous reply, when the processor works through a queue of chunks), else 504,
//!   or a pass with failure-mode-allow;
//! - an `immediate_response` is a block with its status (200 when missing, as Envoy does);
//!   `CONTINUE` and `CONTINUE_AND_REPLACE` are passes (the latter also skips the body);
//! - a stream the processor closes cleanly before deciding lets the request through, as Envoy
//!   "proceeds without consulting the server";
//! - optionally, `response_headers` / `response_body` of an upstream response.
//!
//! Header and body mutations, `mode_override` and trailers are not applied: they do not
//! change what a WAF decides or how long it takes.

use super::{ErrorKind, Outcome, RequestId, Session, Transport, TransportError, BODY_PREFIX_LIMIT};
use crate::error::Error;
use crate::plan::PreparedRequest;
use crate::record::micros;
use bytes::Bytes;
use envoy_types::pb::envoy::config::core::v3::{
    HeaderMap as PbHeaderMap, HeaderValue as PbHeaderValue,
};
use envoy_types::pb::envoy::extensions::filters::http::ext_proc::v3::processing_mode::BodySendMode;
use envoy_types::pb::envoy::service::ext_proc::v3::{
    common_response::ResponseStatus, external_processor_client::ExternalProcessorClient,
    processing_request, processing_response, CommonResponse, HttpBody, HttpHeaders,
    ImmediateResponse, ProcessingRequest, ProcessingResponse, ProtocolConfiguration,
};
use http::{HeaderValue, Uri};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_rustls::TlsConnector;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::transport::Channel;

/// Envoy's default `message_timeout`.
pub const DEFAULT_MESSAGE_TIMEOUT: Duration = Duration::from_millis(200);
/// Envoy's default buffer limit for BUFFERED bodies (the connection buffer limit).
pub const DEFAULT_BUFFER_LIMIT: usize = 1024 * 1024;
/// Default STREAMED chunk size: what Envoy typically reads from a socket at once.
pub const DEFAULT_CHUNK_SIZE: usize = 16 * 1024;
/// Largest gRPC message either side accepts (a BUFFERED body travels in one message).
pub const MAX_GRPC_MESSAGE: usize = 64 * 1024 * 1024;

/// The client type for one processor connection.
pub type ProcessorClient = ExternalProcessorClient<Channel>;

/// How a body is handed to the processor (`processing_mode.request_body_mode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum BodyMode {
    /// The body is not sent; only headers are processed.
    None,
    /// One message per chunk, sent as it is seen; replies come in order.
    Streamed,
    /// The whole body in one message; over the buffer limit is a 413.
    #[default]
    Buffered,
    /// At most the buffer limit in one message; the rest is not inspected.
    BufferedPartial,
}

impl BodyMode {
    pub fn as_str(self) -> &'static str {
        match self {
            BodyMode::None => "none",
            BodyMode::Streamed => "streamed",
            BodyMode::Buffered => "buffered",
            BodyMode::BufferedPartial => "buffered-partial",
        }
    }

    fn proto(self) -> BodySendMode {
        match self {
            BodyMode::None => BodySendMode::None,
            BodyMode::Streamed => BodySendMode::Streamed,
            BodyMode::Buffered => BodySendMode::Buffered,
            BodyMode::BufferedPartial => BodySendMode::BufferedPartial,
        }
    }
}

/// The filter configuration being emulated: what Envoy would be told in its
/// `ext_proc` filter config, plus the synthetic upstream response for direct mode.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ExtProcSettings {
    pub request_body_mode: BodyMode,
    pub response_body_mode: BodyMode,
    /// STREAMED chunk size in bytes.
    pub chunk_size: usize,
    /// Also send `response_headers` (and the response body per `response_body_mode`).
    pub response_phases: bool,
    #[serde(serialize_with = "duration_text")]
    pub message_timeout: Duration,
    /// On processor errors and timeouts let the request through instead of failing it.
    pub failure_mode_allow: bool,
    /// BUFFERED limit in bytes; larger bodies are answered 413 without being sent.
    pub buffer_limit: usize,
    /// Direct mode only: status of the synthetic upstream response.
    pub response_status: u16,
    /// Direct mode only: body size of the synthetic upstream response.
    pub response_body_size: usize,
}

impl Default for ExtProcSettings {
    fn default() -> Self {
        ExtProcSettings {
            request_body_mode: BodyMode::Buffered,
            response_body_mode: BodyMode::Buffered,
            chunk_size: DEFAULT_CHUNK_SIZE,
            response_phases: false,
            message_timeout: DEFAULT_MESSAGE_TIMEOUT,
            failure_mode_allow: false,
            buffer_limit: DEFAULT_BUFFER_LIMIT,
            response_status: 200,
            response_body_size: 1024,
        }
    }
}

/// A step of the ext_proc exchange.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    #[default]
    RequestHeaders,
    RequestBody,
    ResponseHeaders,
    ResponseBody,
}

impl Phase {
    pub const ALL: [Phase; 4] = [
        Phase::RequestHeaders,
        Phase::RequestBody,
        Phase::ResponseHeaders,
        Phase::ResponseBody,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::RequestHeaders => "request_headers",
            Phase::RequestBody => "request_body",
            Phase::ResponseHeaders => "response_headers",
            Phase::ResponseBody => "response_body",
        }
    }

    fn is_body(self) -> bool {
        matches!(self, Phase::RequestBody | Phase::ResponseBody)
    }
}

/// What the exchange ended with, as a word for records and summaries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VerdictKind {
    /// Every phase answered CONTINUE.
    #[default]
    Pass,
    /// An `immediate_response`.
    Block,
    /// The processor closed its stream before deciding (Envoy lets the request through).
    Closed,
    /// BUFFERED body over the limit (413).
    TooLarge,
    /// No reply within the message timeout.
    Timeout,
    /// gRPC error, reset or unreachable processor.
    Error,
    /// A reply of the wrong kind for the message it answers.
    Protocol,
}

impl VerdictKind {
    pub fn as_str(self) -> &'static str {
        match self {
            VerdictKind::Pass => "pass",
            VerdictKind::Block => "block",
            VerdictKind::Closed => "closed",
            VerdictKind::TooLarge => "too_large",
            VerdictKind::Timeout => "timeout",
            VerdictKind::Error => "error",
            VerdictKind::Protocol => "protocol",
        }
    }
}

/// Per-request ext_proc facts: which phase decided and what each round trip cost.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ExtProcDetail {
    /// The phase whose reply (or failure) ended the exchange.
    pub decided: Phase,
    /// 1-based body message that decided, for body phases.
    pub chunk: Option<u32>,
    pub verdict: VerdictKind,
    pub request_headers_us: Option<u64>,
    /// One entry per body message: its reply time minus the later of its send time and the
    /// previous reply (the processor's time for that message, without queueing behind
    /// earlier chunks).
    pub request_body_us: Vec<u64>,
    /// First body message sent → last body reply.
    pub request_body_phase_us: Option<u64>,
    pub response_headers_us: Option<u64>,
    pub response_body_us: Vec<u64>,
    pub response_body_phase_us: Option<u64>,
    /// Time spent waiting on the processor over all phases.
    pub total_us: u64,
}

impl ExtProcDetail {
    fn mark(&mut self, phase: Phase, chunk: Option<u32>) {
        self.decided = phase;
        self.chunk = chunk;
    }

    /// "request_headers" or "request_body#3": where a block happened.
    pub fn decided_label(&self) -> String {
        match self.chunk {
            Some(k) if self.decided.is_body() => format!("{}#{k}", self.decided.as_str()),
            _ => self.decided.as_str().to_string(),
        }
    }
}

/// How one exchange ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    Continue,
    Closed,
    Immediate {
        status: u16,
        body: Bytes,
        headers: Vec<(String, Vec<u8>)>,
    },
    TooLarge,
    Timeout,
    /// A gRPC status, or a transport failure (code 14, `connect` true when no connection).
    Error {
        code: i32,
        message: String,
        connect: bool,
        /// The processor reset the HTTP/2 stream (RST_STREAM) instead of answering.
        reset: bool,
    },
    Protocol(String),
}

impl Verdict {
    pub fn kind(&self) -> VerdictKind {
        match self {
            Verdict::Continue => VerdictKind::Pass,
            Verdict::Closed => VerdictKind::Closed,
            Verdict::Immediate { .. } => VerdictKind::Block,
            Verdict::TooLarge => VerdictKind::TooLarge,
            Verdict::Timeout => VerdictKind::Timeout,
            Verdict::Error { .. } => VerdictKind::Error,
            Verdict::Protocol(_) => VerdictKind::Protocol,
        }
    }

    /// The request goes on to the upstream (or the response to the client).
    pub fn lets_through(&self, failure_mode_allow: bool) -> bool {
        match self {
            Verdict::Continue | Verdict::Closed => true,
            Verdict::Timeout | Verdict::Error { .. } | Verdict::Protocol(_) => failure_mode_allow,
            Verdict::Immediate { .. } | Verdict::TooLarge => false,
        }
    }

    fn from_status(status: &tonic::Status) -> Verdict {
        let message = one_line(status.message());
        let connect = status.code() == tonic::Code::Unavailable
            && (message.contains("onnect") || message.contains("refused"));
        let mut reset = false;
        let mut source: Option<&(dyn std::error::Error + 'static)> =
            std::error::Error::source(status);
        while let Some(e) = source {
            if let Some(h2e) = e.downcast_ref::<h2::Error>() {
                reset |= h2e.is_reset();
            }
            source = e.source();
        }
        Verdict::Error {
            code: status.code() as i32,
            message,
            connect,
            reset,
        }
    }
}

fn duration_text<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_duration(*d).to_string())
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// An HTTP message as the processor sees it: header list (pseudo-headers first) and body.
#[derive(Clone, Debug, Default)]
pub struct HttpParts {
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Bytes,
}

impl HttpParts {
    /// A request as Envoy presents it: `:method`, `:path`, `:authority`, `:scheme`, then the
    /// headers (lower-case names; `host` becomes `:authority`).
    pub fn request(
        method: &str,
        path: &str,
        authority: &str,
        scheme: &str,
        headers: &http::HeaderMap,
        body: Bytes,
    ) -> HttpParts {
        let mut list: Vec<(String, Vec<u8>)> = vec![
            (":method".into(), method.as_bytes().to_vec()),
            (":path".into(), path.as_bytes().to_vec()),
            (":authority".into(), authority.as_bytes().to_vec()),
            (":scheme".into(), scheme.as_bytes().to_vec()),
        ];
        for (name, value) in headers {
            if name == http::header::HOST {
                continue;
            }
            list.push((name.as_str().to_string(), value.as_bytes().to_vec()));
        }
        HttpParts {
            headers: list,
            body,
        }
    }

    /// A response as Envoy presents it: `:status` then the headers.
    pub fn response(status: u16, headers: &http::HeaderMap, body: Bytes) -> HttpParts {
        let mut list: Vec<(String, Vec<u8>)> =
            vec![(":status".into(), status.to_string().into_bytes())];
        for (name, value) in headers {
            list.push((name.as_str().to_string(), value.as_bytes().to_vec()));
        }
        HttpParts {
            headers: list,
            body,
        }
    }

    fn header_map(&self) -> PbHeaderMap {
        PbHeaderMap {
            headers: self
                .headers
                .iter()
                .map(|(k, v)| PbHeaderValue {
                    key: k.clone(),
                    // Envoy sends values as raw bytes; `value` stays empty.
                    raw_value: v.clone(),
                    ..PbHeaderValue::default()
                })
                .collect(),
        }
    }
}

/// An open `Process` stream: the sending half and the replies.
pub struct Call {
    tx: mpsc::UnboundedSender<ProcessingRequest>,
    inbound: tonic::Streaming<ProcessingResponse>,
}

fn headers_message(
    phase: Phase,
    parts: &HttpParts,
    end_of_stream: bool,
    settings: Option<&ExtProcSettings>,
) -> ProcessingRequest {
    let headers = HttpHeaders {
        headers: Some(parts.header_map()),
        end_of_stream,
        ..HttpHeaders::default()
    };
    let request = match phase {
        Phase::ResponseHeaders => processing_request::Request::ResponseHeaders(headers),
        _ => processing_request::Request::RequestHeaders(headers),
    };
    ProcessingRequest {
        request: Some(request),
        // Envoy tells the processor its body modes on the first message of a stream.
        protocol_config: settings.map(|s| ProtocolConfiguration {
            request_body_mode: s.request_body_mode.proto() as i32,
            response_body_mode: s.response_body_mode.proto() as i32,
            send_body_without_waiting_for_header_response: false,
        }),
        ..ProcessingRequest::default()
    }
}

fn body_message(phase: Phase, chunk: Bytes, end_of_stream: bool) -> ProcessingRequest {
    let body = HttpBody {
        body: chunk.to_vec(),
        end_of_stream,
        ..HttpBody::default()
    };
    let request = match phase {
        Phase::ResponseBody => processing_request::Request::ResponseBody(body),
        _ => processing_request::Request::RequestBody(body),
    };
    ProcessingRequest {
        request: Some(request),
        ..ProcessingRequest::default()
    }
}

/// What a reply means for the message it answers.
enum Reply {
    Continue { replace: bool },
    Immediate(Verdict),
    Wrong(String),
}

fn common_status(common: &Option<CommonResponse>) -> bool {
    common
        .as_ref()
        .is_some_and(|c| c.status == ResponseStatus::ContinueAndReplace as i32)
}

fn immediate(i: ImmediateResponse) -> Verdict {
    // Envoy answers 200 when the processor gives no status.
    let code = i.status.map(|s| s.code).unwrap_or(0);
    let status = if (100..=599).contains(&code) {
        code as u16
    } else {
        200
    };
    let headers = i
        .headers
        .map(|m| {
            m.set_headers
                .into_iter()
                .filter_map(|o| o.header)
                .map(|h| {
                    let value = if h.raw_value.is_empty() {
                        h.value.into_bytes()
                    } else {
                        h.raw_value
                    };
                    (h.key, value)
                })
                .collect()
        })
        .unwrap_or_default();
    Verdict::Immediate {
        status,
        body: Bytes::from(i.body),
        headers,
    }
}

fn interpret(phase: Phase, reply: ProcessingResponse) -> Reply {
    use processing_response::Response as R;
    match (phase, reply.response) {
        (_, Some(R::ImmediateResponse(i))) => Reply::Immediate(immediate(i)),
        (Phase::RequestHeaders, Some(R::RequestHeaders(h)))
        | (Phase::ResponseHeaders, Some(R::ResponseHeaders(h))) => Reply::Continue {
            replace: common_status(&h.response),
        },
        (Phase::RequestBody, Some(R::RequestBody(b)))
        | (Phase::ResponseBody, Some(R::ResponseBody(b))) => Reply::Continue {
            replace: common_status(&b.response),
        },
        (phase, other) => Reply::Wrong(format!(
            "processor answered {} with {}",
            phase.as_str(),
            match other {
                None => "an empty response".to_string(),
                Some(r) => format!("{:?}", std::mem::discriminant(&r)),
            }
        )),
    }
}

impl Call {
    /// Waits for the next reply until `deadline`.
    async fn reply(&mut self, deadline: Instant) -> Result<Option<ProcessingResponse>, Verdict> {
        match tokio::time::timeout_at(deadline.into(), self.inbound.message()).await {
            Err(_) => Err(Verdict::Timeout),
            Ok(Err(status)) => Err(Verdict::from_status(&status)),
            Ok(Ok(reply)) => Ok(reply),
        }
    }

    /// Sends a headers message and waits for its reply. `Ok(true)` = the body phase is
    /// skipped (CONTINUE_AND_REPLACE).
    async fn headers_phase(
        &mut self,
        phase: Phase,
        message: ProcessingRequest,
        timeout: Duration,
        detail: &mut ExtProcDetail,
    ) -> Result<bool, Verdict> {
        let sent = Instant::now();
        if self.tx.send(message).is_err() {
            return Err(closed_sender());
        }
        self.await_headers_reply(phase, sent, timeout, detail).await
    }

    async fn await_headers_reply(
        &mut self,
        phase: Phase,
        sent: Instant,
        timeout: Duration,
        detail: &mut ExtProcDetail,
    ) -> Result<bool, Verdict> {
        detail.mark(phase, None);
        let reply = self.reply(sent + timeout).await;
        let us = micros(sent.elapsed());
        match phase {
            Phase::ResponseHeaders => detail.response_headers_us = Some(us),
            _ => detail.request_headers_us = Some(us),
        }
        match reply? {
            None => Err(Verdict::Closed),
            Some(r) => match interpret(phase, r) {
                Reply::Continue { replace } => Ok(replace),
                Reply::Immediate(v) => Err(v),
                Reply::Wrong(m) => Err(Verdict::Protocol(m)),
            },
        }
    }

    /// Sends a body per `mode` and waits for every reply, in order.
    async fn body_phase(
        &mut self,
        phase: Phase,
        body: &Bytes,
        mode: BodyMode,
        settings: &ExtProcSettings,
        detail: &mut ExtProcDetail,
    ) -> Result<(), Verdict> {
        let chunks: Vec<(Bytes, bool)> = match mode {
            BodyMode::None => return Ok(()),
            BodyMode::Buffered => {
                if body.len() > settings.buffer_limit {
                    detail.mark(phase, None);
                    return Err(Verdict::TooLarge);
                }
                vec![(body.clone(), true)]
            }
            BodyMode::BufferedPartial => {
                let n = body.len().min(settings.buffer_limit);
                vec![(body.slice(..n), n == body.len())]
            }
            BodyMode::Streamed => {
                let size = settings.chunk_size.max(1);
                let count = body.len().div_ceil(size);
                (0..count)
                    .map(|i| {
                        let end = ((i + 1) * size).min(body.len());
                        (body.slice(i * size..end), i + 1 == count)
                    })
                    .collect()
            }
        };
        let phase_start = Instant::now();
        let total = chunks.len();
        let mut sent_at = Vec::with_capacity(total);
        for (chunk, end) in chunks {
            // A failed send means the stream is already over (e.g. the processor answered an
            // earlier chunk with an immediate_response while we were still queueing): read
            // the replies to what was sent, they say why.
            if self.tx.send(body_message(phase, chunk, end)).is_err() {
                break;
            }
            sent_at.push(Instant::now());
        }
        let mut previous = phase_start;
        let mut result = Ok(());
        for (k, sent) in sent_at.iter().enumerate() {
            detail.mark(phase, Some(k as u32 + 1));
            let from = (*sent).max(previous);
            let reply = self.reply(from + settings.message_timeout).await;
            let now = Instant::now();
            let us = micros(now.saturating_duration_since(from));
            match phase {
                Phase::ResponseBody => detail.response_body_us.push(us),
                _ => detail.request_body_us.push(us),
            }
            previous = now;
            let step = match reply {
                Err(v) => Err(v),
                Ok(None) => Err(Verdict::Closed),
                Ok(Some(r)) => match interpret(phase, r) {
                    Reply::Continue { .. } => Ok(()),
                    Reply::Immediate(v) => Err(v),
                    Reply::Wrong(m) => Err(Verdict::Protocol(m)),
                },
            };
            if let Err(v) = step {
                result = Err(v);
                break;
            }
        }
        if result.is_ok() && sent_at.len() < total {
            result = Err(closed_sender());
        }
        let phase_us = Some(micros(phase_start.elapsed()));
        match phase {
            Phase::ResponseBody => detail.response_body_phase_us = phase_us,
            _ => detail.request_body_phase_us = phase_us,
        }
        result
    }
}

fn closed_sender() -> Verdict {
    Verdict::Error {
        code: tonic::Code::Unavailable as i32,
        message: "the gRPC stream closed while sending".into(),
        connect: false,
        reset: false,
    }
}

/// Runs the request phases. Returns the verdict and, when the request goes on, the open
/// stream for the response phases.
pub async fn process_request(
    client: &ProcessorClient,
    settings: &ExtProcSettings,
    request: &HttpParts,
    detail: &mut ExtProcDetail,
) -> (Verdict, Option<Call>) {
    let has_body = !request.body.is_empty() && settings.request_body_mode != BodyMode::None;
    let first = headers_message(
        Phase::RequestHeaders,
        request,
        request.body.is_empty(),
        Some(settings),
    );
    let (tx, rx) = mpsc::unbounded_channel();
    // Queue the first message before awaiting the call: some servers send nothing (not even
    // response headers) until they have a request.
    let _ = tx.send(first);
    let sent = Instant::now();
    let deadline = sent + settings.message_timeout;
    detail.mark(Phase::RequestHeaders, None);
    let mut client = client.clone();
    let opened = tokio::time::timeout_at(
        deadline.into(),
        client.process(UnboundedReceiverStream::new(rx)),
    )
    .await;
    let inbound = match opened {
        Err(_) => {
            detail.request_headers_us = Some(micros(sent.elapsed()));
            return (Verdict::Timeout, None);
        }
        Ok(Err(status)) => {
            detail.request_headers_us = Some(micros(sent.elapsed()));
            return (Verdict::from_status(&status), None);
        }
        Ok(Ok(response)) => response.into_inner(),
    };
    let mut call = Call { tx, inbound };
    let remaining = deadline.saturating_duration_since(sent);
    let skip_body = match call
        .await_headers_reply(Phase::RequestHeaders, sent, remaining, detail)
        .await
    {
        Ok(skip) => skip,
        Err(v) => return (v, None),
    };
    if has_body && !skip_body {
        if let Err(v) = call
            .body_phase(
                Phase::RequestBody,
                &request.body,
                settings.request_body_mode,
                settings,
                detail,
            )
            .await
        {
            return (v, None);
        }
    }
    (Verdict::Continue, Some(call))
}

/// Runs the response phases on a stream whose request phases passed.
pub async fn process_response(
    call: &mut Call,
    settings: &ExtProcSettings,
    response: &HttpParts,
    detail: &mut ExtProcDetail,
) -> Verdict {
    let send_body = !response.body.is_empty() && settings.response_body_mode != BodyMode::None;
    let message = headers_message(
        Phase::ResponseHeaders,
        response,
        response.body.is_empty(),
        None,
    );
    let skip = match call
        .headers_phase(
            Phase::ResponseHeaders,
            message,
            settings.message_timeout,
            detail,
        )
        .await
    {
        Ok(skip) => skip,
        Err(v) => return v,
    };
    if send_body && !skip {
        if let Err(v) = call
            .body_phase(
                Phase::ResponseBody,
                &response.body,
                settings.response_body_mode,
                settings,
                detail,
            )
            .await
        {
            return v;
        }
    }
    Verdict::Continue
}

/// Sums the phase times into `total_us` and sets the verdict.
pub fn finish_detail(detail: &mut ExtProcDetail, verdict: &Verdict) {
    detail.verdict = verdict.kind();
    detail.total_us = detail.request_headers_us.unwrap_or(0)
        + detail.request_body_phase_us.unwrap_or(0)
        + detail.response_headers_us.unwrap_or(0)
        + detail.response_body_phase_us.unwrap_or(0);
}

// ---------------------------------------------------------------------------------------
// Connections

trait Conn: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Conn for T {}

/// Where the processor is and how to reach it: `grpc://` / `http://` (h2c) or
/// `grpcs://` / `https://` (TLS with ALPN h2, using the same trust options as HTTP targets).
pub struct ProcessorEndpoint {
    pub url: String,
    connect_uri: Uri,
    origin: Uri,
    addrs: Vec<SocketAddr>,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    pub tls_enabled: bool,
}

/// TLS options for the processor connection.
#[derive(Clone, Debug, Default)]
pub struct ProcessorTls {
    pub insecure: bool,
    pub ca_file: Option<PathBuf>,
    pub sni: Option<String>,
}

impl ProcessorEndpoint {
    /// Parses and resolves the URL; `flag` names the option in error messages.
    pub async fn resolve(
        url: &str,
        tls_options: &ProcessorTls,
        flag: &str,
    ) -> Result<ProcessorEndpoint, Error> {
        let uri: Uri = url
            .parse()
            .map_err(|e| Error::flag(flag, format!("{url:?} is not a URL: {e}")))?;
        let tls = match uri.scheme_str() {
            Some("grpcs") | Some("https") => true,
            Some("grpc") | Some("http") | Some("h2c") => false,
            other => {
                return Err(Error::flag(
                    flag,
                    format!(
                        "{url:?}: scheme {:?} is not grpc:// (h2c), grpcs:// (TLS), http:// or https://",
                        other.unwrap_or("")
                    ),
                ))
            }
        };
        let host = uri
            .host()
            .ok_or_else(|| Error::flag(flag, format!("{url:?} has no host")))?
            .to_string();
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let bare = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((bare.as_str(), port))
            .await
            .map_err(|e| Error::Target {
                url: url.to_string(),
                message: format!("cannot resolve {host}: {e}"),
            })?
            .collect();
        if addrs.is_empty() {
            return Err(Error::Target {
                url: url.to_string(),
                message: format!("{host} resolves to no address"),
            });
        }
        let authority = format!("{host}:{port}");
        let connect_uri: Uri = format!("http://{authority}")
            .parse()
            .map_err(|e| Error::flag(flag, format!("{url:?}: {e}")))?;
        let origin: Uri = format!("{}://{authority}", if tls { "https" } else { "http" })
            .parse()
            .map_err(|e| Error::flag(flag, format!("{url:?}: {e}")))?;
        let tls_pair = if tls {
            let config = super::tls::client_config(
                tls_options.insecure,
                tls_options.ca_file.as_deref(),
                &[b"h2"],
            )?;
            let name = super::tls::server_name(tls_options.sni.as_deref().unwrap_or(&bare))?;
            Some((TlsConnector::from(Arc::new(config)), name))
        } else {
            None
        };
        Ok(ProcessorEndpoint {
            url: url.to_string(),
            connect_uri,
            origin,
            addrs,
            tls: tls_pair,
            tls_enabled: tls,
        })
    }

    /// TCP (with TCP_NODELAY: without it Nagle adds ~40 ms to small gRPC frames) and TLS.
    async fn open(&self) -> std::io::Result<Box<dyn Conn>> {
        let mut last = None;
        for addr in &self.addrs {
            match TcpStream::connect(addr).await {
                Ok(tcp) => {
                    tcp.set_nodelay(true)?;
                    return match &self.tls {
                        None => Ok(Box::new(tcp)),
                        Some((connector, name)) => {
                            let stream = connector.connect(name.clone(), tcp).await?;
                            if stream.get_ref().1.alpn_protocol() != Some(b"h2") {
                                return Err(std::io::Error::other(
                                    "TLS peer did not agree to h2 via ALPN (is this a gRPC port?)",
                                ));
                            }
                            Ok(Box::new(stream))
                        }
                    };
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| std::io::Error::other("no address")))
    }

    fn tonic_endpoint(&self) -> tonic::transport::Endpoint {
        tonic::transport::Endpoint::from(self.connect_uri.clone())
            .origin(self.origin.clone())
            .initial_stream_window_size(Some(2 << 20))
            .initial_connection_window_size(Some(16 << 20))
            .http2_adaptive_window(false)
    }

    fn connector(
        self: &Arc<Self>,
    ) -> impl tower::Service<
        Uri,
        Response = TokioIo<Box<dyn Conn>>,
        Error = std::io::Error,
        Future = impl std::future::Future<Output = std::io::Result<TokioIo<Box<dyn Conn>>>> + Send,
    > + Send
           + Clone
           + 'static {
        let me = self.clone();
        tower::service_fn(move |_: Uri| {
            let me = me.clone();
            async move { me.open().await.map(TokioIo::new) }
        })
    }

    /// One HTTP/2 connection, opened now (an unreachable processor is an error here).
    pub async fn connect(self: &Arc<Self>) -> Result<ProcessorClient, TransportError> {
        let channel = self
            .tonic_endpoint()
            .connect_with_connector(self.connector())
            .await
            .map_err(|e| TransportError::new(ErrorKind::Connect, super::error_chain(&e)))?;
        Ok(client_for(channel))
    }

    /// One HTTP/2 connection, opened on first use and reopened after failures (the gateway
    /// must keep answering 500s while the processor is down, as Envoy does).
    pub fn connect_lazy(self: &Arc<Self>) -> ProcessorClient {
        client_for(
            self.tonic_endpoint()
                .connect_with_connector_lazy(self.connector()),
        )
    }
}

fn client_for(channel: Channel) -> ProcessorClient {
    ExternalProcessorClient::new(channel)
        .max_decoding_message_size(MAX_GRPC_MESSAGE)
        .max_encoding_message_size(MAX_GRPC_MESSAGE)
}

// ---------------------------------------------------------------------------------------
// Direct mode as a Transport

/// Direct mode: each planned request becomes one `Process` stream to the processor.
pub struct ExtProcTransport {
    shared: Arc<Shared>,
}

struct Shared {
    clients: Vec<ProcessorClient>,
    settings: ExtProcSettings,
    authority: String,
    scheme: String,
    request_id_header: http::HeaderName,
    timeout: Duration,
    in_flight: usize,
    /// Synthetic upstream response for the response phases.
    response: HttpParts,
}

/// What direct mode needs besides the processor connections.
#[derive(Clone, Debug)]
pub struct DirectOptions {
    /// `:authority` and `:scheme` of the emulated downstream requests (from `--target`).
    pub authority: String,
    pub scheme: String,
    pub request_id_header: String,
    /// Whole-exchange bound (the profile's request timeout).
    pub timeout: Duration,
    /// Streams in flight at most.
    pub in_flight: usize,
}

impl ExtProcTransport {
    /// Opens `connections` HTTP/2 connections to the processor.
    pub async fn connect(
        endpoint: ProcessorEndpoint,
        connections: usize,
        settings: ExtProcSettings,
        options: DirectOptions,
    ) -> Result<ExtProcTransport, Error> {
        let endpoint = Arc::new(endpoint);
        let mut clients = Vec::new();
        for _ in 0..connections.max(1) {
            let client = tokio::time::timeout(options.timeout, endpoint.connect())
                .await
                .map_err(|_| Error::Target {
                    url: endpoint.url.clone(),
                    message: format!("no connection within {:?}", options.timeout),
                })?
                .map_err(|e| Error::Target {
                    url: endpoint.url.clone(),
                    message: e.message,
                })?;
            clients.push(client);
        }
        let request_id_header = http::HeaderName::from_bytes(options.request_id_header.as_bytes())
            .map_err(|e| Error::flag("--request-id-header", e.to_string()))?;
        let mut response_headers = http::HeaderMap::new();
        response_headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        response_headers.insert(
            http::header::CONTENT_LENGTH,
            HeaderValue::from(settings.response_body_size as u64),
        );
        let response = HttpParts::response(
            settings.response_status,
            &response_headers,
            Bytes::from(vec![b'r'; settings.response_body_size]),
        );
        Ok(ExtProcTransport {
            shared: Arc::new(Shared {
                clients,
                settings,
                authority: options.authority,
                scheme: options.scheme,
                request_id_header,
                timeout: options.timeout,
                in_flight: options.in_flight.max(1),
                response,
            }),
        })
    }
}

impl Transport for ExtProcTransport {
    type Session = ExtProcSession;

    fn session(&self, worker: usize) -> ExtProcSession {
        ExtProcSession {
            client: self.shared.clients[worker % self.shared.clients.len()].clone(),
            shared: self.shared.clone(),
        }
    }

    fn max_in_flight(&self) -> usize {
        self.shared.in_flight
    }
}

pub struct ExtProcSession {
    client: ProcessorClient,
    shared: Arc<Shared>,
}

impl Session for ExtProcSession {
    async fn send(
        &mut self,
        request: &PreparedRequest,
        request_id: &RequestId,
        _sent: std::time::Instant,
    ) -> Outcome {
        let timeout = self.shared.timeout;
        let request_id = request_id.header_value();
        match tokio::time::timeout(timeout, self.exchange(request, request_id)).await {
            Ok(outcome) => outcome,
            Err(_) => Outcome::failed(
                ErrorKind::Timeout,
                format!("no ext_proc decision within {timeout:?}"),
            ),
        }
    }
}

impl ExtProcSession {
    async fn exchange(&mut self, planned: &PreparedRequest, id: HeaderValue) -> Outcome {
        let shared = &self.shared;
        let settings = &shared.settings;
        let mut headers = planned.headers.clone();
        headers.insert(shared.request_id_header.clone(), id);
        let authority = planned
            .headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or(&shared.authority)
            .to_string();
        let parts = HttpParts::request(
            planned.method.as_str(),
            planned.path.as_str(),
            &authority,
            &shared.scheme,
            &headers,
            planned.body.clone(),
        );
        let mut detail = ExtProcDetail::default();
        let started = Instant::now();
        let (mut verdict, call) =
            process_request(&self.client, settings, &parts, &mut detail).await;
        if let (Verdict::Continue, Some(mut call)) = (&verdict, call) {
            if settings.response_phases {
                verdict =
                    process_response(&mut call, settings, &shared.response, &mut detail).await;
            }
        }
        let elapsed = started.elapsed();
        finish_detail(&mut detail, &verdict);
        outcome_of(verdict, settings, detail, elapsed)
    }
}

/// Direct mode's answer for a verdict, as Envoy would have answered the client.
pub fn outcome_of(
    verdict: Verdict,
    settings: &ExtProcSettings,
    detail: ExtProcDetail,
    elapsed: Duration,
) -> Outcome {
    let allow = verdict.lets_through(settings.failure_mode_allow);
    let mut outcome = Outcome {
        time_to_headers: Some(elapsed),
        ext_proc: Some(Box::new(detail)),
        ..Outcome::default()
    };
    let (status, body): (u16, Bytes) = match verdict {
        _ if allow => (settings.response_status, Bytes::new()),
        Verdict::Immediate { status, body, .. } => (status, body),
        Verdict::TooLarge => (413, Bytes::from_static(b"Payload Too Large")),
        Verdict::Timeout => (504, Bytes::from_static(b"ext_proc message timeout")),
        Verdict::Error {
            code,
            message,
            connect,
            reset,
        } => {
            let kind = match tonic::Code::from_i32(code) {
                _ if connect => ErrorKind::Connect,
                _ if reset => ErrorKind::Reset,
                tonic::Code::Unavailable | tonic::Code::Cancelled => ErrorKind::Reset,
                tonic::Code::DeadlineExceeded => ErrorKind::Timeout,
                _ => ErrorKind::Protocol,
            };
            outcome.error = Some(TransportError::new(
                kind,
                format!("ext_proc gRPC error {code}: {message}"),
            ));
            return outcome;
        }
        Verdict::Protocol(message) => {
            outcome.error = Some(TransportError::new(ErrorKind::Protocol, message));
            return outcome;
        }
        Verdict::Continue | Verdict::Closed => unreachable!("passes are let through"),
    };
    outcome.status = Some(status);
    outcome.body_len = body.len() as u64;
    outcome.body_prefix = body.slice(..body.len().min(BODY_PREFIX_LIMIT));
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_immediate_status_is_200_as_in_envoy() {
        let v = immediate(ImmediateResponse::default());
        assert!(matches!(v, Verdict::Immediate { status: 200, .. }));
    }

    #[test]
    fn request_parts_carry_pseudo_headers_first_and_drop_host() {
        let mut h = http::HeaderMap::new();
        h.insert("host", HeaderValue::from_static("app.test"));
        h.insert("x-a", HeaderValue::from_static("1"));
        let p = HttpParts::request("POST", "/p?q", "app.test", "https", &h, Bytes::new());
        let names: Vec<&str> = p.headers.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, [":method", ":path", ":authority", ":scheme", "x-a"]);
    }

    #[test]
    fn verdicts_map_to_envoy_statuses() {
        let s = ExtProcSettings::default();
        let d = ExtProcDetail::default();
        let z = Duration::ZERO;
        assert_eq!(
            outcome_of(Verdict::TooLarge, &s, d.clone(), z).status,
            Some(413)
        );
        assert_eq!(
            outcome_of(Verdict::Timeout, &s, d.clone(), z).status,
            Some(504)
        );
        assert_eq!(
            outcome_of(Verdict::Continue, &s, d.clone(), z).status,
            Some(200)
        );
        assert_eq!(
            outcome_of(Verdict::Closed, &s, d.clone(), z).status,
            Some(200)
        );
        let allow = ExtProcSettings {
            failure_mode_allow: true,
            ..ExtProcSettings::default()
        };
        assert_eq!(
            outcome_of(Verdict::Timeout, &allow, d.clone(), z).status,
            Some(200)
        );
        let err = outcome_of(
            Verdict::Error {
                code: 14,
                message: "x".into(),
                connect: true,
                reset: false,
            },
            &s,
            d,
            z,
        );
        assert_eq!(err.error.map(|e| e.kind), Some(ErrorKind::Connect));
    }
}
