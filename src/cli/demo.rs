//! `wafload demo`: the calibration target in-process on a free loopback port, and a short
//! benchmark of the embedded corpus against it. The README's first command.

use super::run::{exit_code_after_run, print_outcome};
use crate::error::Error;
use crate::profile::{Overrides, Profile};
use crate::run::{run, RunOptions};
use crate::target::{self, Delay, TargetConfig};
use clap::Args;
use include_dir::{include_dir, Dir};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Our own corpus, embedded so the demo runs from any directory.
pub static EMBEDDED_PAYLOADS: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/payloads");
/// The demo profile, embedded.
pub const DEMO_PROFILE: &str = include_str!("../../profiles/demo.yaml");

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// How long to send (default from the demo profile: 10s).
    #[arg(long, value_name = "DURATION", value_parser = super::run::parse_duration_flag)]
    pub duration: Option<Duration>,
    /// Open-loop rate (default 200 req/s).
    #[arg(long, value_name = "REQ/S", value_parser = super::run::parse_rate)]
    pub rate: Option<f64>,
    /// Delay the calibration target adds to every response, e.g. 2ms (default: uniform 1–3 ms).
    #[arg(long, value_name = "DURATION", value_parser = crate::profile::parse_duration)]
    pub target_delay: Option<Duration>,
    /// Folder for run folders (default: results).
    #[arg(long, value_name = "DIR")]
    pub results_dir: Option<PathBuf>,
    /// Print only the results folder.
    #[arg(short, long)]
    pub quiet: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
    /// Skip the report (HTML, Markdown, JSON, SVG/PNG charts) written into <run>/report.
    #[arg(long)]
    pub no_report: bool,
    /// Run the ext_proc topology instead: wafload → gateway EMULATION → calibration ext_proc
    /// processor (the WAF) → calibration target as the application, all on loopback.
    #[arg(long)]
    pub ext_proc: bool,
    /// With --ext-proc: the body mode the gateway emulation uses.
    #[arg(long, value_enum, default_value_t = crate::transport::extproc::BodyMode::Buffered, value_name = "MODE")]
    pub body_mode: crate::transport::extproc::BodyMode,
}

/// Writes the embedded corpus into `dir` (a temporary folder) and returns its root.
pub fn extract_payloads(dir: &Path) -> Result<PathBuf, Error> {
    let root = dir.join("payloads");
    write_dir(&EMBEDDED_PAYLOADS, &root)?;
    Ok(root)
}

fn write_dir(d: &Dir<'_>, root: &Path) -> Result<(), Error> {
    for file in d.files() {
        let path = root.join(file.path());
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        std::fs::write(&path, file.contents()).map_err(|e| Error::io(&path, e))?;
    }
    for sub in d.dirs() {
        write_dir(sub, root)?;
    }
    Ok(())
}

pub async fn execute(args: DemoArgs) -> Result<u8, Error> {
    if args.ext_proc {
        return super::extproc_demo::execute(args).await;
    }
    let delay = match args.target_delay {
        Some(d) => Delay::Fixed(d),
        None => Delay::Uniform {
            min: Duration::from_millis(1),
            max: Duration::from_millis(3),
        },
    };
    let config = TargetConfig {
        delay: delay.clone(),
        ..TargetConfig::default()
    };
    let markers = config.markers.len();
    let running = target::start(config)
        .await
        .map_err(|e| Error::Other(e.to_string()))?;
    let temp = tempfile::tempdir().map_err(|e| Error::io(std::env::temp_dir(), e))?;
    let profile = demo_profile(running.url(), temp.path(), &args)?;
    if !args.quiet && !args.json {
        eprintln!(
            "calibration target on {} — blocks requests containing any of {markers} attack markers, adds {} to every response",
            running.url(),
            describe(&delay)
        );
    }
    let (cancel, signal) = super::cancel_on_signals();
    let result = run(&profile, &demo_options(&args), cancel).await;
    running.shutdown().await;
    finish(
        result,
        &args,
        signal.load(Ordering::SeqCst),
        "next: wafload run --profile profiles/lab-waf.yaml (a real nginx + ModSecurity + CRS), or point --target at your gateway",
    )
}

/// The embedded demo profile aimed at `url`, with the embedded corpus written into `temp`
/// and the demo's flags applied.
pub fn demo_profile(url: String, temp: &Path, args: &DemoArgs) -> Result<Profile, Error> {
    let corpus = extract_payloads(temp)?;
    let mut profile = Profile::parse(DEMO_PROFILE, Path::new("profiles/demo.yaml"))?;
    profile.apply(&Overrides {
        target: Some(url),
        corpus: vec![corpus],
        rate: args.rate,
        duration: args.duration,
        results_dir: args.results_dir.clone(),
        ..Overrides::default()
    });
    Ok(profile)
}

/// How the demo runs: progress on a terminal, a fresh results folder.
pub fn demo_options(args: &DemoArgs) -> RunOptions {
    RunOptions {
        origin: "the demo profile".into(),
        out: None,
        progress: !args.quiet && !args.json,
        shard: Default::default(),
        start_at: None,
    }
}

/// After the demo's targets are stopped: prints the summary, writes the report and says
/// what to do next.
pub fn finish(
    result: Result<crate::run::RunOutcome, Error>,
    args: &DemoArgs,
    signal: u8,
    next: &str,
) -> Result<u8, Error> {
    let outcome = result?;
    print_outcome(&outcome, args.quiet, args.json);
    if !args.no_report {
        let written = crate::report::generate(&outcome.dir, &Default::default())?;
        if !args.json {
            super::report::print_written(&written, args.quiet);
        }
    }
    if !args.quiet && !args.json {
        println!("{next}");
    }
    Ok(exit_code_after_run(&outcome.summary, signal))
}

fn describe(delay: &Delay) -> String {
    match delay {
        Delay::None => "no delay".into(),
        Delay::Fixed(d) => format!("{d:?}"),
        Delay::Uniform { min, max } => format!("{min:?}–{max:?} (uniform)"),
        Delay::Exponential { mean } => format!("exponential, mean {mean:?}"),
        Delay::Table(_) => "a delay table".into(),
    }
}
