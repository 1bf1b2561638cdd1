//! Preflight diagnoses: can we reach the target (DNS, TCP, TLS: certificate, SNI, ALPN h2),
//! and does it behave like a WAF in the path (one benign request, a few unmistakable
//! attacks)? Explains what it sees in plain language. It sends a handful of requests and
//! never runs a load; `wafload run` calls it first and only prints its warnings.

mod diagnosis;
mod tls;

pub use diagnosis::{Diagnosis, Severity};

use crate::classify::monitor::{collect, MonitorError};
use crate::classify::{Class, Classifier};
use crate::error::Error;
use crate::plan::PreparedRequest;
use crate::profile::Profile;
use crate::transport::http::{Endpoint, HttpTransport};
use crate::transport::{ErrorKind, Outcome, Session, Transport};
use bytes::Bytes;
use http::{HeaderValue, Method};
use serde::Serialize;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Bounds for one doctor pass.
#[derive(Clone, Debug)]
pub struct DoctorOptions {
    /// Upper bound for each step (resolve, connect, handshake, each probe).
    pub step_timeout: Duration,
    /// Send the benign and attack probes (off: network and TLS checks only).
    pub probes: bool,
}

impl Default for DoctorOptions {
    fn default() -> Self {
        DoctorOptions {
            step_timeout: Duration::from_secs(5),
            probes: true,
        }
    }
}

/// Everything the doctor found, in the order it looked.
#[derive(Clone, Debug, Serialize)]
pub struct DoctorReport {
    pub target: String,
    pub findings: Vec<Diagnosis>,
}

/// What a probe is: the benign request or an unmistakable attack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ProbeKind {
    Benign,
    Attack,
}

struct Probe {
    kind: ProbeKind,
    what: &'static str,
    query: &'static str,
}

/// One benign request and four attacks every WAF ruleset blocks at its lowest setting
/// (OWASP CRS paranoia 1 scores each of them above the blocking threshold). All are GETs,
/// so method and content-type policies cannot block them by accident.
const PROBES: [Probe; 5] = [
    Probe {
        kind: ProbeKind::Benign,
        what: "benign",
        query: "?q=hello",
    },
    Probe {
        kind: ProbeKind::Attack,
        what: "SQL injection",
        query: "?id=1%27%20OR%20%271%27%3D%271",
    },
    Probe {
        kind: ProbeKind::Attack,
        what: "XSS",
        query: "?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E",
    },
    Probe {
        kind: ProbeKind::Attack,
        what: "path traversal",
        query: "?file=..%2F..%2F..%2F..%2Fetc%2Fpasswd",
    },
    Probe {
        kind: ProbeKind::Attack,
        what: "Log4Shell",
        query: "?x=%24%7Bjndi%3Aldap%3A%2F%2F127.0.0.1%3A1389%2Fa%7D",
    },
];

impl DoctorReport {
    /// The most serious severity found (`Ok` for an empty report).
    pub fn worst(&self) -> Severity {
        self.findings
            .iter()
            .map(Diagnosis::severity)
            .max()
            .unwrap_or(Severity::Ok)
    }

    /// Findings at or above `level`.
    pub fn at_least(&self, level: Severity) -> impl Iterator<Item = &Diagnosis> {
        self.findings.iter().filter(move |d| d.severity() >= level)
    }

    /// One line per finding: `[severity] message`.
    pub fn render(&self) -> String {
        let mut out = format!("wafload doctor → {}\n", self.target);
        for d in &self.findings {
            let _ = writeln!(out, "  [{:<7}] {}", d.severity().as_str(), d.message());
        }
        let verdict = match self.worst() {
            Severity::Ok | Severity::Info => "ready to run",
            Severity::Warning => {
                "a run will work, but read the warnings: they change what it measures"
            }
            Severity::Error => "a run would not measure the WAF: fix the errors first",
        };
        let _ = writeln!(out, "  => {verdict}");
        out
    }

    /// JSON with a severity and a message beside each typed finding.
    pub fn to_json(&self) -> serde_json::Value {
        let findings: Vec<serde_json::Value> = self
            .findings
            .iter()
            .map(|d| {
                let mut v = serde_json::to_value(d).unwrap_or(serde_json::Value::Null);
                if let Some(map) = v.as_object_mut() {
                    map.insert("severity".into(), d.severity().as_str().into());
                    map.insert("message".into(), d.message().into());
                }
                v
            })
            .collect();
        serde_json::json!({
            "target": self.target,
            "worst": self.worst().as_str(),
            "findings": findings,
        })
    }
}

/// Diagnoses the profile's target. Only a URL that cannot be parsed is an error; every
/// network or WAF problem is a finding.
pub async fn diagnose(profile: &Profile, options: &DoctorOptions) -> Result<DoctorReport, Error> {
    let url = profile.target.url.clone();
    let mut report = DoctorReport {
        target: url.clone(),
        findings: Vec::new(),
    };
    let uri: http::Uri = url
        .parse()
        .map_err(|e| Error::flag("--target", format!("{url:?} is not a URL: {e}")))?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => {
            return Err(Error::flag(
                "--target",
                format!("{url:?} must start with http:// or https://"),
            ))
        }
    };
    let host = uri
        .host()
        .ok_or_else(|| Error::flag("--target", format!("{url:?} has no host")))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let step = options.step_timeout.min(profile.timeout);

    // DNS.
    let lookup = tokio::time::timeout(step, tokio::net::lookup_host((host.clone(), port))).await;
    let addrs: Vec<SocketAddr> = match lookup {
        Ok(Ok(a)) => a.collect(),
        Ok(Err(e)) => {
            report.findings.push(Diagnosis::DnsFailed {
                host,
                error: e.to_string(),
            });
            return Ok(report);
        }
        Err(_) => {
            report.findings.push(Diagnosis::DnsFailed {
                host,
                error: format!("no answer within {} ms", step.as_millis()),
            });
            return Ok(report);
        }
    };
    if addrs.is_empty() {
        report.findings.push(Diagnosis::DnsFailed {
            host,
            error: "no address".into(),
        });
        return Ok(report);
    }
    if host.parse::<std::net::IpAddr>().is_err() {
        report.findings.push(Diagnosis::Resolved {
            host: host.clone(),
            addrs: addrs.iter().map(|a| a.ip().to_string()).collect(),
        });
    }

    // TCP.
    let mut connected = None;
    let mut last_problem = None;
    for addr in &addrs {
        let started = Instant::now();
        match tokio::time::timeout(step, tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(_)) => {
                connected = Some((*addr, started.elapsed()));
                break;
            }
            Ok(Err(e)) => {
                last_problem = Some(Diagnosis::Unreachable {
                    addr: addr.to_string(),
                    error: e.to_string(),
                })
            }
            Err(_) => {
                last_problem = Some(Diagnosis::ConnectTimeout {
                    addr: addr.to_string(),
                    after_ms: step.as_millis() as u64,
                })
            }
        }
    }
    let Some((addr, took)) = connected else {
        report.findings.extend(last_problem);
        return Ok(report);
    };
    report.findings.push(Diagnosis::Connected {
        addr: addr.to_string(),
        connect_ms: took.as_secs_f64() * 1000.0,
    });

    // TLS.
    if https {
        let tls = tls::inspect(profile, &host, addr, step).await;
        report.findings.extend(tls.findings);
        if !tls.usable {
            return Ok(report);
        }
    }
    if !options.probes {
        return Ok(report);
    }
    probe(profile, step, &mut report).await;
    Ok(report)
}

/// `<prefix>-<n>` ids of the probes; the prefix never collides with a run's.
fn probe_id_prefix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "wldoctor{:08x}",
        (nanos as u64 ^ std::process::id() as u64) & 0xffff_ffff
    )
}

fn probe_requests(profile: &Profile) -> Result<Vec<(PreparedRequest, String)>, Error> {
    let uri: http::Uri = profile
        .target
        .url
        .parse()
        .map_err(|e| Error::flag("--target", format!("{e}")))?;
    let mut common = crate::plan::common_headers(profile)?;
    if !profile
        .headers
        .keys()
        .any(|k| k.eq_ignore_ascii_case("user-agent"))
    {
        common.insert(
            http::header::USER_AGENT,
            HeaderValue::from_str(&format!("wafload/{} doctor", env!("CARGO_PKG_VERSION")))
                .expect("ascii"),
        );
    }
    let base = uri.path();
    PROBES
        .iter()
        .map(|p| {
            let path = format!("{base}{}", p.query);
            let headers = common.clone();
            let label = format!("GET {path} ({})", p.what);
            let request = PreparedRequest {
                method: Method::GET,
                path: path
                    .parse()
                    .map_err(|e| Error::flag("--target", format!("probe path {path:?}: {e}")))?,
                headers,
                body: Bytes::new(),
                source: 0,
                h1_head: Default::default(),
            };
            Ok((request, label))
        })
        .collect()
}

/// Sends the probes one by one and turns their outcomes (and the monitor log) into findings.
async fn probe(profile: &Profile, step: Duration, report: &mut DoctorReport) {
    let classifier = match profile.classify.compile() {
        Ok(c) => c,
        Err(e) => {
            report.findings.push(Diagnosis::ProbesNotSent {
                error: format!("classify: {e}"),
            });
            return;
        }
    };
    let requests = match probe_requests(profile) {
        Ok(r) => r,
        Err(e) => {
            report.findings.push(Diagnosis::ProbesNotSent {
                error: e.to_string(),
            });
            return;
        }
    };
    let monitor = match &profile.monitor {
        Some(spec) => match spec.compile() {
            Ok(reading) => Some((spec, reading, spec.begin())),
            Err(e) => {
                report
                    .findings
                    .push(Diagnosis::MonitorUnusable { error: e });
                None
            }
        },
        None => None,
    };
    let mut single = profile.clone();
    single.connections = 1;
    single.timeout = step;
    let endpoint = match Endpoint::prepare(&single).await {
        Ok(e) => e,
        Err(e) => {
            report.findings.push(Diagnosis::ProbesNotSent {
                error: e.to_string(),
            });
            return;
        }
    };
    let transport = HttpTransport::new(endpoint);
    let mut session = transport.session(0);
    let prefix = probe_id_prefix();
    let mut outcomes = Vec::with_capacity(requests.len());
    for (i, (request, label)) in requests.iter().enumerate() {
        let id = crate::transport::RequestId::new(&prefix, i as u64);
        let outcome = session.send(request, &id, std::time::Instant::now()).await;
        outcomes.push((PROBES[i].kind, label.clone(), outcome));
    }
    assess(&classifier, &outcomes, profile, &mut report.findings);

    if let Some((spec, reading, cursor)) = monitor {
        let log = spec.log.display().to_string();
        let settle = spec.settle.min(Duration::from_millis(300));
        let wait = spec.wait.min(Duration::from_secs(5));
        let attack_slots: Vec<u64> = (0..PROBES.len() as u64)
            .filter(|&i| PROBES[i as usize].kind == ProbeKind::Attack)
            .collect();
        let found =
            tokio::task::spawn_blocking(move || collect(&cursor, &reading, &prefix, settle, wait))
                .await;
        match found {
            Ok(Ok(found)) => {
                let seen = attack_slots
                    .iter()
                    .filter(|s| found.slots.contains(s))
                    .count();
                report.findings.push(if seen > 0 {
                    Diagnosis::MonitorConfirms {
                        path: log,
                        seen,
                        of: attack_slots.len(),
                    }
                } else {
                    Diagnosis::MonitorSilent {
                        path: log,
                        header: profile.request_id_header.clone(),
                        new_lines: found.lines,
                    }
                });
            }
            Ok(Err(MonitorError::Missing(_))) => {
                report
                    .findings
                    .push(Diagnosis::MonitorLogMissing { path: log });
            }
            Ok(Err(e)) => report.findings.push(Diagnosis::MonitorUnusable {
                error: e.to_string(),
            }),
            Err(e) => report.findings.push(Diagnosis::MonitorUnusable {
                error: format!("log reader: {e}"),
            }),
        }
    }
}

/// The probe verdicts as findings; pure, so every branch is unit-tested.
fn assess(
    classifier: &Classifier,
    outcomes: &[(ProbeKind, String, Outcome)],
    profile: &Profile,
    findings: &mut Vec<Diagnosis>,
) {
    let mut not_found = Vec::new();
    let mut ext_proc = Vec::new();
    let mut ext_proc_evidence = None;
    let mut attacks_blocked = 0;
    let mut attacks_passed = Vec::new();
    let mut attack_resets = Vec::new();
    let mut benign_reset = false;
    let attacks = outcomes
        .iter()
        .filter(|(k, _, _)| *k == ProbeKind::Attack)
        .count();
    for (kind, label, outcome) in outcomes {
        let (class, flags) = classifier.classify(outcome);
        if flags.ext_proc_error {
            ext_proc.push(label.clone());
            ext_proc_evidence.get_or_insert_with(|| {
                let body = String::from_utf8_lossy(&outcome.body_prefix);
                format!(
                    "{} {}",
                    outcome.status.unwrap_or(0),
                    body.trim().chars().take(80).collect::<String>()
                )
            });
            continue;
        }
        if let Some(err) = &outcome.error {
            if err.kind == ErrorKind::Protocol {
                ext_proc.push(label.clone());
                ext_proc_evidence
                    .get_or_insert_with(|| format!("HTTP protocol error: {}", err.message));
                continue;
            }
        }
        if outcome.status == Some(404) {
            not_found.push(label.clone());
            continue;
        }
        match (kind, class) {
            (ProbeKind::Attack, Class::Blocked) => attacks_blocked += 1,
            (ProbeKind::Attack, Class::Passed) => attacks_passed.push(label.clone()),
            (ProbeKind::Benign, Class::Passed) => findings.push(Diagnosis::BenignPassed {
                request: label.clone(),
                status: outcome.status.unwrap_or(0),
            }),
            (ProbeKind::Benign, Class::Blocked) => findings.push(Diagnosis::BenignBlocked {
                request: label.clone(),
                status: outcome.status,
            }),
            (_, Class::Unresolved) => findings.push(Diagnosis::UnexpectedStatus {
                request: label.clone(),
                status: outcome.status.unwrap_or(0),
            }),
            (kind, _) => {
                let (error_kind, error) = outcome
                    .error
                    .as_ref()
                    .map(|e| (e.kind, e.message.clone()))
                    .unwrap_or((ErrorKind::Other, "no response".into()));
                if error_kind == ErrorKind::Reset {
                    match kind {
                        ProbeKind::Attack => {
                            attack_resets.push(label.clone());
                            continue;
                        }
                        ProbeKind::Benign => benign_reset = true,
                    }
                }
                findings.push(Diagnosis::RequestFailed {
                    request: label.clone(),
                    error_kind: error_kind.as_str().into(),
                    error,
                });
            }
        }
    }
    if !ext_proc.is_empty() {
        findings.push(Diagnosis::ExtProcUnreachable {
            requests: ext_proc,
            evidence: ext_proc_evidence.unwrap_or_default(),
        });
    }
    if !not_found.is_empty() {
        findings.push(Diagnosis::NotFound {
            requests: not_found,
        });
    }
    if !attack_resets.is_empty() {
        if benign_reset {
            // The benign request was reset too: not a WAF dropping attacks.
            findings.extend(
                attack_resets
                    .into_iter()
                    .map(|request| Diagnosis::RequestFailed {
                        request,
                        error_kind: "reset".into(),
                        error: "connection reset".into(),
                    }),
            );
        } else {
            findings.push(Diagnosis::ResetsOnAttacks {
                attacks: attack_resets,
            });
        }
    }
    if attacks_blocked > 0 && attacks_passed.is_empty() {
        findings.push(Diagnosis::AttacksBlocked {
            blocked: attacks_blocked,
            of: attacks,
        });
    } else if attacks_blocked > 0 {
        findings.push(Diagnosis::SomeAttacksPassed {
            passed: attacks_passed,
            blocked: attacks_blocked,
        });
    } else if !attacks_passed.is_empty() {
        findings.push(Diagnosis::NotBlocking {
            attacks: attacks_passed,
            monitor_log: profile
                .monitor
                .as_ref()
                .map(|m| m.log.display().to_string()),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &str) -> Outcome {
        Outcome {
            status: Some(status),
            body_prefix: Bytes::copy_from_slice(body.as_bytes()),
            ..Outcome::default()
        }
    }

    fn failure(kind: ErrorKind) -> Outcome {
        Outcome::failed(kind, "x")
    }

    /// Benign outcome first, then one per attack.
    fn run(
        benign: Outcome,
        attack: impl Fn(usize) -> Outcome,
        profile: &Profile,
    ) -> Vec<Diagnosis> {
        let classifier = profile.classify.compile().unwrap();
        let mut outcomes = vec![(
            ProbeKind::Benign,
            "GET /?q=hello (benign)".to_string(),
            benign,
        )];
        for i in 0..4 {
            outcomes.push((ProbeKind::Attack, format!("attack {i}"), attack(i)));
        }
        let mut findings = Vec::new();
        assess(&classifier, &outcomes, profile, &mut findings);
        findings
    }

    #[test]
    fn a_blocking_waf_is_healthy() {
        let f = run(answer(200, "ok"), |_| answer(403, ""), &Profile::default());
        assert!(matches!(f[0], Diagnosis::BenignPassed { status: 200, .. }));
        assert_eq!(f[1], Diagnosis::AttacksBlocked { blocked: 4, of: 4 });
        assert!(f.iter().all(|d| d.severity() == Severity::Ok));
    }

    #[test]
    fn attacks_answered_200_mean_not_blocking() {
        let f = run(answer(200, ""), |_| answer(200, ""), &Profile::default());
        let d = f
            .iter()
            .find(|d| matches!(d, Diagnosis::NotBlocking { .. }))
            .unwrap();
        assert!(
            d.message().contains("detection will read 0 %"),
            "{}",
            d.message()
        );
        let p = Profile {
            monitor: Some(crate::classify::monitor::MonitorSpec::preset(
                crate::classify::monitor::MonitorPreset::Modsecurity,
                "/var/log/audit.json",
            )),
            ..Profile::default()
        };
        let f = run(answer(200, ""), |_| answer(200, ""), &p);
        let d = f
            .iter()
            .find(|d| matches!(d, Diagnosis::NotBlocking { .. }))
            .unwrap();
        assert!(d
            .message()
            .contains("detection will come from the WAF log /var/log/audit.json"));
    }

    #[test]
    fn ext_proc_500_and_protocol_errors_name_grpc() {
        let body = "ext_proc_error_gRPC_error_14{upstream_connect_error}";
        let f = run(
            answer(500, body),
            |i| {
                if i == 0 {
                    failure(ErrorKind::Protocol)
                } else {
                    answer(500, body)
                }
            },
            &Profile::default(),
        );
        assert_eq!(f.len(), 1, "{f:?}");
        let Diagnosis::ExtProcUnreachable { requests, evidence } = &f[0] else {
            panic!("{f:?}")
        };
        assert_eq!(requests.len(), 5);
        assert!(
            evidence.starts_with("500 ext_proc_error_gRPC_error_14"),
            "{evidence}"
        );
        assert!(f[0].message().contains("appProtocol: grpc"));
    }

    #[test]
    fn benign_403_is_a_named_false_positive() {
        let f = run(answer(403, ""), |_| answer(403, ""), &Profile::default());
        assert_eq!(
            f[0],
            Diagnosis::BenignBlocked {
                request: "GET /?q=hello (benign)".into(),
                status: Some(403)
            }
        );
        assert!(f[0].message().contains("GET /?q=hello"));
    }

    #[test]
    fn not_found_points_at_path_or_host() {
        let f = run(answer(404, ""), |_| answer(404, ""), &Profile::default());
        assert_eq!(f.len(), 1);
        assert!(matches!(&f[0], Diagnosis::NotFound { requests } if requests.len() == 5));
        assert!(f[0].message().contains("Host header"));
    }

    #[test]
    fn resets_on_attacks_suggest_reset_is_block() {
        let f = run(
            answer(200, ""),
            |_| failure(ErrorKind::Reset),
            &Profile::default(),
        );
        assert!(f
            .iter()
            .any(|d| matches!(d, Diagnosis::ResetsOnAttacks { attacks } if attacks.len() == 4)));
        assert!(f
            .iter()
            .all(|d| !matches!(d, Diagnosis::NotBlocking { .. })));
        // With reset_is_block, resets are blocks.
        let mut p = Profile::default();
        p.classify.reset_is_block = true;
        let f = run(answer(200, ""), |_| failure(ErrorKind::Reset), &p);
        assert!(f.contains(&Diagnosis::AttacksBlocked { blocked: 4, of: 4 }));
        // Everything reset: not the WAF's choice.
        let f = run(
            failure(ErrorKind::Reset),
            |_| failure(ErrorKind::Reset),
            &Profile::default(),
        );
        assert!(f
            .iter()
            .all(|d| !matches!(d, Diagnosis::ResetsOnAttacks { .. })));
    }

    #[test]
    fn partial_blocking_lists_what_passed() {
        let f = run(
            answer(200, ""),
            |i| answer(if i < 2 { 403 } else { 200 }, ""),
            &Profile::default(),
        );
        assert!(f.iter().any(|d| matches!(d, Diagnosis::SomeAttacksPassed { blocked: 2, passed } if passed.len() == 2)));
    }

    #[test]
    fn probes_carry_host_and_profile_headers() {
        let mut p = Profile::default();
        p.target.url = "http://127.0.0.1:9/api/".into();
        p.target.host = Some("shop.example".into());
        p.headers.insert("X-Env".into(), "staging".into());
        let r = probe_requests(&p).unwrap();
        assert_eq!(r.len(), 5);
        assert_eq!(r[0].0.path.as_str(), "/api/?q=hello");
        assert_eq!(r[0].0.headers["host"], "shop.example");
        assert_eq!(r[0].0.headers["x-env"], "staging");
        assert!(r[4].1.contains("jndi"), "{}", r[4].1);
    }
}
