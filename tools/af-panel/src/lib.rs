//! The panel: every field of a market as a dense `[n_dates][n_assets]` f64 matrix.
//!
//! On disk a panel is one Arrow IPC file (docs/data_contract.md, "The panel"): a complete date × asset grid,
//! one row per (date, asset), sorted by date then asset. Each numeric column is thus at
//! once a tidy column for pandas / polars / DuckDB and a row-major matrix for the
//! evaluator. [`Panel::open`] memory-maps the file and hands out `&[f64]` slices that
//! point into the mapping: opening a 2 GB panel costs a page-table walk, not a copy.
//!
//! Later tools (expression engine, fitness, GP, cache) use only this API.

pub mod columns;
pub mod dates;
mod read;
mod write;

pub use read::{Groups, Matrix, OnGrid, Panel};
pub use write::{PanelData, write_panel};

/// Metadata key under which the panel's own description (calendar, assets, fields,
/// content hash, build parameters) is stored as JSON.
pub const META_PANEL: &str = "af.panel";
/// Format tag checked on open.
pub const PANEL_FORMAT: &str = "af-panel/1";
