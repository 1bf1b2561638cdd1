//! Flags shared by the analysis commands.

use crate::analysis::slo::Slo;
use crate::error::Error;

pub fn parse_slo(s: &str) -> Result<Slo, String> {
    Slo::parse(s)
}

/// Prints an SLO report and returns the exit code it implies (0 met, 1 missed).
pub fn gate(slo: Option<&Slo>, summary: &crate::results::Summary, quiet: bool) -> u8 {
    let Some(slo) = slo else { return 0 };
    let report = slo.evaluate(summary);
    if !quiet || !report.ok {
        eprintln!("SLO {}:", if report.ok { "met" } else { "MISSED" });
        eprint!("{report}");
    }
    if report.ok {
        0
    } else {
        crate::error::EXIT_CHECK_FAILED
    }
}

/// Writes a JSON report atomically into `dir/name`.
pub fn write_json<T: serde::Serialize>(
    dir: &std::path::Path,
    name: &str,
    value: &T,
) -> Result<(), Error> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|e| Error::Other(e.to_string()))?;
    bytes.push(b'\n');
    crate::results::write_atomic(&dir.join(name), &bytes)
}

/// Writes a chart as `<name>.svg` and `<name>.png` into `dir`.
pub fn write_chart(
    dir: &std::path::Path,
    chart: &dyn crate::report::charts::Rendered,
) -> Result<(), Error> {
    let svg = chart.svg()?;
    crate::results::write_atomic(&dir.join(format!("{}.svg", chart.name())), svg.as_bytes())?;
    chart.png(&dir.join(format!("{}.png", chart.name())))
}
