//! Element-wise kernels: arithmetic, comparisons, logic, math functions.

use super::finite_or_nan;
use rayon::prelude::*;

/// One operand: a matrix or a broadcast number.
#[derive(Clone, Copy)]
pub enum Operand<'a> {
    M(&'a [f64]),
    S(f64),
}

#[inline]
fn truth(x: f64) -> Option<bool> {
    if x.is_nan() { None } else { Some(x != 0.0) }
}

#[inline]
fn b(x: bool) -> f64 {
    x as u8 as f64
}

#[inline]
fn cmp(x: f64, y: f64, r: bool) -> f64 {
    if x.is_nan() || y.is_nan() {
        f64::NAN
    } else {
        b(r)
    }
}

/// Something to do with an op's function of (up to) three numbers. Each op's closure is
/// its own type, so `visit` is monomorphised per op and the per-cell loop inlines it
/// (no indirect call per cell).
pub trait Visit {
    type Out;
    fn visit<F: Fn(f64, f64, f64) -> f64 + Sync + Copy>(self, f: F) -> Self::Out;
}

/// Call `v.visit(f)` with the function of op `name`; `None` if it is not element-wise.
pub fn dispatch<V: Visit>(name: &str, v: V) -> Option<V::Out> {
    Some(match name {
        "add" => v.visit(|x, y, _| x + y),
        "sub" => v.visit(|x, y, _| x - y),
        "mul" => v.visit(|x, y, _| x * y),
        "div" => v.visit(|x, y, _| if y == 0.0 { f64::NAN } else { x / y }),
        // 0^a is 0 for any exponent the operator meets, but a missing exponent is
        // missing (numpy: 0.0 ** nan is nan; GP builds exponents from series).
        "signed_power" => v.visit(|x, y, _| {
            if y.is_nan() {
                f64::NAN
            } else if x == 0.0 {
                0.0
            } else {
                x.signum() * x.abs().powf(y)
            }
        }),
        "lt" => v.visit(|x, y, _| cmp(x, y, x < y)),
        "le" => v.visit(|x, y, _| cmp(x, y, x <= y)),
        "gt" => v.visit(|x, y, _| cmp(x, y, x > y)),
        "ge" => v.visit(|x, y, _| cmp(x, y, x >= y)),
        "eq" => v.visit(|x, y, _| cmp(x, y, x == y)),
        "ne" => v.visit(|x, y, _| cmp(x, y, x != y)),
        // numpy comparisons (Qlib): NaN compares false (and `!=` true)
        "q_lt" => v.visit(|x, y, _| b(x < y)),
        "q_le" => v.visit(|x, y, _| b(x <= y)),
        "q_gt" => v.visit(|x, y, _| b(x > y)),
        "q_ge" => v.visit(|x, y, _| b(x >= y)),
        "q_eq" => v.visit(|x, y, _| b(x == y)),
        "q_ne" => v.visit(|x, y, _| b(x != y)),
        "and" => v.visit(|x, y, _| match (truth(x), truth(y)) {
            (Some(p), Some(q)) => b(p && q),
            _ => f64::NAN,
        }),
        "or" => v.visit(|x, y, _| match (truth(x), truth(y)) {
            (Some(p), Some(q)) => b(p || q),
            _ => f64::NAN,
        }),
        "if_else" => v.visit(|c, a, e| match truth(c) {
            Some(true) => a,
            Some(false) => e,
            None => f64::NAN,
        }),
        "neg" => v.visit(|x, _, _| -x),
        "abs" => v.visit(|x, _, _| x.abs()),
        "log" => v.visit(|x, _, _| if x > 0.0 { x.ln() } else { f64::NAN }),
        "sign" => v.visit(|x, _, _| {
            if x.is_nan() {
                f64::NAN
            } else if x > 0.0 {
                1.0
            } else if x < 0.0 {
                -1.0
            } else {
                0.0
            }
        }),
        "sqrt" => v.visit(|x, _, _| if x >= 0.0 { x.sqrt() } else { f64::NAN }),
        "exp" => v.visit(|x, _, _| x.exp()),
        "inv" => v.visit(|x, _, _| if x == 0.0 { f64::NAN } else { 1.0 / x }),
        "max" => v.visit(|x, y, _| {
            if x.is_nan() || y.is_nan() {
                f64::NAN
            } else {
                x.max(y)
            }
        }),
        "min" => v.visit(|x, y, _| {
            if x.is_nan() || y.is_nan() {
                f64::NAN
            } else {
                x.min(y)
            }
        }),
        "clip" => v.visit(|x, lo, hi| {
            if x.is_nan() {
                f64::NAN
            } else {
                x.max(lo).min(hi)
            }
        }),
        _ => return None,
    })
}

/// The op on numbers (constant folding); `None` for names that are not element-wise.
pub fn scalar(name: &str, a: &[f64]) -> Option<f64> {
    struct On([f64; 3]);
    impl Visit for On {
        type Out = f64;
        fn visit<F: Fn(f64, f64, f64) -> f64 + Sync + Copy>(self, f: F) -> f64 {
            f(self.0[0], self.0[1], self.0[2])
        }
    }
    let g = |i: usize| a.get(i).copied().unwrap_or(f64::NAN);
    dispatch(name, On([g(0), g(1), g(2)])).map(finite_or_nan)
}

const CHUNK: usize = 1 << 13;

/// `out[i] = f(a[i], b[i], c[i])` over one run of cells, serially: the per-cell loop of
/// both [`apply`] (per parallel chunk) and [`apply_tile`] (fused chains). Matrix
/// operands hold exactly `out.len()` cells. One arm per operand shape, so each loop is
/// a plain zip over slices the compiler vectorises.
#[inline(always)]
fn cells<F: Fn(f64, f64, f64) -> f64>(f: F, args: [Operand; 3], out: &mut [f64]) {
    let n = out.len();
    match args {
        [Operand::M(a), Operand::M(b), Operand::M(c)] => {
            for (((o, a), b), c) in out.iter_mut().zip(&a[..n]).zip(&b[..n]).zip(&c[..n]) {
                *o = finite_or_nan(f(*a, *b, *c));
            }
        }
        [Operand::M(a), Operand::M(b), Operand::S(c)] => {
            for ((o, a), b) in out.iter_mut().zip(&a[..n]).zip(&b[..n]) {
                *o = finite_or_nan(f(*a, *b, c));
            }
        }
        [Operand::M(a), Operand::S(b), Operand::S(c)] => {
            for (o, a) in out.iter_mut().zip(&a[..n]) {
                *o = finite_or_nan(f(*a, b, c));
            }
        }
        [Operand::S(a), Operand::M(b), Operand::S(c)] => {
            for (o, b) in out.iter_mut().zip(&b[..n]) {
                *o = finite_or_nan(f(a, *b, c));
            }
        }
        [a, b, c] => {
            let at = |o: Operand, i: usize| match o {
                Operand::M(m) => m[i],
                Operand::S(x) => x,
            };
            for (i, o) in out.iter_mut().enumerate() {
                *o = finite_or_nan(f(at(a, i), at(b, i), at(c, i)));
            }
        }
    }
}

/// The three operands (missing ones NaN) of an op given `args`.
fn three<'a>(args: &[Operand<'a>]) -> [Operand<'a>; 3] {
    let get = |i: usize| args.get(i).copied().unwrap_or(Operand::S(f64::NAN));
    [get(0), get(1), get(2)]
}

/// Apply an element-wise op over `n` cells.
pub fn apply(name: &str, args: &[Operand], n: usize) -> Vec<f64> {
    struct Cells<'a> {
        args: [Operand<'a>; 3],
        n: usize,
    }
    impl Visit for Cells<'_> {
        type Out = Vec<f64>;
        fn visit<F: Fn(f64, f64, f64) -> f64 + Sync + Copy>(self, f: F) -> Vec<f64> {
            let mut out = super::buf::take(self.n);
            let args = self.args;
            out.par_chunks_mut(CHUNK).enumerate().for_each(|(ch, o)| {
                let r = ch * CHUNK..ch * CHUNK + o.len();
                let part = args.map(|a| match a {
                    Operand::M(m) => Operand::M(&m[r.clone()]),
                    s => s,
                });
                cells(f, part, o);
            });
            out
        }
    }
    dispatch(
        name,
        Cells {
            args: three(args),
            n,
        },
    )
    .unwrap_or_else(|| super::buf::filled(n, f64::NAN))
}

/// Apply an element-wise op to one tile of cells, serially, into `out`: the building
/// block of fused element-wise chains (each matrix argument is the tile's cells,
/// `out.len()` of them). The same per-cell loop as [`apply`], so the same bits.
/// `false` if `name` is not element-wise.
pub fn apply_tile(name: &str, args: &[Operand], out: &mut [f64]) -> bool {
    struct Tile<'a, 'o> {
        args: [Operand<'a>; 3],
        out: &'o mut [f64],
    }
    impl Visit for Tile<'_, '_> {
        type Out = ();
        fn visit<F: Fn(f64, f64, f64) -> f64 + Sync + Copy>(self, f: F) {
            cells(f, self.args, self.out);
        }
    }
    dispatch(
        name,
        Tile {
            args: three(args),
            out,
        },
    )
    .is_some()
}

/// The streaming floor `make bench-ops` measures each operator against: read one
/// matrix, write one (`x + 1`), split over the cores like the kernels, into a buffer
/// from the same pool — the least any operator producing a new matrix can cost.
pub fn stream_floor(x: &[f64]) -> Vec<f64> {
    let mut out = super::buf::take(x.len());
    out.par_chunks_mut(1 << 16)
        .zip(x.par_chunks(1 << 16))
        .for_each(|(o, x)| {
            for (o, x) in o.iter_mut().zip(x) {
                *o = x + 1.0;
            }
        });
    out
}
