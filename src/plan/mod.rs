//! Plan: every request the run will send, fully built once (method, path, headers, body
//! bytes) with its labels. Seeded, so the same profile gives the same plan. The order of
//! slots is computed, not stored, so a long run costs no memory per request.
//! It must not send anything or know about time.

use crate::corpus::{Corpus, CorpusRequest, Unbuilt};
use crate::error::Error;
use crate::profile::Profile;
use crate::traffic::Verdict;
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::uri::PathAndQuery;
use http::{HeaderMap, Method};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// The label of one corpus request: where it came from and what it looked like. Results
/// refer to sources by index, so per-request records stay small.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Source {
    pub set: String,
    pub case: String,
    #[serde(rename = "type")]
    pub type_label: String,
    pub placeholder: String,
    pub encoder: String,
    pub benign: bool,
    pub api: bool,
    pub payload_index: usize,
    pub payload: String,
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    /// Body as text (lossy UTF-8), truncated to `SOURCE_BODY_LIMIT` bytes for reports.
    pub body: String,
    pub body_len: usize,
    /// Why it could not be sent, when it could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unsendable: Option<String>,
    /// The verdict the WAF should give (imported traffic: `pass` unless marked `block`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<crate::traffic::Verdict>,
    /// Where an OpenAPI-shaped attack put its payload (`query:status`, `json-body:/name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
}

/// Placeholder label of imported traffic requests.
pub const TRAFFIC_PLACEHOLDER: &str = "Traffic";

/// Bodies longer than this are truncated in `Source` (the request itself is not).
pub const SOURCE_BODY_LIMIT: usize = 2048;

/// A request ready for the wire. Headers include `Host`, defaults and profile headers;
/// the transport adds only the request id.
#[derive(Clone, Debug)]
pub struct PreparedRequest {
    pub method: Method,
    pub path: PathAndQuery,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub source: u32,
    /// The HTTP/1.1 head without the request id, built on first send by the lean client
    /// and copied after that (a corpus request's head is sent thousands of times).
    pub h1_head: std::sync::OnceLock<Vec<u8>>,
}

/// How slots map onto requests.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Mix {
    /// Every corpus request once per pass, in a seeded shuffled order.
    Corpus,
    /// Benign requests take exactly `benign_share` of the slots (spread evenly).
    Share { benign_share: f64 },
    /// The traffic files once, in recorded order at recorded times ÷ `speed`; with a
    /// share, attacks are interleaved so the traffic keeps `benign_share` of the slots.
    Replay {
        speed: f64,
        benign_share: Option<f64>,
    },
}

impl Mix {
    /// One-line description for results.
    pub fn describe(&self) -> String {
        match self {
            Mix::Corpus => "corpus".to_string(),
            Mix::Share { benign_share } => format!("benign share {benign_share}"),
            Mix::Replay {
                speed,
                benign_share: None,
            } => format!("replay ×{speed}"),
            Mix::Replay {
                speed,
                benign_share: Some(s),
            } => format!("replay ×{speed}, benign share {s}"),
        }
    }
}

/// One member of the benign pool: a traffic file (or the corpus's benign sets) and its
/// weight in parts per million of the total.
#[derive(Clone, Debug)]
struct BenignMember {
    weight: u64,
    order: Vec<u32>,
}

pub struct Plan {
    pub sources: Vec<Source>,
    pub requests: Vec<PreparedRequest>,
    /// Sources that could not be built into HTTP requests; recorded once, never sent.
    pub unsendable: Vec<u32>,
    /// Corpus requests with placeholders we do not support (gRPC), by placeholder name.
    pub unsupported: Vec<(String, u64)>,
    pub mix: Mix,
    /// Things the user should know about the inputs (OpenAPI parts skipped, …).
    pub notes: Vec<String>,
    /// Corpus-pass order: shuffled indexes into `requests`.
    all_order: Vec<u32>,
    /// The benign pool, drawn by weight (one member unless traffic files are given).
    benign_members: Vec<BenignMember>,
    attack_order: Vec<u32>,
    /// Replay mode: traffic requests in recorded order, and each slot's offset in µs.
    replay_order: Vec<u32>,
    replay_offsets_us: Vec<u64>,
    /// Benign share as parts per million, so slot assignment is exact integer math.
    share_ppm: u64,
}

/// Headers every request carries unless the profile or the corpus sets them. CRS flags
/// requests without Accept/User-Agent at higher paranoia levels, which is not what a
/// WAF test means to measure.
fn default_headers() -> Vec<(&'static str, String)> {
    vec![
        (
            "user-agent",
            format!("wafload/{}", env!("CARGO_PKG_VERSION")),
        ),
        ("accept", "*/*".to_string()),
    ]
}

impl Plan {
    /// Builds the plan from a loaded corpus (requests built for the target URL's path).
    pub fn build(profile: &Profile, corpus: &Corpus) -> Result<Plan, Error> {
        let base_path = base_path_of(profile)?;
        let mut notes = Vec::new();
        let mut extra = Vec::new();
        if let Some(api) = &profile.openapi {
            let spec = crate::openapi::ApiSpec::load(&api.file)
                .map_err(|e| Error::Other(e.to_string()))?;
            for skipped in &spec.skipped {
                notes.push(format!(
                    "OpenAPI {}: skipped {}: {}",
                    api.file.display(),
                    skipped.pointer,
                    skipped.reason
                ));
            }
            let options = crate::openapi::ExpandOptions {
                locations: if api.locations.is_empty() {
                    crate::openapi::Location::ALL.to_vec()
                } else {
                    api.locations.clone()
                },
                coverage: api.coverage,
                base_path: api.base_path.clone(),
            };
            extra = crate::openapi::expand(&spec, corpus, &base_path, &options);
            if extra.is_empty() {
                notes.push(format!(
                    "OpenAPI {}: no attack request generated ({} operations, none with a usable parameter or body field, or no attack payload in the corpus)",
                    api.file.display(),
                    spec.operations.len()
                ));
            }
        }
        Plan::from_inputs(
            profile,
            corpus.expand(&base_path, profile.seed),
            extra,
            notes,
        )
    }

    /// Builds the plan from requests made elsewhere (a generated body-size sweep, imported
    /// traffic); they carry the same labels as corpus requests.
    pub fn from_requests(profile: &Profile, expanded: Vec<CorpusRequest>) -> Result<Plan, Error> {
        Plan::from_inputs(profile, expanded, Vec::new(), Vec::new())
    }

    /// Corpus requests, OpenAPI-shaped attacks and the profile's traffic files, with
    /// notes about the inputs for the results.
    fn from_inputs(
        profile: &Profile,
        expanded: Vec<CorpusRequest>,
        extra: Vec<crate::openapi::OpenApiRequest>,
        notes: Vec<String>,
    ) -> Result<Plan, Error> {
        let common = common_headers(profile)?;

        let secrets = SecretHeaders::new(&profile.secret_headers);
        let mut sources = Vec::with_capacity(expanded.len());
        let mut requests = Vec::with_capacity(expanded.len());
        let mut unsendable = Vec::new();
        let mut unsupported: Vec<(String, u64)> = Vec::new();
        for item in expanded {
            match prepare(&item, &common, &secrets) {
                Prepared::Ok(request, source) => {
                    let index = sources.len() as u32;
                    sources.push(source);
                    requests.push(PreparedRequest {
                        source: index,
                        ..*request
                    });
                }
                Prepared::Unsendable(source) => {
                    unsendable.push(sources.len() as u32);
                    sources.push(source);
                }
                Prepared::Unsupported(name) => {
                    match unsupported.iter_mut().find(|(n, _)| *n == name) {
                        Some((_, c)) => *c += 1,
                        None => unsupported.push((name, 1)),
                    }
                }
            }
        }
        let push = |item: &CorpusRequest,
                    expected: Option<Verdict>,
                    location: Option<String>,
                    requests: &mut Vec<PreparedRequest>,
                    sources: &mut Vec<Source>,
                    unsendable: &mut Vec<u32>|
         -> Option<u32> {
            match prepare(item, &common, &secrets) {
                Prepared::Ok(request, mut source) => {
                    source.expected = expected;
                    source.location = location;
                    let index = sources.len() as u32;
                    sources.push(source);
                    requests.push(PreparedRequest {
                        source: index,
                        ..*request
                    });
                    Some(requests.len() as u32 - 1)
                }
                Prepared::Unsendable(mut source) => {
                    source.expected = expected;
                    source.location = location;
                    unsendable.push(sources.len() as u32);
                    sources.push(source);
                    None
                }
                Prepared::Unsupported(_) => None,
            }
        };

        for g in extra {
            push(
                &g.request,
                None,
                Some(g.point),
                &mut requests,
                &mut sources,
                &mut unsendable,
            );
        }
        let base_path = base_path_of(profile)?;

        // Imported traffic: one benign-pool member per file; `block`-expected requests
        // join the attacks.
        let mut traffic_members: Vec<BenignMember> = Vec::new();
        let mut replay: Vec<(u64, usize, u32)> = Vec::new();
        let mut untimed: Vec<String> = Vec::new();
        for (file_index, entry) in profile.benign.iter().enumerate() {
            let file = crate::traffic::read_traffic_file(&entry.file)
                .map_err(|e| Error::Other(e.to_string()))?;
            let default_source = file.default_source();
            let prefix = base_path.trim_end_matches('/');
            let mut order = Vec::new();
            if !file.has_times() {
                untimed.push(entry.file.display().to_string());
            }
            for (line, r) in file.requests.iter().enumerate() {
                let expected = r.expect.unwrap_or(Verdict::Pass);
                let item = CorpusRequest {
                    set: r.source.clone().unwrap_or_else(|| default_source.clone()),
                    case: default_source.clone(),
                    benign: expected == Verdict::Pass,
                    api: false,
                    type_label: "traffic".to_string(),
                    placeholder: TRAFFIC_PLACEHOLDER,
                    encoder: "Plain",
                    payload_index: line,
                    payload: format!("{} {}", r.method, r.target),
                    built: Ok(crate::corpus::RequestSpec {
                        method: r.method.clone(),
                        target: format!("{prefix}{}", r.target),
                        headers: r
                            .headers
                            .iter()
                            .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
                            .collect(),
                        body: r.body.clone(),
                    }),
                };
                if let Some(index) = push(
                    &item,
                    Some(expected),
                    None,
                    &mut requests,
                    &mut sources,
                    &mut unsendable,
                ) {
                    replay.push((r.t_ms.unwrap_or(0), file_index, index));
                    if expected == Verdict::Pass {
                        order.push(index);
                    }
                }
            }
            traffic_members.push(BenignMember {
                weight: (entry.weight * 1_000_000.0).round().max(1.0) as u64,
                order,
            });
        }

        if requests.is_empty() {
            return Err(Error::flag(
                "--corpus",
                "the corpus and traffic files yield no sendable request".to_string(),
            ));
        }

        let is_traffic = |i: u32| {
            sources[requests[i as usize].source as usize].placeholder == TRAFFIC_PLACEHOLDER
        };
        let mut rng = ChaCha8Rng::seed_from_u64(profile.seed ^ 0x9e37_79b9_7f4a_7c15);
        let mut all_order: Vec<u32> = (0..requests.len() as u32).collect();
        all_order.shuffle(&mut rng);
        let corpus_benign: Vec<u32> = all_order
            .iter()
            .copied()
            .filter(|&i| sources[requests[i as usize].source as usize].benign && !is_traffic(i))
            .collect();
        let mut attack_order: Vec<u32> = all_order
            .iter()
            .copied()
            .filter(|&i| !sources[requests[i as usize].source as usize].benign)
            .collect();
        // Traffic files, when given, are the benign mix; the corpus's benign sets are not.
        let benign_members: Vec<BenignMember> = if profile.benign.is_empty() {
            vec![BenignMember {
                weight: 1,
                order: corpus_benign,
            }]
        } else {
            traffic_members
                .into_iter()
                .filter(|m| !m.order.is_empty())
                .collect()
        };
        let benign_available = benign_members.iter().any(|m| !m.order.is_empty());
        let mut replay_order = Vec::new();
        let mut replay_offsets_us = Vec::new();
        let mix = match (profile.replay_speed, profile.benign_share) {
            (Some(speed), share) => {
                if !untimed.is_empty() {
                    return Err(Error::flag(
                        "--replay-speed",
                        format!("replay needs recorded times, and {} has none (vegeta targets carry no times; replay at a rate instead)", untimed.join(", ")),
                    ));
                }
                replay.sort_by_key(|&(t, file, _)| (t, file));
                replay_order = replay.iter().map(|&(_, _, i)| i).collect();
                // Attacks interleaved in replay are the corpus's and OpenAPI's, not the
                // traffic's own block-expected requests (those replay at their times).
                attack_order.retain(|&i| !is_traffic(i));
                let share = match share {
                    Some(s) if s < 1.0 => {
                        if attack_order.is_empty() {
                            return Err(Error::flag(
                                "--benign-share",
                                format!("benign share is {s} but there is no attack to interleave with the replay"),
                            ));
                        }
                        if s <= 0.0 {
                            return Err(Error::flag(
                                "--benign-share",
                                "replay needs a benign share above 0 (the replayed traffic is the benign part)",
                            ));
                        }
                        Some(s)
                    }
                    _ => None,
                };
                let ppm = share.map_or(1_000_000, |s| (s * 1_000_000.0).round() as u64);
                let times: Vec<u64> = replay
                    .iter()
                    .map(|&(t, _, _)| (t as f64 * 1000.0 / speed).round() as u64)
                    .collect();
                replay_offsets_us = replay_offsets(&times, ppm);
                Mix::Replay {
                    speed,
                    benign_share: share,
                }
            }
            (None, None) => Mix::Corpus,
            (None, Some(share)) => {
                if share > 0.0 && !benign_available {
                    return Err(Error::flag(
                        "--benign-share",
                        if profile.benign.is_empty() {
                            format!("benign share is {share} but the corpus has no benign set (a set whose name contains \"false\") and no traffic file is given (benign:)")
                        } else {
                            format!("benign share is {share} but the traffic files hold no request expected to pass")
                        },
                    ));
                }
                if share < 1.0 && attack_order.is_empty() {
                    return Err(Error::flag(
                        "--benign-share",
                        format!("benign share is {share} but the corpus has no attack set"),
                    ));
                }
                Mix::Share {
                    benign_share: share,
                }
            }
        };
        let share_ppm = match mix {
            Mix::Corpus => 0,
            Mix::Share { benign_share } => (benign_share * 1_000_000.0).round() as u64,
            Mix::Replay { benign_share, .. } => {
                benign_share.map_or(1_000_000, |s| (s * 1_000_000.0).round() as u64)
            }
        };
        Ok(Plan {
            sources,
            requests,
            unsendable,
            unsupported,
            mix,
            notes,
            all_order,
            benign_members,
            attack_order,
            replay_order,
            replay_offsets_us,
            share_ppm,
        })
    }

    /// Replay mode: each slot's intended offset from the start in µs (empty otherwise).
    /// The run sends exactly these slots.
    pub fn replay_offsets_us(&self) -> &[u64] {
        &self.replay_offsets_us
    }

    /// Slots in one pass over the corpus (the default request count when nothing bounds
    /// the run).
    pub fn corpus_pass_len(&self) -> u64 {
        self.requests.len() as u64
    }

    /// The request sent in slot `slot`. Pure function of the slot: no per-slot memory.
    pub fn request_for_slot(&self, slot: u64) -> &PreparedRequest {
        let index = match self.mix {
            Mix::Corpus => self.all_order[(slot % self.all_order.len() as u64) as usize],
            Mix::Share { .. } => {
                let benign_before = benign_slots_before(slot, self.share_ppm);
                let is_benign = benign_slots_before(slot + 1, self.share_ppm) > benign_before;
                if is_benign {
                    let (member, k) = pick_member(&self.benign_members, benign_before);
                    let order = &self.benign_members[member].order;
                    order[(k % order.len() as u64) as usize]
                } else {
                    let attacks_before = slot - benign_before;
                    self.attack_order[(attacks_before % self.attack_order.len() as u64) as usize]
                }
            }
            Mix::Replay { .. } => {
                let benign_before = benign_slots_before(slot, self.share_ppm);
                let is_benign = benign_slots_before(slot + 1, self.share_ppm) > benign_before;
                if is_benign || self.attack_order.is_empty() {
                    self.replay_order[(benign_before % self.replay_order.len() as u64) as usize]
                } else {
                    let attacks_before = slot - benign_before;
                    self.attack_order[(attacks_before % self.attack_order.len() as u64) as usize]
                }
            }
        };
        &self.requests[index as usize]
    }

    pub fn source_for_slot(&self, slot: u64) -> &Source {
        &self.sources[self.request_for_slot(slot).source as usize]
    }
}

/// Headers every request of a profile carries: Host (the override or the URL's authority),
/// the defaults, then the profile's own headers (which win).
pub fn common_headers(profile: &Profile) -> Result<HeaderMap, Error> {
    let url: http::Uri = profile
        .target
        .url
        .parse()
        .map_err(|e| Error::flag("--target", format!("{e}")))?;
    let host = match &profile.target.host {
        Some(h) => h.clone(),
        None => url
            .authority()
            .map(|a| a.to_string())
            .ok_or_else(|| Error::flag("--target", "URL has no host"))?,
    };
    let host_value = HeaderValue::from_str(&host)
        .map_err(|_| Error::flag("--host", format!("{host:?} is not a valid Host value")))?;
    let mut common = HeaderMap::new();
    common.insert(http::header::HOST, host_value);
    for (name, value) in default_headers() {
        common.insert(name, HeaderValue::from_str(&value).expect("ascii"));
    }
    for (name, value) in &profile.headers {
        let n = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| Error::flag("--header", format!("{name:?} is not a header name")))?;
        let v = HeaderValue::from_str(value).map_err(|_| {
            Error::flag(
                "--header",
                format!("value of {name} is not a valid header value"),
            )
        })?;
        common.insert(n, v);
    }
    Ok(common)
}

/// What a secret header value is replaced with in results, logs and reports.
pub const REDACTED: &str = "<redacted>";

/// Header names whose values never reach results: credentials by default, plus the
/// profile's `secret_headers`.
pub struct SecretHeaders(Vec<String>);

impl SecretHeaders {
    pub const ALWAYS: [&'static str; 4] = [
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
    ];

    pub fn new(extra: &[String]) -> Self {
        let mut names: Vec<String> = Self::ALWAYS.iter().map(|s| s.to_string()).collect();
        names.extend(extra.iter().map(|s| s.to_ascii_lowercase()));
        SecretHeaders(names)
    }

    pub fn is_secret(&self, name: &str) -> bool {
        self.0.iter().any(|n| n.eq_ignore_ascii_case(name))
    }
}

/// The profile as written to results: secret header values replaced by `REDACTED`.
pub fn redacted_profile(profile: &Profile) -> serde_json::Value {
    let secrets = SecretHeaders::new(&profile.secret_headers);
    let mut p = profile.clone();
    for (name, value) in p.headers.iter_mut() {
        if secrets.is_secret(name) {
            *value = REDACTED.to_string();
        }
    }
    serde_json::to_value(&p).unwrap_or(serde_json::Value::Null)
}

/// The path of the target URL: corpus requests are built under it.
pub fn base_path_of(profile: &Profile) -> Result<String, Error> {
    let url: http::Uri = profile
        .target
        .url
        .parse()
        .map_err(|e| Error::flag("--target", format!("{e}")))?;
    Ok(url.path().to_string())
}

/// Number of benign slots among slots `0..slot`: floor(slot · share), exact in integers.
fn benign_slots_before(slot: u64, share_ppm: u64) -> u64 {
    // 64-bit arithmetic while the product fits (slots below ~1.8e13): a 128-bit division
    // is a library call, and this runs for every request.
    match slot.checked_mul(share_ppm) {
        Some(product) => product / 1_000_000,
        None => ((slot as u128 * share_ppm as u128) / 1_000_000) as u64,
    }
}

/// Which member takes benign slot `b`, and how many slots that member had before it.
/// Member j takes weight_j / (weight_j + … + weight_last) of the slots the earlier members
/// left, by the same floor rule as the benign share, so every member's share is exact over
/// any prefix (±1) and the answer depends on `b` alone.
fn pick_member(members: &[BenignMember], b: u64) -> (usize, u64) {
    let mut remaining: u128 = members.iter().map(|m| m.weight as u128).sum();
    let mut r = b as u128;
    for (j, m) in members.iter().enumerate() {
        let w = m.weight as u128;
        if j + 1 == members.len() || w >= remaining {
            return (j, r as u64);
        }
        let before = r * w / remaining;
        if (r + 1) * w / remaining > before {
            return (j, before as u64);
        }
        r -= before;
        remaining -= w;
    }
    (members.len().saturating_sub(1), r as u64)
}

/// Slot offsets (µs) for a replay: traffic slot b at `times[b]`, attack slots spread
/// evenly between the traffic slots around them. Ends with the last traffic slot.
fn replay_offsets(times: &[u64], share_ppm: u64) -> Vec<u64> {
    let n = times.len() as u64;
    if n == 0 || share_ppm == 0 {
        return Vec::new();
    }
    // Smallest slot count holding all n traffic slots: floor(slots · share) ≥ n.
    let mut slots = ((n as u128 * 1_000_000).div_ceil(share_ppm as u128)) as u64;
    while slots > 1 && benign_slots_before(slots - 1, share_ppm) >= n {
        slots -= 1;
    }
    let mut out = Vec::with_capacity(slots as usize);
    let mut pending = 0u64; // attack slots waiting for the next traffic time
    for slot in 0..slots {
        let before = benign_slots_before(slot, share_ppm);
        let is_traffic = benign_slots_before(slot + 1, share_ppm) > before;
        if is_traffic {
            let t = times[before as usize];
            let prev = if before == 0 {
                0
            } else {
                times[before as usize - 1]
            };
            // Place the attacks that came since the previous traffic slot.
            let start = out.len() - pending as usize;
            for (k, o) in out[start..].iter_mut().enumerate() {
                *o = prev + t.saturating_sub(prev) * (k as u64 + 1) / (pending + 1);
            }
            pending = 0;
            out.push(t);
        } else {
            pending += 1;
            out.push(0);
        }
    }
    out
}

enum Prepared {
    Ok(Box<PreparedRequest>, Source),
    Unsendable(Source),
    Unsupported(String),
}

fn prepare(item: &CorpusRequest, common: &HeaderMap, secrets: &SecretHeaders) -> Prepared {
    let spec = match &item.built {
        Ok(spec) => spec,
        Err(Unbuilt::Unsupported { placeholder }) => {
            return Prepared::Unsupported(placeholder.clone())
        }
        Err(Unbuilt::Unsendable { reason }) => {
            return Prepared::Unsendable(source_of(item, None, Some(reason.clone()), secrets))
        }
    };
    let source = |reason: Option<String>| source_of(item, Some(spec), reason, secrets);
    let method = match Method::from_bytes(spec.method.as_bytes()) {
        Ok(m) => m,
        Err(_) => {
            return Prepared::Unsendable(source(Some(format!(
                "method {:?} is not a valid HTTP token",
                spec.method
            ))))
        }
    };
    let path = match PathAndQuery::from_maybe_shared(Bytes::from(spec.target.clone())) {
        Ok(p) => p,
        Err(e) => {
            return Prepared::Unsendable(source(Some(format!(
                "request-target rejected by the HTTP library: {e}"
            ))))
        }
    };
    let mut headers = common.clone();
    let mut replaced: Vec<HeaderName> = Vec::new();
    for (name, value) in &spec.headers {
        let n = match HeaderName::from_bytes(name.as_bytes()) {
            Ok(n) => n,
            Err(_) => {
                return Prepared::Unsendable(source(Some(format!(
                    "header name {name:?} is not a valid HTTP token"
                ))))
            }
        };
        let v = match HeaderValue::from_bytes(value) {
            Ok(v) => v,
            Err(_) => {
                let byte = value
                    .iter()
                    .find(|&&b| (b < 0x20 && b != b'\t') || b == 0x7f)
                    .copied()
                    .unwrap_or(0);
                return Prepared::Unsendable(source(Some(format!(
                    "header {name} contains control byte 0x{byte:02x}"
                ))));
            }
        };
        // A request's own header replaces the default of that name; repeats are kept.
        if !replaced.contains(&n) {
            headers.remove(&n);
            replaced.push(n.clone());
        }
        headers.append(n, v);
    }
    let request = PreparedRequest {
        method,
        path,
        headers,
        body: Bytes::from(spec.body.clone()),
        source: 0,
        h1_head: Default::default(),
    };
    Prepared::Ok(Box::new(request), source(None))
}

fn source_of(
    item: &CorpusRequest,
    spec: Option<&crate::corpus::RequestSpec>,
    unsendable: Option<String>,
    secrets: &SecretHeaders,
) -> Source {
    let (method, target, headers, body, body_len) = match spec {
        Some(s) => (
            s.method.clone(),
            s.target.clone(),
            s.headers
                .iter()
                .map(|(k, v)| {
                    let value = if secrets.is_secret(k) {
                        REDACTED.to_string()
                    } else {
                        String::from_utf8_lossy(v).into_owned()
                    };
                    (k.clone(), value)
                })
                .collect(),
            String::from_utf8_lossy(&s.body[..s.body.len().min(SOURCE_BODY_LIMIT)]).into_owned(),
            s.body.len(),
        ),
        None => (String::new(), String::new(), Vec::new(), String::new(), 0),
    };
    Source {
        set: item.set.clone(),
        case: item.case.clone(),
        type_label: item.type_label.clone(),
        placeholder: item.placeholder.to_string(),
        encoder: item.encoder.to_string(),
        benign: item.benign,
        api: item.api,
        payload_index: item.payload_index,
        payload: item.payload.clone(),
        method,
        target,
        headers,
        body,
        body_len,
        unsendable,
        expected: None,
        location: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The 64-bit fast path gives the exact 128-bit answer, also where the product
    /// overflows 64 bits.
    #[test]
    fn benign_slot_counts_are_exact_on_both_paths() {
        let exact = |slot: u64, ppm: u64| ((slot as u128 * ppm as u128) / 1_000_000) as u64;
        for ppm in [0, 1, 333_333, 500_000, 999_999, 1_000_000] {
            let edge = u64::MAX / ppm.max(1);
            for slot in [
                0,
                1,
                7,
                1_000_003,
                edge - 1,
                edge,
                edge.saturating_add(1),
                u64::MAX - 1,
            ] {
                assert_eq!(
                    benign_slots_before(slot, ppm),
                    exact(slot, ppm),
                    "{slot} {ppm}"
                );
            }
        }
    }

    #[test]
    fn credentials_and_profile_secrets_are_redacted() {
        let mut p = Profile {
            secret_headers: vec!["X-Api-Key".into()],
            ..Profile::default()
        };
        p.headers
            .insert("Authorization".into(), "Bearer abc.def".into());
        p.headers.insert("x-api-key".into(), "k-123".into());
        p.headers.insert("X-Env".into(), "staging".into());
        let v = redacted_profile(&p);
        let text = v.to_string();
        assert!(
            !text.contains("abc.def") && !text.contains("k-123"),
            "{text}"
        );
        assert_eq!(v["headers"]["X-Env"], "staging");
        assert_eq!(v["headers"]["Authorization"], REDACTED);
        let s = SecretHeaders::new(&[]);
        assert!(s.is_secret("Cookie") && s.is_secret("PROXY-AUTHORIZATION"));
        assert!(!s.is_secret("X-Env"));
    }

    #[test]
    fn benign_share_is_exact_over_any_prefix() {
        let ppm = 800_000;
        for n in [1u64, 5, 10, 99, 1000, 12345] {
            let benign = benign_slots_before(n, ppm);
            assert_eq!(benign, n * 8 / 10, "n={n}");
        }
    }
}
