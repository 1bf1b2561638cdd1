//! `wafload compare`: two results folders side by side (or two profiles interleaved live).

use super::analysis_flags::{gate, parse_slo, write_json};
use crate::analysis::compare::{compare, render, ArmData};
use crate::analysis::interleave::{interleave, pairs_for, Arm, DEFAULT_BLOCK};
use crate::analysis::slo::Slo;
use crate::error::Error;
use crate::profile::{parse_duration, Overrides, Profile};
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  wafload compare results/run-buffered results/run-streamed\n  wafload compare --interleave --profile buffered.yaml --profile-b streamed.yaml --duration 60s\n\nThis is how to compare STREAMED vs BUFFERED body modes: two gateway configurations, the same corpus and rate."
)]
pub struct CompareArgs {
    /// Results folders A and B (B is compared against A).
    #[arg(value_name = "RUN", num_args = 0..=2)]
    pub runs: Vec<PathBuf>,
    /// Run profile A and profile B live, interleaved in alternating blocks (ABBA).
    #[arg(long, requires_all = ["profile", "profile_b"])]
    pub interleave: bool,
    /// Profile A (with --interleave).
    #[arg(long, value_name = "FILE")]
    pub profile: Option<PathBuf>,
    /// Profile B (with --interleave).
    #[arg(long, value_name = "FILE")]
    pub profile_b: Option<PathBuf>,
    /// Block length when interleaving.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub block: Option<Duration>,
    /// Traffic per side when interleaving (default: the profile's duration, else 30s).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Labels for A and B in the verdicts.
    #[arg(long, default_value = "A")]
    pub label_a: String,
    #[arg(long, default_value = "B")]
    pub label_b: String,
    /// SLO B must meet, e.g. "p99<50ms,errors<0.1%"; exit 1 when missed.
    #[arg(long, value_name = "TERMS", value_parser = parse_slo)]
    pub slo: Option<Slo>,
    /// Where to write compare.json (default: the results dir for interleaved runs).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Seed of the bootstrap.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    #[arg(long)]
    pub json: bool,
}

pub async fn execute(args: CompareArgs) -> Result<u8, Error> {
    let (a_runs, b_runs, out) = if args.interleave {
        let load = |p: &PathBuf| -> Result<Profile, Error> {
            let mut prof = Profile::load(p)?;
            prof.apply(&Overrides::default());
            Ok(prof)
        };
        let a = load(args.profile.as_ref().expect("clap requires it"))?;
        let b = load(args.profile_b.as_ref().expect("clap requires it"))?;
        let block = args.block.unwrap_or(DEFAULT_BLOCK);
        let total = args
            .duration
            .or(a.duration)
            .unwrap_or(Duration::from_secs(30));
        let out = args
            .out
            .clone()
            .unwrap_or_else(|| a.results_dir.join(crate::run::new_run_id(Some("compare"))));
        let (cancel, _) = super::cancel_on_signals();
        let res = interleave(
            &Arm {
                label: args.label_a.clone(),
                profile: a,
            },
            &Arm {
                label: args.label_b.clone(),
                profile: b,
            },
            pairs_for(total, block),
            block,
            &out,
            !args.json,
            cancel,
        )
        .await?;
        (res.a_runs, res.b_runs, Some(out))
    } else {
        if args.runs.len() != 2 {
            return Err(Error::flag(
                "RUN",
                "give two results folders (A and B), or --interleave with --profile and --profile-b",
            ));
        }
        (
            vec![args.runs[0].clone()],
            vec![args.runs[1].clone()],
            args.out.clone(),
        )
    };
    let a = ArmData::from_runs(&args.label_a, &a_runs)?;
    let b = ArmData::from_runs(&args.label_b, &b_runs)?;
    let comparison = compare(&a, &b, args.seed);
    if let Some(dir) = &out {
        write_json(dir, "compare.json", &comparison)?;
        super::analysis_flags::write_chart(
            dir,
            &crate::report::charts::OverheadChart {
                a: args.label_a.clone(),
                b: args.label_b.clone(),
                points: crate::analysis::stats::bootstrap_quantile_diffs(
                    &a.latencies_ms,
                    &b.latencies_ms,
                    &crate::analysis::overhead::SPECTRUM_QUANTILES,
                    500,
                    args.seed,
                ),
            },
        )?;
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&comparison).unwrap_or_default()
        );
    } else {
        print!("{}", render(&comparison));
        if let Some(dir) = &out {
            println!("\nwritten: {}", dir.join("compare.json").display());
        }
    }
    Ok(gate(args.slo.as_ref(), &b.summary_for_slo(), args.json))
}
