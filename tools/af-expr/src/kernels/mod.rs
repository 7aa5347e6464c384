//! Kernels on dense `[n_dates][n_assets]` f64 matrices.
//!
//! - [`elementwise`]: cell by cell, with scalar broadcasting.
//! - [`ts`]: per asset along time. Series are processed in blocks of assets gathered
//!   into contiguous buffers (a cache-friendly blocked transpose), each block on its own
//!   rayon task, with O(n) rolling algorithms per series.
//! - [`cs`]: per date across the universe, one rayon task per chunk of dates, with
//!   scratch buffers reused across dates (no allocation per date).
//!
//! Numerical rules (semantics.md §2): a rolling window is full only when all d values
//! are present (min_periods = d); ddof = 1; division by zero, log/sqrt of a negative,
//! zero-variance correlations give NaN; no kernel ever returns ±inf.

pub mod cs;
pub mod elementwise;
pub mod ts;

/// Replace ±inf by NaN (the "never inf" rule), in place.
#[inline]
pub fn finite_or_nan(v: f64) -> f64 {
    if v.is_finite() { v } else { f64::NAN }
}

/// A raw pointer that rayon tasks may share to write *disjoint* parts of one buffer.
#[derive(Clone, Copy)]
pub(crate) struct SharedOut(pub *mut f64);
// SAFETY: every user writes only indices no other task writes (disjoint asset columns
// or date rows), and the buffer outlives the parallel section.
unsafe impl Send for SharedOut {}
unsafe impl Sync for SharedOut {}
