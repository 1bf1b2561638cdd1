//! `report.json`: the report's derived numbers for machines (CI gates, dashboards): the
//! same detection rows with Wilson intervals, matrix, spectra, breakdown and the capped
//! evasion list the HTML shows. Raw per-request data stays in the results folder.

use super::escape;
use super::model::{
    breakdown, detection, evasions, false_positives, matrix, spectra, BreakdownView, DetectionView,
    Limits, Listing, MatrixView, ReportData, SpectrumLine,
};
use crate::results::{RunInfo, SecondSummary};
use serde::Serialize;

pub const REPORT_JSON_FORMAT: u32 = 1;

/// A listed request with its (cut) text, so the JSON stands on its own.
#[derive(Serialize)]
struct ListedJson {
    case: String,
    source: usize,
    times: u64,
    request_id: Option<String>,
    status: Option<u16>,
    placeholder: String,
    encoder: String,
    payload: String,
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: String,
    body_len: usize,
    /// True when any text field was cut to the report's limit.
    truncated: bool,
}

#[derive(Serialize)]
struct ListingJson {
    available: bool,
    shown: u64,
    omitted: u64,
    cases: Vec<CaseJson>,
    requests: Vec<ListedJson>,
}

#[derive(Serialize)]
struct CaseJson {
    case: String,
    distinct: u64,
    times: u64,
    omitted: u64,
}

#[derive(Serialize)]
struct ReportJson<'a> {
    format: u32,
    run: &'a RunInfo,
    detection: DetectionView,
    matrix: MatrixView,
    spectrum: Vec<SpectrumLine>,
    breakdown: BreakdownView,
    series: &'a [SecondSummary],
    evasions: ListingJson,
    false_positives: ListingJson,
}

fn listing_json(data: &ReportData, listing: &Listing, limits: &Limits) -> ListingJson {
    let mut requests = Vec::new();
    for case in &listing.cases {
        for row in &case.rows {
            let Some(s) = data.sources.get(row.source) else {
                continue;
            };
            let mut truncated = false;
            let mut cut = |v: &str| {
                let (head, rest) = escape::truncate(v, limits.text);
                truncated |= rest > 0;
                head.to_string()
            };
            requests.push(ListedJson {
                case: case.case.clone(),
                source: row.source,
                times: row.times,
                request_id: row.request_id.clone(),
                status: row.status,
                placeholder: s.placeholder.clone(),
                encoder: s.encoder.clone(),
                payload: cut(&s.payload),
                method: s.method.clone(),
                target: cut(&s.target),
                headers: s.headers.iter().map(|(k, v)| (k.clone(), cut(v))).collect(),
                body: cut(&s.body),
                body_len: s.body_len,
                truncated,
            });
        }
    }
    ListingJson {
        available: listing.available,
        shown: listing.shown,
        omitted: listing.omitted,
        cases: listing
            .cases
            .iter()
            .map(|c| CaseJson {
                case: c.case.clone(),
                distinct: c.distinct,
                times: c.times,
                omitted: c.omitted,
            })
            .collect(),
        requests,
    }
}

/// Renders report.json (pretty-printed).
pub fn render(data: &ReportData, limits: &Limits) -> Result<String, crate::Error> {
    let report = ReportJson {
        format: REPORT_JSON_FORMAT,
        run: &data.summary.run,
        detection: detection(&data.summary),
        matrix: matrix(&data.summary),
        spectrum: spectra(data),
        breakdown: breakdown(&data.summary),
        series: &data.series,
        evasions: listing_json(data, &evasions(data, limits), limits),
        false_positives: listing_json(data, &false_positives(data, limits), limits),
    };
    let mut text = serde_json::to_string_pretty(&report)
        .map_err(|e| crate::Error::Other(format!("report.json: {e}")))?;
    text.push('\n');
    Ok(text)
}
