//! Run profiles: what to send, where, how fast, and how to read the answers.
//! Owns parsing, defaults, validation (with file:line errors) and CLI overrides.
//! It must not build requests or touch the network.

mod duration_serde;

use crate::classify::monitor::{MonitorPreset, MonitorSpec};
use crate::classify::ClassifyRules;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use duration_serde::parse_duration;

/// A profile problem, always printed as one line naming the file and, when known, the line.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("{}: cannot read profile: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}:{line}:{column}: {message}", path.display())]
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
}

/// HTTP version to speak. `Auto` negotiates h2 via ALPN over TLS and uses HTTP/1.1 in clear.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum HttpVersion {
    #[default]
    Auto,
    H1,
    H2,
}

impl fmt::Display for HttpVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HttpVersion::Auto => "auto",
            HttpVersion::H1 => "h1",
            HttpVersion::H2 => "h2",
        })
    }
}

/// Where traffic goes and how the connection is set up.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetSpec {
    /// Base URL; its path is the prefix for corpus requests.
    #[serde(default)]
    pub url: String,
    /// `Host` header to send instead of the URL's authority (gateways route by it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// TLS server name to send instead of the URL's host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    /// Accept any certificate (lab and staging gateways with self-signed certificates).
    #[serde(default)]
    pub insecure: bool,
    /// PEM file with extra CA certificates to trust.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    #[serde(default)]
    pub http: HttpVersion,
}

/// One stage of the rate schedule: constant `rate` for `duration`, or a linear ramp from
/// `rate` to `to` when `to` is given.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stage {
    #[serde(
        serialize_with = "duration_serde::serialize",
        deserialize_with = "duration_serde::stage_duration"
    )]
    pub duration: Duration,
    #[serde(deserialize_with = "duration_serde::rate")]
    pub rate: f64,
    #[serde(
        default,
        deserialize_with = "duration_serde::opt_to_rate",
        skip_serializing_if = "Option::is_none"
    )]
    pub to: Option<f64>,
}

/// A complete run description. Every field has a default except the target URL, which
/// may also come from `--target`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default)]
    pub target: TargetSpec,
    /// The same service without the WAF, for `wafload overhead` (e.g. the gateway route
    /// that skips the filter, or the lab's baseline front).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<TargetSpec>,
    /// Extra headers sent with every request.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Header names whose values are redacted in results and reports.
    #[serde(default)]
    pub secret_headers: Vec<String>,
    /// Corpus roots (gotestwaf format), relative to the profile file.
    #[serde(default)]
    pub corpus: Vec<PathBuf>,
    /// Share of benign requests in the traffic (0.8 = 80 % benign). Absent: every corpus
    /// request is sent as it is, benign sets included, in a seeded shuffled order.
    #[serde(
        default,
        deserialize_with = "duration_serde::opt_share",
        skip_serializing_if = "Option::is_none"
    )]
    pub benign_share: Option<f64>,
    /// Constant rate in requests per second (shorthand for one stage).
    #[serde(
        default,
        deserialize_with = "duration_serde::opt_rate",
        skip_serializing_if = "Option::is_none"
    )]
    pub rate: Option<f64>,
    /// Rate stages; when present they replace `rate`/`duration`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<Stage>,
    /// How long to send at `rate`.
    #[serde(
        default,
        with = "duration_serde::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub duration: Option<Duration>,
    /// Stop after this many requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<u64>,
    /// Cap on open TCP connections. With HTTP/1.1 it is also the cap on requests in flight.
    #[serde(default = "default_connections")]
    pub connections: usize,
    /// Concurrent HTTP/2 streams per connection.
    #[serde(default = "default_streams")]
    pub streams_per_connection: usize,
    /// Engine threads sending requests (like wrk's `-t`); default one per core. When the
    /// target runs on the same machine, fewer threads than cores leave it CPU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<usize>,
    #[serde(
        serialize_with = "duration_serde::serialize",
        deserialize_with = "duration_serde::timeout",
        default = "default_timeout"
    )]
    pub timeout: Duration,
    #[serde(default)]
    pub classify: ClassifyRules,
    /// Monitoring-mode detection: read would-blocks from the WAF's log after the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitor: Option<MonitorSpec>,
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Header carrying `<run>-<n>` so WAF logs can be joined with our records.
    #[serde(default = "default_request_id_header")]
    pub request_id_header: String,
    /// Closed loop: `connections` workers send as fast as answers come back.
    #[serde(default)]
    pub max: bool,
    /// Send one plain GET of the target URL instead of a corpus (raw throughput, like wrk).
    #[serde(default)]
    pub plain: bool,
    /// HTTP/1.1 client: `wire` (lean, default) or `hyper` (for cross-checks).
    #[serde(default)]
    pub h1_engine: crate::transport::http::H1Engine,
    /// HTTP/2 client: `wire` (lean, default) or `h2` (the `h2` crate, for cross-checks).
    #[serde(default)]
    pub h2_engine: crate::transport::http::H2Engine,
    /// Where run folders are written.
    #[serde(default = "default_results_dir")]
    pub results_dir: PathBuf,
    /// Your own traffic files (`wafload traffic import`), relative to the profile file:
    /// plain paths or `{file, weight}`. With `benign_share` they replace the corpus's
    /// benign sets as the benign mix, drawn by weight.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub benign: Vec<BenignFile>,
    /// An OpenAPI 3 document: attack payloads are also placed into its operations'
    /// real parameters and body fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub openapi: Option<OpenApiSource>,
    /// Replay the traffic files at their recorded times divided by this factor (2.0 =
    /// twice as fast) instead of at `rate`.
    #[serde(
        default,
        deserialize_with = "opt_replay_speed",
        skip_serializing_if = "Option::is_none"
    )]
    pub replay_speed: Option<f64>,
}

/// One traffic file in the benign mix, with its share of the benign slots relative to
/// the other files' weights.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BenignFile {
    pub file: PathBuf,
    pub weight: f64,
}

impl<'de> Deserialize<'de> for BenignFile {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Full {
            file: PathBuf,
            #[serde(default = "one")]
            weight: f64,
        }
        fn one() -> f64 {
            1.0
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Path(PathBuf),
            Full(Full),
        }
        let (file, weight) = match Raw::deserialize(d).map_err(|_| {
            duration_serde::field_error::<D::Error>(
                "benign",
                "each entry is a file path or {file: PATH, weight: N}",
            )
        })? {
            Raw::Path(file) => (file, 1.0),
            Raw::Full(f) => (f.file, f.weight),
        };
        if !(weight.is_finite() && weight > 0.0 && weight <= 1e6) {
            return Err(duration_serde::field_error(
                "weight",
                format!("must be a positive number (at most 1e6), got {weight}"),
            ));
        }
        Ok(BenignFile { file, weight })
    }
}

/// The `openapi:` section: which document, and where payloads go.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenApiSource {
    /// OpenAPI 3.0 document (YAML or JSON), relative to the profile file.
    pub file: PathBuf,
    /// Location kinds to use (path, query, header, json-body, form-body); empty = all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub locations: Vec<crate::openapi::Location>,
    /// `rotate` (default): one point per kind per payload, in turn; `all`: every point.
    #[serde(default)]
    pub coverage: crate::openapi::Coverage,
    /// API path prefix instead of the document's first server path (e.g. "/").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_path: Option<String>,
}

fn opt_replay_speed<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    let v = f64::deserialize(d)?;
    if v.is_finite() && v > 0.0 && v <= 1e6 {
        Ok(Some(v))
    } else {
        Err(duration_serde::field_error(
            "replay_speed",
            format!("must be a positive factor (2.0 = twice as fast), got {v}"),
        ))
    }
}

fn default_connections() -> usize {
    64
}
fn default_streams() -> usize {
    32
}
fn default_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_seed() -> u64 {
    1
}
fn default_request_id_header() -> String {
    "x-request-id".to_string()
}
fn default_results_dir() -> PathBuf {
    PathBuf::from("results")
}

impl Default for Profile {
    fn default() -> Self {
        Profile {
            name: None,
            target: TargetSpec::default(),
            baseline: None,
            headers: BTreeMap::new(),
            secret_headers: Vec::new(),
            corpus: Vec::new(),
            benign_share: None,
            rate: None,
            stages: Vec::new(),
            duration: None,
            requests: None,
            connections: default_connections(),
            streams_per_connection: default_streams(),
            threads: None,
            timeout: default_timeout(),
            classify: ClassifyRules::default(),
            monitor: None,
            seed: default_seed(),
            request_id_header: default_request_id_header(),
            max: false,
            plain: false,
            h1_engine: Default::default(),
            h2_engine: Default::default(),
            results_dir: default_results_dir(),
            benign: Vec::new(),
            openapi: None,
            replay_speed: None,
        }
    }
}

/// Values given on the command line; each one replaces the profile's value.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub target: Option<String>,
    pub host: Option<String>,
    pub sni: Option<String>,
    pub insecure: bool,
    pub ca_file: Option<PathBuf>,
    pub http: Option<HttpVersion>,
    pub headers: Vec<(String, String)>,
    pub corpus: Vec<PathBuf>,
    pub benign_share: Option<f64>,
    pub rate: Option<f64>,
    pub duration: Option<Duration>,
    pub requests: Option<u64>,
    pub connections: Option<usize>,
    pub streams: Option<usize>,
    pub threads: Option<usize>,
    pub h1_engine: Option<crate::transport::http::H1Engine>,
    pub h2_engine: Option<crate::transport::http::H2Engine>,
    pub timeout: Option<Duration>,
    pub seed: Option<u64>,
    pub max: bool,
    pub plain: bool,
    pub results_dir: Option<PathBuf>,
    pub request_id_header: Option<String>,
    pub reset_is_block: bool,
    /// `--monitor-log`: the WAF log to read would-blocks from.
    pub monitor_log: Option<PathBuf>,
    /// `--monitor-preset`: how to read it.
    pub monitor_preset: Option<MonitorPreset>,
    /// Traffic files (weight 1 each); replaces the profile's `benign` list.
    pub benign: Vec<PathBuf>,
    pub replay_speed: Option<f64>,
}

impl Profile {
    /// Reads a profile file; relative paths inside it are resolved against its folder.
    pub fn load(path: &Path) -> Result<Profile, ProfileError> {
        let text = std::fs::read_to_string(path).map_err(|source| ProfileError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut profile = Profile::parse(&text, path)?;
        let base = path.parent().unwrap_or(Path::new("."));
        profile.resolve_paths(base);
        Ok(profile)
    }

    /// Parses profile text; `path` is only used in error messages.
    pub fn parse(text: &str, path: &Path) -> Result<Profile, ProfileError> {
        let profile: Profile =
            serde_yaml_ng::from_str(text).map_err(|e| yaml_error_in(path, text, &e))?;
        profile.validate(path)?;
        Ok(profile)
    }

    fn resolve_paths(&mut self, base: &Path) {
        for dir in &mut self.corpus {
            if dir.is_relative() {
                *dir = base.join(&*dir);
            }
        }
        if let Some(ca) = &mut self.target.ca_file {
            if ca.is_relative() {
                *ca = base.join(&*ca);
            }
        }
        if let Some(m) = &mut self.monitor {
            if m.log.is_relative() {
                m.log = base.join(&m.log);
            }
        }
        for b in &mut self.benign {
            if b.file.is_relative() {
                b.file = base.join(&b.file);
            }
        }
        if let Some(o) = &mut self.openapi {
            if o.file.is_relative() {
                o.file = base.join(&o.file);
            }
        }
    }

    /// Applies command-line values on top of the profile.
    pub fn apply(&mut self, o: &Overrides) {
        if let Some(v) = &o.target {
            self.target.url = v.clone();
        }
        if let Some(v) = &o.host {
            self.target.host = Some(v.clone());
        }
        if let Some(v) = &o.sni {
            self.target.sni = Some(v.clone());
        }
        if o.insecure {
            self.target.insecure = true;
        }
        if let Some(v) = &o.ca_file {
            self.target.ca_file = Some(v.clone());
        }
        if let Some(v) = o.http {
            self.target.http = v;
        }
        for (k, v) in &o.headers {
            self.headers.insert(k.clone(), v.clone());
        }
        if !o.corpus.is_empty() {
            self.corpus = o.corpus.clone();
        }
        if let Some(v) = o.benign_share {
            self.benign_share = Some(v);
        }
        if let Some(v) = o.rate {
            self.rate = Some(v);
            self.stages.clear();
            self.replay_speed = None;
        }
        if !o.benign.is_empty() {
            self.benign = o
                .benign
                .iter()
                .map(|file| BenignFile {
                    file: file.clone(),
                    weight: 1.0,
                })
                .collect();
        }
        if let Some(v) = o.replay_speed {
            self.replay_speed = Some(v);
            self.rate = None;
            self.stages.clear();
        }
        if let Some(v) = o.duration {
            self.duration = Some(v);
            if !self.stages.is_empty() && o.rate.is_none() {
                // A duration on the command line replaces the staged schedule's length
                // only when it is a single constant stage; otherwise keep the stages.
                if self.stages.len() == 1 && self.stages[0].to.is_none() {
                    self.rate = Some(self.stages[0].rate);
                    self.stages.clear();
                }
            }
        }
        if let Some(v) = o.requests {
            self.requests = Some(v);
        }
        if let Some(v) = o.threads {
            self.threads = Some(v);
        }
        if let Some(v) = o.h1_engine {
            self.h1_engine = v;
        }
        if let Some(v) = o.h2_engine {
            self.h2_engine = v;
        }
        if let Some(v) = o.connections {
            self.connections = v;
        }
        if let Some(v) = o.streams {
            self.streams_per_connection = v;
        }
        if let Some(v) = o.timeout {
            self.timeout = v;
        }
        if let Some(v) = o.seed {
            self.seed = v;
        }
        if o.max {
            self.max = true;
        }
        if o.plain {
            self.plain = true;
        }
        if let Some(v) = &o.results_dir {
            self.results_dir = v.clone();
        }
        if let Some(v) = &o.request_id_header {
            self.request_id_header = v.clone();
        }
        if o.reset_is_block {
            self.classify.reset_is_block = true;
        }
        match (&mut self.monitor, &o.monitor_log) {
            (Some(m), log) => {
                if let Some(log) = log {
                    m.log = log.clone();
                }
                if let Some(p) = o.monitor_preset {
                    *m = MonitorSpec {
                        preset: Some(p),
                        id_field: None,
                        pattern: None,
                        ..m.clone()
                    };
                }
            }
            (None, Some(log)) => {
                let preset = o.monitor_preset.unwrap_or(MonitorPreset::Modsecurity);
                self.monitor = Some(MonitorSpec::preset(preset, log.clone()));
            }
            (None, None) => {}
        }
    }

    /// Checks what serde cannot: cross-field rules. `origin` names the file or flag source.
    pub fn validate(&self, origin: &Path) -> Result<(), ProfileError> {
        let invalid = |message: String| ProfileError::Invalid {
            path: origin.to_path_buf(),
            message,
        };
        if self.threads == Some(0) {
            return Err(invalid("threads must be at least 1".into()));
        }
        if self.connections == 0 {
            return Err(invalid("connections must be at least 1".into()));
        }
        if self.streams_per_connection == 0 {
            return Err(invalid("streams_per_connection must be at least 1".into()));
        }
        if self.timeout.is_zero() {
            return Err(invalid("timeout must be greater than 0".into()));
        }
        if self.requests == Some(0) {
            return Err(invalid("requests must be at least 1".into()));
        }
        if self.request_id_header.is_empty()
            || http::HeaderName::from_bytes(self.request_id_header.as_bytes()).is_err()
        {
            return Err(invalid(format!(
                "request_id_header {:?} is not a valid header name",
                self.request_id_header
            )));
        }
        for name in self.headers.keys() {
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(invalid(format!(
                    "headers: {name:?} is not a valid header name"
                )));
            }
        }
        self.classify
            .compile()
            .map_err(|e| invalid(format!("classify: {e}")))?;
        if let Some(m) = &self.monitor {
            m.compile().map_err(|e| invalid(format!("monitor: {e}")))?;
        }
        if self.replay_speed.is_some() && (self.rate.is_some() || !self.stages.is_empty()) {
            return Err(invalid(
                "replay_speed replays recorded times and replaces rate/stages: give one of them"
                    .into(),
            ));
        }
        if self.replay_speed.is_some() && self.benign.is_empty() {
            return Err(invalid(
                "replay_speed needs traffic files to replay: list them under benign".into(),
            ));
        }
        Ok(())
    }

    /// Checks that the profile can be run: a target and a corpus are present.
    pub fn validate_runnable(&self, origin: &str) -> Result<(), crate::Error> {
        self.validate_target(origin)?;
        if self.corpus.is_empty() && self.benign.is_empty() && !self.plain {
            return Err(crate::Error::flag(
                "--corpus",
                format!("no corpus: set corpus (or benign traffic files) in {origin}, pass --corpus DIR, or --plain for plain GETs"),
            ));
        }
        if self.corpus.is_empty() && self.openapi.is_some() {
            return Err(crate::Error::flag(
                "--corpus",
                format!("openapi places the corpus's attack payloads: set corpus in {origin} or pass --corpus DIR"),
            ));
        }
        Ok(())
    }

    /// Checks the target URL: present, http(s), with a host.
    pub fn validate_target(&self, origin: &str) -> Result<(), crate::Error> {
        if self.target.url.is_empty() {
            return Err(crate::Error::flag(
                "--target",
                format!("no target URL: set target.url in {origin} or pass --target URL"),
            ));
        }
        let url: http::Uri = self.target.url.parse().map_err(|e| {
            crate::Error::flag(
                "--target",
                format!("{:?} is not a URL: {e}", self.target.url),
            )
        })?;
        match url.scheme_str() {
            Some("http") | Some("https") => {}
            _ => {
                return Err(crate::Error::flag(
                    "--target",
                    format!("{:?} must start with http:// or https://", self.target.url),
                ))
            }
        }
        if url.host().is_none() {
            return Err(crate::Error::flag(
                "--target",
                format!("{:?} has no host", self.target.url),
            ));
        }
        Ok(())
    }
}

/// Turns a serde_yaml_ng error into `file:line:col: message`. `text` (the file's
/// content) lets field-level errors point at the field's own line.
pub fn yaml_error_in(path: &Path, text: &str, e: &serde_yaml_ng::Error) -> ProfileError {
    let mut err = yaml_error(path, e);
    if let ProfileError::Syntax {
        line,
        column,
        message,
        ..
    } = &mut err
    {
        let mark = duration_serde::FIELD_MARK;
        if let Some(start) = message.find(mark) {
            let rest = &message[start + 1..];
            if let Some(end) = rest.find(mark) {
                let field = rest[..end].to_string();
                let detail = rest[end + 1..].to_string();
                let prefix = &message[..start];
                let from = e.location().map(|l| l.index()).unwrap_or(0);
                if let Some((l, c)) = locate_key(text, from, &field) {
                    *line = l;
                    *column = c;
                }
                *message = format!("{prefix}{field}: {detail}");
            }
        }
        message.retain(|c| c != mark);
    }
    err
}

/// Line and column (1-based) of the first `key:` at or after byte `from`.
fn locate_key(text: &str, from: usize, key: &str) -> Option<(usize, usize)> {
    let re = regex::Regex::new(&format!(r"(?m)(?:^|[\s{{,])({}\s*:)", regex::escape(key))).ok()?;
    let from = from.min(text.len());
    let m = re.captures(&text[from..])?.get(1)?;
    let at = from + m.start();
    let line = text[..at].matches('\n').count() + 1;
    let column = at - text[..at].rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
    Some((line, column))
}

/// Turns a serde_yaml_ng error into `file:line:col: message`.
pub fn yaml_error(path: &Path, e: &serde_yaml_ng::Error) -> ProfileError {
    let full = e.to_string();
    // serde_yaml_ng appends " at line L column C"; we print the position in front instead.
    let message = match full.find(" at line ") {
        Some(i) => full[..i].to_string(),
        None => full.clone(),
    };
    // Messages quote the offending key or value, which may hold line breaks or other
    // control characters: escape them so the error stays one line.
    // (The field mark used by `yaml_error_in` is kept; it is removed there.)
    let message: String = message
        .chars()
        .flat_map(|c| match c {
            c if c.is_control() && c != duration_serde::FIELD_MARK => {
                c.escape_default().collect::<Vec<_>>()
            }
            c => vec![c],
        })
        .collect();
    match e.location() {
        Some(loc) => ProfileError::Syntax {
            path: path.to_path_buf(),
            line: loc.line(),
            column: loc.column(),
            message,
        },
        None => ProfileError::Invalid {
            path: path.to_path_buf(),
            message,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Profile, ProfileError> {
        Profile::parse(text, Path::new("p.yaml"))
    }

    #[test]
    fn full_profile_parses_with_all_fields() {
        let p = parse(
            r#"
name: staging
target:
  url: https://127.0.0.1:8443/api/
  host: shop.example.com
  sni: shop.example.com
  insecure: true
  http: h2
headers: {X-Env: staging}
corpus: [payloads]
benign_share: 0.8
stages:
  - {duration: 5s, rate: 100}
  - {duration: 10s, rate: 100, to: 500}
requests: 1000
connections: 16
timeout: 2s
classify:
  block_status: [403, 406]
  block_body: "Request blocked"
  pass_status: [200]
  reset_is_block: true
seed: 7
"#,
        )
        .unwrap();
        assert_eq!(p.target.host.as_deref(), Some("shop.example.com"));
        assert_eq!(p.target.http, HttpVersion::H2);
        assert_eq!(p.stages.len(), 2);
        assert_eq!(p.stages[1].to, Some(500.0));
        assert_eq!(p.stages[1].duration, Duration::from_secs(10));
        assert_eq!(p.timeout, Duration::from_secs(2));
        assert_eq!(p.benign_share, Some(0.8));
        assert_eq!(p.classify.block_status, vec![403, 406]);
        assert!(p.classify.reset_is_block);
        assert_eq!(p.seed, 7);
    }

    #[test]
    fn unknown_key_names_file_line_and_column() {
        let err = parse("target:\n  url: http://127.0.0.1/\nratee: 5\n").unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with("p.yaml:3:1: unknown field `ratee`"),
            "{msg}"
        );
    }

    #[test]
    fn unknown_nested_key_names_its_line() {
        let err = parse("target:\n  url: http://x/\n  hots: a\n").unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("p.yaml:3:3: "), "{msg}");
        assert!(msg.contains("unknown field `hots`"), "{msg}");
    }

    #[test]
    fn bad_rate_and_share_are_rejected_with_position() {
        let err = parse("name: x\nseed: 3\nrate: -5\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("p.yaml:3:1: rate: must be a positive number"),
            "{err}"
        );
        let err = parse("benign_share: 1.5\n").unwrap_err().to_string();
        assert!(err.contains("between 0 and 1"), "{err}");
        let err = parse("seed: 1\ntimeout: tenseconds\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("p.yaml:2:1: timeout: "), "{err}");
        let err = parse("stages:\n  - {duration: 5s, rate: 3}\n  - duration: 2s\n    rate: 0\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("p.yaml:4:5: stages[1]: rate: must be"),
            "{err}"
        );
    }

    #[test]
    fn malformed_yaml_names_line() {
        let err = parse("target: [unclosed\nrate: 5\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("p.yaml:"), "{err}");
    }

    #[test]
    fn invalid_regex_is_reported() {
        let err = parse("classify: {block_body: \"(unclosed\"}\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("classify"), "{err}");
    }

    #[test]
    fn threads_come_from_the_profile_or_the_flag_and_zero_is_refused() {
        let mut p = parse("threads: 3\nrate: 5\nduration: 1s\n").unwrap();
        assert_eq!(p.threads, Some(3));
        p.apply(&Overrides {
            threads: Some(1),
            ..Default::default()
        });
        assert_eq!(p.threads, Some(1));
        let err = parse("threads: 0\nrate: 5\nduration: 1s\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("threads must be at least 1"), "{err}");
    }

    #[test]
    fn overrides_replace_profile_values() {
        let mut p = parse("rate: 10\nduration: 5s\nconnections: 4\n").unwrap();
        p.apply(&Overrides {
            rate: Some(50.0),
            connections: Some(8),
            target: Some("http://127.0.0.1:1/".into()),
            ..Default::default()
        });
        assert_eq!(p.rate, Some(50.0));
        assert_eq!(p.connections, 8);
        assert_eq!(p.target.url, "http://127.0.0.1:1/");
        assert_eq!(p.duration, Some(Duration::from_secs(5)));
    }

    #[test]
    fn every_shipped_profile_parses() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                Profile::load(&path).unwrap_or_else(|e| panic!("{e}"));
                n += 1;
            }
        }
        assert!(n >= 1, "no profiles in {}", dir.display());
    }
}
