//! `wafload target --ext-proc-listen …` (calibration ext_proc processor) and
//! `wafload target --gateway …` (gateway EMULATION for tests and demos).

use super::extproc::parse_size;
use super::target::TargetArgs;
use crate::error::Error;
use crate::target::extproc::{start_ext_proc, ExtProcTargetConfig, ProcessorFault};
use crate::target::gateway::{start_gateway, GatewayConfig};
use crate::transport::extproc::{
    BodyMode, ExtProcSettings, ProcessorTls, DEFAULT_BUFFER_LIMIT, DEFAULT_CHUNK_SIZE,
    DEFAULT_MESSAGE_TIMEOUT,
};
use clap::Args;
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Debug, Args, Clone, Default)]
#[command(next_help_heading = "ext_proc (Envoy external processor)")]
pub struct ExtProcTargetFlags {
    /// Serve the calibration ext_proc processor (gRPC, h2c; --tls for TLS) on ADDR instead
    /// of the HTTP target. Markers, --monitoring and --log apply.
    #[arg(long, value_name = "ADDR")]
    pub ext_proc_listen: Option<SocketAddr>,
    /// Processor delay for request_headers, e.g. 1ms.
    #[arg(long, value_name = "DURATION", value_parser = crate::profile::parse_duration)]
    pub headers_delay: Option<Duration>,
    /// Processor delay for each request_body message, e.g. 2ms.
    #[arg(long, value_name = "DURATION", value_parser = crate::profile::parse_duration)]
    pub body_delay: Option<Duration>,
    /// Processor delay for response_headers and each response_body message.
    #[arg(long, value_name = "DURATION", value_parser = crate::profile::parse_duration)]
    pub response_delay: Option<Duration>,
    /// Processor fault on a share of streams: grpc-error, stall (past the message timeout)
    /// or reset (HTTP/2 RST_STREAM).
    #[arg(long, value_enum, value_name = "KIND")]
    pub fault: Option<ProcessorFault>,
    /// Share of streams that get --fault (default 1).
    #[arg(long, value_name = "SHARE", value_parser = super::run::parse_share)]
    pub fault_share: Option<f64>,
    /// How long a stalled stream is held (default 1s).
    #[arg(long, value_name = "DURATION", value_parser = crate::profile::parse_duration)]
    pub stall_for: Option<Duration>,

    /// Serve a gateway EMULATION on --listen (not a production gateway): each request runs
    /// the ext_proc exchange against --ext-proc as Envoy would, then goes to --upstream.
    #[arg(long, requires_all = ["ext_proc", "upstream"])]
    pub gateway: bool,
    /// Gateway emulation: the processor, grpc://HOST:PORT or grpcs://HOST:PORT.
    #[arg(long, value_name = "URL", requires = "gateway")]
    pub ext_proc: Option<String>,
    /// Gateway emulation: the application, http://HOST:PORT.
    #[arg(long, value_name = "URL", requires = "gateway")]
    pub upstream: Option<String>,
    /// Gateway emulation: request/response body mode.
    #[arg(long, value_enum, default_value_t = BodyMode::Buffered, value_name = "MODE")]
    pub body_mode: BodyMode,
    /// Gateway emulation: STREAMED chunk size (default 16k).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub chunk_size: Option<usize>,
    /// Gateway emulation: message_timeout (default 200ms).
    #[arg(long, value_name = "DURATION", value_parser = super::run::parse_duration_flag)]
    pub message_timeout: Option<Duration>,
    /// Gateway emulation: let requests through on processor errors and timeouts.
    #[arg(long)]
    pub failure_mode_allow: bool,
    /// Gateway emulation: also send response_headers/response_body to the processor.
    #[arg(long)]
    pub response_phases: bool,
    /// Gateway emulation: trust any processor certificate.
    #[arg(long)]
    pub ext_proc_insecure: bool,
    /// Gateway emulation: PEM CA file for the processor's certificate.
    #[arg(long, value_name = "FILE")]
    pub ext_proc_ca_file: Option<std::path::PathBuf>,
}

impl ExtProcTargetFlags {
    pub fn wanted(&self) -> bool {
        self.gateway || self.ext_proc_listen.is_some()
    }
}

/// Serves the processor or the gateway emulation until Ctrl-C.
pub async fn execute(args: &TargetArgs) -> Result<u8, Error> {
    let x = &args.ext_proc;
    if x.gateway {
        let config = GatewayConfig {
            listen: args.listen,
            ext_proc: x.ext_proc.clone().unwrap_or_default(),
            ext_proc_tls: ProcessorTls {
                insecure: x.ext_proc_insecure,
                ca_file: x.ext_proc_ca_file.clone(),
                sni: None,
            },
            ext_proc_connections: 2,
            upstream: x.upstream.clone().unwrap_or_default(),
            settings: ExtProcSettings {
                request_body_mode: x.body_mode,
                response_body_mode: x.body_mode,
                chunk_size: x.chunk_size.unwrap_or(DEFAULT_CHUNK_SIZE).max(1),
                response_phases: x.response_phases,
                message_timeout: x.message_timeout.unwrap_or(DEFAULT_MESSAGE_TIMEOUT),
                failure_mode_allow: x.failure_mode_allow,
                buffer_limit: DEFAULT_BUFFER_LIMIT,
                ..ExtProcSettings::default()
            },
        };
        let running = start_gateway(config)
            .await
            .map_err(|e| Error::flag("--gateway", e.to_string()))?;
        println!(
            "gateway EMULATION (for measuring on one machine, not a production gateway) on {} → ext_proc {} ({} body) → upstream {}",
            running.url(),
            x.ext_proc.as_deref().unwrap_or(""),
            x.body_mode.as_str(),
            x.upstream.as_deref().unwrap_or("")
        );
        let _ = tokio::signal::ctrl_c().await;
        let stats = running.stats();
        running.shutdown().await;
        eprintln!("gateway emulation: {stats:?}");
        return Ok(0);
    }
    let listen = x.ext_proc_listen.expect("wanted() checked");
    let mut config = ExtProcTargetConfig {
        listen,
        tls: args.tls,
        monitoring: args.monitoring,
        log_path: args.log.clone(),
        ..ExtProcTargetConfig::default()
    };
    if !args.markers.is_empty() {
        config.markers = args.markers.clone();
    }
    config.request_headers_delay = x.headers_delay.unwrap_or_default();
    config.request_body_delay = x.body_delay.unwrap_or_default();
    config.response_headers_delay = x.response_delay.unwrap_or_default();
    config.response_body_delay = x.response_delay.unwrap_or_default();
    config.fault = x.fault;
    if let Some(s) = x.fault_share {
        config.fault_share = s;
    }
    if let Some(d) = x.stall_for {
        config.stall_for = d;
    }
    if !listen.ip().is_loopback() {
        eprintln!("warning: listening on {listen} (not loopback): the calibration processor is a test server");
    }
    let running = start_ext_proc(config)
        .await
        .map_err(|e| Error::flag("--ext-proc-listen", e.to_string()))?;
    println!(
        "calibration ext_proc processor listening on {} (delays: headers {:?}, body {:?} per message{})",
        running.url(),
        x.headers_delay.unwrap_or_default(),
        x.body_delay.unwrap_or_default(),
        if args.monitoring { ", monitoring mode" } else { "" }
    );
    if let Some(pem) = &running.cert_pem {
        println!("self-signed certificate (trust with --ca-file, or use --insecure):\n{pem}");
    }
    let _ = tokio::signal::ctrl_c().await;
    let stats = running.stats();
    running.shutdown().await;
    eprintln!("calibration processor: {stats:?}");
    Ok(0)
}
