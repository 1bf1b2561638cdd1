//! Classification: one outcome + the user's rules → exactly one class.
//! Owns the rules and the ext_proc error detection; it never sends or records anything.

pub mod monitor;

use crate::transport::{ErrorKind, Outcome};
use serde::{Deserialize, Serialize};

/// What a response means for a WAF test. Every request ends in exactly one class.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Class {
    /// The WAF stopped the request (block status, block page, or reset when configured).
    Blocked,
    /// The request reached the application (pass status or pass body).
    Passed,
    /// Any other status: neither a block nor a pass. Reported, never dropped.
    Unresolved,
    /// No usable response: refused, reset, timeout, TLS or protocol error.
    Failed,
    /// The request could not be sent as HTTP (e.g. CR/LF in a header value).
    Unsendable,
}

impl Class {
    pub const ALL: [Class; 5] = [
        Class::Blocked,
        Class::Passed,
        Class::Unresolved,
        Class::Failed,
        Class::Unsendable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Class::Blocked => "blocked",
            Class::Passed => "passed",
            Class::Unresolved => "unresolved",
            Class::Failed => "failed",
            Class::Unsendable => "unsendable",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn parse(s: &str) -> Option<Class> {
        Class::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// How responses are read. Defaults follow gotestwaf: 403 is a block, 200 and 404 pass.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassifyRules {
    #[serde(default = "default_block_status")]
    pub block_status: Vec<u16>,
    /// Regex over the first bytes of the body that marks a block page (any status).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_body: Option<String>,
    #[serde(default = "default_pass_status")]
    pub pass_status: Vec<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pass_body: Option<String>,
    /// Count a connection reset as a block (WAFs that drop attacks instead of answering).
    #[serde(default)]
    pub reset_is_block: bool,
}

fn default_block_status() -> Vec<u16> {
    vec![403]
}
fn default_pass_status() -> Vec<u16> {
    vec![200, 404]
}

impl Default for ClassifyRules {
    fn default() -> Self {
        ClassifyRules {
            block_status: default_block_status(),
            block_body: None,
            pass_status: default_pass_status(),
            pass_body: None,
            reset_is_block: false,
        }
    }
}

/// Rules with their regexes compiled once for the hot path.
#[derive(Clone, Debug)]
pub struct Classifier {
    rules: ClassifyRules,
    block_body: Option<regex::bytes::Regex>,
    pass_body: Option<regex::bytes::Regex>,
}

/// Extra facts about a response that the class alone does not tell.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flags {
    /// A 5xx whose body is Envoy's ext_proc local reply: the gateway could not talk to its
    /// external processor (the WAF). Reported separately with a hint.
    pub ext_proc_error: bool,
    /// The class came from the block-body regex rather than the status.
    pub block_page: bool,
}

/// The marker Envoy puts in local replies when the ext_proc gRPC stream fails.
pub const EXT_PROC_ERROR_MARKER: &[u8] = b"ext_proc_error_gRPC_error";

/// A one-line hint printed when ext_proc errors were seen.
pub const EXT_PROC_HINT: &str = "the gateway answered 500 ext_proc_error_gRPC_error_…: it cannot reach its ext_proc (WAF) server over gRPC/HTTP2 — declare the processor's service port as gRPC (appProtocol: grpc or a port name grpc-…) and check TLS to the processor";

impl ClassifyRules {
    /// Compiles the regexes; the error names the bad one.
    pub fn compile(&self) -> Result<Classifier, String> {
        let compile = |name: &str, re: &Option<String>| -> Result<_, String> {
            re.as_deref()
                .map(|r| {
                    regex::bytes::RegexBuilder::new(r)
                        .size_limit(1 << 20)
                        .build()
                        .map_err(|e| format!("{name} regex {r:?}: {}", one_line(&e.to_string())))
                })
                .transpose()
        };
        Ok(Classifier {
            block_body: compile("block_body", &self.block_body)?,
            pass_body: compile("pass_body", &self.pass_body)?,
            rules: self.clone(),
        })
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl Classifier {
    pub fn rules(&self) -> &ClassifyRules {
        &self.rules
    }

    /// The one class of an outcome, plus flags.
    pub fn classify(&self, outcome: &Outcome) -> (Class, Flags) {
        let mut flags = Flags::default();
        let status = match (&outcome.error, outcome.status) {
            (Some(err), _) => {
                let class = if self.rules.reset_is_block && err.kind == ErrorKind::Reset {
                    Class::Blocked
                } else {
                    Class::Failed
                };
                return (class, flags);
            }
            (None, Some(s)) => s,
            (None, None) => return (Class::Failed, flags),
        };
        let body = &outcome.body_prefix[..];
        if status >= 500 && contains(body, EXT_PROC_ERROR_MARKER) {
            flags.ext_proc_error = true;
        }
        if self.rules.block_status.contains(&status) {
            return (Class::Blocked, flags);
        }
        if let Some(re) = &self.block_body {
            if re.is_match(body) {
                flags.block_page = true;
                return (Class::Blocked, flags);
            }
        }
        if self.rules.pass_status.contains(&status) {
            return (Class::Passed, flags);
        }
        if let Some(re) = &self.pass_body {
            if re.is_match(body) {
                return (Class::Passed, flags);
            }
        }
        (Class::Unresolved, flags)
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn response(status: u16, body: &str) -> Outcome {
        Outcome {
            status: Some(status),
            body_prefix: Bytes::copy_from_slice(body.as_bytes()),
            ..Outcome::default()
        }
    }

    fn failure(kind: ErrorKind) -> Outcome {
        Outcome::failed(kind, "x")
    }

    #[test]
    fn default_rules_follow_gotestwaf() {
        let c = ClassifyRules::default().compile().unwrap();
        assert_eq!(c.classify(&response(403, "")).0, Class::Blocked);
        assert_eq!(c.classify(&response(200, "")).0, Class::Passed);
        assert_eq!(c.classify(&response(404, "")).0, Class::Passed);
        assert_eq!(c.classify(&response(500, "")).0, Class::Unresolved);
        assert_eq!(c.classify(&response(302, "")).0, Class::Unresolved);
        assert_eq!(c.classify(&failure(ErrorKind::Reset)).0, Class::Failed);
        assert_eq!(c.classify(&failure(ErrorKind::Timeout)).0, Class::Failed);
    }

    #[test]
    fn block_page_regex_wins_over_pass_status() {
        let rules = ClassifyRules {
            block_body: Some("(?i)access denied".into()),
            ..Default::default()
        };
        let c = rules.compile().unwrap();
        let (class, flags) = c.classify(&response(200, "<h1>Access Denied</h1>"));
        assert_eq!(class, Class::Blocked);
        assert!(flags.block_page);
    }

    #[test]
    fn reset_counts_as_block_only_when_asked() {
        let rules = ClassifyRules {
            reset_is_block: true,
            ..Default::default()
        };
        let c = rules.compile().unwrap();
        assert_eq!(c.classify(&failure(ErrorKind::Reset)).0, Class::Blocked);
        assert_eq!(c.classify(&failure(ErrorKind::Timeout)).0, Class::Failed);
    }

    #[test]
    fn envoy_ext_proc_500_is_flagged_and_not_passed() {
        let c = ClassifyRules::default().compile().unwrap();
        let (class, flags) = c.classify(&response(
            500,
            "ext_proc_error_gRPC_error_14{upstream_connect_error}",
        ));
        assert_eq!(class, Class::Unresolved);
        assert!(flags.ext_proc_error);
        let (_, flags) = c.classify(&response(500, "internal error"));
        assert!(!flags.ext_proc_error);
    }

    #[test]
    fn bad_regex_is_an_error_not_a_panic() {
        let rules = ClassifyRules {
            block_body: Some("(".into()),
            ..Default::default()
        };
        let err = rules.compile().unwrap_err();
        assert!(err.starts_with("block_body regex"), "{err}");
    }
}
