//! Report: turns results into things people read — the terminal table now; charts, HTML
//! and Markdown exporters live beside it. It reads results only, never runs anything.

pub mod extproc;
pub mod terminal;
