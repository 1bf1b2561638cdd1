//! Marker matching: the target's whole "detection engine". Kept as a pure function so tests
//! elsewhere can compute the expected verdict for any request without a server.

use regex::bytes::{RegexSet, RegexSetBuilder};

/// Markers used when the config gives none; see the module docs for the family of each.
pub const DEFAULT_MARKERS: &[&str] = &[
    "<script",
    "javascript:",
    "onerror=",
    "union select",
    "' or '1'='1",
    "' or 1=1",
    "sleep(",
    "drop table",
    "xp_cmdshell",
    "../",
    "..\\",
    "/etc/passwd",
    "file://",
    "${jndi:",
    "{{",
    "<!entity",
    "$where",
    ";cat ",
    "|id",
    "/bin/sh",
    "<?php",
    "169.254.169.254",
];

/// How many times the request-target and body are percent-decoded (each decoded form is
/// searched too), so single- and double-encoded attacks are both caught.
pub const DECODE_ROUNDS: usize = 2;

/// Returns the first marker (in `markers` order) that occurs, ASCII case-insensitively, in
/// any of:
/// - the raw request-target (`target`, e.g. `/path?query`),
/// - its percent-decoded forms after 1 and 2 rounds (`+` decodes to a space in the query part),
/// - any header value as sent (header names are not searched),
/// - the raw body and its percent-decoded forms after 1 and 2 rounds (`+` as space).
///
/// Empty markers never match. Invalid `%` escapes are kept literally. Never panics.
/// Compiles the markers on every call; to classify many requests build a [`MarkerMatcher`]
/// once and call [`MarkerMatcher::find`].
pub fn is_malicious<'m, H, V>(
    markers: &'m [String],
    target: &str,
    headers: &[(H, V)],
    body: &[u8],
) -> Option<&'m str>
where
    H: AsRef<str>,
    V: AsRef<[u8]>,
{
    let index = MarkerMatcher::new(markers).find_index(
        target.as_bytes(),
        headers.iter().map(|(_, value)| value.as_ref()),
        body,
    )?;
    markers.get(index).map(String::as_str)
}

/// A compiled marker list; build once, match many requests.
#[derive(Clone, Debug)]
pub struct MarkerMatcher {
    engine: Engine,
    /// Lower-cased markers, same indices as the input (empty ones never match).
    lowered: Vec<Vec<u8>>,
    /// The markers as given, to report which one matched.
    original: Vec<String>,
}

#[derive(Clone, Debug)]
enum Engine {
    /// One pass over each haystack for all markers.
    Set {
        set: RegexSet,
        /// Index in the input list of each pattern in `set`.
        input_index: Vec<usize>,
    },
    /// Used only if the set cannot be built (e.g. an enormous marker list): slower, same answers.
    Naive,
}

impl MarkerMatcher {
    /// Compiles `markers` (ASCII case-insensitive literals).
    pub fn new<S: AsRef<str>>(markers: &[S]) -> MarkerMatcher {
        let lowered: Vec<Vec<u8>> = markers
            .iter()
            .map(|m| m.as_ref().as_bytes().to_ascii_lowercase())
            .collect();
        let input_index: Vec<usize> = (0..markers.len())
            .filter(|&i| !lowered[i].is_empty())
            .collect();
        let patterns: Vec<String> = input_index
            .iter()
            .map(|&i| regex::escape(markers[i].as_ref()))
            .collect();
        let engine = match RegexSetBuilder::new(&patterns)
            .case_insensitive(true)
            .unicode(false)
            .size_limit(64 * 1024 * 1024)
            .build()
        {
            Ok(set) => Engine::Set { set, input_index },
            Err(_) => Engine::Naive,
        };
        MarkerMatcher {
            engine,
            lowered,
            original: markers.iter().map(|m| m.as_ref().to_string()).collect(),
        }
    }

    /// Same answer as [`is_malicious`] with the markers this matcher was built from.
    pub fn find<H, V>(&self, target: &str, headers: &[(H, V)], body: &[u8]) -> Option<&str>
    where
        H: AsRef<str>,
        V: AsRef<[u8]>,
    {
        let index = self.find_index(
            target.as_bytes(),
            headers.iter().map(|(_, value)| value.as_ref()),
            body,
        )?;
        self.original.get(index).map(String::as_str)
    }

    /// The fallback engine alone, so tests can check it gives the same answers.
    #[cfg(test)]
    pub(crate) fn new_naive<S: AsRef<str>>(markers: &[S]) -> MarkerMatcher {
        let mut matcher = MarkerMatcher::new(markers);
        matcher.engine = Engine::Naive;
        matcher
    }

    /// Index (into the list given to [`MarkerMatcher::new`]) of the first marker found in the
    /// request parts, searched as described at [`is_malicious`].
    pub fn find_index<'a>(
        &self,
        target: &[u8],
        header_values: impl IntoIterator<Item = &'a [u8]>,
        body: &[u8],
    ) -> Option<usize> {
        let mut best: Option<usize> = None;
        let mut search = |haystack: &[u8]| {
            if let Some(found) = self.first_in(haystack) {
                best = Some(best.map_or(found, |b| b.min(found)));
            }
        };
        search(target);
        let mut previous = target.to_vec();
        for _ in 0..DECODE_ROUNDS {
            let decoded = decode_target(&previous);
            if decoded == previous {
                break;
            }
            search(&decoded);
            previous = decoded;
        }
        for value in header_values {
            search(value);
        }
        search(body);
        let mut previous: Option<Vec<u8>> = None;
        for _ in 0..DECODE_ROUNDS {
            let source = previous.as_deref().unwrap_or(body);
            let decoded = percent_decode(source, true);
            if decoded == source {
                break;
            }
            search(&decoded);
            previous = Some(decoded);
        }
        best
    }

    fn first_in(&self, haystack: &[u8]) -> Option<usize> {
        match &self.engine {
            Engine::Set { set, input_index } => set
                .matches(haystack)
                .iter()
                .map(|pattern| input_index[pattern])
                .min(),
            Engine::Naive => {
                let lowered = haystack.to_ascii_lowercase();
                self.lowered
                    .iter()
                    .position(|m| !m.is_empty() && contains(&lowered, m))
            }
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.len() <= haystack.len() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Decodes a request-target once: the path with `+` kept, the query (after the first `?`)
/// with `+` as space.
fn decode_target(target: &[u8]) -> Vec<u8> {
    match target.iter().position(|&b| b == b'?') {
        Some(q) => {
            let mut out = percent_decode(&target[..q], false);
            out.push(b'?');
            out.extend(percent_decode(&target[q + 1..], true));
            out
        }
        None => percent_decode(target, false),
    }
}

/// One round of percent-decoding; `%` not followed by two hex digits is kept as is, and
/// `plus_as_space` turns `+` into a space (form and query encoding).
pub fn percent_decode(input: &[u8], plus_as_space: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'%' if i + 2 < input.len() => {
                match (hex_value(input[i + 1]), hex_value(input[i + 2])) {
                    (Some(hi), Some(lo)) => {
                        out.push(hi << 4 | lo);
                        i += 3;
                        continue;
                    }
                    _ => out.push(b'%'),
                }
            }
            b'+' if plus_as_space => out.push(b' '),
            other => out.push(other),
        }
        i += 1;
    }
    out
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}
