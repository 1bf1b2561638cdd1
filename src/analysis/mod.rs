//! Analysis on results: statistics that reports and comparisons share. Works on counts
//! and histograms read from a results folder; it never sends, records or renders.

pub mod stats;
