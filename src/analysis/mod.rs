//! Analysis on results: overhead, A/B comparison with confidence intervals, the SLO gate
//! and the capacity search. It reads results folders (and drives runs through `run` for
//! interleaving and capacity steps); it never sends requests itself.

pub mod capacity;
pub mod compare;
pub mod interleave;
pub mod overhead;
pub mod slo;
pub mod stats;
pub mod sweep;
