//! Body-size sweep: benign POSTs with bodies of each size, and attack payloads padded to
//! each size (like gotestwaf's 8kb…128kb community cases), latency per size. With two
//! profiles (e.g. a gateway in STREAMED and in BUFFERED request-body mode) it is the curve
//! where the two differ, with a confidence interval at every size.

use super::compare::{compare, ArmData, Comparison};
use crate::corpus::{CorpusRequest, RequestSpec};
use crate::error::Error;
use crate::plan::{base_path_of, Plan};
use crate::profile::Profile;
use crate::run::{run_prepared, PreparedRun, RunOptions};
use serde::Serialize;
use std::path::{Path, PathBuf};
use tokio_util::sync::CancellationToken;

/// Attack payloads placed after the padding; each trips a common WAF rule family.
pub const SWEEP_ATTACKS: [&str; 3] = [
    "' UNION SELECT username, password FROM users--",
    "<script>alert(document.cookie)</script>",
    "; cat /etc/passwd",
];

const PADDING: &str = "Please update the delivery address on my order and send the invoice again. ";

/// A list of body sizes in bytes (one CLI value: "0,1k,16k").
#[derive(Clone, Debug, PartialEq)]
pub struct BodySizes(pub Vec<usize>);

/// Parses "0,1k,16k,64k,256k,1m" for the CLI.
pub fn parse_body_sizes(text: &str) -> Result<BodySizes, String> {
    parse_sizes(text).map(BodySizes)
}

/// Parses "0,1k,16k,64k,256k,1m" (k = 1024, m = 1024²) into byte sizes.
pub fn parse_sizes(text: &str) -> Result<Vec<usize>, String> {
    let mut sizes = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let lower = part.to_ascii_lowercase();
        let (num, mult) =
            if let Some(n) = lower.strip_suffix("kb").or_else(|| lower.strip_suffix('k')) {
                (n, 1024)
            } else if let Some(n) = lower.strip_suffix("mb").or_else(|| lower.strip_suffix('m')) {
                (n, 1024 * 1024)
            } else {
                (lower.as_str(), 1)
            };
        let n: f64 = num
            .trim()
            .parse()
            .map_err(|_| format!("{part:?} is not a size like 0, 16k or 1m"))?;
        if !(0.0..=64.0 * 1024.0 * 1024.0).contains(&(n * mult as f64)) {
            return Err(format!("{part:?}: sizes go from 0 to 64m"));
        }
        sizes.push((n * mult as f64).round() as usize);
    }
    if sizes.is_empty() {
        return Err("no sizes given".into());
    }
    Ok(sizes)
}

pub fn size_label(bytes: usize) -> String {
    if bytes >= 1024 * 1024 && bytes % (1024 * 1024) == 0 {
        format!("{}m", bytes / (1024 * 1024))
    } else if bytes >= 1024 && bytes % 1024 == 0 {
        format!("{}k", bytes / 1024)
    } else {
        bytes.to_string()
    }
}

fn padding(len: usize) -> String {
    PADDING.chars().cycle().take(len).collect()
}

/// A JSON body of exactly `size` bytes (or the smallest possible that holds the payload).
pub fn json_body(size: usize, payload: Option<&str>) -> Vec<u8> {
    let tail = match payload {
        Some(p) => format!(",\"q\":{}}}", serde_json::to_string(p).expect("string")),
        None => "}".to_string(),
    };
    let head = "{\"comment\":\"";
    let fixed = head.len() + 1 + tail.len(); // +1 for the closing quote of comment
    if payload.is_none() && size < fixed {
        // Too small for JSON: plain padding bytes (size 0 = empty body).
        return padding(size).into_bytes();
    }
    let pad = size.saturating_sub(fixed);
    format!("{head}{}\"{tail}", padding(pad)).into_bytes()
}

/// The requests of one size: 3 benign bodies and the 3 padded attacks.
pub fn sweep_requests(size: usize, base_path: &str) -> Vec<CorpusRequest> {
    let label = size_label(size);
    let path = if base_path.is_empty() {
        "/".to_string()
    } else {
        base_path.to_string()
    };
    let mut out = Vec::new();
    let mut push = |benign: bool, index: usize, payload: Option<&str>| {
        let body = json_body(size, payload);
        out.push(CorpusRequest {
            set: if benign {
                "sweep-false-pos"
            } else {
                "sweep-attacks"
            }
            .to_string(),
            case: format!("body-{label}"),
            benign,
            api: false,
            type_label: "body size sweep".to_string(),
            placeholder: "JSONBody",
            encoder: "Plain",
            payload_index: index,
            payload: payload.unwrap_or("").to_string(),
            built: Ok(RequestSpec {
                method: "POST".into(),
                target: path.clone(),
                headers: vec![("Content-Type".into(), b"application/json".to_vec())],
                body,
            }),
        });
    };
    for i in 0..3 {
        push(true, i, None);
    }
    for (i, attack) in SWEEP_ATTACKS.iter().enumerate() {
        push(false, i, Some(attack));
    }
    out
}

#[derive(Clone, Debug, Serialize)]
pub struct SizeResult {
    pub size: usize,
    pub label: String,
    pub arms: Vec<ArmFigures>,
    /// B against A, when two profiles were swept.
    pub comparison: Option<Comparison>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ArmFigures {
    pub arm: String,
    pub dir: PathBuf,
    pub sent: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub detection: Option<f64>,
    pub false_positives: Option<f64>,
    pub errors: u64,
}

/// Sweeps every size for each profile (A, then optionally B; their order alternates per
/// size so drift hits both). Each (size, arm) is one bounded run under `out`.
pub async fn sweep(
    arms: &[(String, Profile)],
    sizes: &[usize],
    out: &Path,
    progress: bool,
    cancel: CancellationToken,
) -> Result<Vec<SizeResult>, Error> {
    let mut results = Vec::new();
    for (k, &size) in sizes.iter().enumerate() {
        let mut order: Vec<usize> = (0..arms.len()).collect();
        if k % 2 == 1 {
            order.reverse();
        }
        let mut data: Vec<Option<ArmData>> = vec![None; arms.len()];
        for i in order {
            if cancel.is_cancelled() {
                break;
            }
            let (label, profile) = &arms[i];
            let mut p = profile.clone();
            p.benign_share = Some(p.benign_share.unwrap_or(0.5));
            let plan = Plan::from_requests(&p, sweep_requests(size, &base_path_of(&p)?))?;
            let dir = out.join(size_label(size)).join(label);
            let options = RunOptions {
                origin: label.clone(),
                out: Some(dir.clone()),
                progress: false,
                shard: Default::default(),
                start_at: None,
            };
            if progress {
                eprintln!("body {:>6}: {label} → {}", size_label(size), p.target.url);
            }
            let outcome =
                run_prepared(PreparedRun::with_plan(&p, &options, plan)?, cancel.clone()).await?;
            data[i] = Some(ArmData::from_runs(label, &[outcome.dir])?);
        }
        let arms_done: Vec<&ArmData> = data.iter().flatten().collect();
        let figures = arms_done
            .iter()
            .map(|a| {
                let s = a.summary_for_slo();
                let all = s.latency.get("all").cloned().unwrap_or_default();
                ArmFigures {
                    arm: a.label.clone(),
                    dir: a.runs[0].clone(),
                    sent: a.sent,
                    p50_ms: all.p50 as f64 / 1000.0,
                    p90_ms: all.p90 as f64 / 1000.0,
                    p99_ms: all.p99 as f64 / 1000.0,
                    detection: s.detection.attacks.rate,
                    false_positives: s.detection.benign.rate,
                    errors: a.errors,
                }
            })
            .collect();
        let comparison = match (data.first(), data.get(1)) {
            (Some(Some(a)), Some(Some(b))) => Some(compare(a, b, k as u64 + 1)),
            _ => None,
        };
        results.push(SizeResult {
            size,
            label: size_label(size),
            arms: figures,
            comparison,
        });
        if cancel.is_cancelled() {
            break;
        }
    }
    Ok(results)
}

pub fn render(results: &[SizeResult]) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "  {:>6} {:<12} {:>7} {:>9} {:>9} {:>9} {:>10} {:>8} {:>7}",
        "body", "arm", "sent", "p50 ms", "p90 ms", "p99 ms", "detection", "fp", "errors"
    );
    let pct = |v: Option<f64>| {
        v.map(|x| format!("{:.1} %", x * 100.0))
            .unwrap_or("—".into())
    };
    for r in results {
        for a in &r.arms {
            let _ = writeln!(
                out,
                "  {:>6} {:<12} {:>7} {:>9.3} {:>9.3} {:>9.3} {:>10} {:>8} {:>7}",
                r.label,
                a.arm,
                a.sent,
                a.p50_ms,
                a.p90_ms,
                a.p99_ms,
                pct(a.detection),
                pct(a.false_positives),
                a.errors
            );
        }
        if let Some(c) = &r.comparison {
            for v in c.verdicts.iter().take(3) {
                let _ = writeln!(out, "  {:>6} {v}", "");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(
            parse_sizes("0,1k,16k,64k,256k,1m").unwrap(),
            vec![0, 1024, 16384, 65536, 262144, 1048576]
        );
        assert!(parse_sizes("1x").is_err());
        assert!(parse_sizes("").is_err());
    }

    #[test]
    fn bodies_have_exactly_the_requested_size_and_stay_valid_json() {
        for size in [128usize, 1024, 16384, 1 << 20] {
            let b = json_body(size, None);
            assert_eq!(b.len(), size);
            serde_json::from_slice::<serde_json::Value>(&b).unwrap();
            let a = json_body(size, Some(SWEEP_ATTACKS[0]));
            assert_eq!(a.len(), size, "attack body at {size}");
            let v: serde_json::Value = serde_json::from_slice(&a).unwrap();
            assert_eq!(v["q"], SWEEP_ATTACKS[0]);
        }
        assert_eq!(json_body(0, None).len(), 0);
        // Too small for the attack: the smallest body that holds it.
        assert!(json_body(10, Some(SWEEP_ATTACKS[1])).len() > 10);
    }

    #[test]
    fn six_requests_per_size_half_benign() {
        let r = sweep_requests(1024, "/");
        assert_eq!(r.len(), 6);
        assert_eq!(r.iter().filter(|r| r.benign).count(), 3);
        assert!(r
            .iter()
            .all(|r| r.built.as_ref().unwrap().body.len() == 1024));
    }
}
