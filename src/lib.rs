//! wafload: load-test web application firewalls.
//!
//! Data flows one way: profile → plan → scheduler → transport → classifier → recorder →
//! results → report. Each module owns one of those steps; see `docs/architecture.md`.

pub mod analysis;
pub mod classify;
pub mod cli;
pub mod corpus;
pub mod error;
pub mod k8s;
pub mod openapi;
pub mod plan;
pub mod profile;
pub mod record;
pub mod report;
pub mod results;
pub mod run;
pub mod schedule;
pub mod target;
pub mod timer;
pub mod traffic;
pub mod transport;

pub use error::{Error, Result};
