//! `wafload run --ext-proc …`: flags for direct ext_proc mode (flattened into `run`).

use crate::error::Error;
use crate::run::extproc::ExtProcTarget;
use crate::transport::extproc::{
    BodyMode, ExtProcSettings, ProcessorTls, DEFAULT_BUFFER_LIMIT, DEFAULT_CHUNK_SIZE,
    DEFAULT_MESSAGE_TIMEOUT,
};
use clap::Args;
use std::time::Duration;

/// Application URL used for `:authority`/`:path` when `--ext-proc` is given without `--target`.
pub const DEFAULT_APPLICATION_URL: &str = "http://localhost/";

#[derive(Debug, Args, Clone, Default)]
#[command(next_help_heading = "Direct ext_proc mode (no Envoy in the loop)")]
pub struct ExtProcFlags {
    /// Send every request to this Envoy external processor as one ExternalProcessor/Process
    /// gRPC stream instead of over HTTP: grpc://HOST:PORT (h2c) or grpcs://HOST:PORT (TLS;
    /// --insecure, --ca-file and --sni apply). --target then only names the application
    /// (:authority, base path); default http://localhost/.
    #[arg(long = "ext-proc", value_name = "URL")]
    pub url: Option<String>,
    /// request_body_mode to emulate.
    #[arg(long, value_enum, default_value_t = BodyMode::Buffered, value_name = "MODE")]
    pub body_mode: BodyMode,
    /// response_body_mode to emulate (default: same as --body-mode).
    #[arg(long, value_enum, value_name = "MODE")]
    pub response_body_mode: Option<BodyMode>,
    /// STREAMED chunk size, e.g. 16k, 64KiB.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub chunk_size: Option<usize>,
    /// Also send response_headers (and the response body per its mode) of a synthetic
    /// upstream response.
    #[arg(long)]
    pub response_phases: bool,
    /// Body size of the synthetic upstream response (default 1k).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub response_body_size: Option<usize>,
    /// Envoy's message_timeout: the longest wait for one reply (default 200ms); then 504.
    #[arg(long, value_name = "DURATION", value_parser = super::run::parse_duration_flag)]
    pub message_timeout: Option<Duration>,
    /// Envoy's failure_mode_allow: processor errors and timeouts let the request through.
    #[arg(long)]
    pub failure_mode_allow: bool,
    /// BUFFERED body limit (default 1MiB); larger bodies are answered 413 without being sent.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub buffer_limit: Option<usize>,
    /// HTTP/2 connections to the processor (Envoy keeps about one per worker thread).
    #[arg(long, default_value_t = 2, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub ext_proc_connections: u64,
}

impl ExtProcFlags {
    /// The emulated filter settings these flags describe.
    pub fn settings(&self) -> ExtProcSettings {
        ExtProcSettings {
            request_body_mode: self.body_mode,
            response_body_mode: self.response_body_mode.unwrap_or(self.body_mode),
            chunk_size: self.chunk_size.unwrap_or(DEFAULT_CHUNK_SIZE),
            response_phases: self.response_phases,
            message_timeout: self.message_timeout.unwrap_or(DEFAULT_MESSAGE_TIMEOUT),
            failure_mode_allow: self.failure_mode_allow,
            buffer_limit: self.buffer_limit.unwrap_or(DEFAULT_BUFFER_LIMIT),
            response_status: 200,
            response_body_size: self.response_body_size.unwrap_or(1024),
        }
    }

    /// The direct-mode target, or `None` when `--ext-proc` was not given.
    pub fn target(&self, tls: ProcessorTls) -> Result<Option<ExtProcTarget>, Error> {
        let Some(url) = &self.url else {
            return Ok(None);
        };
        if self.chunk_size == Some(0) {
            return Err(Error::flag("--chunk-size", "must be at least 1 byte"));
        }
        Ok(Some(ExtProcTarget {
            url: url.clone(),
            connections: self.ext_proc_connections as usize,
            tls,
            settings: self.settings(),
        }))
    }
}

/// Parses a byte size: `512`, `16k`, `16KiB`, `1m`, `1MiB` (k/m are powers of 1024).
pub fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: usize = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a size like 512, 16k or 1MiB"))?;
    let factor = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1024,
        "m" | "mb" | "mib" => 1024 * 1024,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (use k or m)")),
    };
    n.checked_mul(factor)
        .ok_or_else(|| format!("{s:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512"), Ok(512));
        assert_eq!(parse_size("16k"), Ok(16384));
        assert_eq!(parse_size("16KiB"), Ok(16384));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert!(parse_size("1q").is_err());
        assert!(parse_size("k").is_err());
    }
}
