//! The expression tree every dialect parses into, its canonical form and its id.
//!
//! Canonical form: aliases are already resolved by the parser; constants are folded
//! (an element-wise op of numbers becomes a number when the result is finite);
//! arguments of commutative ops are sorted by their canonical text. The canonical text
//! is function-call syntax with no spaces (`div(ts_mean(close,20),close)`), and the id
//! is the sha256 of that text: equivalent spellings in any dialect share an id, which
//! GP uses for dedup and the cache for keys.

use std::fmt::Write;

use crate::registry::{Kind, OpDef};

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Num(f64),
    /// A panel field (`close`) or group field (`industry`).
    Field(String),
    Call(&'static OpDef, Vec<Expr>),
}

impl Expr {
    pub fn call(op: &'static OpDef, args: Vec<Expr>) -> Expr {
        Expr::Call(op, args)
    }

    /// Canonical text (see module docs).
    pub fn canonical_text(&self) -> String {
        let mut s = String::new();
        self.write_canonical(&mut s);
        s
    }

    fn write_canonical(&self, s: &mut String) {
        match self {
            Expr::Num(x) => fmt_num(*x, s),
            Expr::Field(f) => s.push_str(f),
            Expr::Call(op, args) => {
                s.push_str(op.name);
                s.push('(');
                for (i, a) in args.iter().enumerate() {
                    if i > 0 {
                        s.push(',');
                    }
                    a.write_canonical(s);
                }
                s.push(')');
            }
        }
    }

    /// sha256 of the canonical text of the canonical form.
    pub fn id(&self) -> String {
        af_store::sha256_bytes(self.canonical_text().as_bytes())
    }

    /// Number of nodes.
    pub fn size(&self) -> usize {
        match self {
            Expr::Call(_, a) => 1 + a.iter().map(|x| x.size()).sum::<usize>(),
            _ => 1,
        }
    }

    pub fn depth(&self) -> usize {
        match self {
            Expr::Call(_, a) => 1 + a.iter().map(|x| x.depth()).max().unwrap_or(0),
            _ => 1,
        }
    }

    /// Days of history the expression needs before its first value (sum of windows
    /// along the deepest path).
    pub fn lookback(&self) -> usize {
        match self {
            Expr::Call(op, a) => {
                let own = if op.kind == Kind::TimeSeries {
                    a.iter()
                        .find_map(|x| {
                            if let Expr::Num(w) = x {
                                Some(*w as usize)
                            } else {
                                None
                            }
                        })
                        .unwrap_or(0)
                } else {
                    0
                };
                own + a.iter().map(|x| x.lookback()).max().unwrap_or(0)
            }
            _ => 0,
        }
    }

    /// The canonical form: folded constants, sorted commutative arguments.
    pub fn canonical(&self) -> Expr {
        match self {
            Expr::Call(op, args) => {
                let mut args: Vec<Expr> = args.iter().map(|a| a.canonical()).collect();
                if op.kind == Kind::Elementwise && args.iter().all(|a| matches!(a, Expr::Num(_))) {
                    let v: Vec<f64> = args
                        .iter()
                        .map(|a| if let Expr::Num(x) = a { *x } else { 0.0 })
                        .collect();
                    if let Some(r) = crate::kernels::elementwise::scalar(op.name, &v) {
                        if r.is_finite() {
                            return Expr::Num(r);
                        }
                    }
                }
                if op.commutative {
                    args.sort_by_cached_key(|a| a.canonical_text());
                }
                Expr::Call(op, args)
            }
            other => other.clone(),
        }
    }

    /// Direct sub-expressions that are themselves matrices (not constants or groups).
    pub fn children(&self) -> &[Expr] {
        match self {
            Expr::Call(_, a) => a,
            _ => &[],
        }
    }
}

/// Shortest text that parses back to the same f64.
pub fn fmt_num(x: f64, s: &mut String) {
    if x == x.trunc() && x.abs() < 1e15 {
        // `as i64` also turns -0.0 into "0", so ±0 share one spelling.
        let _ = write!(s, "{}", x as i64);
    } else {
        let _ = write!(s, "{x:?}");
    }
}
