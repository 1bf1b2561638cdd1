//! The SLO gate: `--slo "p99<50ms,p999<200ms,errors<0.1%,detection>=0.95,fp<=0.01"`.
//! Parsed once, evaluated on a summary; a run that misses any term exits 1 with the
//! failing terms listed. A term whose metric was not measured fails (never passes by
//! default).

use crate::results::Summary;
use serde::Serialize;
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Op {
    Lt,
    Le,
    Gt,
    Ge,
}

impl Op {
    fn holds(self, actual: f64, bound: f64) -> bool {
        match self {
            Op::Lt => actual < bound,
            Op::Le => actual <= bound,
            Op::Gt => actual > bound,
            Op::Ge => actual >= bound,
        }
    }
}

/// What a term measures. Latencies are in ms, shares are fractions (0.01 = 1 %).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub enum Metric {
    /// Latency quantile of all requests, from the intended send time.
    Latency(LatencyStat),
    /// (failed + unresolved) / sent.
    Errors,
    /// Attack detection rate: blocked / (blocked + passed).
    Detection,
    /// False-positive rate on benign traffic.
    FalsePositives,
    /// Achieved requests per second.
    Rate,
    /// Share of requests sent more than 1 ms after their intended time.
    Late,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum LatencyStat {
    P50,
    P90,
    P99,
    P999,
    Max,
    Mean,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Term {
    pub text: String,
    pub metric: Metric,
    pub op: Op,
    pub bound: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Slo {
    pub terms: Vec<Term>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TermResult {
    pub term: String,
    /// The measured value, in the term's unit (ms, fraction or req/s).
    pub actual: Option<f64>,
    pub ok: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SloReport {
    pub ok: bool,
    pub terms: Vec<TermResult>,
}

impl SloReport {
    pub fn failing(&self) -> Vec<&TermResult> {
        self.terms.iter().filter(|t| !t.ok).collect()
    }
}

impl fmt::Display for SloReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for t in &self.terms {
            let actual = match t.actual {
                Some(v) => format_value(&t.term, v),
                None => "not measured".to_string(),
            };
            writeln!(
                f,
                "  {} {:<24} actual {}",
                if t.ok { "PASS" } else { "FAIL" },
                t.term,
                actual
            )?;
        }
        Ok(())
    }
}

fn format_value(term: &str, v: f64) -> String {
    if term.starts_with('p') || term.starts_with("max") || term.starts_with("mean") {
        format!("{v:.3} ms")
    } else if term.starts_with("rate") {
        format!("{v:.1} req/s")
    } else {
        format!("{:.3} %", v * 100.0)
    }
}

impl Slo {
    /// Parses a comma-separated list of terms; the error names the bad term.
    pub fn parse(text: &str) -> Result<Slo, String> {
        let mut terms = Vec::new();
        for raw in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            terms.push(parse_term(raw)?);
        }
        if terms.is_empty() {
            return Err("empty SLO: give terms like \"p99<50ms,errors<0.1%\"".into());
        }
        Ok(Slo { terms })
    }

    pub fn evaluate(&self, s: &Summary) -> SloReport {
        let terms: Vec<TermResult> = self
            .terms
            .iter()
            .map(|t| {
                let actual = measure(t.metric, s);
                TermResult {
                    term: t.text.clone(),
                    actual,
                    ok: actual.is_some_and(|v| t.op.holds(v, t.bound)),
                }
            })
            .collect();
        SloReport {
            ok: terms.iter().all(|t| t.ok),
            terms,
        }
    }
}

fn measure(metric: Metric, s: &Summary) -> Option<f64> {
    let all = s.latency.get("all")?;
    match metric {
        Metric::Latency(stat) => {
            if all.count == 0 {
                return None;
            }
            let us = match stat {
                LatencyStat::P50 => all.p50 as f64,
                LatencyStat::P90 => all.p90 as f64,
                LatencyStat::P99 => all.p99 as f64,
                LatencyStat::P999 => all.p999 as f64,
                LatencyStat::Max => all.max as f64,
                LatencyStat::Mean => all.mean,
            };
            Some(us / 1000.0)
        }
        Metric::Errors => {
            if s.sent == 0 {
                return None;
            }
            let bad = s.counts.get("failed").copied().unwrap_or(0)
                + s.counts.get("unresolved").copied().unwrap_or(0);
            Some(bad as f64 / s.sent as f64)
        }
        Metric::Detection => s.detection.attacks.rate,
        Metric::FalsePositives => s.detection.benign.rate,
        Metric::Rate => (s.sent > 0).then_some(s.achieved_rate),
        Metric::Late => (s.sent > 0).then(|| s.lateness.late as f64 / s.sent as f64),
    }
}

fn parse_term(raw: &str) -> Result<Term, String> {
    let bad = |why: &str| format!("SLO term {raw:?}: {why}");
    let pos = raw
        .find(['<', '>'])
        .ok_or_else(|| bad("needs an operator: <, <=, > or >="))?;
    let name = raw[..pos].trim().to_ascii_lowercase();
    let rest = &raw[pos..];
    let (op, value) = if let Some(v) = rest.strip_prefix("<=") {
        (Op::Le, v)
    } else if let Some(v) = rest.strip_prefix(">=") {
        (Op::Ge, v)
    } else if let Some(v) = rest.strip_prefix('<') {
        (Op::Lt, v)
    } else if let Some(v) = rest.strip_prefix('>') {
        (Op::Gt, v)
    } else {
        return Err(bad("needs an operator"));
    };
    let value = value.trim();
    let metric = match name.as_str() {
        "p50" | "median" => Metric::Latency(LatencyStat::P50),
        "p90" => Metric::Latency(LatencyStat::P90),
        "p99" => Metric::Latency(LatencyStat::P99),
        "p999" | "p99.9" => Metric::Latency(LatencyStat::P999),
        "max" => Metric::Latency(LatencyStat::Max),
        "mean" => Metric::Latency(LatencyStat::Mean),
        "errors" | "error" => Metric::Errors,
        "detection" => Metric::Detection,
        "fp" | "false_positives" => Metric::FalsePositives,
        "rate" => Metric::Rate,
        "late" => Metric::Late,
        other => {
            return Err(bad(&format!(
                "unknown metric {other:?} (p50 p90 p99 p999 max mean errors detection fp rate late)"
            )))
        }
    };
    let bound = match metric {
        Metric::Latency(_) => parse_latency_ms(value).map_err(|e| bad(&e))?,
        Metric::Rate => value
            .trim_end_matches("/s")
            .trim_end_matches("req")
            .trim()
            .parse::<f64>()
            .map_err(|_| bad("rate bound must be a number of requests per second"))?,
        _ => parse_share(value).map_err(|e| bad(&e))?,
    };
    if !bound.is_finite() || bound < 0.0 {
        return Err(bad("bound must be a non-negative number"));
    }
    Ok(Term {
        text: raw.to_string(),
        metric,
        op,
        bound,
    })
}

fn parse_latency_ms(v: &str) -> Result<f64, String> {
    let (num, factor) = if let Some(n) = v.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = v.strip_suffix("us").or_else(|| v.strip_suffix("µs")) {
        (n, 0.001)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1000.0)
    } else {
        return Err("latency bound needs a unit: ms, s or us".into());
    };
    num.trim()
        .parse::<f64>()
        .map(|n| n * factor)
        .map_err(|_| format!("{v:?} is not a latency like 50ms"))
}

fn parse_share(v: &str) -> Result<f64, String> {
    let (num, factor) = match v.strip_suffix('%') {
        Some(n) => (n, 0.01),
        None => (v, 1.0),
    };
    let x = num
        .trim()
        .parse::<f64>()
        .map_err(|_| format!("{v:?} is not a share like 0.95 or 1%"))?
        * factor;
    if x > 1.0 {
        return Err(format!("{v:?} is more than 100 %"));
    }
    Ok(x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Percentiles;
    use crate::results::Rates;

    fn summary() -> Summary {
        let mut s = Summary {
            sent: 1000,
            achieved_rate: 199.5,
            ..Summary::default()
        };
        s.latency.insert(
            "all".into(),
            Percentiles {
                count: 1000,
                p50: 4_000,
                p90: 9_000,
                p99: 40_000,
                p999: 250_000,
                max: 300_000,
                mean: 5_000.0,
                min: 1000,
            },
        );
        s.counts.insert("failed".into(), 1);
        s.counts.insert("unresolved".into(), 0);
        s.detection.attacks = Rates {
            blocked: 96,
            passed: 4,
            rate: Some(0.96),
            ..Rates::default()
        };
        s.detection.benign = Rates {
            blocked: 2,
            passed: 198,
            rate: Some(0.01),
            ..Rates::default()
        };
        s
    }

    #[test]
    fn the_issue_example_parses_and_lists_failing_terms() {
        let slo = Slo::parse("p99<50ms,p999<200ms,errors<0.1%,detection>=0.95,fp<=0.01").unwrap();
        assert_eq!(slo.terms.len(), 5);
        let report = slo.evaluate(&summary());
        assert!(!report.ok);
        let failing: Vec<&str> = report.failing().iter().map(|t| t.term.as_str()).collect();
        // p999 250 ms ≥ 200 ms; errors 0.1 % is not < 0.1 %.
        assert_eq!(failing, vec!["p999<200ms", "errors<0.1%"]);
    }

    #[test]
    fn all_terms_met_is_ok() {
        let slo = Slo::parse("p99 < 50ms, p50<=4ms, detection>0.9, fp<=1%, rate>=199").unwrap();
        let r = slo.evaluate(&summary());
        assert!(r.ok, "{r}");
    }

    #[test]
    fn unmeasured_metric_fails() {
        let mut s = summary();
        s.detection.attacks.rate = None;
        let r = Slo::parse("detection>=0.5").unwrap().evaluate(&s);
        assert!(!r.ok);
        assert_eq!(r.terms[0].actual, None);
    }

    #[test]
    fn bad_terms_are_named() {
        for (text, needle) in [
            ("p99=50ms", "needs an operator"),
            ("p98<50ms", "unknown metric"),
            ("p99<50", "needs a unit"),
            ("errors<150%", "more than 100"),
            ("", "empty SLO"),
            ("detection>=abc", "not a share"),
        ] {
            let e = Slo::parse(text).unwrap_err();
            assert!(e.contains(needle), "{text}: {e}");
        }
    }
}
