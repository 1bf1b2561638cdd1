//! Command-line interface: clap definitions (one file per subcommand) and dispatch.
//! Turns flags into library calls; all real work happens in the library modules.

pub mod analysis_flags;
pub mod capacity;
pub mod compare;
pub mod corpus;
pub mod demo;
pub mod k8s;
pub mod merge;
pub mod overhead;
pub mod progress;
pub mod report;
pub mod run;
pub mod sweep;
pub mod target;
pub mod traffic;

use crate::error::{Error, EXIT_INTERRUPTED};
use clap::{Parser, Subcommand};
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

/// Load-test a web application firewall: replay attack corpora (gotestwaf format) mixed
/// with benign traffic at an open-loop rate, classify every response, and record latency
/// from the intended send time.
#[derive(Debug, Parser)]
#[command(name = "wafload", version, about, long_about = None, propagate_version = true)]
#[command(
    after_help = "Start with `wafload demo`: it runs a 10-second benchmark against the \
built-in calibration target on loopback.\nExit codes: 0 ok, 1 a check failed, 2 bad usage or input, 130 interrupted."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a benchmark against a target (profile and/or flags).
    Run(Box<run::RunArgs>),
    /// Start the calibration target on loopback and run a short benchmark against it.
    Demo(demo::DemoArgs),
    /// Serve the calibration target: a WAF stand-in with known rules and delays.
    Target(target::TargetArgs),
    /// Charts, HTML, Markdown and JSON report of a finished run (from its results alone).
    Report(report::ReportArgs),
    /// Compare two runs (or two profiles, interleaved) with confidence intervals.
    Compare(compare::CompareArgs),
    /// Latency the WAF adds: WAF path vs baseline path, interleaved.
    Overhead(overhead::OverheadArgs),
    /// Find the highest rate that meets an SLO, and detection at each step.
    Capacity(capacity::CapacityArgs),
    /// Latency per request-body size (benign and padded attacks), one or two profiles.
    Sweep(sweep::SweepArgs),
    /// Merge shard results (from `run --shard I/N`) into one result.
    Merge(merge::MergeArgs),
    /// Kubernetes manifests (ConfigMap + Indexed Job) for a run sharded over N pods.
    K8s(k8s::K8sArgs),
    /// Inspect a gotestwaf-format corpus.
    #[command(subcommand)]
    Corpus(corpus::CorpusCommand),
    /// Import your own traffic (HAR, access logs, vegeta targets); inspect OpenAPI documents.
    #[command(subcommand)]
    Traffic(traffic::TrafficCommand),
}

/// Entry point used by `main.rs`.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("wafload-worker")
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(crate::error::EXIT_INPUT);
        }
    };
    let result = runtime.block_on(dispatch(cli));
    // Don't wait for connection tasks still draining in the background.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

async fn dispatch(cli: Cli) -> Result<u8, Error> {
    match cli.command {
        Command::Run(args) => run::execute(*args).await,
        Command::Demo(args) => demo::execute(args).await,
        Command::Target(args) => target::execute(args).await,
        Command::Corpus(cmd) => corpus::execute(cmd),
        Command::Report(args) => report::execute(args),
        Command::Compare(args) => compare::execute(args).await,
        Command::Overhead(args) => overhead::execute(args).await,
        Command::Capacity(args) => capacity::execute(args).await,
        Command::Sweep(args) => sweep::execute(args).await,
        Command::Merge(args) => merge::execute(args),
        Command::K8s(args) => k8s::execute(args),
        Command::Traffic(cmd) => traffic::execute(cmd),
    }
}

/// A token cancelled on SIGINT or SIGTERM; the returned flag tells which arrived.
pub fn cancel_on_signals() -> (
    CancellationToken,
    std::sync::Arc<std::sync::atomic::AtomicU8>,
) {
    let token = CancellationToken::new();
    let code = std::sync::Arc::new(std::sync::atomic::AtomicU8::new(0));
    let t = token.clone();
    let c = code.clone();
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let mut term = match signal(SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return,
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => c.store(EXIT_INTERRUPTED, std::sync::atomic::Ordering::SeqCst),
                _ = term.recv() => c.store(143, std::sync::atomic::Ordering::SeqCst),
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            c.store(EXIT_INTERRUPTED, std::sync::atomic::Ordering::SeqCst);
        }
        t.cancel();
    });
    (token, code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// clap's own consistency checks (flag names, value parsers vs field types) for every
    /// subcommand; catches definition mistakes that would otherwise panic at run time.
    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
