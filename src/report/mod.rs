//! Report: turns results into things people read — the terminal table, and from a
//! results folder alone (no re-run, so old runs can be re-reported): a self-contained
//! HTML report, a Markdown summary, report.json and five charts as SVG and PNG.
//! It reads results only, never runs anything; numbers come from `model`, formats only
//! format them.

pub mod charts;
pub mod escape;
pub mod fixture;
pub mod html;
pub mod json;
pub mod markdown;
pub mod model;
pub mod terminal;

pub use model::{Limits, ReportData};

use crate::error::Error;
use crate::results::write_atomic;
use std::path::{Path, PathBuf};

/// One kind of output file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// report.html
    Html,
    /// <chart>.svg for each chart
    Svg,
    /// <chart>.png for each chart
    Png,
    /// summary.md
    Md,
    /// report.json
    Json,
}

impl Format {
    pub const ALL: [Format; 5] = [
        Format::Html,
        Format::Svg,
        Format::Png,
        Format::Md,
        Format::Json,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Html => "html",
            Format::Svg => "svg",
            Format::Png => "png",
            Format::Md => "md",
            Format::Json => "json",
        }
    }

    /// Parses "html,svg,png" (the `--format` flag); names the flag on error.
    pub fn parse_list(s: &str) -> Result<Vec<Format>, Error> {
        let mut out = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let f = Format::ALL
                .into_iter()
                .find(|f| f.as_str().eq_ignore_ascii_case(part))
                .or_else(|| part.eq_ignore_ascii_case("markdown").then_some(Format::Md))
                .ok_or_else(|| {
                    Error::flag(
                        "--format",
                        format!("{part:?} is not one of html, svg, png, md, json"),
                    )
                })?;
            if !out.contains(&f) {
                out.push(f);
            }
        }
        if out.is_empty() {
            return Err(Error::flag("--format", "names no format"));
        }
        Ok(out)
    }
}

/// What to write and where.
#[derive(Clone, Debug)]
pub struct ReportOptions {
    pub formats: Vec<Format>,
    /// Output folder; default `<run folder>/report`.
    pub out: Option<PathBuf>,
    pub limits: Limits,
}

impl Default for ReportOptions {
    fn default() -> Self {
        ReportOptions {
            formats: Format::ALL.to_vec(),
            out: None,
            limits: Limits::default(),
        }
    }
}

/// The files a report run wrote.
#[derive(Clone, Debug, Default)]
pub struct Written {
    pub out: PathBuf,
    pub files: Vec<PathBuf>,
}

/// Builds the report of the run in `dir` from its results alone.
pub fn generate(dir: &Path, options: &ReportOptions) -> Result<Written, Error> {
    let data = ReportData::load(dir)?;
    generate_from(&data, options)
}

/// Builds the report from results already loaded.
pub fn generate_from(data: &ReportData, options: &ReportOptions) -> Result<Written, Error> {
    let out = options
        .out
        .clone()
        .unwrap_or_else(|| data.dir.join("report"));
    std::fs::create_dir_all(&out).map_err(|e| Error::io(&out, e))?;
    let wants = |f: Format| options.formats.contains(&f);
    let mut files = Vec::new();
    let charts = charts::all(data);

    if wants(Format::Html) || wants(Format::Svg) {
        let mut embedded = Vec::with_capacity(charts.len());
        for chart in &charts {
            embedded.push(html::EmbeddedChart::of(chart.as_ref())?);
        }
        if wants(Format::Svg) {
            for c in &embedded {
                let path = out.join(format!("{}.svg", c.name));
                write_atomic(&path, c.svg.as_bytes())?;
                files.push(path);
            }
        }
        if wants(Format::Html) {
            let page = html::render(data, &embedded, &options.limits);
            let path = out.join("report.html");
            write_atomic(&path, page.as_bytes())?;
            files.push(path);
        }
    }
    if wants(Format::Png) {
        for chart in &charts {
            let path = out.join(format!("{}.png", chart.name()));
            // Drawn beside the final name, then renamed: never a half-written PNG.
            let partial = out.join(format!(".{}.partial.png", chart.name()));
            chart.png(&partial)?;
            std::fs::rename(&partial, &path).map_err(|e| Error::io(&path, e))?;
            files.push(path);
        }
    }
    if wants(Format::Md) {
        let path = out.join("summary.md");
        write_atomic(&path, markdown::render(data, &options.limits).as_bytes())?;
        files.push(path);
    }
    if wants(Format::Json) {
        let path = out.join("report.json");
        write_atomic(&path, json::render(data, &options.limits)?.as_bytes())?;
        files.push(path);
    }
    for f in &files {
        readable(f);
    }
    Ok(Written { out, files })
}

/// Reports are made to be shared (attached, served, opened by another user): readable by
/// all, unlike the results folder's 0600 temporary-file default.
fn readable(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644));
    }
    #[cfg(not(unix))]
    let _ = path;
}
