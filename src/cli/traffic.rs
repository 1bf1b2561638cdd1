//! `wafload traffic`: import recorded traffic (HAR, access logs, vegeta targets) into a
//! traffic file that profiles list under `benign:`, and inspect OpenAPI documents.

use crate::error::Error;
use crate::traffic::{self, ImportFormat, ImportOptions, Verdict};
use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum TrafficCommand {
    /// Convert a HAR file, an access log or vegeta targets into a wafload traffic file.
    #[command(
        after_help = "Examples:\n  wafload traffic import --from har shop.har -o traffic/shop.jsonl\n  wafload traffic import --from nginx access.log -o traffic/web.jsonl\n  wafload traffic import --from vegeta-json incident.json -o traffic/incident.jsonl --expect block\n\nSecrets (Authorization, Cookie, API-key headers; token/password/key query parameters and\nform/JSON fields) are removed or replaced by REDACTED unless --keep-secrets is given."
    )]
    Import(ImportArgs),
    /// List the operations and injection points wafload finds in an OpenAPI 3 document,
    /// and what it skipped (with JSON pointers).
    Openapi(OpenapiArgs),
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Input format.
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub from: ImportFormat,
    /// File to import.
    #[arg(value_name = "IN")]
    pub input: PathBuf,
    /// Traffic file to write (JSON lines).
    #[arg(short, long, value_name = "OUT")]
    pub output: PathBuf,
    /// Keep Authorization, cookies, API keys and tokens as recorded.
    #[arg(long)]
    pub keep_secrets: bool,
    /// Verdict the WAF should give every imported request (block: known-bad requests).
    #[arg(long, value_enum, value_name = "VERDICT")]
    pub expect: Option<Verdict>,
    /// Label for results (default: the output file's stem).
    #[arg(long, value_name = "NAME")]
    pub source_name: Option<String>,
}

#[derive(Debug, Args)]
pub struct OpenapiArgs {
    /// OpenAPI 3 document (YAML or JSON).
    #[arg(value_name = "SPEC")]
    pub spec: PathBuf,
}

pub fn execute(cmd: TrafficCommand) -> Result<u8, Error> {
    match cmd {
        TrafficCommand::Import(args) => import(args),
        TrafficCommand::Openapi(args) => openapi(args),
    }
}

fn import(args: ImportArgs) -> Result<u8, Error> {
    let bytes = std::fs::read(&args.input).map_err(|e| Error::io(&args.input, e))?;
    let text = String::from_utf8_lossy(&bytes);
    let options = ImportOptions {
        keep_secrets: args.keep_secrets,
        expect: args.expect,
        source: args.source_name.clone(),
    };
    let imported = traffic::import(args.from, &text, &args.input, &options)
        .map_err(|e| Error::Other(e.to_string()))?;
    if let Some(dir) = args.output.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    std::fs::write(&args.output, traffic::render_traffic(&imported.requests))
        .map_err(|e| Error::io(&args.output, e))?;
    let timed = imported.requests.iter().all(|r| r.t_ms.is_some());
    println!(
        "imported {} requests from {} into {}{}",
        imported.requests.len(),
        args.input.display(),
        args.output.display(),
        if timed {
            format!(
                " (spanning {:.1} s of recorded time)",
                imported
                    .requests
                    .iter()
                    .filter_map(|r| r.t_ms)
                    .max()
                    .unwrap_or(0) as f64
                    / 1000.0
            )
        } else {
            " (no times: replays at the profile's rate only)".to_string()
        }
    );
    if args.keep_secrets {
        println!("secrets kept as recorded (--keep-secrets): do not share this file");
    } else {
        println!(
            "{} secrets removed or redacted (headers, query parameters, body fields)",
            imported.secrets_stripped
        );
    }
    for note in &imported.notes {
        println!("note: {note}");
    }
    if !imported.skipped.is_empty() {
        eprintln!(
            "skipped {} entries/lines that could not be read:",
            imported.skipped.len()
        );
        for (n, why) in imported.skipped.iter().take(10) {
            eprintln!("  {}:{n}: {why}", args.input.display());
        }
        if imported.skipped.len() > 10 {
            eprintln!("  … and {} more", imported.skipped.len() - 10);
        }
    }
    Ok(0)
}

fn openapi(args: OpenapiArgs) -> Result<u8, Error> {
    let spec =
        crate::openapi::ApiSpec::load(&args.spec).map_err(|e| Error::Other(e.to_string()))?;
    println!(
        "{}: {} operations, base path {}",
        args.spec.display(),
        spec.operations.len(),
        spec.base_path
    );
    for op in &spec.operations {
        let points: Vec<String> = op
            .injection_points()
            .iter()
            .map(|p| p.to_string())
            .collect();
        println!(
            "  {:7} {:32} {:28} {}",
            op.method,
            op.path,
            op.operation_id,
            if points.is_empty() {
                "(no injection point)".to_string()
            } else {
                points.join(", ")
            }
        );
    }
    if !spec.skipped.is_empty() {
        println!("skipped {} parts of the document:", spec.skipped.len());
        for s in &spec.skipped {
            println!("  {}: {}", s.pointer, s.reason);
        }
    }
    Ok(0)
}
