//! Reading corpus folders and case files. Only reads and validates; building requests is
//! the placeholders' job.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer};
use serde_yaml_ng::Value;

use crate::corpus::encoder::Encoder;
use crate::corpus::error::{CaseProblem, CorpusError};
use crate::corpus::placeholder::{GraphQlMethod, GraphQlSettings, Placeholder, RawRequestSettings};
use crate::corpus::{Case, Corpus, CorpusSet};

/// Loads one or more corpus roots. A root is a folder of set folders; a root that directly
/// holds `.yml`/`.yaml` files is itself one set named after the folder. Sets are sorted by
/// name and cases by file name so the plan is deterministic. A set name found in two roots
/// is an error naming both folders.
pub fn load_corpus(roots: &[PathBuf]) -> Result<Corpus, CorpusError> {
    let mut by_name: BTreeMap<String, CorpusSet> = BTreeMap::new();
    for root in roots {
        let sets = load_root(root)?;
        if sets.is_empty() {
            return Err(CorpusError::Empty { path: root.clone() });
        }
        for set in sets {
            if let Some(existing) = by_name.get(&set.name) {
                return Err(CorpusError::DuplicateSet {
                    name: set.name.clone(),
                    first: existing.dir.clone(),
                    second: set.dir.clone(),
                });
            }
            by_name.insert(set.name.clone(), set);
        }
    }
    Ok(Corpus {
        sets: by_name.into_values().collect(),
    })
}

struct DirEntries {
    case_files: Vec<PathBuf>,
    sub_dirs: Vec<PathBuf>,
}

fn list_dir(dir: &Path) -> Result<DirEntries, CorpusError> {
    let read_err = |source| CorpusError::ReadDir {
        path: dir.to_path_buf(),
        source,
    };
    let mut entries = DirEntries {
        case_files: Vec::new(),
        sub_dirs: Vec::new(),
    };
    for entry in fs::read_dir(dir).map_err(read_err)? {
        let path = entry.map_err(read_err)?.path();
        let hidden = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'));
        if hidden {
            continue;
        }
        // fs::metadata follows symlinks, so linked sets and files work.
        let Ok(meta) = fs::metadata(&path) else {
            continue; // dangling symlink: nothing to read
        };
        if meta.is_dir() {
            entries.sub_dirs.push(path);
        } else if meta.is_file() && is_case_file(&path) {
            entries.case_files.push(path);
        }
    }
    entries.case_files.sort();
    entries.sub_dirs.sort();
    Ok(entries)
}

fn is_case_file(path: &Path) -> bool {
    path.extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .is_some_and(|e| e == "yml" || e == "yaml")
}

fn load_root(root: &Path) -> Result<Vec<CorpusSet>, CorpusError> {
    let entries = list_dir(root)?;
    if !entries.case_files.is_empty() {
        return Ok(vec![load_set(root, entries.case_files)?]);
    }
    let mut sets = Vec::new();
    for dir in entries.sub_dirs {
        let files = list_dir(&dir)?.case_files;
        if !files.is_empty() {
            sets.push(load_set(&dir, files)?);
        }
    }
    Ok(sets)
}

fn folder_name(dir: &Path) -> String {
    let named = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned());
    named(dir)
        .or_else(|| dir.canonicalize().ok().and_then(|p| named(&p)))
        .unwrap_or_else(|| dir.display().to_string())
}

fn load_set(dir: &Path, files: Vec<PathBuf>) -> Result<CorpusSet, CorpusError> {
    let name = folder_name(dir);
    let mut cases = Vec::with_capacity(files.len());
    for file in files {
        cases.push(load_case(&name, &file)?);
    }
    // list_dir sorted full paths, which within one folder is file-name order.
    Ok(CorpusSet {
        benign: name.contains("false"),
        api: name.contains("api"),
        name,
        dir: dir.to_path_buf(),
        cases,
    })
}

/// Loads one case file (exposed for tools that check a single file).
pub fn load_case(set: &str, file: &Path) -> Result<Case, CorpusError> {
    let text = fs::read_to_string(file).map_err(|source| CorpusError::ReadFile {
        path: file.to_path_buf(),
        source,
    })?;
    parse_case(set, file, &text)
}

/// Parses case-file text; `file` is used for the case name and in error messages.
pub fn parse_case(set: &str, file: &Path, text: &str) -> Result<Case, CorpusError> {
    let text = fix_escaped_single_quotes(text);
    let error_at = |line: Option<usize>, column: Option<usize>, problem| CorpusError::Case {
        path: file.to_path_buf(),
        line,
        column,
        problem,
    };

    STATE.with(|s| *s.borrow_mut() = ParseState::default());
    let raw: RawCase = serde_yaml_ng::from_str(&text).map_err(|err| {
        let (mut line, mut column) = match err.location() {
            Some(l) => (Some(l.line()), Some(l.column())),
            None => (None, None),
        };
        let state = STATE.with(|s| std::mem::take(&mut *s.borrow_mut()));
        let problem = match state.problem {
            Some((problem, entry_index)) => {
                // serde_yaml_ng places custom errors at the start of the sequence; point
                // at the offending entry instead when the list is in block style.
                if let (Some(l), Some(c)) = (line, column) {
                    if let Some((el, ec)) = nth_block_entry(&text, l, c, entry_index) {
                        (line, column) = (Some(el), Some(ec));
                    }
                }
                problem
            }
            None => CaseProblem::Yaml(strip_location(&err.to_string(), line, column)),
        };
        error_at(line, column, problem)
    })?;

    let required = |key: &'static str, len: Option<usize>| match len {
        Some(n) if n > 0 => Ok(()),
        Some(_) => Err(error_at(
            top_level_key_line(&text, key),
            Some(1),
            CaseProblem::EmptyList { key },
        )),
        None => match top_level_key_line(&text, key) {
            // `key:` with nothing after it reads as null
            Some(line) => Err(error_at(
                Some(line),
                Some(1),
                CaseProblem::EmptyList { key },
            )),
            None => Err(error_at(None, None, CaseProblem::MissingKey { key })),
        },
    };
    required("payload", raw.payload.as_ref().map(Vec::len))?;
    required("encoder", raw.encoder.as_ref().map(Vec::len))?;
    required("placeholder", raw.placeholder.as_ref().map(Vec::len))?;

    Ok(Case {
        set: set.to_owned(),
        name: file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
        file: file.to_path_buf(),
        type_label: raw.type_label.unwrap_or_default(),
        payloads: raw.payload.unwrap_or_default(),
        encoders: raw
            .encoder
            .unwrap_or_default()
            .into_iter()
            .map(|e| e.0)
            .collect(),
        placeholders: raw
            .placeholder
            .unwrap_or_default()
            .into_iter()
            .map(|p| p.0)
            .collect(),
    })
}

/// The shape of a case file. Unknown top-level keys are ignored, as gotestwaf does.
#[derive(Deserialize)]
struct RawCase {
    #[serde(default)]
    payload: Option<Vec<String>>,
    #[serde(default)]
    encoder: Option<Vec<EncoderEntry>>,
    #[serde(default)]
    placeholder: Option<Vec<PlaceholderEntry>>,
    #[serde(default, rename = "type")]
    type_label: Option<String>,
}

/// Side channel for typed errors. serde only carries a message, but we want typed errors
/// *and* the parser's line:column, so the entry deserializers park the problem (and which
/// entry of its list failed) here and `parse_case` picks it up.
#[derive(Default)]
struct ParseState {
    encoders_seen: usize,
    placeholders_seen: usize,
    problem: Option<(CaseProblem, usize)>,
}

thread_local! {
    static STATE: RefCell<ParseState> = RefCell::new(ParseState::default());
}

/// Counts one more entry of a list and returns its index.
fn next_entry_index(count: fn(&mut ParseState) -> &mut usize) -> usize {
    STATE.with(|s| {
        let mut state = s.borrow_mut();
        let counter = count(&mut state);
        *counter += 1;
        *counter - 1
    })
}

fn fail<E: serde::de::Error>(problem: CaseProblem, entry_index: usize) -> E {
    let error = E::custom(&problem);
    STATE.with(|s| s.borrow_mut().problem = Some((problem, entry_index)));
    error
}

struct EncoderEntry(Encoder);

impl<'de> Deserialize<'de> for EncoderEntry {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let index = next_entry_index(|s| &mut s.encoders_seen);
        let name = String::deserialize(deserializer)?;
        name.parse()
            .map(EncoderEntry)
            .map_err(|e: crate::corpus::encoder::UnknownEncoder| {
                fail(CaseProblem::UnknownEncoder { name: e.name }, index)
            })
    }
}

struct PlaceholderEntry(Placeholder);

impl<'de> Deserialize<'de> for PlaceholderEntry {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let index = next_entry_index(|s| &mut s.placeholders_seen);
        let value = Value::deserialize(deserializer)?;
        placeholder_from_value(value)
            .map(PlaceholderEntry)
            .map_err(|problem| fail::<D::Error>(problem, index))
    }
}

fn placeholder_from_value(value: Value) -> Result<Placeholder, CaseProblem> {
    match value {
        Value::String(name) => placeholder_from_parts(&name, None),
        Value::Mapping(map) if map.len() == 1 => {
            // A one-key map always yields its entry; stay panic-free anyway.
            let Some((key, settings)) = map.into_iter().next() else {
                return Err(CaseProblem::BadPlaceholderEntry {
                    found: "an empty map".to_owned(),
                });
            };
            match key {
                Value::String(name) => placeholder_from_parts(&name, Some(settings)),
                other => Err(CaseProblem::BadPlaceholderEntry {
                    found: short_yaml(&other),
                }),
            }
        }
        other => Err(CaseProblem::BadPlaceholderEntry {
            found: short_yaml(&other),
        }),
    }
}

fn placeholder_from_parts(name: &str, settings: Option<Value>) -> Result<Placeholder, CaseProblem> {
    match name {
        "RawRequest" => raw_request_settings(settings).map(Placeholder::RawRequest),
        "GraphQL" => graphql_settings(settings).map(Placeholder::GraphQl),
        // Settings of placeholders that take none are ignored, as gotestwaf does.
        _ => Placeholder::from_simple_name(name).ok_or_else(|| CaseProblem::UnknownPlaceholder {
            name: name.to_owned(),
        }),
    }
}

fn settings_map(
    placeholder: &'static str,
    settings: Option<Value>,
) -> Result<serde_yaml_ng::Mapping, CaseProblem> {
    match settings {
        Some(Value::Mapping(map)) => Ok(map),
        None | Some(Value::Null) => Err(CaseProblem::BadSettings {
            placeholder,
            reason: "settings with `method` are required".to_owned(),
        }),
        Some(other) => Err(CaseProblem::BadSettings {
            placeholder,
            reason: format!("settings must be a map, got {}", short_yaml(&other)),
        }),
    }
}

/// A scalar as text; `Ok(None)` for null/absent.
fn scalar_text(
    placeholder: &'static str,
    what: &str,
    value: Option<&Value>,
) -> Result<Option<String>, CaseProblem> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(Value::Bool(b)) => Ok(Some(b.to_string())),
        Some(other) => Err(CaseProblem::BadSettings {
            placeholder,
            reason: format!("`{what}` must be a string, got {}", short_yaml(other)),
        }),
    }
}

fn raw_request_settings(settings: Option<Value>) -> Result<RawRequestSettings, CaseProblem> {
    const NAME: &str = "RawRequest";
    let bad = |reason: String| CaseProblem::BadSettings {
        placeholder: NAME,
        reason,
    };
    let map = settings_map(NAME, settings)?;
    let method = scalar_text(NAME, "method", map.get("method"))?
        .filter(|m| !m.is_empty())
        .ok_or_else(|| bad("`method` is required".to_owned()))?;
    if !is_token(&method) {
        return Err(bad(format!(
            "method {method:?} is not a valid HTTP method token"
        )));
    }
    let path = scalar_text(NAME, "path", map.get("path"))?
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "/".to_owned());
    let body = scalar_text(NAME, "body", map.get("body"))?.unwrap_or_default();
    let mut headers = Vec::new();
    match map.get("headers") {
        None | Some(Value::Null) => {}
        Some(Value::Mapping(h)) => {
            for (name, value) in h {
                let name = scalar_text(NAME, "headers", Some(name))?.unwrap_or_default();
                if !is_token(&name) {
                    return Err(bad(format!(
                        "header name {name:?} is not a valid HTTP token"
                    )));
                }
                let value = scalar_text(NAME, "headers", Some(value))?.unwrap_or_default();
                headers.push((name, value));
            }
        }
        Some(other) => {
            return Err(bad(format!(
                "`headers` must be a map of name: value, got {}",
                short_yaml(other)
            )))
        }
    }
    Ok(RawRequestSettings {
        method,
        path,
        headers,
        body,
    })
}

fn graphql_settings(settings: Option<Value>) -> Result<GraphQlSettings, CaseProblem> {
    const NAME: &str = "GraphQL";
    let map = settings_map(NAME, settings)?;
    let method = match scalar_text(NAME, "method", map.get("method"))?.as_deref() {
        Some("GET") => GraphQlMethod::Get,
        Some("POST") => GraphQlMethod::Post,
        Some(other) => {
            return Err(CaseProblem::BadSettings {
                placeholder: NAME,
                reason: format!("method must be GET or POST, got {other:?}"),
            })
        }
        None => {
            return Err(CaseProblem::BadSettings {
                placeholder: NAME,
                reason: "`method` is required (GET or POST)".to_owned(),
            })
        }
    };
    Ok(GraphQlSettings { method })
}

/// RFC 9110 token: what a method or header name may contain.
fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn short_yaml(value: &Value) -> String {
    let text = serde_yaml_ng::to_string(value).unwrap_or_else(|_| format!("{value:?}"));
    let text = text.trim().replace('\n', " ");
    if text.chars().count() > 60 {
        format!("{}…", text.chars().take(60).collect::<String>())
    } else {
        text
    }
}

/// serde_yaml_ng appends " at line L column C" to messages; the position already leads
/// our message, so drop the duplicate.
fn strip_location(message: &str, line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => message.replacen(&format!(" at line {l} column {c}"), "", 1),
        _ => message.to_owned(),
    }
}

/// Position (1-based line, column of the value) of entry `index` of a block sequence whose
/// first dash is at `line`:`column`; `None` when the list is not in block style.
fn nth_block_entry(text: &str, line: usize, column: usize, index: usize) -> Option<(usize, usize)> {
    let dash = column.checked_sub(1)?;
    let mut seen = 0;
    for (offset, content) in text.lines().skip(line.checked_sub(1)?).enumerate() {
        let bytes = content.as_bytes();
        let indent = bytes.iter().take_while(|&&b| b == b' ').count();
        let blank_or_comment = indent == bytes.len() || bytes[indent] == b'#';
        if blank_or_comment || indent > dash {
            continue; // inside an entry (settings, continuation lines)
        }
        let is_entry =
            indent == dash && bytes[dash] == b'-' && bytes.get(dash + 1).is_none_or(|b| *b == b' ');
        if !is_entry {
            return None; // the list ended before entry `index`
        }
        if seen == index {
            return Some((line + offset, column + 2));
        }
        seen += 1;
    }
    None
}

/// 1-based line of a top-level `key:` (for errors serde cannot place).
fn top_level_key_line(text: &str, key: &str) -> Option<usize> {
    text.lines()
        .position(|line| {
            line.strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with(':'))
        })
        .map(|i| i + 1)
}

/// Rewrites `\'` inside double-quoted YAML scalars to `'`.
///
/// Three stock gotestwaf files use `\'`, which YAML 1.2 rejects but gotestwaf's parser
/// reads as `'`. Only double-quoted scalars are touched (single-quoted, plain, block
/// scalars and comments are copied as they are), and no line break is added or removed,
/// so parser line numbers still match the file. Columns after a rewrite on the same line
/// shift left by one per rewrite.
pub(crate) fn fix_escaped_single_quotes(text: &str) -> Cow<'_, str> {
    if !text.contains("\\'") {
        return Cow::Borrowed(text);
    }
    #[derive(Clone, Copy, PartialEq)]
    enum Mode {
        LineStart,
        ValueStart,
        Plain,
        Double,
        Single,
        Comment,
        BlockLine,
    }
    let bytes = text.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(bytes.len());
    let mut mode = Mode::LineStart;
    let mut line_start = 0usize;
    let mut flow_depth = 0usize;
    // Column of the node that owns a following `|`/`>` block scalar: the key's column
    // after `key:`, the dash's column after `- `.
    let mut owner_col = 0usize;
    let mut token_col = 0usize;
    let mut block_parent: Option<usize> = None;
    let mut pending_block = false;
    let ends_token = |i: usize| -> bool {
        bytes
            .get(i)
            .is_none_or(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
    };
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match mode {
            Mode::LineStart => {
                line_start = i;
                let mut j = i;
                while j < bytes.len() && bytes[j] == b' ' {
                    j += 1;
                }
                let indent = j - i;
                let blank = j >= bytes.len() || matches!(bytes[j], b'\n' | b'\r');
                if let Some(parent) = block_parent {
                    if blank || indent > parent {
                        mode = Mode::BlockLine;
                        continue;
                    }
                    block_parent = None;
                }
                out.extend_from_slice(&bytes[i..j]);
                i = j;
                owner_col = indent;
                mode = Mode::ValueStart;
            }
            Mode::BlockLine | Mode::Comment => {
                out.push(b);
                i += 1;
                if b == b'\n' {
                    if pending_block {
                        pending_block = false;
                        block_parent = Some(owner_col);
                    }
                    mode = Mode::LineStart;
                }
            }
            Mode::ValueStart => {
                let col = i - line_start;
                match b {
                    b' ' | b'\t' | b'\r' => {
                        out.push(b);
                        i += 1;
                    }
                    b'\n' => {
                        out.push(b);
                        i += 1;
                        mode = Mode::LineStart;
                    }
                    b'"' => {
                        token_col = col;
                        out.push(b);
                        i += 1;
                        mode = Mode::Double;
                    }
                    b'\'' => {
                        token_col = col;
                        out.push(b);
                        i += 1;
                        mode = Mode::Single;
                    }
                    b'#' => mode = Mode::Comment,
                    b'-' | b'?' | b':' if ends_token(i + 1) => {
                        if b == b'-' {
                            owner_col = col;
                        }
                        out.push(b);
                        i += 1;
                    }
                    b'!' | b'&' | b'*' => {
                        // tag, anchor or alias: copy the word, the value comes after it
                        while i < bytes.len() && !matches!(bytes[i], b' ' | b'\t' | b'\r' | b'\n') {
                            out.push(bytes[i]);
                            i += 1;
                        }
                    }
                    b'[' | b'{' => {
                        flow_depth += 1;
                        out.push(b);
                        i += 1;
                    }
                    b']' | b'}' if flow_depth > 0 => {
                        flow_depth -= 1;
                        out.push(b);
                        i += 1;
                        mode = Mode::Plain;
                    }
                    b',' if flow_depth > 0 => {
                        out.push(b);
                        i += 1;
                    }
                    b'|' | b'>' if flow_depth == 0 => {
                        pending_block = true;
                        mode = Mode::Comment; // header indicators up to the line end
                    }
                    _ => {
                        token_col = col;
                        mode = Mode::Plain;
                    }
                }
            }
            Mode::Plain => {
                out.push(b);
                i += 1;
                match b {
                    b'\n' => mode = Mode::LineStart,
                    b':' if ends_token(i)
                        || (flow_depth > 0
                            && matches!(bytes.get(i), Some(b',' | b'[' | b']' | b'{' | b'}'))) =>
                    {
                        owner_col = token_col;
                        mode = Mode::ValueStart;
                    }
                    b' ' | b'\t' if bytes.get(i) == Some(&b'#') => mode = Mode::Comment,
                    b',' if flow_depth > 0 => mode = Mode::ValueStart,
                    b']' | b'}' if flow_depth > 0 => flow_depth -= 1,
                    _ => {}
                }
            }
            Mode::Double => match b {
                b'\\' if bytes.get(i + 1) == Some(&b'\'') => {
                    out.push(b'\'');
                    i += 2;
                }
                b'\\' => {
                    out.push(b);
                    if let Some(&next) = bytes.get(i + 1) {
                        out.push(next);
                    }
                    i += 2;
                }
                b'"' => {
                    out.push(b);
                    i += 1;
                    mode = Mode::Plain;
                }
                _ => {
                    out.push(b);
                    i += 1;
                }
            },
            Mode::Single => {
                out.push(b);
                i += 1;
                if b == b'\'' {
                    if bytes.get(i) == Some(&b'\'') {
                        out.push(b'\'');
                        i += 1;
                    } else {
                        mode = Mode::Plain;
                    }
                }
            }
        }
    }
    // Only ASCII backslashes were removed, so the bytes are still UTF-8.
    Cow::Owned(
        String::from_utf8(out)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quirk_rewrites_only_inside_double_quotes() {
        let text =
            "payload:\n  - \"\\'-alert(1)//\"\n  - '\\'\n  - plain \\' text\n  - \"a\\\\'b\"\n";
        let fixed = fix_escaped_single_quotes(text);
        assert_eq!(
            fixed,
            "payload:\n  - \"'-alert(1)//\"\n  - '\\'\n  - plain \\' text\n  - \"a\\\\'b\"\n"
        );
    }

    #[test]
    fn quirk_leaves_block_scalars_and_comments() {
        let text = "body: |\n  \"x\\'y\"\n  more\nk: \"\\'\" # \"\\'\"\n- |\n    \"\\'\"\n";
        let fixed = fix_escaped_single_quotes(text);
        assert_eq!(
            fixed,
            "body: |\n  \"x\\'y\"\n  more\nk: \"'\" # \"\\'\"\n- |\n    \"\\'\"\n"
        );
    }

    #[test]
    fn quirk_handles_multiline_and_keys_and_flow() {
        let text = "a:\n  - \"one\\\n    two\\'\"\n\"k\": [\"\\'\", '\\', x]\n";
        let fixed = fix_escaped_single_quotes(text);
        assert_eq!(
            fixed,
            "a:\n  - \"one\\\n    two'\"\n\"k\": [\"'\", '\\', x]\n"
        );
        assert_eq!(fixed.lines().count(), text.lines().count());
    }

    #[test]
    fn quirk_untouched_text_is_borrowed() {
        assert!(matches!(
            fix_escaped_single_quotes("a: \"b\"\n"),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn top_level_key_line_finds_unindented_keys() {
        let text = "# c\npayload: []\nencoder :\n  payload: x\n";
        assert_eq!(top_level_key_line(text, "payload"), Some(2));
        assert_eq!(top_level_key_line(text, "encoder"), Some(3));
        assert_eq!(top_level_key_line(text, "placeholder"), None);
    }

    #[test]
    fn tokens() {
        assert!(is_token("CUST"));
        assert!(is_token("Content-Type"));
        assert!(!is_token("Bad Name"));
        assert!(!is_token(""));
        assert!(!is_token("a:b"));
    }
}
