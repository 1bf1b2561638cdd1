//! gotestwaf corpus: loading case files, encoders, placeholders, stats, and expansion into
//! fully built requests (see docs/corpus-format.md).
//! Owns the corpus format only: it never sends, schedules or classifies anything, and its
//! output is deterministic for a given seed.

mod encoder;
mod error;
mod escape;
mod load;
mod placeholder;
mod stats;

#[cfg(test)]
mod tests;

use std::path::PathBuf;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

pub use encoder::{Encoder, UnknownEncoder};
pub use error::{CaseProblem, CorpusError};
pub use load::{load_case, load_corpus, parse_case};
pub use placeholder::{
    normalize_base_path, GraphQlMethod, GraphQlSettings, Placeholder, RawRequestSettings,
    RequestSpec, Unbuilt, PAYLOAD_MARKER, SOAP_ACTION,
};
pub use stats::{CorpusStats, SetStats};

/// A corpus: sets (folders) of cases (yml files).
#[derive(Debug, Clone, PartialEq)]
pub struct Corpus {
    pub sets: Vec<CorpusSet>,
}

/// One folder of case files; its name decides how its results are scored.
#[derive(Debug, Clone, PartialEq)]
pub struct CorpusSet {
    pub name: String,
    pub dir: PathBuf,
    /// Name contains "false": benign payloads, a block is a false positive.
    pub benign: bool,
    /// Name contains "api": counts toward the API score.
    pub api: bool,
    pub cases: Vec<Case>,
}

/// One case file: every payload is sent once per encoder and per placeholder.
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    pub set: String,
    /// File stem, e.g. `sql-injection`.
    pub name: String,
    pub file: PathBuf,
    /// The file's `type` (a report label); empty when absent.
    pub type_label: String,
    pub payloads: Vec<String>,
    pub encoders: Vec<Encoder>,
    pub placeholders: Vec<Placeholder>,
}

impl Case {
    /// payloads × encoders × placeholders.
    pub fn request_count(&self) -> usize {
        self.payloads.len() * self.encoders.len() * self.placeholders.len()
    }
}

/// One planned request with its labels. `built` is `Err` when it cannot be sent; such
/// requests are kept so every planned request can be accounted for.
#[derive(Debug, Clone, PartialEq)]
pub struct CorpusRequest {
    pub set: String,
    pub case: String,
    pub benign: bool,
    pub api: bool,
    pub type_label: String,
    pub placeholder: &'static str,
    pub encoder: &'static str,
    /// Index of the payload in its case file.
    pub payload_index: usize,
    /// The payload as in the file, before encoding.
    pub payload: String,
    pub built: Result<RequestSpec, Unbuilt>,
}

impl Corpus {
    /// Every request in deterministic order (set, case, payload, encoder, placeholder).
    /// Random parameter names come from one ChaCha8 stream seeded with `seed`, so the same
    /// seed gives byte-identical requests. `base_path` is the target URL's path (e.g. `/`
    /// or `/api/v1/`); placeholders build their targets relative to it.
    pub fn expand(&self, base_path: &str, seed: u64) -> Vec<CorpusRequest> {
        let base_path = normalize_base_path(base_path);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut requests = Vec::with_capacity(self.request_count());
        for set in &self.sets {
            for case in &set.cases {
                for (payload_index, payload) in case.payloads.iter().enumerate() {
                    for encoder in &case.encoders {
                        let encoded = encoder.encode(payload);
                        for placeholder in &case.placeholders {
                            requests.push(CorpusRequest {
                                set: set.name.clone(),
                                case: case.name.clone(),
                                benign: set.benign,
                                api: set.api,
                                type_label: case.type_label.clone(),
                                placeholder: placeholder.name(),
                                encoder: encoder.name(),
                                payload_index,
                                payload: payload.clone(),
                                built: placeholder.build(&base_path, &encoded, &mut rng),
                            });
                        }
                    }
                }
            }
        }
        requests
    }

    /// Total planned requests (payloads × encoders × placeholders over all cases).
    pub fn request_count(&self) -> usize {
        self.sets
            .iter()
            .flat_map(|s| &s.cases)
            .map(Case::request_count)
            .sum()
    }

    /// Per-set files, payloads, requests, unsupported (gRPC) and unsendable counts, plus
    /// totals. Does not depend on the seed or base path.
    pub fn stats(&self) -> CorpusStats {
        let mut total = SetStats {
            set: "total".to_owned(),
            benign: false,
            api: false,
            files: 0,
            payloads: 0,
            requests: 0,
            unsupported: 0,
            unsendable: 0,
        };
        let mut sets = Vec::with_capacity(self.sets.len());
        for set in &self.sets {
            let mut stats = SetStats {
                set: set.name.clone(),
                benign: set.benign,
                api: set.api,
                files: set.cases.len(),
                payloads: 0,
                requests: 0,
                unsupported: 0,
                unsendable: 0,
            };
            for case in &set.cases {
                stats.payloads += case.payloads.len();
                stats.requests += case.request_count();
                for payload in &case.payloads {
                    for encoder in &case.encoders {
                        let encoded = encoder.encode(payload);
                        for placeholder in &case.placeholders {
                            match placeholder.unbuildable(&encoded) {
                                Some(Unbuilt::Unsupported { .. }) => stats.unsupported += 1,
                                Some(Unbuilt::Unsendable { .. }) => stats.unsendable += 1,
                                None => {}
                            }
                        }
                    }
                }
            }
            total.add(&stats);
            sets.push(stats);
        }
        CorpusStats { sets, total }
    }
}
