//! `wafload run`: a benchmark from a profile, with every profile value overridable.

use crate::error::Error;
use crate::profile::{parse_duration, HttpVersion, Overrides, Profile};
use crate::report::terminal;
use crate::run::{run, RunOptions};
use clap::Args;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

#[derive(Debug, Args, Clone, Default)]
pub struct TargetFlags {
    /// Target base URL (http:// or https://); its path prefixes every corpus request.
    #[arg(long, value_name = "URL")]
    pub target: Option<String>,
    /// Host header to send (e.g. the gateway's virtual host) instead of the URL's.
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,
    /// TLS server name (SNI) instead of the URL's host.
    #[arg(long, value_name = "NAME")]
    pub sni: Option<String>,
    /// Accept any TLS certificate (self-signed lab or staging gateways).
    #[arg(long)]
    pub insecure: bool,
    /// PEM file with CA certificates to trust in addition to the public roots.
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// HTTP version: h1, h2 (h2c in clear text), or auto (ALPN over TLS, h1 in clear).
    #[arg(long, value_enum, value_name = "VERSION")]
    pub http: Option<HttpVersion>,
    /// Extra header for every request, "Name: value" (repeatable).
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE", value_parser = parse_header)]
    pub headers: Vec<(String, String)>,
}

#[derive(Debug, Args, Clone, Default)]
pub struct LoadFlags {
    /// Corpus root(s) in gotestwaf format (repeatable); replaces the profile's list.
    #[arg(long, value_name = "DIR")]
    pub corpus: Vec<PathBuf>,
    /// Share of benign requests, 0..1 (0.8 = 80 % benign). Without it every corpus
    /// request is sent once per pass.
    #[arg(long, value_name = "SHARE", value_parser = parse_share)]
    pub benign_share: Option<f64>,
    /// Open-loop rate in requests per second (replaces the profile's stages).
    #[arg(long, value_name = "REQ/S", value_parser = parse_rate)]
    pub rate: Option<f64>,
    /// How long to send, e.g. 30s, 2m.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_flag)]
    pub duration: Option<Duration>,
    /// Stop after this many requests.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub requests: Option<u64>,
    /// Maximum open connections (HTTP/1.1: also the maximum requests in flight). They are
    /// all opened before the run's clock starts.
    #[arg(short = 'c', long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..100_000))]
    pub connections: Option<u64>,
    /// Concurrent HTTP/2 streams per connection (HTTP/2 in flight = connections × streams).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub streams: Option<u64>,
    /// Engine threads sending requests, like wrk's -t [default: one per core]. Against a
    /// target on this same machine (loopback), fewer threads than cores leave it CPU and
    /// can be faster. At a --rate, each thread paces every N-th request on its own share
    /// of the connections (as wrk2 does), so give each thread several connections.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub threads: Option<u64>,
    /// HTTP/1.1 client: wire (lean, default) or hyper — for cross-checking answers.
    #[arg(long, value_name = "ENGINE")]
    pub h1_engine: Option<crate::transport::http::H1Engine>,
    /// HTTP/2 client: wire (lean, default) or h2 (the h2 crate) — for cross-checking.
    #[arg(long, value_name = "ENGINE")]
    pub h2_engine: Option<crate::transport::http::H2Engine>,
    /// Per-request timeout, e.g. 5s.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_flag)]
    pub timeout: Option<Duration>,
    /// Seed for shuffling and random parameter names (same seed, same requests).
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Closed loop: each connection sends as soon as its previous answer arrived.
    #[arg(long)]
    pub max: bool,
    /// Send one plain GET of the target URL instead of a corpus (raw throughput, like wrk).
    #[arg(long)]
    pub plain: bool,
    /// Count connection resets as blocks (WAFs that drop attacks).
    #[arg(long)]
    pub reset_is_block: bool,
    /// Header carrying the request id `<run>-<n>` (default x-request-id).
    #[arg(long, value_name = "NAME")]
    pub request_id_header: Option<String>,
    /// Your own traffic file from `wafload traffic import` (repeatable, weight 1 each);
    /// replaces the profile's benign list.
    #[arg(long, value_name = "FILE")]
    pub benign: Vec<PathBuf>,
    /// Replay the traffic files at their recorded times divided by this factor (2.0 =
    /// twice as fast) instead of at a rate.
    #[arg(long, value_name = "FACTOR", value_parser = parse_replay_speed)]
    pub replay_speed: Option<f64>,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  wafload run --profile profiles/lab-waf.yaml\n  wafload run --target https://gw.example.test/ --insecure --corpus payloads --benign-share 0.8 --rate 200 --duration 60s\n  wafload run --profile p.yaml --max --connections 64 --duration 30s"
)]
pub struct RunArgs {
    /// Profile file (YAML); flags override its values.
    #[arg(short, long, value_name = "FILE")]
    pub profile: Option<PathBuf>,
    #[command(flatten)]
    pub target: TargetFlags,
    #[command(flatten)]
    pub load: LoadFlags,
    #[command(flatten)]
    pub ext_proc: super::extproc::ExtProcFlags,
    #[command(flatten)]
    pub monitor: super::doctor::MonitorFlags,
    /// Skip the preflight checks (`wafload doctor`'s probes, printed as warnings).
    #[arg(long)]
    pub no_preflight: bool,
    /// Folder for run folders (default: results).
    #[arg(long, value_name = "DIR")]
    pub results_dir: Option<PathBuf>,
    /// Write this run's results into exactly this folder.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Print only the results folder.
    #[arg(short, long)]
    pub quiet: bool,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Also write the report (HTML, Markdown, JSON, SVG/PNG charts) into <run>/report.
    #[arg(long)]
    pub report: bool,
    /// Send only shard I of N (0-based) of the schedule: rate / N, every N-th slot.
    /// Merge the shards' results with `wafload merge`.
    #[arg(long, value_name = "I/N", value_parser = crate::schedule::Shard::parse)]
    pub shard: Option<crate::schedule::Shard>,
    /// Start the schedule at this wall-clock time (RFC 3339, Unix seconds, or +30s from now);
    /// all shards of a run use the same value so their load lines up.
    #[arg(long, value_name = "TIME", value_parser = parse_start_at)]
    pub start_at: Option<std::time::SystemTime>,
    /// SLO gate, e.g. "p99<50ms,p999<200ms,errors<0.1%,detection>=0.95,fp<=0.01":
    /// exit 1 when any term is missed (the failing terms are listed).
    #[arg(long, value_name = "TERMS", value_parser = super::analysis_flags::parse_slo)]
    pub slo: Option<crate::analysis::slo::Slo>,
}

impl TargetFlags {
    pub fn apply_to(&self, o: &mut Overrides) {
        o.target = self.target.clone();
        o.host = self.host.clone();
        o.sni = self.sni.clone();
        o.insecure = self.insecure;
        o.ca_file = self.ca_file.clone();
        o.http = self.http;
        o.headers = self.headers.clone();
    }
}

impl LoadFlags {
    pub fn apply_to(&self, o: &mut Overrides) {
        o.corpus = self.corpus.clone();
        o.benign_share = self.benign_share;
        o.rate = self.rate;
        o.duration = self.duration;
        o.requests = self.requests;
        o.connections = self.connections.map(|c| c as usize);
        o.streams = self.streams.map(|c| c as usize);
        o.threads = self.threads.map(|c| c as usize);
        o.h1_engine = self.h1_engine;
        o.h2_engine = self.h2_engine;
        o.timeout = self.timeout;
        o.seed = self.seed;
        o.max = self.max;
        o.plain = self.plain;
        o.reset_is_block = self.reset_is_block;
        o.request_id_header = self.request_id_header.clone();
        o.benign = self.benign.clone();
        o.replay_speed = self.replay_speed;
    }
}

/// The profile and the flags that override it, shared by the commands that run traffic
/// (overhead, capacity, sweep).
#[derive(Debug, Args)]
pub struct ProfileArgs {
    /// Profile file (YAML); flags override its values.
    #[arg(short, long, value_name = "FILE")]
    pub profile: Option<PathBuf>,
    #[command(flatten)]
    pub target: TargetFlags,
    #[command(flatten)]
    pub load: LoadFlags,
    /// Folder for run folders (default: results).
    #[arg(long, value_name = "DIR")]
    pub results_dir: Option<PathBuf>,
}

impl ProfileArgs {
    /// The profile with every flag applied, and where it came from.
    pub fn resolve(&self) -> Result<(Profile, String), Error> {
        let mut overrides = Overrides::default();
        self.target.apply_to(&mut overrides);
        self.load.apply_to(&mut overrides);
        overrides.results_dir = self.results_dir.clone();
        resolve_profile(self.profile.as_ref(), &overrides)
    }
}

/// Loads the profile (if any) and applies the flags; returns it with its origin label.
pub fn resolve_profile(
    path: Option<&PathBuf>,
    overrides: &Overrides,
) -> Result<(Profile, String), Error> {
    let (mut profile, origin) = match path {
        Some(p) => (Profile::load(p)?, p.display().to_string()),
        None => (Profile::default(), "the profile".to_string()),
    };
    profile.apply(overrides);
    profile.validate(std::path::Path::new(&origin))?;
    Ok((profile, origin))
}

pub async fn execute(args: RunArgs) -> Result<u8, Error> {
    let mut overrides = Overrides::default();
    args.target.apply_to(&mut overrides);
    args.load.apply_to(&mut overrides);
    args.monitor.apply_to(&mut overrides);
    overrides.results_dir = args.results_dir.clone();
    let ext_proc = args
        .ext_proc
        .target(crate::transport::extproc::ProcessorTls {
            insecure: args.target.insecure,
            ca_file: args.target.ca_file.clone(),
            sni: args.target.sni.clone(),
        })?;
    if ext_proc.is_some() && overrides.target.is_none() && args.profile.is_none() {
        overrides.target = Some(super::extproc::DEFAULT_APPLICATION_URL.to_string());
    }
    let (profile, origin) = resolve_profile(args.profile.as_ref(), &overrides)?;
    // The preflight probes an HTTP target; direct ext_proc mode has none (it connects first).
    if !args.no_preflight && ext_proc.is_none() {
        super::doctor::preflight(&profile, &origin).await;
    }
    let (cancel, signal) = super::cancel_on_signals();
    let options = RunOptions {
        origin,
        out: args.out.clone(),
        progress: !args.quiet && !args.json,
        shard: args.shard.unwrap_or_default(),
        start_at: args.start_at,
    };
    let outcome = match &ext_proc {
        Some(x) => crate::run::extproc::run_ext_proc(&profile, &options, x, cancel).await?,
        None => run(&profile, &options, cancel).await?,
    };
    print_outcome(&outcome, args.quiet, args.json);
    if args.report {
        let written = crate::report::generate(&outcome.dir, &Default::default())?;
        if !args.json {
            super::report::print_written(&written, args.quiet);
        }
    }
    let code = exit_code_after_run(&outcome.summary, signal.load(Ordering::SeqCst));
    if code != 0 {
        return Ok(code);
    }
    Ok(super::analysis_flags::gate(
        args.slo.as_ref(),
        &outcome.summary,
        args.quiet || args.json,
    ))
}

/// 130/143 after a signal, 2 when the target died mid-run, else 0.
pub fn exit_code_after_run(summary: &crate::results::Summary, signal: u8) -> u8 {
    if signal != 0 {
        return signal;
    }
    match &summary.run.interrupted {
        Some(_) => crate::error::EXIT_INPUT,
        None => 0,
    }
}

pub fn print_outcome(outcome: &crate::run::RunOutcome, quiet: bool, json: bool) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&outcome.summary).unwrap_or_default()
        );
    } else if quiet {
        println!("{}", outcome.dir.display());
    } else {
        print!("{}", terminal::render(&outcome.summary, &outcome.dir));
    }
}

pub fn parse_header(s: &str) -> Result<(String, String), String> {
    let (name, value) = s
        .split_once(':')
        .ok_or_else(|| format!("{s:?} is not \"Name: value\""))?;
    let name = name.trim();
    if name.is_empty() || http::HeaderName::from_bytes(name.as_bytes()).is_err() {
        return Err(format!("{name:?} is not a valid header name"));
    }
    Ok((name.to_string(), value.trim().to_string()))
}

pub fn parse_rate(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of requests per second"))?;
    if v.is_finite() && v > 0.0 && v <= 10_000_000.0 {
        Ok(v)
    } else {
        Err(format!(
            "{s} must be a positive number of requests per second (at most 1e7)"
        ))
    }
}

pub fn parse_replay_speed(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
    if v.is_finite() && v > 0.0 && v <= 1e6 {
        Ok(v)
    } else {
        Err(format!(
            "{s} must be a positive factor (2.0 = twice as fast)"
        ))
    }
}

pub fn parse_share(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{s} must be between 0 and 1 (0.8 = 80 % benign)"))
    }
}

pub fn parse_duration_flag(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d.is_zero() {
        return Err("must be greater than 0".into());
    }
    Ok(d)
}

/// "2026-11-29T10:00:00Z", "1795000000" (Unix seconds) or "+30s" (from now).
pub fn parse_start_at(s: &str) -> Result<std::time::SystemTime, String> {
    let t = s.trim();
    if let Some(rel) = t.strip_prefix('+') {
        return Ok(std::time::SystemTime::now() + parse_duration(rel)?);
    }
    if let Ok(secs) = t.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            return Ok(std::time::UNIX_EPOCH + Duration::from_secs_f64(secs));
        }
    }
    chrono::DateTime::parse_from_rfc3339(t)
        .map(std::time::SystemTime::from)
        .map_err(|e| format!("{s:?} is not RFC 3339, Unix seconds or +DURATION: {e}"))
}
