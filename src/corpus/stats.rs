//! Corpus counts, so a user can check a corpus loaded as expected before a run
//! (and compare with gotestwaf's own numbers).

use std::fmt;

use serde::Serialize;

/// Counts of one set (or the total row).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SetStats {
    pub set: String,
    pub benign: bool,
    pub api: bool,
    /// Case files.
    pub files: usize,
    /// Payload entries, summed over files.
    pub payloads: usize,
    /// payloads × encoders × placeholders, summed over files: every planned request,
    /// including those that cannot be built.
    pub requests: usize,
    /// Requests whose placeholder wafload does not send (gRPC).
    pub unsupported: usize,
    /// Requests HTTP cannot carry (e.g. CR/LF/NUL in a header value).
    pub unsendable: usize,
}

impl SetStats {
    /// Requests that will actually be sent.
    pub fn buildable(&self) -> usize {
        self.requests - self.unsupported - self.unsendable
    }

    pub(crate) fn add(&mut self, other: &SetStats) {
        self.files += other.files;
        self.payloads += other.payloads;
        self.requests += other.requests;
        self.unsupported += other.unsupported;
        self.unsendable += other.unsendable;
    }
}

/// Per-set counts plus a total row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CorpusStats {
    pub sets: Vec<SetStats>,
    pub total: SetStats,
}

impl CorpusStats {
    /// The counts of a set, by name.
    pub fn set(&self, name: &str) -> Option<&SetStats> {
        self.sets.iter().find(|s| s.set == name)
    }
}

const COLUMNS: [&str; 6] = [
    "set",
    "files",
    "payloads",
    "requests",
    "unsupported",
    "unsendable",
];

impl fmt::Display for CorpusStats {
    /// A table like the format doc's: one row per set, then the total.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rows: Vec<[String; 6]> = self
            .sets
            .iter()
            .chain(std::iter::once(&self.total))
            .map(|s| {
                [
                    s.set.clone(),
                    s.files.to_string(),
                    s.payloads.to_string(),
                    s.requests.to_string(),
                    s.unsupported.to_string(),
                    s.unsendable.to_string(),
                ]
            })
            .collect();
        let mut widths = COLUMNS.map(str::len);
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let write_row = |f: &mut fmt::Formatter<'_>, cells: [&str; 6]| -> fmt::Result {
            write!(f, "{:<w$}", cells[0], w = widths[0])?;
            for (cell, w) in cells.iter().zip(widths).skip(1) {
                write!(f, " | {cell:>w$}")?;
            }
            writeln!(f)
        };
        write_row(f, COLUMNS)?;
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        writeln!(f, "{}", rule.join("-|-"))?;
        for (i, row) in rows.iter().enumerate() {
            if i + 1 == rows.len() {
                writeln!(f, "{}", rule.join("-|-"))?;
            }
            write_row(f, [&row[0], &row[1], &row[2], &row[3], &row[4], &row[5]])?;
        }
        Ok(())
    }
}
