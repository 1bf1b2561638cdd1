//! `wafload target`: serve the calibration target until Ctrl-C.

use crate::error::Error;
use crate::target::{self, Delay, Faults, Pause, TargetConfig};
use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Args)]
#[command(
    after_help = "The target blocks (403 + block page) any request whose URL, headers or body \
contain one of its markers (case-insensitive, also after percent-decoding), and adds a known delay. \
Example: wafload target --listen 127.0.0.1:8080 --delay 2ms --marker '<script' --marker 'union select'"
)]
pub struct TargetArgs {
    /// Address to listen on (loopback by default).
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    pub listen: SocketAddr,
    /// Full configuration as YAML (see TargetConfig); flags below override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Serve HTTPS (and h2 via ALPN) with a self-signed certificate generated at start.
    #[arg(long)]
    pub tls: bool,
    /// Marker that makes a request malicious (repeatable; replaces the default list).
    #[arg(long = "marker", value_name = "TEXT")]
    pub markers: Vec<String>,
    /// Fixed delay added to every response, e.g. 2ms.
    #[arg(long, value_name = "DURATION", value_parser = crate::profile::parse_duration)]
    pub delay: Option<Duration>,
    /// Never block; log would-blocks (JSON lines with the request id) to --log.
    #[arg(long)]
    pub monitoring: bool,
    /// Where monitoring mode logs would-blocks.
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// Share of requests answered 500.
    #[arg(long, value_name = "SHARE", value_parser = super::run::parse_share)]
    pub error_share: Option<f64>,
    /// Share of requests answered with Envoy's ext_proc error 500.
    #[arg(long, value_name = "SHARE", value_parser = super::run::parse_share)]
    pub ext_proc_error_share: Option<f64>,
    /// Share of requests whose connection is reset.
    #[arg(long, value_name = "SHARE", value_parser = super::run::parse_share)]
    pub reset_share: Option<f64>,
    /// Reset the connection instead of answering 403 to attacks.
    #[arg(long)]
    pub reset_attacks: bool,
    /// Stall the whole target for LENGTH starting AFTER its start: "AFTER,LENGTH", e.g. 2s,1s.
    #[arg(long, value_name = "AFTER,LENGTH")]
    pub pause: Option<String>,
    /// Seed for delays and fault draws.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[command(flatten)]
    pub ext_proc: super::extproc_target::ExtProcTargetFlags,
}

pub async fn execute(args: TargetArgs) -> Result<u8, Error> {
    if args.ext_proc.wanted() {
        return super::extproc_target::execute(&args).await;
    }
    let mut config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
            serde_yaml_ng::from_str::<TargetConfig>(&text)
                .map_err(|e| Error::from(crate::profile::yaml_error(path, &e)))?
        }
        None => TargetConfig::default(),
    };
    config.listen = args.listen;
    config.tls |= args.tls;
    config.seed = args.seed;
    if !args.markers.is_empty() {
        config.markers = args.markers.clone();
    }
    if let Some(d) = args.delay {
        config.delay = Delay::Fixed(d);
    }
    config.monitoring |= args.monitoring;
    if args.log.is_some() {
        config.log_path = args.log.clone();
    }
    let f: &mut Faults = &mut config.faults;
    if let Some(s) = args.error_share {
        f.error_500_share = s;
    }
    if let Some(s) = args.ext_proc_error_share {
        f.ext_proc_error_share = s;
    }
    if let Some(s) = args.reset_share {
        f.reset_share = s;
    }
    f.reset_attacks |= args.reset_attacks;
    if let Some(p) = &args.pause {
        let (a, l) = p
            .split_once(',')
            .ok_or_else(|| Error::flag("--pause", "expected AFTER,LENGTH like 2s,1s"))?;
        let parse =
            |s: &str| crate::profile::parse_duration(s).map_err(|e| Error::flag("--pause", e));
        f.pause = Some(Pause {
            after: parse(a)?,
            length: parse(l)?,
        });
    }
    if !config.listen.ip().is_loopback() {
        eprintln!(
            "warning: listening on {} (not loopback): the calibration target is a test server",
            config.listen
        );
    }
    let running = target::start(config)
        .await
        .map_err(|e| Error::flag("--listen", e.to_string()))?;
    println!("calibration target listening on {}", running.url());
    if let Some(pem) = &running.cert_pem {
        println!("self-signed certificate (trust with --ca-file, or use --insecure):\n{pem}");
    }
    let _ = tokio::signal::ctrl_c().await;
    let stats = running.stats();
    running.shutdown().await;
    eprintln!(
        "served {} requests: {} blocked, {} passed",
        stats.requests, stats.blocked, stats.passed
    );
    Ok(0)
}
