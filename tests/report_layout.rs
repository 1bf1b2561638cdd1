//! No chart text overlaps other text or leaves the picture: every `<text>` of every chart
//! SVG is turned into a box (width from the embedded font's metrics, which are wider than
//! what a browser draws at the SVG's font-size, so the check errs on the safe side) and
//! the boxes are compared pairwise. Run on a demo-like run (our corpus) and on a stress
//! run: long names, many cases and encoders, errors and ext_proc 500s.

use plotters::prelude::*;
use std::path::Path;
use wafload::plan::Plan;
use wafload::report::charts::{self, FONT};
use wafload::report::fixture::{source, write_results, FixtureOptions};
use wafload::report::ReportData;

#[derive(Debug, Clone)]
struct TextBox {
    text: String,
    x0: f64,
    y0: f64,
    x1: f64,
    y1: f64,
}

fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let key = format!(" {name}=\"");
    let at = tag.find(&key)? + key.len();
    let end = tag[at..].find('"')? + at;
    Some(&tag[at..end])
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// Boxes of all text elements of one SVG.
fn text_boxes(svg: &str) -> Vec<TextBox> {
    charts::ensure_font();
    let mut out = Vec::new();
    let mut rest = svg;
    while let Some(at) = rest.find("<text ") {
        let after = &rest[at..];
        let tag_end = after.find('>').unwrap();
        let tag = &after[..tag_end];
        let close = after.find("</text>").unwrap();
        let text = unescape(after[tag_end + 1..close].trim());
        rest = &after[close..];
        if text.is_empty() {
            continue;
        }
        let x: f64 = attr(tag, "x").unwrap().parse().unwrap();
        let y: f64 = attr(tag, "y").unwrap().parse().unwrap();
        let size: f64 = attr(tag, "font-size").unwrap().parse().unwrap();
        let (w, _) = (FONT, size * 1.24)
            .into_font()
            .box_size(&text)
            .expect("font metrics");
        let w = w as f64;
        let h = size * 1.15;
        let rotated = attr(tag, "transform")
            .is_some_and(|t| t.starts_with("rotate(270") || t.starts_with("rotate(90"));
        let (along0, along1) = match attr(tag, "text-anchor").unwrap_or("start") {
            "middle" => (-w / 2.0, w / 2.0),
            "end" => (-w, 0.0),
            _ => (0.0, w),
        };
        let (across0, across1) = match attr(tag, "dy").unwrap_or("") {
            "0.76em" => (0.0, h),
            "-0.5ex" => (-h, 0.0),
            _ => (-h / 2.0, h / 2.0),
        };
        let b = if rotated {
            // rotate(270): the text runs upwards from (x, y).
            TextBox {
                text,
                x0: x + across0,
                x1: x + across1,
                y0: y - along1,
                y1: y - along0,
            }
        } else {
            TextBox {
                text,
                x0: x + along0,
                x1: x + along1,
                y0: y + across0,
                y1: y + across1,
            }
        };
        out.push(b);
    }
    out
}

fn overlap(a: &TextBox, b: &TextBox) -> bool {
    let tol = 1.0;
    a.x0 + tol < b.x1 && b.x0 + tol < a.x1 && a.y0 + tol < b.y1 && b.y0 + tol < a.y1
}

fn check_run(dir: &Path) {
    let data = ReportData::load(dir).unwrap();
    for chart in charts::all(&data) {
        let svg = chart.svg().unwrap();
        let (w, h): (f64, f64) = {
            let tag = &svg[..svg.find('>').unwrap()];
            (
                attr(tag, "width").unwrap().parse().unwrap(),
                attr(tag, "height").unwrap().parse().unwrap(),
            )
        };
        let boxes = text_boxes(&svg);
        assert!(!boxes.is_empty(), "{}: no text", chart.name());
        for b in &boxes {
            assert!(
                b.x0 >= -0.5 && b.y0 >= -0.5 && b.x1 <= w + 0.5 && b.y1 <= h + 0.5,
                "{}: text {:?} leaves the {w}×{h} picture: {b:?}",
                chart.name(),
                b.text
            );
        }
        for (i, a) in boxes.iter().enumerate() {
            for b in &boxes[i + 1..] {
                assert!(
                    !overlap(a, b),
                    "{}: text overlaps:\n  {a:?}\n  {b:?}",
                    chart.name()
                );
            }
        }
    }
}

#[test]
fn chart_text_never_overlaps_on_a_demo_like_run() {
    let payloads = Path::new(env!("CARGO_MANIFEST_DIR")).join("payloads");
    let corpus = wafload::corpus::load_corpus(&[payloads]).unwrap();
    let mut profile = wafload::profile::Profile::default();
    profile.target.url = "http://127.0.0.1:9/".into();
    let plan = Plan::build(&profile, &corpus).unwrap();
    let counts: Vec<[u64; 5]> = plan
        .sources
        .iter()
        .enumerate()
        .map(|(i, s)| match (s.benign, i % 3) {
            (true, 0) if i % 17 == 0 => [1, 2, 0, 0, 0],
            (true, _) => [0, 3, 0, 0, 0],
            (false, 0) => [3, 0, 0, 0, 0],
            (false, 1) => [1, 2, 0, 0, 0],
            (false, _) => [0, 2, 1, 0, 0],
        })
        .collect();
    let tmp = tempfile::tempdir().unwrap();
    write_results(
        tmp.path(),
        &plan.sources,
        &counts,
        &FixtureOptions::default(),
    )
    .unwrap();
    check_run(tmp.path());
}

#[test]
fn chart_text_never_overlaps_with_long_names_many_cases_and_errors() {
    let mut sources = Vec::new();
    let mut counts = Vec::new();
    let long = "a-very-long-set-name-that-someone-gave-their-corpus-folder-without-thinking";
    let encoders = [
        "Plain",
        "URL",
        "Base64",
        "Base64Flat",
        "JSUnicode",
        "XMLEntity",
        "HTMLEntity",
        "DoubleURLEncodedButWithAVeryLongName",
        "E9",
        "E10",
        "E11",
        "E12",
        "E13",
        "E14",
        "E15",
        "E16",
        "E17",
        "E18",
        "E19",
        "E20",
    ];
    let placeholders = [
        "URLParam",
        "URLPath",
        "Header",
        "HTMLForm",
        "HTMLMultipartForm",
        "JSONRequest",
        "JSONBody",
        "XMLBody",
        "SOAPBody",
        "UserAgent",
        "RawRequest",
        "SomePlaceholderWithAnExtremelyLongNameThatGoesOnAndOn",
    ];
    for i in 0..120usize {
        let benign = i % 6 == 5;
        // Benign-ness belongs to a set (gotestwaf: the set name contains "false").
        let set = if benign {
            format!("{long}-false-pos")
        } else {
            format!("{long}-{}", i % 4)
        };
        let case = format!("case-{i:03}-{}", "x".repeat(i % 50));
        let s = source(
            &set,
            &case,
            placeholders[i % placeholders.len()],
            encoders[i % encoders.len()],
            benign,
            "payload",
        );
        sources.push(s);
        counts.push([
            (i as u64 * 7919) % 400,
            (i as u64 * 104_729) % 900 + 1,
            (i % 3) as u64,
            (i % 5) as u64 * 10,
            (i % 7 == 0) as u64,
        ]);
    }
    let tmp = tempfile::tempdir().unwrap();
    // WAFLOAD_KEEP_LAYOUT_RUN=DIR keeps this run for looking at its report.
    let dir = std::env::var_os("WAFLOAD_KEEP_LAYOUT_RUN")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| tmp.path().to_path_buf());
    write_results(
        &dir,
        &sources,
        &counts,
        &FixtureOptions {
            seconds: 97,
            ext_proc_errors: 25,
            ..FixtureOptions::default()
        },
    )
    .unwrap();
    check_run(&dir);
}
