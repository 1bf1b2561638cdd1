//! `report.html`: one self-contained file a reviewer can attach to a change request:
//! configuration, environment, summary, the five charts as inline SVG, detection tables
//! and the requests that got through. No JavaScript, no external requests: a restrictive
//! Content-Security-Policy forbids both, and every string from the results folder is
//! escaped for the context it lands in (payloads are XSS strings by design).

use super::charts::Rendered;
use super::escape::{self, attr, visible};
use super::model::{
    detection, evasions, false_positives, interval, ms, percent, Limits, ListedCase, Listing,
    RateRow, ReportData,
};
use crate::error::Error;
use std::fmt::Write;

/// The Content-Security-Policy of every report: nothing may load or run; inline styles
/// and data: images are the only exceptions.
pub const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'";

/// Header names whose values a report never shows, whatever the profile says.
const ALWAYS_SECRET: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "x-api-key",
];

/// A chart ready to embed: its SVG and captions.
pub struct EmbeddedChart {
    pub name: String,
    pub title: String,
    pub caption: String,
    pub svg: String,
}

impl EmbeddedChart {
    pub fn of(chart: &dyn Rendered) -> Result<EmbeddedChart, Error> {
        Ok(EmbeddedChart {
            name: chart.name().to_string(),
            title: chart.title(),
            caption: chart.caption(),
            svg: checked_svg(chart.name(), chart.svg()?)?,
        })
    }
}

/// Elements plotters' SVG backend writes; anything else in a chart is refused.
const SVG_TAGS: &[&str] = &[
    "svg", "rect", "text", "polyline", "polygon", "line", "circle", "path", "g",
];

/// Defence in depth before a chart is inlined: plotters escapes label text, and this
/// check makes sure of it: only known elements, no event-handler or link attributes.
pub fn checked_svg(name: &str, svg: String) -> Result<String, Error> {
    let refuse = |why: String| Err(Error::Other(format!("chart {name}: {why}")));
    let mut rest = svg.as_str();
    while let Some(start) = rest.find('<') {
        let tag = &rest[start + 1..];
        let end = tag.find('>').unwrap_or(tag.len());
        let inner = tag[..end].trim_start_matches('/');
        let name_end = inner
            .find(|c: char| c.is_whitespace() || c == '/')
            .unwrap_or(inner.len());
        let element = &inner[..name_end];
        if !SVG_TAGS.contains(&element) {
            return refuse(format!("unexpected element <{element}> in SVG"));
        }
        for word in inner[name_end..].split_whitespace() {
            let attribute = word.split('=').next().unwrap_or("").to_ascii_lowercase();
            if attribute.starts_with("on") || attribute.contains("href") || attribute == "style" {
                return refuse(format!("unexpected attribute {attribute} in SVG"));
            }
        }
        rest = &tag[end..];
    }
    Ok(svg)
}

const STYLE: &str = r#"
:root{color-scheme:light}
*{box-sizing:border-box}
body{font:14px/1.45 "Liberation Sans",Arial,Helvetica,sans-serif;color:#222;margin:0;background:#fafafa}
main{max-width:1240px;margin:0 auto;padding:16px 20px 40px}
h1{font-size:24px;margin:8px 0 4px}
h2{font-size:19px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
h3{font-size:15px;margin:18px 0 6px}
.sub{color:#555;margin:0 0 12px}
.banner{background:#fff3e0;border:1px solid #e65100;padding:8px 12px;margin:10px 0}
.hint{background:#e8f0fe;border-left:4px solid #1f6fb2;padding:6px 10px;margin:6px 0}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(185px,1fr));gap:10px;margin:10px 0}
.card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:10px 12px}
.card .k{color:#555;font-size:12px;text-transform:uppercase;letter-spacing:.04em}
.card .v{font-size:22px;font-weight:bold;margin:2px 0}
.card .d{color:#555;font-size:12.5px}
table{border-collapse:collapse;background:#fff;margin:6px 0 12px;font-size:13px}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f0f2f5}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.set td{background:#f3f5f8;font-weight:bold}
tr.case td:first-child{padding-left:22px}
figure{margin:14px 0 22px;background:#fff;border:1px solid #ddd;border-radius:6px;padding:8px}
figure svg{width:100%;height:auto;display:block}
figure svg text{font-family:"Liberation Sans",Arial,Helvetica,sans-serif}
figcaption{color:#444;font-size:13px;margin:4px 4px 0}
figcaption b{color:#222}
pre{white-space:pre-wrap;word-break:break-all;overflow-wrap:anywhere;margin:0;font:12px/1.35 "Liberation Mono","DejaVu Sans Mono",monospace}
table.ev{width:100%;table-layout:fixed}
table.ev td{overflow-wrap:anywhere}
table.ev pre{max-height:22em;overflow:auto}
.cut{color:#a00;font-size:12px;font-style:italic}
.muted{color:#666}
details>summary{cursor:pointer;color:#1f6fb2}
code{font:12.5px "Liberation Mono","DejaVu Sans Mono",monospace;background:#f0f2f5;padding:0 3px}
"#;

/// Escapes for HTML text after making control characters visible.
fn t(s: &str) -> String {
    escape::text(&visible(s))
}

/// Cut to `max` characters, made visible and escaped, plus a note of what was cut.
fn cut(s: &str, max: usize) -> (String, String) {
    let (head, rest) = escape::truncate(s, max);
    let note = if rest > 0 {
        format!(r#"<span class="cut">… {rest} more characters not shown</span>"#)
    } else {
        String::new()
    };
    (t(head), note)
}

/// "95.0 %" and "88.8–97.8 %" cells, or dashes.
fn rate_cells(r: &RateRow) -> String {
    match &r.rate {
        Some(p) => format!(
            r#"<td class="n">{}</td><td class="n">{}</td>"#,
            percent(p.rate),
            interval(p)
        ),
        None => r#"<td class="n">—</td><td class="n">—</td>"#.to_string(),
    }
}

fn rate_row(out: &mut String, r: &RateRow, class: &str, name: &str) {
    let _ = write!(
        out,
        r#"<tr class="{class}"><td>{}</td>{}<td class="n">{}</td><td class="n">{}</td><td class="n">{}</td></tr>"#,
        t(name),
        rate_cells(r),
        r.blocked,
        r.passed,
        r.other
    );
    out.push('\n');
}

fn rate_table_head(out: &mut String, first: &str, rate: &str) {
    let _ = write!(
        out,
        r#"<table><thead><tr><th>{first}</th><th class="n">{rate}</th><th class="n">95 % interval</th><th class="n">blocked</th><th class="n">passed</th><th class="n">other</th></tr></thead><tbody>"#
    );
}

fn card(out: &mut String, key: &str, value: &str, detail: &str) {
    let _ = write!(
        out,
        r#"<div class="card"><div class="k">{key}</div><div class="v">{value}</div><div class="d">{detail}</div></div>"#
    );
}

fn kv_table(out: &mut String, rows: &[(&str, String)]) {
    out.push_str("<table><tbody>");
    for (k, v) in rows {
        let _ = write!(out, "<tr><th>{}</th><td>{}</td></tr>", t(k), t(v));
    }
    out.push_str("</tbody></table>\n");
}

/// Header names to redact: the profile's `secret_headers` and the usual credentials.
fn secret_names(profile: &serde_json::Value) -> Vec<String> {
    let mut names: Vec<String> = ALWAYS_SECRET.iter().map(|s| s.to_string()).collect();
    if let Some(list) = profile.get("secret_headers").and_then(|v| v.as_array()) {
        names.extend(
            list.iter()
                .filter_map(|v| v.as_str())
                .map(|s| s.to_ascii_lowercase()),
        );
    }
    names
}

/// The profile with secret header values and URL credentials replaced by "<redacted>".
pub fn redacted_profile(profile: &serde_json::Value) -> serde_json::Value {
    let secrets = secret_names(profile);
    let mut p = profile.clone();
    if let Some(headers) = p.get_mut("headers").and_then(|h| h.as_object_mut()) {
        for (name, value) in headers.iter_mut() {
            if secrets.contains(&name.to_ascii_lowercase()) {
                *value = serde_json::Value::String("<redacted>".into());
            }
        }
    }
    if let Some(url) = p.pointer_mut("/target/url") {
        if let Some(s) = url.as_str() {
            *url = serde_json::Value::String(redact_url(s));
        }
    }
    p
}

/// Drops `user:password@` from a URL.
pub fn redact_url(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        let authority_end = rest.find('/').unwrap_or(rest.len());
        if let Some(at) = rest[..authority_end].rfind('@') {
            return format!("{scheme}://<redacted>@{}", &rest[at + 1..]);
        }
    }
    url.to_string()
}

/// Headers every request carried besides its corpus headers, as shown under the tables.
fn common_headers(data: &ReportData) -> Vec<(String, String)> {
    let profile = redacted_profile(&data.summary.profile);
    let mut out = Vec::new();
    let host = profile
        .pointer("/target/host")
        .and_then(|v| v.as_str())
        .map(|s| s.to_string())
        .unwrap_or_else(|| {
            let url = redact_url(&data.summary.run.target);
            url.split_once("://")
                .map(|(_, r)| r.split('/').next().unwrap_or("").to_string())
                .unwrap_or_default()
        });
    out.push(("Host".to_string(), host));
    out.push((
        "User-Agent".to_string(),
        format!("wafload/{}", data.summary.environment.wafload_version),
    ));
    out.push(("Accept".to_string(), "*/*".to_string()));
    if let Some(h) = profile.get("headers").and_then(|h| h.as_object()) {
        for (k, v) in h {
            out.push((k.clone(), v.as_str().unwrap_or("").to_string()));
        }
    }
    out.push((
        data.summary.run.request_id_header.clone(),
        format!("{}-<slot>", data.summary.run.request_id_prefix),
    ));
    out
}

/// The exact request of a source, cut to `limits.text` per field.
fn request_block(out: &mut String, s: &crate::plan::Source, limits: &Limits) {
    let (target, target_cut) = cut(&s.target, limits.text);
    // A newline right after <pre> is dropped by HTML parsers; writing one keeps a
    // leading newline of the content itself (payloads can start with one).
    out.push_str("<pre>\n");
    out.push_str(&t(&s.method));
    out.push(' ');
    out.push_str(&target);
    for (name, value) in &s.headers {
        let (v, _) = cut(value, limits.text);
        let _ = write!(out, "\n{}: {}", t(name), v);
    }
    out.push_str("</pre>");
    out.push_str(&target_cut);
    if s.headers
        .iter()
        .any(|(_, v)| v.chars().count() > limits.text)
    {
        out.push_str(r#"<span class="cut">a header value was cut</span>"#);
    }
    if s.body_len > 0 || !s.body.is_empty() {
        let (body, body_cut) = cut(&s.body, limits.text);
        let _ = write!(
            out,
            r#"<div class="muted">body, {} bytes:</div><pre>
{body}</pre>{body_cut}"#,
            s.body_len
        );
        if s.body_len > s.body.len() && body_cut.is_empty() {
            let _ = write!(
                out,
                r#"<span class="cut">… body stored cut to {} bytes in the results</span>"#,
                s.body.len()
            );
        }
    }
    if let Some(reason) = &s.unsendable {
        let _ = write!(out, r#"<div class="cut">unsendable: {}</div>"#, t(reason));
    }
}

fn listing_section(
    out: &mut String,
    data: &ReportData,
    listing: &Listing,
    limits: &Limits,
    what: &str,
    times_label: &str,
) {
    if !listing.available {
        match &data.records_error {
            Some(e) => {
                let _ = write!(
                    out,
                    r#"<p class="cut">The request records could not be read ({}), so the {what} cannot be listed.</p>"#,
                    t(e)
                );
            }
            None => {
                let _ = write!(
                    out,
                    r#"<p class="muted">This run kept no request records ({}), so the {what} cannot be listed.</p>"#,
                    crate::record::RECORDS_FILE
                );
            }
        }
        return;
    }
    if listing.cases.is_empty() {
        let _ = write!(out, r#"<p>None: no {what} in this run.</p>"#);
        return;
    }
    let _ = write!(
        out,
        r#"<p>{} distinct requests shown in {} cases{}.</p>"#,
        listing.shown,
        listing.cases.len(),
        if listing.omitted > 0 {
            format!(
                r#"; <b class="cut">{} more distinct requests left out</b> (the table is capped; all are in {})"#,
                listing.omitted,
                crate::record::RECORDS_FILE
            )
        } else {
            String::new()
        }
    );
    for case in &listing.cases {
        case_table(out, data, case, limits, times_label);
    }
}

fn case_table(
    out: &mut String,
    data: &ReportData,
    case: &ListedCase,
    limits: &Limits,
    times_label: &str,
) {
    let _ = write!(
        out,
        r#"<h3>{} <span class="muted">— {} distinct requests, {} times{}</span></h3>"#,
        t(&case.case),
        case.distinct,
        case.times,
        if case.omitted > 0 {
            format!(r#", <span class="cut">{} not shown</span>"#, case.omitted)
        } else {
            String::new()
        }
    );
    let _ = write!(
        out,
        r#"<table class="ev"><colgroup><col style="width:16%"><col style="width:24%"><col style="width:60%"></colgroup><thead><tr><th>first request id · {times_label} · status</th><th>payload (placeholder × encoder)</th><th>request</th></tr></thead><tbody>"#
    );
    for row in &case.rows {
        let Some(s) = data.sources.get(row.source) else {
            continue;
        };
        let (payload, payload_cut) = cut(&s.payload, limits.text);
        let _ = write!(
            out,
            r#"<tr><td><code>{}</code><br>{} ×{}<br><span class="muted">source #{}</span></td><td><pre class="payload">
{payload}</pre>{payload_cut}<div class="muted">{} × {}</div></td><td>"#,
            row.request_id
                .as_deref()
                .map(t)
                .unwrap_or_else(|| "—".into()),
            row.status.map(|s| format!("HTTP {s}")).unwrap_or_default(),
            row.times,
            row.source,
            t(&s.placeholder),
            t(&s.encoder),
        );
        request_block(out, s, limits);
        out.push_str("</td></tr>\n");
    }
    out.push_str("</tbody></table>\n");
}

/// Renders the report. `charts` are embedded in the order given.
pub fn render(data: &ReportData, charts: &[EmbeddedChart], limits: &Limits) -> String {
    let s = &data.summary;
    let run = &s.run;
    let d = detection(s);
    let mut out = String::with_capacity(256 * 1024);
    let _ = write!(
        out,
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{csp}">
<meta name="referrer" content="no-referrer">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>wafload report {title}</title>
<style>{STYLE}</style>
</head>
<body>
<main>
<h1>WAF load-test report</h1>
<p class="sub">run <code>{id}</code> · target <code>{target}</code> · {protocol}, {mode} loop · {started} → {finished}</p>
"#,
        csp = attr(CSP),
        title = t(&run.run_id),
        id = t(&run.run_id),
        target = t(&redact_url(&run.target)),
        protocol = t(&run.protocol),
        mode = t(&run.mode),
        started = t(&run.started_at),
        finished = t(&run.finished_at),
    );
    if let Some(reason) = &run.interrupted {
        let _ = write!(
            out,
            r#"<div class="banner"><b>Stopped early:</b> {} — {} planned requests were not sent; the numbers cover what was sent.</div>"#,
            t(reason),
            s.not_sent
        );
    }

    // Key figures.
    out.push_str("<h2>Summary</h2>\n<div class=\"cards\">");
    let rate_card = |out: &mut String, key: &str, r: &RateRow, noun: &str| match &r.rate {
        Some(p) => card(
            out,
            key,
            &percent(p.rate),
            &format!(
                "95 % interval {} · {} of {} {noun} blocked",
                interval(p),
                r.blocked,
                r.resolved()
            ),
        ),
        None => card(out, key, "—", &format!("no resolved {noun}")),
    };
    rate_card(&mut out, "detection rate", &d.attacks, "attack requests");
    rate_card(
        &mut out,
        "false-positive rate",
        &d.benign,
        "benign requests",
    );
    let score = |v: Option<f64>| v.map(|x| format!("{x:.1} %")).unwrap_or("—".into());
    card(
        &mut out,
        "score",
        &score(s.score.overall),
        &format!(
            "application {} · API {}",
            score(s.score.application),
            score(s.score.api)
        ),
    );
    card(
        &mut out,
        "requests",
        &s.sent.to_string(),
        &format!(
            "sent of {} planned in {:.2} s · {:.1} req/s achieved{}",
            s.planned,
            s.duration_s,
            s.achieved_rate,
            run.requested_rate
                .map(|r| format!(" of {r:.0} requested"))
                .unwrap_or_default()
        ),
    );
    if let Some(all) = s.latency.get("all") {
        card(
            &mut out,
            "latency p99",
            &format!("{} ms", ms(all.p99)),
            &format!(
                "p50 {} ms · p99.9 {} ms · max {} ms",
                ms(all.p50),
                ms(all.p999),
                ms(all.max)
            ),
        );
    }
    let failed = s.counts.get("failed").copied().unwrap_or(0);
    let unresolved = s.counts.get("unresolved").copied().unwrap_or(0);
    card(
        &mut out,
        "not resolved",
        &(failed + unresolved).to_string(),
        &format!(
            "{failed} failed · {unresolved} unresolved · {} ext_proc 500s",
            s.ext_proc_errors
        ),
    );
    out.push_str("</div>\n");
    for hint in &s.hints {
        let _ = write!(out, r#"<div class="hint">{}</div>"#, t(hint));
    }

    // Summary table: classes and latency.
    out.push_str(r#"<table><thead><tr><th>class</th><th class="n">requests</th><th class="n">share</th><th class="n">p50 ms</th><th class="n">p90 ms</th><th class="n">p99 ms</th><th class="n">p99.9 ms</th><th class="n">max ms</th></tr></thead><tbody>"#);
    let total: u64 = s.counts.values().sum::<u64>().max(1);
    for class in ["blocked", "passed", "unresolved", "failed", "unsendable"] {
        let n = s.counts.get(class).copied().unwrap_or(0);
        let lat = s.latency.get(class).filter(|p| p.count > 0);
        let cells = match lat {
            Some(p) => format!(
                r#"<td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td>"#,
                ms(p.p50),
                ms(p.p90),
                ms(p.p99),
                ms(p.p999),
                ms(p.max)
            ),
            None => r#"<td class="n">—</td>"#.repeat(5),
        };
        let _ = write!(
            out,
            r#"<tr><td>{class}</td><td class="n">{n}</td><td class="n">{:.1} %</td>{cells}</tr>"#,
            n as f64 * 100.0 / total as f64
        );
    }
    if let Some(p) = s.latency.get("all") {
        let _ = write!(
            out,
            r#"<tr class="set"><td>all</td><td class="n">{}</td><td class="n">100.0 %</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td></tr>"#,
            s.counts.values().sum::<u64>(),
            ms(p.p50),
            ms(p.p90),
            ms(p.p99),
            ms(p.p999),
            ms(p.max)
        );
    }
    out.push_str("</tbody></table>\n");
    let _ = write!(
        out,
        r#"<p class="muted">Latency runs from the intended send time, so time spent queued behind a slow WAF counts (no coordinated omission). Sender lateness: {} requests more than {} ms late (p99 {} ms).</p>"#,
        s.lateness.late,
        s.lateness.threshold_us / 1000,
        ms(s.lateness.p99_us)
    );

    // Charts.
    out.push_str("<h2>Charts</h2>\n");
    for (i, c) in charts.iter().enumerate() {
        let _ = write!(
            out,
            "<figure id=\"chart-{}\">\n{}\n<figcaption><b>{}. {}.</b> {}</figcaption></figure>\n",
            attr(&c.name),
            c.svg.trim(),
            i + 1,
            t(&c.title),
            t(&c.caption)
        );
    }

    // Detection tables.
    out.push_str("<h2>Detection by set and case</h2>\n");
    out.push_str("<p class=\"muted\">Rate = blocked ÷ (blocked + passed); for benign sets it is the false-positive rate. Interval: Wilson score, 95 %. Other = unresolved, failed or unsendable (not in the rate).</p>\n");
    for (title, sets, rate) in [
        ("Attack sets", &d.attack_sets, "detection"),
        ("Benign sets", &d.benign_sets, "false positives"),
    ] {
        if sets.is_empty() {
            continue;
        }
        let _ = write!(out, "<h3>{title}</h3>");
        rate_table_head(&mut out, "set / case", rate);
        for set in sets.iter() {
            rate_row(&mut out, &set.set, "set", &set.set.name);
            for case in &set.cases {
                rate_row(&mut out, case, "case", &case.name);
            }
        }
        out.push_str("</tbody></table>\n");
    }
    for (title, rows) in [
        ("By placeholder (attacks)", &d.by_placeholder),
        ("By encoder (attacks)", &d.by_encoder),
    ] {
        if rows.is_empty() {
            continue;
        }
        let _ = write!(out, "<h3>{title}</h3>");
        rate_table_head(&mut out, "name", "detection");
        for r in rows.iter() {
            rate_row(&mut out, r, "", &r.name);
        }
        out.push_str("</tbody></table>\n");
    }

    // Evasions and false positives.
    let common = common_headers(data);
    let common_text: Vec<String> = common
        .iter()
        .map(|(k, v)| format!("<code>{}: {}</code>", t(k), t(v)))
        .collect();
    out.push_str("<h2 id=\"evasions\">Attack requests that passed (evasions)</h2>\n");
    let _ = write!(
        out,
        r#"<p class="muted">Grouped by case, leakiest cases first; one row per distinct request, with how often it passed and the id of its first occurrence (search the WAF's logs for it). Requests are shown as built, fields cut to {} characters; control characters are shown as symbols (␍ = CR, ␊ = LF, ␀ = NUL). Every request also carried {}.</p>"#,
        limits.text,
        common_text.join(", ")
    );
    listing_section(
        &mut out,
        data,
        &evasions(data, limits),
        limits,
        "attack requests that passed",
        "passed",
    );
    out.push_str(
        "<h2 id=\"false-positives\">Benign requests that were blocked (false positives)</h2>\n",
    );
    listing_section(
        &mut out,
        data,
        &false_positives(data, limits),
        limits,
        "benign requests that were blocked",
        "blocked",
    );

    // Configuration and environment.
    out.push_str("<h2>Configuration</h2>\n");
    kv_table(
        &mut out,
        &[
            ("run id", run.run_id.clone()),
            ("target", redact_url(&run.target)),
            ("protocol", run.protocol.clone()),
            ("mode", format!("{} loop", run.mode)),
            (
                "requested rate",
                run.requested_rate
                    .map(|r| format!("{r} req/s"))
                    .unwrap_or_else(|| "—".into()),
            ),
            ("mix", run.mix.clone()),
            ("corpus", run.corpus.join(", ")),
            ("seed", run.seed.to_string()),
            ("shard", run.shard.clone().unwrap_or_else(|| "—".into())),
            (
                "request id",
                format!(
                    "{}: {}-<slot>",
                    run.request_id_header, run.request_id_prefix
                ),
            ),
            ("started", run.started_at.clone()),
            ("finished", run.finished_at.clone()),
            (
                "planned / sent / not sent",
                format!("{} / {} / {}", s.planned, s.sent, s.not_sent),
            ),
            (
                "records",
                format!(
                    "{} in {} ({} read for this report)",
                    s.records,
                    crate::record::RECORDS_FILE,
                    data.records_read
                ),
            ),
        ],
    );
    let profile = serde_json::to_string_pretty(&redacted_profile(&s.profile)).unwrap_or_default();
    let _ = writeln!(
        out,
        "<details><summary>resolved profile (secret header values redacted)</summary><pre>\n{}</pre></details>",
        t(&profile)
    );
    out.push_str("<h2>Environment</h2>\n");
    let e = &s.environment;
    kv_table(
        &mut out,
        &[
            ("host", e.hostname.clone()),
            ("OS", e.os.clone()),
            ("kernel", e.kernel.clone()),
            ("CPUs", e.cpus.to_string()),
            ("wafload", e.wafload_version.clone()),
        ],
    );
    let _ = write!(
        out,
        r#"<p class="muted">Generated by wafload {} from <code>{}</code>; re-create with <code>wafload report {}</code>.</p>"#,
        t(env!("CARGO_PKG_VERSION")),
        t(&data.dir.display().to_string()),
        t(&data.dir.display().to_string())
    );
    out.push_str("</main>\n</body>\n</html>\n");
    out
}
