//! The library's error type and how each kind maps to the CLI's exit code.
//! Library code returns these; only `main.rs` turns them into process exits.

use std::path::PathBuf;

/// Exit code for a run that completed but failed a check (SLO, expected verdicts).
pub const EXIT_CHECK_FAILED: u8 = 1;
/// Exit code for bad usage or bad input: files, flags, unreachable targets.
pub const EXIT_INPUT: u8 = 2;
/// Exit code after SIGINT, as shells expect (128 + 2).
pub const EXIT_INTERRUPTED: u8 = 130;

/// Every error the library can return. `Display` is always one line that names the file
/// (and line) or the flag at fault, so a user can act on it without a backtrace.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Corpus(#[from] crate::corpus::CorpusError),
    #[error("{0}")]
    Profile(#[from] crate::profile::ProfileError),
    /// A command-line value that cannot be used; the message names the flag.
    #[error("{flag}: {message}")]
    Flag { flag: String, message: String },
    /// The target could not be reached before the run (DNS, refused, TLS).
    #[error("target {url}: {message}")]
    Target { url: String, message: String },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A results folder that cannot be read back.
    #[error("{}: {message}", path.display())]
    Results { path: PathBuf, message: String },
    /// The run finished, but a check the user asked for (SLO, expected verdicts) failed.
    #[error("check failed: {0}")]
    CheckFailed(String),
    #[error("{0}")]
    Other(String),
}

impl Error {
    /// The process exit code this error should produce.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::CheckFailed(_) => EXIT_CHECK_FAILED,
            _ => EXIT_INPUT,
        }
    }

    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub fn flag(flag: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Flag {
            flag: flag.into(),
            message: message.into(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
