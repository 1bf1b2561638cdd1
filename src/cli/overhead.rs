//! `wafload overhead`: latency the WAF adds, WAF path vs baseline path, interleaved.

use super::analysis_flags::{gate, parse_slo, write_json};
use super::run::ProfileArgs;
use crate::analysis::compare::ArmData;
use crate::analysis::interleave::{interleave, pairs_for, Arm, DEFAULT_BLOCK};
use crate::analysis::overhead::{overhead, render};
use crate::analysis::slo::Slo;
use crate::error::Error;
use crate::profile::{parse_duration, TargetSpec};
use crate::run::{run, RunOptions};
use clap::Args;
use std::time::Duration;

#[derive(Debug, Args)]
#[command(
    after_help = "The profile's `baseline:` (or --baseline) is the same service without the WAF. \
Blocks alternate A B B A … so drift hits both. Without a baseline, overhead comes from \
x-envoy-upstream-service-time alone (total − upstream = gateway + filter time).\n\
Example: wafload overhead --profile profiles/lab-overhead.yaml --duration 60s --slo 'p99<20ms'"
)]
pub struct OverheadArgs {
    #[command(flatten)]
    pub common: ProfileArgs,
    /// Baseline URL (the same service without the WAF); overrides the profile's `baseline.url`.
    #[arg(long, value_name = "URL")]
    pub baseline: Option<String>,
    /// Block length.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub block: Option<Duration>,
    /// SLO the WAF path must meet; exit 1 when missed.
    #[arg(long, value_name = "TERMS", value_parser = parse_slo)]
    pub slo: Option<Slo>,
    #[arg(long)]
    pub json: bool,
}

pub async fn execute(args: OverheadArgs) -> Result<u8, Error> {
    let (profile, origin) = args.common.resolve()?;
    let mut baseline_spec: Option<TargetSpec> = profile.baseline.clone();
    if let Some(url) = &args.baseline {
        let mut spec = baseline_spec.unwrap_or_else(|| profile.target.clone());
        spec.url = url.clone();
        baseline_spec = Some(spec);
    }
    let out = profile
        .results_dir
        .join(crate::run::new_run_id(Some("overhead")));
    let (cancel, _) = super::cancel_on_signals();
    let total = profile.duration.unwrap_or(Duration::from_secs(30));
    let (baseline_arm, waf_arm) = match baseline_spec {
        Some(spec) => {
            let mut base = profile.clone();
            base.target = spec;
            let block = args.block.unwrap_or(DEFAULT_BLOCK);
            let res = interleave(
                &Arm {
                    label: "baseline".into(),
                    profile: base,
                },
                &Arm {
                    label: "waf".into(),
                    profile: profile.clone(),
                },
                pairs_for(total, block),
                block,
                &out,
                !args.json,
                cancel,
            )
            .await?;
            (
                Some(ArmData::from_runs("baseline", &res.a_runs)?),
                ArmData::from_runs("waf", &res.b_runs)?,
            )
        }
        None => {
            let mut p = profile.clone();
            p.duration = Some(total);
            let options = RunOptions {
                origin,
                out: Some(out.join("waf")),
                progress: !args.json,
                shard: Default::default(),
                start_at: None,
            };
            let outcome = run(&p, &options, cancel).await?;
            (None, ArmData::from_runs("waf", &[outcome.dir])?)
        }
    };
    let report = overhead(baseline_arm.as_ref(), &waf_arm, profile.seed);
    write_json(&out, "overhead.json", &report)?;
    if !report.spectrum.is_empty() {
        super::analysis_flags::write_chart(
            &out,
            &crate::report::charts::OverheadChart {
                a: "baseline".into(),
                b: "waf".into(),
                points: report.spectrum.clone(),
            },
        )?;
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        print!("{}", render(&report));
        println!("\nwritten: {}", out.join("overhead.json").display());
    }
    Ok(gate(
        args.slo.as_ref(),
        &waf_arm.summary_for_slo(),
        args.json,
    ))
}
