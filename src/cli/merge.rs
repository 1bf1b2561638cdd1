//! `wafload merge`: shard results into one, losslessly.

use crate::error::Error;
use crate::results::merge::merge;
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
#[command(
    after_help = "Histograms are added bucket by bucket, counts summed, per-second series aligned on \
the shards' common start time, detection recomputed from the records. Runs of different \
profiles or corpora are refused.\nExample: wafload merge results/shards/* --out results/merged"
)]
pub struct MergeArgs {
    /// Shard results folders.
    #[arg(required = true, num_args = 2.., value_name = "RUN_DIR")]
    pub runs: Vec<PathBuf>,
    /// Folder for the merged result.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    #[arg(long)]
    pub json: bool,
}

pub fn execute(args: MergeArgs) -> Result<u8, Error> {
    let summary = merge(&args.runs, &args.out)?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&summary).unwrap_or_default()
        );
    } else {
        print!("{}", crate::report::terminal::render(&summary, &args.out));
    }
    Ok(0)
}
