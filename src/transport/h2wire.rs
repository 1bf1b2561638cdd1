//! A lean HTTP/2 client (RFC 9113) for load generation: one connection task per
//! connection does all socket I/O; sessions write their request frames straight into the
//! connection's output buffer and wait for their stream to finish.
//!
//! Why not only the `h2` crate (still available as `h2_engine: h2`): per request it
//! HPACK-encodes through a stateful encoder, queues frames through its stream store and
//! wakes tasks several times; that was most of wafload's CPU per HTTP/2 request. Here a
//! request's header block is written in one pass without the dynamic table (literals and
//! static-table names, the request id never indexed), frames go into a buffer the
//! connection task writes with one syscall per batch, and a session is woken once — when
//! its stream has ended or failed.
//!
//! Implemented: stream concurrency from SETTINGS_MAX_CONCURRENT_STREAMS (sessions wait
//! for a free stream), flow control both ways (bodies sent as the windows allow; window
//! updates for received data), SETTINGS/PING acknowledgement, CONTINUATION, padding,
//! informational responses and trailers, RST_STREAM, GOAWAY (streams above its last id are
//! reported unprocessed, so they can be retried), PUSH_PROMISE refused (push disabled).
//! Not implemented: priorities (ignored), sending trailers, server push.

use super::hpack;
use super::{BodyPrefix, ErrorKind, Outcome, TransportError};
use crate::plan::PreparedRequest;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::hash::{BuildHasherDefault, Hasher};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Our receive windows: 1 MiB per stream, 8 MiB per connection (like the `h2` engine).
const STREAM_RECV_WINDOW: u32 = 1 << 20;
const CONNECTION_RECV_WINDOW: u32 = 8 << 20;
/// The largest frame we accept (SETTINGS_MAX_FRAME_SIZE left at its default).
const MAX_RECV_FRAME: usize = 16_384;
const DEFAULT_WINDOW: i64 = 65_535;
const READ_BUFFER: usize = 64 * 1024;

mod frame {
    pub const DATA: u8 = 0x0;
    pub const HEADERS: u8 = 0x1;
    pub const RST_STREAM: u8 = 0x3;
    pub const SETTINGS: u8 = 0x4;
    pub const PUSH_PROMISE: u8 = 0x5;
    pub const PING: u8 = 0x6;
    pub const GOAWAY: u8 = 0x7;
    pub const WINDOW_UPDATE: u8 = 0x8;
    pub const CONTINUATION: u8 = 0x9;
    pub const END_STREAM: u8 = 0x1;
    pub const ACK: u8 = 0x1;
    pub const END_HEADERS: u8 = 0x4;
    pub const PADDED: u8 = 0x8;
    pub const PRIORITY: u8 = 0x20;
}

const REFUSED_STREAM: u32 = 0x7;
const CANCEL: u32 = 0x8;

/// The name of an HTTP/2 error code (RFC 9113 §7).
fn reason(code: u32) -> &'static str {
    match code {
        0x0 => "NO_ERROR",
        0x1 => "PROTOCOL_ERROR",
        0x2 => "INTERNAL_ERROR",
        0x3 => "FLOW_CONTROL_ERROR",
        0x4 => "SETTINGS_TIMEOUT",
        0x5 => "STREAM_CLOSED",
        0x6 => "FRAME_SIZE_ERROR",
        0x7 => "REFUSED_STREAM",
        0x8 => "CANCEL",
        0x9 => "COMPRESSION_ERROR",
        0xa => "CONNECT_ERROR",
        0xb => "ENHANCE_YOUR_CALM",
        0xc => "INADEQUATE_SECURITY",
        0xd => "HTTP_1_1_REQUIRED",
        _ => "unknown error code",
    }
}

/// Why an exchange did not produce an outcome of its own.
#[derive(Debug)]
pub enum Failure {
    /// RST_STREAM(REFUSED_STREAM) before any response: the server did not process it.
    Refused,
    /// The connection is closing or closed (GOAWAY above our stream, or gone before the
    /// stream was opened): nothing was processed; retry on a new connection.
    ConnectionGone,
}

/// How a stream ended without a complete response.
#[derive(Debug, Clone)]
enum StreamError {
    Reset(u32),
    Unprocessed,
    Connection(TransportError),
}

/// Stream ids are dense odd numbers: a multiplicative hash spreads them well enough and
/// costs one instruction (SipHash would cost more than the rest of the lookup).
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    fn write_u32(&mut self, id: u32) {
        self.0 = u64::from(id).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

type Streams = HashMap<u32, Stream, BuildHasherDefault<IdHasher>>;

#[derive(Default)]
struct Stream {
    waker: Option<Waker>,
    /// The final status; 0 until the final response head arrives.
    status: u16,
    head_at: Option<Instant>,
    upstream_us: Option<u64>,
    prefix: BodyPrefix,
    /// END_STREAM received: the response is complete.
    ended: bool,
    error: Option<StreamError>,
    /// Request body not yet sent (flow control).
    body: bytes::Bytes,
    /// We sent END_STREAM (or gave up the rest of the body).
    local_ended: bool,
    send_window: i64,
    recv_unacked: u32,
}

struct State {
    /// Frames waiting for the connection task to write them.
    out: Vec<u8>,
    conn_waker: Option<Waker>,
    streams: Streams,
    next_id: u32,
    max_concurrent: usize,
    capacity_waiters: Vec<Waker>,
    conn_send_window: i64,
    initial_send_window: i64,
    max_send_frame: usize,
    /// Streams with request body left to send.
    pending_bodies: VecDeque<u32>,
    /// The last stream id of a GOAWAY from the server.
    goaway: Option<u32>,
    dead: Option<TransportError>,
    conn_recv_unacked: u32,
    decoder: hpack::Decoder,
    encoder: hpack::Encoder,
    /// The server's SETTINGS_HEADER_TABLE_SIZE: the most our request encoder may use.
    peer_header_table_size: usize,
    /// A header block continued in CONTINUATION frames: stream, END_STREAM, bytes so far.
    continuation: Option<(u32, bool, Vec<u8>)>,
}

struct Shared {
    state: Mutex<State>,
    /// No new streams may start here (GOAWAY received, connection failed or ids used up).
    closed: AtomicBool,
    /// Handles alive; the connection task ends when none is left and no stream is open.
    handles: AtomicUsize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock is a bug; the state is still consistent enough
        // to fail the streams, so poisoning is ignored.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What the endpoint contributes to every request head.
pub struct RequestHead<'a> {
    pub https: bool,
    pub authority: &'a [u8],
    pub request_id_name: &'a [u8],
}

/// A handle on one lean HTTP/2 connection; cheap to clone, shared by sessions.
pub struct H2WireConn {
    shared: Arc<Shared>,
}

impl Clone for H2WireConn {
    fn clone(&self) -> Self {
        self.shared.handles.fetch_add(1, Ordering::Relaxed);
        H2WireConn {
            shared: self.shared.clone(),
        }
    }
}

impl Drop for H2WireConn {
    fn drop(&mut self) {
        if self.shared.handles.fetch_sub(1, Ordering::AcqRel) == 1 {
            if let Some(w) = self.shared.lock().conn_waker.take() {
                w.wake();
            }
        }
    }
}

impl H2WireConn {
    /// Starts the connection on an open transport: the preface and our SETTINGS are sent
    /// by the connection task (spawned on the current runtime) without waiting for the
    /// server's SETTINGS, like other clients; a stream refused before they arrive is
    /// reported as `Failure::Refused`.
    pub fn start<IO>(io: IO) -> H2WireConn
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let mut out = Vec::with_capacity(16 * 1024);
        out.extend_from_slice(PREFACE);
        // SETTINGS: ENABLE_PUSH = 0, INITIAL_WINDOW_SIZE = 1 MiB.
        write_frame_head(&mut out, 12, frame::SETTINGS, 0, 0);
        for (id, value) in [(0x2u16, 0u32), (0x4, STREAM_RECV_WINDOW)] {
            out.extend_from_slice(&id.to_be_bytes());
            out.extend_from_slice(&value.to_be_bytes());
        }
        write_window_update(&mut out, 0, CONNECTION_RECV_WINDOW - DEFAULT_WINDOW as u32);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                out,
                conn_waker: None,
                streams: Streams::default(),
                next_id: 1,
                max_concurrent: usize::MAX,
                capacity_waiters: Vec::new(),
                conn_send_window: DEFAULT_WINDOW,
                initial_send_window: DEFAULT_WINDOW,
                max_send_frame: 16_384,
                pending_bodies: VecDeque::new(),
                goaway: None,
                dead: None,
                conn_recv_unacked: 0,
                decoder: hpack::Decoder::default(),
                encoder: hpack::Encoder::default(),
                peer_header_table_size: 4096,
                continuation: None,
            }),
            closed: AtomicBool::new(false),
            handles: AtomicUsize::new(1),
        });
        tokio::spawn(Driver {
            io,
            shared: shared.clone(),
            rbuf: vec![0; READ_BUFFER],
            rstart: 0,
            rend: 0,
            wbuf: Vec::with_capacity(16 * 1024),
            wpos: 0,
            flush: false,
            wake: Vec::new(),
            framed: false,
        });
        H2WireConn { shared }
    }

    /// No new stream can start on this connection.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }

    /// Sends one request and reads its whole response (keeping a body prefix).
    /// `head_seen` gets the status and time to headers even if the caller gives up first.
    pub async fn exchange(
        &self,
        planned: &PreparedRequest,
        head: &RequestHead<'_>,
        request_id: &[u8],
        sent: Instant,
        head_seen: &mut Option<(u16, Duration)>,
    ) -> Result<Outcome, Failure> {
        let mut waited = false;
        let id = std::future::poll_fn(|cx| {
            let r = self.poll_open(cx, planned, head, request_id);
            waited |= r.is_pending();
            r
        })
        .await?;
        let started = if waited { Instant::now() } else { sent };
        let mut guard = OpenStream {
            shared: &self.shared,
            id,
            started,
            head_seen,
            finished: false,
        };
        std::future::poll_fn(|cx| guard.poll_finish(cx)).await
    }

    fn poll_open(
        &self,
        cx: &mut Context<'_>,
        planned: &PreparedRequest,
        head: &RequestHead<'_>,
        request_id: &[u8],
    ) -> Poll<Result<u32, Failure>> {
        let mut st = self.shared.lock();
        if st.dead.is_some() || st.goaway.is_some() {
            return Poll::Ready(Err(Failure::ConnectionGone));
        }
        if st.streams.len() >= st.max_concurrent {
            st.capacity_waiters.push(cx.waker().clone());
            return Poll::Pending;
        }
        let id = st.next_id;
        if id > 0x7fff_ffff - 2 {
            // Stream ids used up: this connection takes no more streams.
            self.shared.closed.store(true, Ordering::Release);
            st.goaway = Some(id);
            return Poll::Ready(Err(Failure::ConnectionGone));
        }
        st.next_id += 2;
        let end_stream = planned.body.is_empty();
        let max_frame = st.max_send_frame;
        let st = &mut *st;
        write_headers(&mut st.out, id, end_stream, max_frame, |block| {
            encode_request(block, &mut st.encoder, planned, head, request_id)
        });
        let stream = Stream {
            body: planned.body.clone(),
            local_ended: end_stream,
            send_window: st.initial_send_window,
            ..Stream::default()
        };
        st.streams.insert(id, stream);
        if !end_stream {
            st.pending_bodies.push_back(id);
            st.pump_bodies();
        }
        if let Some(w) = st.conn_waker.take() {
            w.wake();
        }
        Poll::Ready(Ok(id))
    }
}

/// A stream this session opened; dropping it before the stream finished (timeout) cancels
/// the stream (RST_STREAM CANCEL) and frees its concurrency slot.
struct OpenStream<'a> {
    shared: &'a Shared,
    id: u32,
    started: Instant,
    head_seen: &'a mut Option<(u16, Duration)>,
    finished: bool,
}

impl OpenStream<'_> {
    fn poll_finish(&mut self, cx: &mut Context<'_>) -> Poll<Result<Outcome, Failure>> {
        let mut st = self.shared.lock();
        let Some(stream) = st.streams.get_mut(&self.id) else {
            self.finished = true;
            return Poll::Ready(Ok(Outcome::failed(ErrorKind::Other, "stream lost")));
        };
        if !stream.ended && stream.error.is_none() {
            match &stream.waker {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => stream.waker = Some(cx.waker().clone()),
            }
            return Poll::Pending;
        }
        let stream = st.close_stream(self.id);
        self.finished = true;
        drop(st);
        let stream = stream.expect("present above");
        let time_to_headers = stream
            .head_at
            .map(|t| t.saturating_duration_since(self.started))
            .unwrap_or_default();
        let error = if stream.ended {
            if stream.status == 0 {
                Some(TransportError::new(
                    ErrorKind::Protocol,
                    "response without a :status",
                ))
            } else {
                None
            }
        } else {
            match stream.error.expect("ended or failed") {
                StreamError::Reset(REFUSED_STREAM) if stream.status == 0 => {
                    return Poll::Ready(Err(Failure::Refused))
                }
                StreamError::Unprocessed => return Poll::Ready(Err(Failure::ConnectionGone)),
                StreamError::Reset(code) => Some(TransportError::new(
                    match code {
                        0x1 | 0x9 => ErrorKind::Protocol,
                        _ => ErrorKind::Reset,
                    },
                    format!(
                        "stream error: stream reset by the server: {} ({code:#x})",
                        reason(code)
                    ),
                )),
                StreamError::Connection(e) => Some(e),
            }
        };
        if stream.status == 0 {
            let e = error.expect("no status means an error");
            return Poll::Ready(Ok(Outcome::failed(e.kind, e.message)));
        }
        Poll::Ready(Ok(stream.prefix.outcome(
            stream.status,
            error,
            stream.upstream_us,
            time_to_headers,
        )))
    }
}

impl Drop for OpenStream<'_> {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let mut st = self.shared.lock();
        if let Some(stream) = st.close_stream(self.id) {
            if stream.status != 0 {
                let at = stream.head_at.unwrap_or(self.started);
                *self.head_seen = Some((stream.status, at.saturating_duration_since(self.started)));
            }
        }
        if let Some(w) = st.conn_waker.take() {
            w.wake();
        }
    }
}

impl State {
    /// Removes a stream the session is done with; a stream still open on either side is
    /// reset (CANCEL) so the server stops working on it and its slot is free.
    fn close_stream(&mut self, id: u32) -> Option<Stream> {
        let stream = self.streams.remove(&id)?;
        let open = !(stream.ended && stream.local_ended) && stream.error.is_none();
        if open && self.dead.is_none() {
            write_frame_head(&mut self.out, 4, frame::RST_STREAM, 0, id);
            self.out.extend_from_slice(&CANCEL.to_be_bytes());
        }
        for w in self.capacity_waiters.drain(..) {
            w.wake();
        }
        Some(stream)
    }

    /// Sends request body bytes as far as the flow-control windows allow.
    fn pump_bodies(&mut self) {
        for _ in 0..self.pending_bodies.len() {
            if self.conn_send_window <= 0 {
                break;
            }
            let Some(id) = self.pending_bodies.pop_front() else {
                break;
            };
            let Some(stream) = self.streams.get_mut(&id) else {
                continue;
            };
            while !stream.body.is_empty() && !stream.local_ended {
                let n = (stream.body.len() as i64)
                    .min(stream.send_window)
                    .min(self.conn_send_window)
                    .min(self.max_send_frame as i64);
                if n <= 0 {
                    break;
                }
                let chunk = stream.body.split_to(n as usize);
                let last = stream.body.is_empty();
                write_frame_head(
                    &mut self.out,
                    chunk.len(),
                    frame::DATA,
                    if last { frame::END_STREAM } else { 0 },
                    id,
                );
                self.out.extend_from_slice(&chunk);
                stream.send_window -= n;
                self.conn_send_window -= n;
                stream.local_ended = last;
            }
            if !stream.local_ended {
                self.pending_bodies.push_back(id);
            }
        }
    }

    /// Fails every stream and every waiter: the connection is gone.
    fn fail(&mut self, error: TransportError, wake: &mut Vec<Waker>) {
        if self.dead.is_some() {
            return;
        }
        self.dead = Some(error.clone());
        let goaway = self.goaway;
        for (&id, stream) in self.streams.iter_mut() {
            if stream.ended || stream.error.is_some() {
                continue;
            }
            stream.error = Some(match goaway {
                Some(last) if id > last => StreamError::Unprocessed,
                _ => StreamError::Connection(error.clone()),
            });
            wake.extend(stream.waker.take());
        }
        wake.append(&mut self.capacity_waiters);
    }

    /// Handles one frame from the server. `Err` is a connection error.
    fn on_frame(
        &mut self,
        kind: u8,
        flags: u8,
        id: u32,
        payload: &[u8],
        now: &mut Option<Instant>,
        wake: &mut Vec<Waker>,
    ) -> Result<(), TransportError> {
        let protocol = |m: &str| TransportError::new(ErrorKind::Protocol, m.to_string());
        if let Some((cont_id, _, _)) = &self.continuation {
            if kind != frame::CONTINUATION || id != *cont_id {
                return Err(protocol("expected a CONTINUATION frame"));
            }
        }
        match kind {
            frame::DATA => {
                if id == 0 {
                    return Err(protocol("DATA on stream 0"));
                }
                let data = unpad(flags, payload).ok_or_else(|| protocol("bad padding"))?;
                self.conn_recv_unacked += payload.len() as u32;
                if self.conn_recv_unacked >= CONNECTION_RECV_WINDOW / 2 {
                    write_window_update(&mut self.out, 0, self.conn_recv_unacked);
                    self.conn_recv_unacked = 0;
                }
                if let Some(stream) = self.streams.get_mut(&id) {
                    if stream.ended || stream.error.is_some() {
                        return Ok(());
                    }
                    stream.prefix.push(data);
                    if flags & frame::END_STREAM != 0 {
                        stream.ended = true;
                        wake.extend(stream.waker.take());
                    } else {
                        stream.recv_unacked += payload.len() as u32;
                        if stream.recv_unacked >= STREAM_RECV_WINDOW / 2 {
                            write_window_update(&mut self.out, id, stream.recv_unacked);
                            stream.recv_unacked = 0;
                        }
                    }
                }
            }
            frame::HEADERS => {
                if id == 0 {
                    return Err(protocol("HEADERS on stream 0"));
                }
                let mut block = unpad(flags, payload).ok_or_else(|| protocol("bad padding"))?;
                if flags & frame::PRIORITY != 0 {
                    block = block.get(5..).ok_or_else(|| protocol("short HEADERS"))?;
                }
                let end_stream = flags & frame::END_STREAM != 0;
                if flags & frame::END_HEADERS != 0 {
                    self.on_header_block(id, end_stream, block, now, wake)?;
                } else {
                    self.continuation = Some((id, end_stream, block.to_vec()));
                }
            }
            frame::CONTINUATION => {
                let Some((cont_id, end_stream, mut block)) = self.continuation.take() else {
                    return Err(protocol("CONTINUATION without HEADERS"));
                };
                block.extend_from_slice(payload);
                if flags & frame::END_HEADERS != 0 {
                    self.on_header_block(cont_id, end_stream, &block, now, wake)?;
                } else {
                    self.continuation = Some((cont_id, end_stream, block));
                }
            }
            frame::RST_STREAM => {
                let code = be32(payload).ok_or_else(|| protocol("short RST_STREAM"))?;
                if let Some(stream) = self.streams.get_mut(&id) {
                    if !stream.ended && stream.error.is_none() {
                        stream.error = Some(StreamError::Reset(code));
                        stream.body = bytes::Bytes::new();
                        stream.local_ended = true;
                        wake.extend(stream.waker.take());
                    }
                }
            }
            frame::SETTINGS => {
                if flags & frame::ACK != 0 {
                    return Ok(());
                }
                if id != 0 || payload.len() % 6 != 0 {
                    return Err(protocol("malformed SETTINGS"));
                }
                for setting in payload.chunks_exact(6) {
                    let key = u16::from_be_bytes([setting[0], setting[1]]);
                    let value =
                        u32::from_be_bytes([setting[2], setting[3], setting[4], setting[5]]);
                    match key {
                        0x1 => self.peer_header_table_size = value as usize,
                        0x3 => {
                            let more = value as usize > self.max_concurrent;
                            self.max_concurrent = value as usize;
                            if more {
                                wake.append(&mut self.capacity_waiters);
                            }
                        }
                        0x4 => {
                            if value > 0x7fff_ffff {
                                return Err(protocol("initial window size too large"));
                            }
                            let delta = i64::from(value) - self.initial_send_window;
                            self.initial_send_window = i64::from(value);
                            for stream in self.streams.values_mut() {
                                stream.send_window += delta;
                            }
                        }
                        0x5 => {
                            if !(16_384..=16_777_215).contains(&value) {
                                return Err(protocol("bad SETTINGS_MAX_FRAME_SIZE"));
                            }
                            self.max_send_frame = value as usize;
                        }
                        _ => {}
                    }
                }
                write_frame_head(&mut self.out, 0, frame::SETTINGS, frame::ACK, 0);
                // Header blocks written from here on follow the ACK: the server's decoder
                // has the table size it announced.
                self.encoder.set_limit(self.peer_header_table_size);
                self.pump_bodies();
            }
            frame::PING => {
                if payload.len() != 8 {
                    return Err(protocol("PING payload is not 8 bytes"));
                }
                if flags & frame::ACK == 0 {
                    write_frame_head(&mut self.out, 8, frame::PING, frame::ACK, 0);
                    self.out.extend_from_slice(payload);
                }
            }
            frame::GOAWAY => {
                let last = be32(payload).ok_or_else(|| protocol("short GOAWAY"))? & 0x7fff_ffff;
                self.goaway = Some(self.goaway.map_or(last, |l| l.min(last)));
                // Streams above the last id were not processed (RFC 9113 §6.8).
                for (&sid, stream) in self.streams.iter_mut() {
                    if sid > last && !stream.ended && stream.error.is_none() {
                        stream.error = Some(StreamError::Unprocessed);
                        stream.local_ended = true;
                        wake.extend(stream.waker.take());
                    }
                }
                wake.append(&mut self.capacity_waiters);
            }
            frame::WINDOW_UPDATE => {
                let increment =
                    be32(payload).ok_or_else(|| protocol("short WINDOW_UPDATE"))? & 0x7fff_ffff;
                if id == 0 {
                    self.conn_send_window += i64::from(increment);
                } else if let Some(stream) = self.streams.get_mut(&id) {
                    stream.send_window += i64::from(increment);
                }
                self.pump_bodies();
            }
            frame::PUSH_PROMISE => {
                return Err(protocol("PUSH_PROMISE although push is disabled"));
            }
            _ => {} // PRIORITY and unknown frame types are ignored (RFC 9113 §4.1).
        }
        Ok(())
    }

    fn on_header_block(
        &mut self,
        id: u32,
        end_stream: bool,
        block: &[u8],
        now: &mut Option<Instant>,
        wake: &mut Vec<Waker>,
    ) -> Result<(), TransportError> {
        let (mut status, mut upstream) = (0u16, None);
        // Always decoded, even for a stream we gave up: the table must stay in step.
        self.decoder
            .decode(block, |name, value| {
                if name == b":status" {
                    status = std::str::from_utf8(value)
                        .ok()
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                } else if name == super::UPSTREAM_SERVICE_TIME.as_bytes() {
                    upstream = super::upstream_service_time_us(value);
                }
            })
            .map_err(|e| {
                TransportError::new(ErrorKind::Protocol, format!("COMPRESSION_ERROR: {e}"))
            })?;
        let Some(stream) = self.streams.get_mut(&id) else {
            return Ok(());
        };
        if stream.ended || stream.error.is_some() {
            return Ok(());
        }
        if stream.status == 0 {
            if (100..200).contains(&status) && !end_stream {
                return Ok(()); // informational; the final head follows
            }
            stream.status = status;
            stream.upstream_us = upstream;
            stream.head_at = Some(*now.get_or_insert_with(Instant::now));
        }
        if end_stream {
            stream.ended = true;
            wake.extend(stream.waker.take());
        }
        Ok(())
    }
}

/// A server that answers HTTP/2 with prior knowledge in HTTP/1.x (a plain-text port without
/// h2c): said plainly instead of as a frame-size error on "HTTP/1.1 400".
fn not_http2(first_bytes: &[u8]) -> Option<TransportError> {
    first_bytes.starts_with(b"HTTP/1.").then(|| {
        TransportError::new(
            ErrorKind::Protocol,
            "the server answered in HTTP/1.x: it does not take HTTP/2 with prior knowledge \
             on this port (use --http h1, or --http auto over TLS to negotiate)",
        )
    })
}

fn be32(payload: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(payload.get(..4)?.try_into().ok()?))
}

/// The payload without its padding (PADDED flag), or `None` when the padding is invalid.
fn unpad(flags: u8, payload: &[u8]) -> Option<&[u8]> {
    if flags & frame::PADDED == 0 {
        return Some(payload);
    }
    let pad = *payload.first()? as usize;
    payload.get(1..payload.len().checked_sub(pad)?)
}

fn write_frame_head(out: &mut Vec<u8>, len: usize, kind: u8, flags: u8, id: u32) {
    let len = (len as u32).to_be_bytes();
    out.extend_from_slice(&[len[1], len[2], len[3], kind, flags]);
    out.extend_from_slice(&(id & 0x7fff_ffff).to_be_bytes());
}

fn write_window_update(out: &mut Vec<u8>, id: u32, increment: u32) {
    write_frame_head(out, 4, frame::WINDOW_UPDATE, 0, id);
    out.extend_from_slice(&increment.to_be_bytes());
}

/// Writes a HEADERS frame (and CONTINUATIONs when the block exceeds the frame size),
/// encoding the block in place after the frame head.
fn write_headers(
    out: &mut Vec<u8>,
    id: u32,
    end_stream: bool,
    max_frame: usize,
    encode: impl FnOnce(&mut Vec<u8>),
) {
    let start = out.len();
    write_frame_head(out, 0, frame::HEADERS, 0, id);
    encode(out);
    let len = out.len() - start - 9;
    let end_flag = if end_stream { frame::END_STREAM } else { 0 };
    if len <= max_frame {
        let l = (len as u32).to_be_bytes();
        out[start..start + 3].copy_from_slice(&l[1..]);
        out[start + 4] = frame::END_HEADERS | end_flag;
        return;
    }
    let block = out.split_off(start + 9);
    out.truncate(start);
    for (i, piece) in block.chunks(max_frame).enumerate() {
        let last = (i + 1) * max_frame >= block.len();
        let (kind, mut flags) = if i == 0 {
            (frame::HEADERS, end_flag)
        } else {
            (frame::CONTINUATION, 0)
        };
        if last {
            flags |= frame::END_HEADERS;
        }
        write_frame_head(out, piece.len(), kind, flags, id);
        out.extend_from_slice(piece);
    }
}

/// The request's header block: pseudo-headers, the planned headers without the
/// connection-specific ones (RFC 9113 §8.2.2) and `host` (carried as `:authority`), a
/// `content-length` like HTTP/1.1 would send, and the request id, never indexed. Fields
/// every request repeats come from the connection's dynamic table (`encoder`).
fn encode_request(
    block: &mut Vec<u8>,
    encoder: &mut hpack::Encoder,
    planned: &PreparedRequest,
    head: &RequestHead<'_>,
    request_id: &[u8],
) {
    use http::header;
    encoder.begin_block(block);
    match planned.method {
        http::Method::GET => block.push(0x82),
        http::Method::POST => block.push(0x83),
        ref m => hpack::encode_indexed_name(block, 2, m.as_str().as_bytes()),
    }
    block.push(if head.https { 0x87 } else { 0x86 });
    match planned.path.as_str() {
        "/" => block.push(0x84),
        path => hpack::encode_indexed_name(block, 4, path.as_bytes()),
    }
    encoder.field(block, b":authority", head.authority);
    let headers = &planned.headers;
    let listed_in_connection = headers
        .get(header::CONNECTION)
        .and_then(|v| v.to_str().ok());
    for (name, value) in headers {
        if super::h2_connection_specific(name, value, listed_in_connection)
            || name.as_str().as_bytes() == head.request_id_name
        {
            continue;
        }
        let name = name.as_str().as_bytes();
        if value.is_sensitive() {
            hpack::encode_literal(block, name, value.as_bytes(), true);
        } else {
            encoder.field(block, name, value.as_bytes());
        }
    }
    if !headers.contains_key(header::CONTENT_LENGTH) && super::sends_content_length(planned) {
        let mut digits = itoa::Buffer::new();
        hpack::encode_indexed_name(block, 28, digits.format(planned.body.len()).as_bytes());
    }
    encoder.request_id(block, head.request_id_name, request_id);
}

/// The connection task: writes what sessions queued, reads and dispatches frames.
struct Driver<IO> {
    io: IO,
    shared: Arc<Shared>,
    rbuf: Vec<u8>,
    rstart: usize,
    rend: usize,
    wbuf: Vec<u8>,
    wpos: usize,
    flush: bool,
    /// Wakers collected under the lock, woken after it is released.
    wake: Vec<Waker>,
    /// A frame has arrived (the server speaks HTTP/2).
    framed: bool,
}

impl<IO: AsyncRead + AsyncWrite + Unpin> Driver<IO> {
    fn die(&mut self, error: TransportError) -> Poll<()> {
        self.shared.closed.store(true, Ordering::Release);
        let mut st = self.shared.lock();
        st.fail(error, &mut self.wake);
        drop(st);
        for w in self.wake.drain(..) {
            w.wake();
        }
        Poll::Ready(())
    }

    /// Parses and handles every complete frame in the read buffer.
    fn dispatch(&mut self) -> Result<(), TransportError> {
        if !self.framed {
            let head = &self.rbuf[self.rstart..self.rend];
            if let Some(error) = not_http2(head) {
                return Err(error);
            }
            self.framed = head.len() >= 9;
        }
        let mut st = self.shared.lock();
        let mut now = None;
        let mut result = Ok(());
        while self.rend - self.rstart >= 9 {
            let h = &self.rbuf[self.rstart..self.rstart + 9];
            let len = (h[0] as usize) << 16 | (h[1] as usize) << 8 | h[2] as usize;
            if len > MAX_RECV_FRAME {
                result = Err(TransportError::new(
                    ErrorKind::Protocol,
                    format!("FRAME_SIZE_ERROR: a {len}-byte frame"),
                ));
                break;
            }
            if self.rend - self.rstart < 9 + len {
                break;
            }
            let (kind, flags) = (h[3], h[4]);
            let id = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff;
            let payload = &self.rbuf[self.rstart + 9..self.rstart + 9 + len];
            self.rstart += 9 + len;
            if let Err(e) = st.on_frame(kind, flags, id, payload, &mut now, &mut self.wake) {
                result = Err(e);
                break;
            }
        }
        if result.is_ok() && st.goaway.is_some() {
            self.shared.closed.store(true, Ordering::Release);
        }
        drop(st);
        for w in self.wake.drain(..) {
            w.wake();
        }
        if self.rstart == self.rend {
            self.rstart = 0;
            self.rend = 0;
        } else if self.rbuf.len() - self.rend < 9 + MAX_RECV_FRAME {
            self.rbuf.copy_within(self.rstart..self.rend, 0);
            self.rend -= self.rstart;
            self.rstart = 0;
        }
        result
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> Future for Driver<IO> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        // Bounded work per poll so other tasks on this thread get their turn.
        for _ in 0..32 {
            let mut progressed = false;
            if this.wpos == this.wbuf.len() {
                let mut st = this.shared.lock();
                if !st.out.is_empty() {
                    this.wbuf.clear();
                    std::mem::swap(&mut st.out, &mut this.wbuf);
                    this.wpos = 0;
                } else {
                    let unused = this.shared.handles.load(Ordering::Acquire) == 0;
                    let drained = st.goaway.is_some() || unused;
                    if drained && st.streams.is_empty() && !this.flush {
                        return Poll::Ready(());
                    }
                    match &st.conn_waker {
                        Some(w) if w.will_wake(cx.waker()) => {}
                        _ => st.conn_waker = Some(cx.waker().clone()),
                    }
                }
            }
            while this.wpos < this.wbuf.len() {
                match Pin::new(&mut this.io).poll_write(cx, &this.wbuf[this.wpos..]) {
                    Poll::Ready(Ok(0)) => {
                        return this.die(TransportError::new(ErrorKind::Reset, "connection closed"))
                    }
                    Poll::Ready(Ok(n)) => {
                        this.wpos += n;
                        this.flush = true;
                        progressed = true;
                    }
                    Poll::Ready(Err(e)) => return this.die(io_error(&e)),
                    Poll::Pending => break,
                }
            }
            if this.flush {
                match Pin::new(&mut this.io).poll_flush(cx) {
                    Poll::Ready(Ok(())) => this.flush = false,
                    Poll::Ready(Err(e)) => return this.die(io_error(&e)),
                    Poll::Pending => {}
                }
            }
            let mut read = ReadBuf::new(&mut this.rbuf[this.rend..]);
            match Pin::new(&mut this.io).poll_read(cx, &mut read) {
                Poll::Ready(Ok(())) => {
                    let n = read.filled().len();
                    if n == 0 {
                        return this.die(TransportError::new(
                            ErrorKind::Reset,
                            "connection closed by the server",
                        ));
                    }
                    this.rend += n;
                    progressed = true;
                    if let Err(e) = this.dispatch() {
                        return this.die(e);
                    }
                }
                Poll::Ready(Err(e)) => return this.die(io_error(&e)),
                Poll::Pending => {}
            }
            if !progressed {
                return Poll::Pending;
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl<IO> Drop for Driver<IO> {
    fn drop(&mut self) {
        // The runtime is going away (or the task ended): nobody will answer the streams.
        self.shared.closed.store(true, Ordering::Release);
        let mut st = self.shared.lock();
        let mut wake = Vec::new();
        st.fail(
            TransportError::new(ErrorKind::Reset, "connection task ended"),
            &mut wake,
        );
        drop(st);
        for w in wake {
            w.wake();
        }
    }
}

fn io_error(e: &std::io::Error) -> TransportError {
    use std::io::ErrorKind as K;
    let kind = if e
        .get_ref()
        .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some())
    {
        ErrorKind::Tls
    } else {
        match e.kind() {
            K::TimedOut => ErrorKind::Timeout,
            K::InvalidData => ErrorKind::Protocol,
            _ => ErrorKind::Reset,
        }
    };
    TransportError::new(kind, format!("connection error: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn planned(method: http::Method, path: &str, body: &'static [u8]) -> PreparedRequest {
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::HOST, "ignored.example".parse().unwrap());
        headers.insert(
            http::header::CONNECTION,
            "keep-alive, x-hop".parse().unwrap(),
        );
        headers.insert("x-hop", "1".parse().unwrap());
        headers.insert(http::header::USER_AGENT, "wafload".parse().unwrap());
        headers.insert("x-attack", "' or 1=1 --".parse().unwrap());
        PreparedRequest {
            method,
            path: path.parse().unwrap(),
            headers,
            body: bytes::Bytes::from_static(body),
            source: 0,
            h1_head: Default::default(),
        }
    }

    #[test]
    fn request_block_has_pseudo_headers_no_hop_headers_and_the_id() {
        let head = RequestHead {
            https: true,
            authority: b"waf.test:8443",
            request_id_name: b"x-request-id",
        };
        let want = |id: &str| -> Vec<(String, String)> {
            [
                (":method", "PUT"),
                (":scheme", "https"),
                (":path", "/a?b=1"),
                (":authority", "waf.test:8443"),
                ("user-agent", "wafload"),
                ("x-attack", "' or 1=1 --"),
                ("content-length", "3"),
                ("x-request-id", id),
            ]
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
        };
        let request = planned(http::Method::PUT, "/a?b=1", b"abc");
        // Before the server's SETTINGS: no dynamic table.
        let mut block = Vec::new();
        encode_request(
            &mut block,
            &mut hpack::Encoder::default(),
            &request,
            &head,
            b"r1",
        );
        let decoded = hpack::tests::decode_pairs;
        assert_eq!(decoded(&mut hpack::Decoder::default(), &block), want("r1"));
        assert_eq!(block.last_chunk::<2>(), Some(b"r1"));

        // With it: the server's decoder, fed the blocks in order, sees the same fields, and
        // from the second request on the repeated ones are one-byte indexes.
        let mut encoder = hpack::Encoder::default();
        encoder.set_limit(4096);
        let mut server = hpack::Decoder::default();
        let mut sizes = Vec::new();
        for n in 0..3 {
            let id = format!("r{n}");
            let mut block = Vec::new();
            encode_request(&mut block, &mut encoder, &request, &head, id.as_bytes());
            assert_eq!(decoded(&mut server, &block), want(&id));
            sizes.push(block.len());
        }
        // :authority (13 bytes), user-agent (7) and the id's name (12) are no longer spelled.
        assert!(sizes[1] + 30 < sizes[0], "{sizes:?}");
        assert_eq!(sizes[1], sizes[2]);
    }

    #[test]
    fn large_header_blocks_are_split_into_continuations() {
        let mut out = Vec::new();
        write_headers(&mut out, 3, true, 16_384, |b| {
            b.extend(std::iter::repeat_n(7u8, 40_000))
        });
        let mut at = 0;
        let mut frames = Vec::new();
        while at < out.len() {
            let len = (out[at] as usize) << 16 | (out[at + 1] as usize) << 8 | out[at + 2] as usize;
            frames.push((out[at + 3], out[at + 4], len));
            at += 9 + len;
        }
        assert_eq!(
            frames,
            [
                (frame::HEADERS, frame::END_STREAM, 16_384),
                (frame::CONTINUATION, 0, 16_384),
                (frame::CONTINUATION, frame::END_HEADERS, 40_000 - 2 * 16_384)
            ]
        );
    }

    #[test]
    fn an_http1_answer_is_named_as_such() {
        let e = not_http2(b"HTTP/1.1 400 Bad Request\r\n").unwrap();
        assert_eq!(e.kind, ErrorKind::Protocol);
        assert!(e.message.contains("HTTP/1.x"), "{}", e.message);
        // A SETTINGS frame head is not mistaken for it.
        assert!(not_http2(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).is_none());
    }

    #[test]
    fn padding_is_removed_and_bad_padding_refused() {
        assert_eq!(
            unpad(frame::PADDED, &[2, b'o', b'k', 0, 0]),
            Some(&b"ok"[..])
        );
        assert_eq!(unpad(frame::PADDED, &[9, b'o']), None);
        assert_eq!(unpad(0, b"ok"), Some(&b"ok"[..]));
    }
}
