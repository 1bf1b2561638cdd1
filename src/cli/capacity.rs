//! `wafload capacity`: the highest rate that meets the SLO, and detection at each step.

use super::analysis_flags::{parse_slo, write_json};
use super::run::{parse_rate, ProfileArgs};
use crate::analysis::capacity::{render, search, CapacityOptions};
use crate::analysis::slo::Slo;
use crate::error::Error;
use crate::profile::parse_duration;
use clap::Args;
use std::time::Duration;

#[derive(Debug, Args)]
#[command(
    after_help = "Steps the open-loop rate up by --factor until a step misses the SLO, then \
bisects. Put detection in the SLO (detection>=0.9) to make failing open a failure; it is \
reported either way.\nExample: wafload capacity --profile p.yaml --slo 'p99<50ms,errors<1%' --budget 5m"
)]
pub struct CapacityArgs {
    #[command(flatten)]
    pub common: ProfileArgs,
    /// The SLO each step must meet.
    #[arg(long, value_name = "TERMS", value_parser = parse_slo)]
    pub slo: Slo,
    /// First step's rate.
    #[arg(long, value_name = "REQ/S", value_parser = parse_rate, default_value = "100")]
    pub start_rate: f64,
    /// Never step above this rate.
    #[arg(long, value_name = "REQ/S", value_parser = parse_rate, default_value = "100000")]
    pub max_rate: f64,
    /// Rate multiplier while climbing.
    #[arg(long, default_value_t = 2.0)]
    pub factor: f64,
    /// Length of each step.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "5s")]
    pub step: Duration,
    /// Time budget for the whole search.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "5m")]
    pub budget: Duration,
    /// Stop bisecting when the bracket is narrower than this share.
    #[arg(long, default_value_t = 0.05)]
    pub precision: f64,
    /// Exit 1 when the sustainable rate is below this.
    #[arg(long, value_name = "REQ/S", value_parser = parse_rate)]
    pub require: Option<f64>,
    #[arg(long)]
    pub json: bool,
}

pub async fn execute(args: CapacityArgs) -> Result<u8, Error> {
    if !(args.factor > 1.0 && args.factor.is_finite()) {
        return Err(Error::flag("--factor", "must be greater than 1"));
    }
    if !(args.precision > 0.0 && args.precision < 1.0) {
        return Err(Error::flag("--precision", "must be between 0 and 1"));
    }
    let (profile, _) = args.common.resolve()?;
    let mut options = CapacityOptions::new(args.slo.clone());
    options.start_rate = args.start_rate;
    options.max_rate = args.max_rate;
    options.factor = args.factor;
    options.step = args.step;
    options.budget = args.budget;
    options.precision = args.precision;
    let out = profile
        .results_dir
        .join(crate::run::new_run_id(Some("capacity")));
    let (cancel, signal) = super::cancel_on_signals();
    let report = search(&profile, &options, &out, !args.json, cancel).await?;
    write_json(&out, "capacity.json", &report)?;
    let p99_bound_ms = args.slo.terms.iter().find_map(|t| match t.metric {
        crate::analysis::slo::Metric::Latency(crate::analysis::slo::LatencyStat::P99) => {
            Some(t.bound)
        }
        _ => None,
    });
    super::analysis_flags::write_chart(
        &out,
        &crate::report::charts::CapacityChart {
            report: report.clone(),
            p99_bound_ms,
        },
    )?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        print!("{}", render(&report));
        println!("written: {}", out.join("capacity.json").display());
    }
    let code = signal.load(std::sync::atomic::Ordering::SeqCst);
    if code != 0 {
        return Ok(code);
    }
    Ok(match (args.require, report.sustainable_rate) {
        (Some(req), Some(got)) if got >= req => 0,
        (Some(_), _) => crate::error::EXIT_CHECK_FAILED,
        (None, _) => 0,
    })
}
