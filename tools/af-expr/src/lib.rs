//! The alpha-factory expression engine.
//!
//! Formulaic factors (`rank(ts_mean(close, 20) / close) * -1`) in three dialects are
//! parsed ([`parse`]) into one tree ([`ast::Expr`]) whose operators all come from one
//! table ([`registry`]). Trees have a canonical form and a content id. Many
//! expressions compile into one DAG with shared sub-expressions merged
//! ([`eval::Program`]), evaluated on a memory-mapped panel by O(n) kernels on dense
//! `[n_dates][n_assets]` matrices ([`kernels`]) using every core.
//!
//! This crate never links polars: it reads the panel through `af-panel` only.

pub mod ast;
pub mod eval;
pub mod kernels;
pub mod parse;
pub mod python;
pub mod registry;
pub mod sets;

pub use ast::Expr;
pub use eval::{Program, RunStats};
pub use parse::{Dialect, Fields, ParseError, expression_lines, parse, parse_canonical};

/// Worker threads the kernels use (rayon's pool: every core unless `RAYON_NUM_THREADS`
/// says otherwise).
pub fn threads() -> usize {
    rayon::current_num_threads()
}

/// Fields an expression may read on `panel`: its f64 columns except the labels, and its
/// group columns.
pub fn fields_of(panel: &af_panel::Panel) -> Fields {
    let numeric = panel
        .field_names()
        .into_iter()
        .filter(|f| !af_panel::columns::is_label(f))
        .map(String::from)
        .collect();
    let groups = [af_panel::columns::INDUSTRY]
        .iter()
        .filter(|g| panel.groups(g).is_ok())
        .map(|g| g.to_string())
        .collect();
    Fields { numeric, groups }
}

/// Share of the universe's cells (`in_universe`; every cell without the mask) where each
/// of [`fields_of`]'s numeric fields is finite — the data a search may build on. A
/// source without volume gives volume, vwap and turnover 0.
pub fn field_coverage(panel: &af_panel::Panel) -> anyhow::Result<Vec<(String, f64)>> {
    use rayon::prelude::*;
    let universe = panel.mask(af_panel::columns::UNIVERSE).ok();
    let members = universe
        .as_ref()
        .map_or(panel.n_dates() * panel.n_assets(), |u| {
            u.iter().filter(|x| **x).count()
        });
    fields_of(panel)
        .numeric
        .into_iter()
        .map(|f| {
            let m = panel.field(&f)?;
            let finite = match &universe {
                Some(u) => m
                    .data
                    .par_iter()
                    .zip(u.par_iter())
                    .filter(|(x, u)| **u && x.is_finite())
                    .count(),
                None => m.data.par_iter().filter(|x| x.is_finite()).count(),
            };
            Ok((f, finite as f64 / members.max(1) as f64))
        })
        .collect()
}
