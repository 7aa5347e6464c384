//! The pipeline runner as a library: the file format ([`spec`]), the step graph and its
//! staleness ([`graph`]), runs ([`run`]), records and the stat cache ([`state`]),
//! garbage collection ([`gc`]) and exports ([`export`]); the `pipeline` binary parses
//! its arguments and calls these.
//!
//! A step's key is the sha256 of its tool's identity (the binary's content hash), its
//! arguments and the content hashes of its declared inputs. A step is skipped when its
//! key matches the record of its last successful run and its outputs still exist with
//! the recorded hashes. A step that re-ran and wrote byte-identical outputs leaves the
//! keys below it unchanged, so they skip too (early cutoff). Records are written after
//! a step succeeds, outputs are written atomically by the tools, so a killed run
//! resumes with the step it was in.

pub mod export;
pub mod gc;
pub mod graph;
pub mod run;
pub mod spec;
pub mod state;

pub use graph::Common;
