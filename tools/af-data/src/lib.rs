//! Daily-bar data for alpha-factory: everything between a data source and the panel.
//!
//! - [`raw`]: the raw bar schema of docs/data_contract.md in memory and as year-partitioned
//!   Parquet, with validation that names the file, row and column of bad input.
//! - [`synthetic`]: the embedded, seeded A-share-like market with planted alphas.
//! - [`tushare`]: the A-share market from Tushare Pro (rate-limited, resumable, incremental).
//! - [`qlib`]: Qlib's binary provider format, exported and imported.
//! - [`files`]: ingestion of users' CSV / Parquet bars through a field mapping.
//! - [`panel_build`]: raw bars → the dense panel (adjustment, masks, labels).
//! - [`market`]: market profiles (daily limits as data) used by split inference and
//!   the panel's limit flags.
//! - [`limits`] and [`calendar`]: A-share price-limit rules and trading calendar,
//!   shared by the generator and the panel builder so both agree to the cent.

pub mod calendar;
pub mod files;
pub mod limits;
pub mod manifest;
pub mod market;
pub mod panel_build;
pub mod qlib;
pub mod raw;
pub mod synthetic;
pub mod tushare;
