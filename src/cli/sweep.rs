//! `wafload sweep`: latency per request-body size, for one profile or two side by side.

use super::analysis_flags::write_json;
use super::run::{resolve_profile, ProfileArgs};
use crate::analysis::sweep::{parse_body_sizes, render, sweep, BodySizes};
use crate::error::Error;
use crate::profile::Profile;
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
#[command(
    after_help = "Each size sends benign JSON POSTs of exactly that size and three attacks padded to it.\n\
STREAMED vs BUFFERED: wafload sweep --profile buffered.yaml --profile-b streamed.yaml --body-sizes 1k,16k,64k,256k,1m --duration 10s"
)]
pub struct SweepArgs {
    #[command(flatten)]
    pub common: ProfileArgs,
    /// A second profile swept the same way (e.g. the other body mode); verdicts compare B to A.
    #[arg(long, value_name = "FILE")]
    pub profile_b: Option<PathBuf>,
    /// Body sizes: bytes, or k/m (binary) suffixes.
    #[arg(long, value_name = "SIZES", value_parser = parse_body_sizes, default_value = "0,1k,16k,64k,256k,1m")]
    pub body_sizes: BodySizes,
    #[arg(long, default_value = "A")]
    pub label_a: String,
    #[arg(long, default_value = "B")]
    pub label_b: String,
    #[arg(long)]
    pub json: bool,
}

pub async fn execute(args: SweepArgs) -> Result<u8, Error> {
    let (mut a, _) = args.common.resolve()?;
    if a.duration.is_none() && a.requests.is_none() && a.stages.is_empty() {
        a.duration = Some(std::time::Duration::from_secs(5));
    }
    let mut arms: Vec<(String, Profile)> = vec![(args.label_a.clone(), a.clone())];
    if let Some(pb) = &args.profile_b {
        let mut overrides = crate::profile::Overrides::default();
        args.common.target.apply_to(&mut overrides);
        args.common.load.apply_to(&mut overrides);
        overrides.results_dir = args.common.results_dir.clone();
        let (mut b, _) = resolve_profile(Some(pb), &overrides)?;
        if b.duration.is_none() && b.requests.is_none() && b.stages.is_empty() {
            b.duration = a.duration;
        }
        arms.push((args.label_b.clone(), b));
    }
    let sizes: Vec<usize> = args.body_sizes.0.clone();
    let out = a.results_dir.join(crate::run::new_run_id(Some("sweep")));
    let (cancel, _) = super::cancel_on_signals();
    let results = sweep(&arms, &sizes, &out, !args.json, cancel).await?;
    write_json(&out, "sweep.json", &results)?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&results).unwrap_or_default()
        );
    } else {
        print!("{}", render(&results));
        println!("written: {}", out.join("sweep.json").display());
    }
    Ok(0)
}
