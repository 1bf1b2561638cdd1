//! Loader errors. Each renders as one line that starts with `file:line:col: ` when the
//! position is known (so editors and terminals can jump to it), or with the path.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use crate::corpus::encoder::Encoder;
use crate::corpus::placeholder::Placeholder;

/// Why a corpus could not be loaded. Never a panic: every bad input ends up here.
#[derive(Debug, thiserror::Error)]
pub enum CorpusError {
    /// A root or set folder could not be listed (missing, not a folder, no permission).
    #[error("{}: cannot read directory: {source}", path.display())]
    ReadDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A case file could not be read (permission, not UTF-8, ...).
    #[error("{}: cannot read file: {source}", path.display())]
    ReadFile {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A case file was read but its content is wrong.
    #[error("{}{problem}", location_prefix(path, *line, *column))]
    Case {
        path: PathBuf,
        /// 1-based line, when known.
        line: Option<usize>,
        /// 1-based column, when known.
        column: Option<usize>,
        problem: CaseProblem,
    },
    /// Two roots hold a set of the same name; results would mix them up.
    #[error("set {name:?} is defined twice: {} and {}", first.display(), second.display())]
    DuplicateSet {
        name: String,
        first: PathBuf,
        second: PathBuf,
    },
    /// A root holds no set folder and no case file: almost certainly a wrong path.
    #[error("{}: no corpus found (expected set folders holding .yml files, or .yml files)", path.display())]
    Empty { path: PathBuf },
}

impl CorpusError {
    /// The problem inside a case file, if this is one (handy for callers and tests).
    pub fn problem(&self) -> Option<&CaseProblem> {
        match self {
            CorpusError::Case { problem, .. } => Some(problem),
            _ => None,
        }
    }
}

fn location_prefix(path: &Path, line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!("{}:{l}:{c}: ", path.display()),
        (Some(l), None) => format!("{}:{l}: ", path.display()),
        _ => format!("{}: ", path.display()),
    }
}

/// What is wrong inside one case file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaseProblem {
    /// Malformed YAML or a value of the wrong type; the parser's own message.
    Yaml(String),
    UnknownEncoder {
        name: String,
    },
    UnknownPlaceholder {
        name: String,
    },
    /// `payload`, `encoder` or `placeholder` is present but empty: the file would send nothing.
    EmptyList {
        key: &'static str,
    },
    /// `payload`, `encoder` or `placeholder` is absent.
    MissingKey {
        key: &'static str,
    },
    /// A placeholder's settings are unusable (e.g. RawRequest without `method`).
    BadSettings {
        placeholder: &'static str,
        reason: String,
    },
    /// A placeholder entry is neither a name nor a one-key map `name: settings`.
    BadPlaceholderEntry {
        found: String,
    },
}

impl fmt::Display for CaseProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CaseProblem::Yaml(message) => write!(f, "{}", one_line(message)),
            CaseProblem::UnknownEncoder { name } => write!(
                f,
                "unknown encoder {name:?} (valid: {})",
                Encoder::NAMES.join(", ")
            ),
            CaseProblem::UnknownPlaceholder { name } => write!(
                f,
                "unknown placeholder {name:?} (valid: {})",
                Placeholder::NAMES.join(", ")
            ),
            CaseProblem::EmptyList { key } => {
                write!(f, "`{key}` list is empty, the file would send nothing")
            }
            CaseProblem::MissingKey { key } => write!(f, "missing key `{key}`"),
            CaseProblem::BadSettings {
                placeholder,
                reason,
            } => write!(f, "{placeholder}: {}", one_line(reason)),
            CaseProblem::BadPlaceholderEntry { found } => write!(
                f,
                "placeholder entry must be a name or a one-key map `Name: settings`, got {}",
                one_line(found)
            ),
        }
    }
}

/// Error messages must stay on one line even when they quote YAML content.
fn one_line(text: &str) -> String {
    text.replace(['\r', '\n'], " ")
}
