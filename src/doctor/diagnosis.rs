//! What the doctor can find, one typed variant per situation, each with a message a
//! platform engineer can act on. Tests assert the variant; people read the message.

use serde::Serialize;

/// How much a finding matters. `Error` means a run would not measure what it should.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Ok,
    Info,
    Warning,
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Ok => "ok",
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

/// One finding of `wafload doctor`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Diagnosis {
    /// The target's host resolved.
    Resolved { host: String, addrs: Vec<String> },
    /// The target's host did not resolve.
    DnsFailed { host: String, error: String },
    /// Nothing accepts connections at the address (refused, unreachable).
    Unreachable { addr: String, error: String },
    /// The TCP connection did not complete in time (a firewall dropping packets?).
    ConnectTimeout { addr: String, after_ms: u64 },
    /// TCP connected.
    Connected { addr: String, connect_ms: f64 },
    /// The TLS handshake itself failed (not the certificate).
    TlsHandshakeFailed {
        error: String,
        /// The answer looked like plain HTTP: the port does not speak TLS.
        plain_http: bool,
    },
    /// TLS is up: version, ALPN result and the name sent as SNI.
    TlsOk {
        version: String,
        alpn: Option<String>,
        sni: String,
    },
    /// The certificate does not verify against the trusted roots (self-signed, unknown CA,
    /// expired). `insecure` says whether the profile accepts it anyway.
    CertificateUntrusted { reason: String, insecure: bool },
    /// The certificate is not valid for the SNI name sent.
    CertificateNameMismatch { sni: String, insecure: bool },
    /// `target.ca_file` could not be used.
    CaFileUnusable { error: String },
    /// ALPN did not select HTTP/2. `required`: the profile asks for h2 explicitly.
    NoHttp2 {
        alpn: Option<String>,
        required: bool,
    },
    /// The HTTP probes could not be sent at all.
    ProbesNotSent { error: String },
    /// Every attack probe was blocked.
    AttacksBlocked { blocked: usize, of: usize },
    /// The benign probe passed.
    BenignPassed { request: String, status: u16 },
    /// No attack probe was blocked: they were answered as passes (200).
    NotBlocking {
        attacks: Vec<String>,
        /// The monitor log, when the profile configures one.
        monitor_log: Option<String>,
    },
    /// Some attack probes were blocked, these passed.
    SomeAttacksPassed { passed: Vec<String>, blocked: usize },
    /// 500 with Envoy's ext_proc error body, or HTTP protocol errors: the gateway cannot
    /// talk to its external processor.
    ExtProcUnreachable {
        requests: Vec<String>,
        evidence: String,
    },
    /// The benign probe was blocked: a false positive.
    BenignBlocked {
        request: String,
        status: Option<u16>,
    },
    /// 404s: the URL path or Host header does not reach the application.
    NotFound { requests: Vec<String> },
    /// Attack probes got connection resets (the WAF drops attacks) and resets do not count
    /// as blocks.
    ResetsOnAttacks { attacks: Vec<String> },
    /// A status that is neither a block nor a pass under the classify rules.
    UnexpectedStatus { request: String, status: u16 },
    /// A probe got no response (timeout, reset, TLS, …).
    RequestFailed {
        request: String,
        error_kind: String,
        error: String,
    },
    /// The monitor log named in the profile does not exist.
    MonitorLogMissing { path: String },
    /// The monitor log marks the attack probes as would-block: detection will come from it.
    MonitorConfirms {
        path: String,
        seen: usize,
        of: usize,
    },
    /// The monitor log has no would-block entry for the attack probes.
    MonitorSilent {
        path: String,
        header: String,
        new_lines: u64,
    },
    /// The monitor settings cannot be used.
    MonitorUnusable { error: String },
}

fn list(items: &[String]) -> String {
    const SHOWN: usize = 4;
    let mut text = items
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join("; ");
    if items.len() > SHOWN {
        text.push_str(&format!("; and {} more", items.len() - SHOWN));
    }
    text
}

impl Diagnosis {
    pub fn severity(&self) -> Severity {
        use Diagnosis::*;
        match self {
            Resolved { .. } | Connected { .. } | TlsOk { .. } => Severity::Ok,
            AttacksBlocked { .. } | BenignPassed { .. } | MonitorConfirms { .. } => Severity::Ok,
            DnsFailed { .. } | Unreachable { .. } | ConnectTimeout { .. } => Severity::Error,
            TlsHandshakeFailed { .. } | CaFileUnusable { .. } | ProbesNotSent { .. } => {
                Severity::Error
            }
            CertificateUntrusted { insecure, .. } | CertificateNameMismatch { insecure, .. } => {
                if *insecure {
                    Severity::Info
                } else {
                    Severity::Error
                }
            }
            NoHttp2 { required, .. } => {
                if *required {
                    Severity::Error
                } else {
                    Severity::Info
                }
            }
            NotBlocking { .. } => Severity::Warning,
            SomeAttacksPassed { .. } => Severity::Info,
            ExtProcUnreachable { .. } | NotFound { .. } => Severity::Error,
            BenignBlocked { .. } | ResetsOnAttacks { .. } => Severity::Warning,
            UnexpectedStatus { .. } | RequestFailed { .. } => Severity::Warning,
            MonitorLogMissing { .. } | MonitorSilent { .. } => Severity::Warning,
            MonitorUnusable { .. } => Severity::Error,
        }
    }

    /// Problems that stop `wafload run` before it sends anything (it reports them itself),
    /// as opposed to findings about how the WAF answers.
    pub fn stops_a_run(&self) -> bool {
        use Diagnosis::*;
        match self {
            DnsFailed { .. } | Unreachable { .. } | ConnectTimeout { .. } => true,
            TlsHandshakeFailed { .. } | CaFileUnusable { .. } | ProbesNotSent { .. } => true,
            CertificateUntrusted { insecure, .. } | CertificateNameMismatch { insecure, .. } => {
                !insecure
            }
            _ => false,
        }
    }

    /// The plain-language explanation.
    pub fn message(&self) -> String {
        use Diagnosis::*;
        match self {
            Resolved { host, addrs } => format!("{host} resolves to {}", addrs.join(", ")),
            DnsFailed { host, error } => format!(
                "cannot resolve {host} ({error}): check the host in target.url, /etc/hosts or the DNS this machine uses"
            ),
            Unreachable { addr, error } => format!(
                "nothing accepts connections on {addr} ({error}): is the gateway running, and is the port in target.url right?"
            ),
            ConnectTimeout { addr, after_ms } => format!(
                "no TCP connection to {addr} within {after_ms} ms: a firewall may drop the packets, or the host is down"
            ),
            Connected { addr, connect_ms } => format!("TCP connect to {addr} in {connect_ms:.1} ms"),
            TlsHandshakeFailed { error, plain_http: true } => format!(
                "the TLS handshake failed ({error}); the port answers in plain HTTP: use http:// in target.url"
            ),
            TlsHandshakeFailed { error, plain_http: false } => format!(
                "the TLS handshake failed ({error}): check that the port serves TLS, target.sni, and the TLS versions the gateway accepts"
            ),
            TlsOk { version, alpn, sni } => format!(
                "TLS {version} with SNI {sni}, ALPN {}",
                alpn.as_deref().unwrap_or("none")
            ),
            CertificateUntrusted { reason, insecure: true } => format!(
                "the certificate is not trusted ({reason}); accepted because target.insecure is set"
            ),
            CertificateUntrusted { reason, insecure: false } => format!(
                "the certificate is not trusted ({reason}): set target.ca_file to the CA's PEM, or target.insecure: true for a lab or staging gateway"
            ),
            CertificateNameMismatch { sni, insecure } => format!(
                "the certificate is not valid for {sni}: set target.sni to a name the certificate carries{}",
                if *insecure { " (accepted anyway because target.insecure is set)" } else { "" }
            ),
            CaFileUnusable { error } => format!("target.ca_file cannot be used: {error}"),
            NoHttp2 { alpn, required: true } => format!(
                "the profile asks for HTTP/2 but ALPN selected {}: the gateway does not offer h2 on this listener; use http: auto or h1",
                alpn.as_deref().unwrap_or("nothing")
            ),
            NoHttp2 { alpn, required: false } => format!(
                "the gateway did not offer HTTP/2 (ALPN {}): the run will use HTTP/1.1",
                alpn.as_deref().unwrap_or("none")
            ),
            ProbesNotSent { error } => format!("the HTTP probes could not be sent: {error}"),
            AttacksBlocked { blocked, of } => {
                format!("{blocked} of {of} unmistakable attacks were blocked")
            }
            BenignPassed { request, status } => format!("the benign request {request} passed ({status})"),
            NotBlocking { attacks, monitor_log: Some(log) } => format!(
                "the WAF is not blocking: unmistakable attacks were answered as passes ({}); it is in monitoring mode, or not in the request path; detection will come from the WAF log {log}",
                list(attacks)
            ),
            NotBlocking { attacks, monitor_log: None } => format!(
                "the WAF is not blocking: unmistakable attacks were answered as passes ({}); it is in monitoring mode, or not in the request path; no WAF log is configured (monitor:), so detection will read 0 %",
                list(attacks)
            ),
            SomeAttacksPassed { passed, blocked } => format!(
                "{blocked} attacks were blocked but these passed: {}; the rules may not cover them",
                list(passed)
            ),
            ExtProcUnreachable { requests, evidence } => format!(
                "the gateway cannot reach its ext_proc server over HTTP/2 ({evidence}, on {}): declare the processor's service port as gRPC (appProtocol: grpc, or a port name grpc-…), and check TLS to the processor",
                list(requests)
            ),
            BenignBlocked { request, status } => format!(
                "a benign request was blocked ({}): {request} — a false positive; the false-positive rate will not be 0",
                status.map(|s| s.to_string()).unwrap_or_else(|| "reset".into())
            ),
            NotFound { requests } => format!(
                "404 Not Found for {}: the path in target.url or the Host header (target.host) does not route to the application",
                list(requests)
            ),
            ResetsOnAttacks { attacks } => format!(
                "attacks got connection resets instead of a block page ({}): the WAF drops them; set classify.reset_is_block (--reset-is-block) so a reset counts as blocked, else they count as failed",
                list(attacks)
            ),
            UnexpectedStatus { request, status } => format!(
                "{request} was answered {status}, neither a block nor a pass under the classify rules; add it to classify.block_status or pass_status if it is one"
            ),
            RequestFailed { request, error_kind, error } => format!("{request} got no response ({error_kind}: {error})"),
            MonitorLogMissing { path } => format!(
                "the monitor log {path} does not exist: check monitor.log, and that the WAF writes its audit log there"
            ),
            MonitorConfirms { path, seen, of } => format!(
                "the WAF log {path} marks {seen} of {of} attacks as would-block: monitoring-mode detection works"
            ),
            MonitorSilent { path, header, new_lines } => format!(
                "the WAF log {path} has no would-block entry for the attacks ({new_lines} new lines): check that the WAF logs the {header} header as its transaction id, and monitor.match"
            ),
            MonitorUnusable { error } => format!("monitor: {error}"),
        }
    }
}
