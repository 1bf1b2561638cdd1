//! `wafload report`: charts, HTML, Markdown and JSON from a results folder alone, so an
//! old run can be re-reported without re-running it.

use crate::error::Error;
use crate::report::{generate, Format, Limits, ReportOptions};
use clap::Args;
use std::path::{Path, PathBuf};

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  wafload report results/20260101-120000-demo\n  wafload report results/<run-id> --format html,md --out /tmp/waf-report"
)]
pub struct ReportArgs {
    /// Results folder of a run (results/<run-id>), or just the run id.
    #[arg(value_name = "RUN_DIR")]
    pub run: PathBuf,
    /// Comma-separated outputs: html, svg, png, md, json (default: all).
    #[arg(long, value_name = "LIST", default_value = "html,svg,png,md,json")]
    pub format: String,
    /// Output folder (default: <RUN_DIR>/report).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Most evasion rows (distinct attack requests that passed) in the HTML table.
    #[arg(long, value_name = "N", default_value_t = Limits::default().evasions)]
    pub max_evasions: usize,
    /// Print only the path of report.html (or of the output folder).
    #[arg(short, long)]
    pub quiet: bool,
}

/// `results/<id>` given as a path, or an id found under ./results.
pub fn resolve_run_dir(run: &Path) -> Result<PathBuf, Error> {
    if run.join(crate::results::SUMMARY_FILE).is_file() {
        return Ok(run.to_path_buf());
    }
    let under_results = Path::new("results").join(run);
    if under_results.join(crate::results::SUMMARY_FILE).is_file() {
        return Ok(under_results);
    }
    Err(Error::flag(
        "RUN_DIR",
        format!(
            "{} is not a results folder (no {})",
            run.display(),
            crate::results::SUMMARY_FILE
        ),
    ))
}

pub fn execute(args: ReportArgs) -> Result<u8, Error> {
    let formats = Format::parse_list(&args.format)?;
    let dir = resolve_run_dir(&args.run)?;
    let options = ReportOptions {
        formats,
        out: args.out.clone(),
        limits: Limits {
            evasions: args.max_evasions,
            ..Limits::default()
        },
    };
    let written = generate(&dir, &options)?;
    print_written(&written, args.quiet);
    Ok(0)
}

pub fn print_written(written: &crate::report::Written, quiet: bool) {
    let html = written.files.iter().find(|p| p.ends_with("report.html"));
    if quiet {
        println!("{}", html.unwrap_or(&written.out).display());
        return;
    }
    println!("report written to {}:", written.out.display());
    for f in &written.files {
        let size = std::fs::metadata(f).map(|m| m.len()).unwrap_or(0);
        println!(
            "  {:<16} {:>9} bytes",
            f.file_name().and_then(|n| n.to_str()).unwrap_or(""),
            size
        );
    }
    if let Some(h) = html {
        println!("open {}", h.display());
    }
}
