//! `wafload doctor`: reachability, DNS, TLS (certificate, SNI, ALPN h2), then one benign
//! request and a few unmistakable attacks, explained in plain language.

use super::run::{resolve_profile, TargetFlags};
use crate::classify::monitor::MonitorPreset;
use crate::doctor::{diagnose, DoctorOptions, Severity};
use crate::error::Error;
use crate::profile::{Overrides, Profile};
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;

/// Monitoring-mode flags shared by `run` and `doctor`.
#[derive(Debug, Args, Clone, Default)]
pub struct MonitorFlags {
    /// WAF log (JSON lines) to read would-blocks from after the run: monitoring-mode
    /// detection (replaces monitor.log).
    #[arg(long, value_name = "FILE")]
    pub monitor_log: Option<PathBuf>,
    /// How to read --monitor-log: modsecurity (JSON audit log, rule 949110; the default
    /// when the profile has no monitor key) or wafload-target (the calibration target's log).
    #[arg(long, value_enum, value_name = "PRESET")]
    pub monitor_preset: Option<MonitorPreset>,
}

impl MonitorFlags {
    pub fn apply_to(&self, o: &mut Overrides) {
        o.monitor_log = self.monitor_log.clone();
        o.monitor_preset = self.monitor_preset;
    }
}

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  wafload doctor --profile profiles/lab-waf.yaml\n  wafload doctor --target https://127.0.0.1:8443/ --insecure --host shop.example.com\nExit codes: 0 no error found (warnings allowed), 1 an error that would spoil a run, 2 bad input."
)]
pub struct DoctorArgs {
    /// Profile file (YAML); flags override its values.
    #[arg(short, long, value_name = "FILE")]
    pub profile: Option<PathBuf>,
    #[command(flatten)]
    pub target: TargetFlags,
    #[command(flatten)]
    pub monitor: MonitorFlags,
    /// Count connection resets as blocks.
    #[arg(long)]
    pub reset_is_block: bool,
    /// Per-step timeout (resolve, connect, handshake, each probe), e.g. 5s.
    #[arg(long, value_name = "DURATION", value_parser = super::run::parse_duration_flag)]
    pub timeout: Option<Duration>,
    /// Print the findings as JSON.
    #[arg(long)]
    pub json: bool,
}

pub async fn execute(args: DoctorArgs) -> Result<u8, Error> {
    let mut overrides = Overrides::default();
    args.target.apply_to(&mut overrides);
    args.monitor.apply_to(&mut overrides);
    overrides.reset_is_block = args.reset_is_block;
    let (profile, _origin) = resolve_profile(args.profile.as_ref(), &overrides)?;
    if profile.target.url.is_empty() {
        return Err(Error::flag(
            "--target",
            "no target URL: set target.url in the profile or pass --target URL",
        ));
    }
    let options = DoctorOptions {
        step_timeout: args.timeout.unwrap_or(Duration::from_secs(5)),
        probes: true,
    };
    let report = diagnose(&profile, &options).await?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report.to_json()).unwrap_or_default()
        );
    } else {
        print!("{}", report.render());
    }
    Ok(if report.worst() == Severity::Error {
        crate::error::EXIT_CHECK_FAILED
    } else {
        0
    })
}

/// The preflight `wafload run` does first: the doctor's findings of warning level and
/// above, printed to stderr. Never fails the run; problems that stop the run anyway
/// (unreachable, TLS) are left to the run's own one-line error.
pub async fn preflight(profile: &Profile, origin: &str) {
    if profile.validate_runnable(origin).is_err() {
        return;
    }
    let options = DoctorOptions {
        step_timeout: Duration::from_secs(3),
        probes: true,
    };
    // A bad URL is left to the run, which reports it itself.
    if let Ok(report) = diagnose(profile, &options).await {
        for d in report
            .at_least(Severity::Warning)
            .filter(|d| !d.stops_a_run())
        {
            eprintln!("preflight {}: {}", d.severity().as_str(), d.message());
        }
    }
}
