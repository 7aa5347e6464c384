//! Element-wise kernels: arithmetic, comparisons, logic, math functions.

use super::finite_or_nan;
use rayon::prelude::*;

/// One operand: a matrix or a broadcast number.
#[derive(Clone, Copy)]
pub enum Operand<'a> {
    M(&'a [f64]),
    S(f64),
}

impl Operand<'_> {
    #[inline]
    fn at(&self, i: usize) -> f64 {
        match self {
            Operand::M(v) => v[i],
            Operand::S(x) => *x,
        }
    }
}

#[inline]
fn truth(x: f64) -> Option<bool> {
    if x.is_nan() { None } else { Some(x != 0.0) }
}

#[inline]
fn b(x: bool) -> f64 {
    x as u8 as f64
}

type F3 = fn(f64, f64, f64) -> f64;

#[inline]
fn cmp(x: f64, y: f64, r: bool) -> f64 {
    if x.is_nan() || y.is_nan() {
        f64::NAN
    } else {
        b(r)
    }
}

/// The op as a function of (up to) three numbers; `None` if `name` is not element-wise.
/// Resolved once per op, so the per-cell loop is a plain indirect call.
pub fn func(name: &str) -> Option<F3> {
    Some(match name {
        "add" => |x, y, _| x + y,
        "sub" => |x, y, _| x - y,
        "mul" => |x, y, _| x * y,
        "div" => |x, y, _| if y == 0.0 { f64::NAN } else { x / y },
        "signed_power" => |x, y, _| {
            if x == 0.0 {
                0.0
            } else {
                x.signum() * x.abs().powf(y)
            }
        },
        "lt" => |x, y, _| cmp(x, y, x < y),
        "le" => |x, y, _| cmp(x, y, x <= y),
        "gt" => |x, y, _| cmp(x, y, x > y),
        "ge" => |x, y, _| cmp(x, y, x >= y),
        "eq" => |x, y, _| cmp(x, y, x == y),
        "ne" => |x, y, _| cmp(x, y, x != y),
        "and" => |x, y, _| match (truth(x), truth(y)) {
            (Some(p), Some(q)) => b(p && q),
            _ => f64::NAN,
        },
        "or" => |x, y, _| match (truth(x), truth(y)) {
            (Some(p), Some(q)) => b(p || q),
            _ => f64::NAN,
        },
        "if_else" => |c, a, e| match truth(c) {
            Some(true) => a,
            Some(false) => e,
            None => f64::NAN,
        },
        "neg" => |x, _, _| -x,
        "abs" => |x, _, _| x.abs(),
        "log" => |x, _, _| if x > 0.0 { x.ln() } else { f64::NAN },
        "sign" => |x, _, _| {
            if x.is_nan() {
                f64::NAN
            } else if x > 0.0 {
                1.0
            } else if x < 0.0 {
                -1.0
            } else {
                0.0
            }
        },
        "sqrt" => |x, _, _| if x >= 0.0 { x.sqrt() } else { f64::NAN },
        "exp" => |x, _, _| x.exp(),
        "inv" => |x, _, _| if x == 0.0 { f64::NAN } else { 1.0 / x },
        "max" => |x, y, _| {
            if x.is_nan() || y.is_nan() {
                f64::NAN
            } else {
                x.max(y)
            }
        },
        "min" => |x, y, _| {
            if x.is_nan() || y.is_nan() {
                f64::NAN
            } else {
                x.min(y)
            }
        },
        "clip" => |x, lo, hi| {
            if x.is_nan() {
                f64::NAN
            } else {
                x.max(lo).min(hi)
            }
        },
        _ => return None,
    })
}

/// The op on numbers (constant folding); `None` for names that are not element-wise.
pub fn scalar(name: &str, a: &[f64]) -> Option<f64> {
    let f = func(name)?;
    let g = |i: usize| a.get(i).copied().unwrap_or(f64::NAN);
    Some(finite_or_nan(f(g(0), g(1), g(2))))
}

/// Apply an element-wise op over `n` cells.
pub fn apply(name: &str, args: &[Operand], n: usize) -> Vec<f64> {
    let f = func(name).unwrap_or(|_, _, _| f64::NAN);
    let nan = Operand::S(f64::NAN);
    let (a, b2, c) = (
        args.first().copied().unwrap_or(nan),
        args.get(1).copied().unwrap_or(nan),
        args.get(2).copied().unwrap_or(nan),
    );
    let mut out = vec![0.0; n];
    out.par_chunks_mut(1 << 14)
        .enumerate()
        .for_each(|(ch, chunk)| {
            let base = ch << 14;
            for (k, o) in chunk.iter_mut().enumerate() {
                let i = base + k;
                *o = finite_or_nan(f(a.at(i), b2.at(i), c.at(i)));
            }
        });
    out
}
