//! The operator registry: the one place an operator is defined.
//!
//! Each entry gives the canonical (native) name, the argument kinds, the kind of
//! kernel, a relative cost per cell, whether arguments commute, and the spellings of
//! the other dialects. The parser, the canonicaliser, the evaluator, GP and the cache
//! planner all read this table; adding an operator is one entry here plus its kernel
//! (matched by name in `eval.rs`) and a test.

/// What an argument position accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arg {
    /// Any expression (a `[date][asset]` matrix or a number).
    Series,
    /// An integer constant window/lag, checked against the op's range.
    Window,
    /// A numeric constant (e.g. the exponent of `signed_power`).
    Scalar,
    /// A group field such as `industry`.
    Group,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Cell by cell.
    Elementwise,
    /// Per asset along time.
    TimeSeries,
    /// Per date across the universe.
    CrossSection,
}

#[derive(Debug, Clone, Copy)]
pub struct OpDef {
    pub name: &'static str,
    pub args: &'static [Arg],
    /// Number of trailing arguments that may be omitted, and their defaults.
    pub defaults: &'static [f64],
    pub kind: Kind,
    /// Relative cost per cell (a rolling mean = 1), used by the cache planner and GP.
    pub cost: f64,
    pub commutative: bool,
    /// Infix symbol, for ops the parser reads as operators.
    pub symbol: Option<&'static str>,
    /// Smallest window accepted (lags accept 1, statistics 2).
    pub min_window: u32,
    pub doc: &'static str,
}

pub const MAX_WINDOW: u32 = 252;

use Arg::*;
use Kind::*;

const fn op(
    name: &'static str,
    args: &'static [Arg],
    kind: Kind,
    cost: f64,
    doc: &'static str,
) -> OpDef {
    OpDef {
        name,
        args,
        defaults: &[],
        kind,
        cost,
        commutative: false,
        symbol: None,
        min_window: 2,
        doc,
    }
}
const fn comm(mut o: OpDef) -> OpDef {
    o.commutative = true;
    o
}
const fn sym(mut o: OpDef, s: &'static str) -> OpDef {
    o.symbol = Some(s);
    o
}
const fn lag(mut o: OpDef) -> OpDef {
    o.min_window = 1;
    o
}
const fn dflt(mut o: OpDef, d: &'static [f64]) -> OpDef {
    o.defaults = d;
    o
}

const S1: &[Arg] = &[Series];
const S2: &[Arg] = &[Series, Series];
const S3: &[Arg] = &[Series, Series, Series];
const SW: &[Arg] = &[Series, Window];
const SSW: &[Arg] = &[Series, Series, Window];
const SC: &[Arg] = &[Series, Scalar];
const SCC: &[Arg] = &[Series, Scalar, Scalar];
const SG: &[Arg] = &[Series, Group];
const SWC: &[Arg] = &[Series, Window, Scalar];

/// Doc prefix of the Qlib-semantics family.
macro_rules! qdoc {
    ($s:literal) => {
        concat!(
            "Qlib semantics: ",
            $s,
            "; partial windows (min_periods = 1, NaNs skipped), clipped to the asset's listed span, NaN outside it"
        )
    };
}

pub static OPS: &[OpDef] = &[
    // element-wise arithmetic and logic (infix in every dialect)
    sym(comm(op("add", S2, Elementwise, 0.1, "x + y")), "+"),
    sym(op("sub", S2, Elementwise, 0.1, "x - y"), "-"),
    sym(comm(op("mul", S2, Elementwise, 0.1, "x * y")), "*"),
    sym(
        op("div", S2, Elementwise, 0.1, "x / y; NaN where y = 0"),
        "/",
    ),
    sym(
        op(
            "signed_power",
            S2,
            Elementwise,
            0.3,
            "sign(x) * |x|^a (the `^` operator; 0 at x = 0, NaN where a is NaN)",
        ),
        "^",
    ),
    sym(
        op(
            "lt",
            S2,
            Elementwise,
            0.1,
            "1 if x < y else 0; NaN if either is NaN",
        ),
        "<",
    ),
    sym(op("le", S2, Elementwise, 0.1, "1 if x <= y else 0"), "<="),
    sym(op("gt", S2, Elementwise, 0.1, "1 if x > y else 0"), ">"),
    sym(op("ge", S2, Elementwise, 0.1, "1 if x >= y else 0"), ">="),
    sym(
        comm(op("eq", S2, Elementwise, 0.1, "1 if x == y else 0")),
        "==",
    ),
    sym(
        comm(op("ne", S2, Elementwise, 0.1, "1 if x != y else 0")),
        "!=",
    ),
    sym(
        comm(op("and", S2, Elementwise, 0.1, "1 if both non-zero else 0")),
        "&&",
    ),
    sym(
        comm(op(
            "or",
            S2,
            Elementwise,
            0.1,
            "1 if either non-zero else 0",
        )),
        "||",
    ),
    op(
        "if_else",
        S3,
        Elementwise,
        0.1,
        "a where c is non-zero, else b; NaN where c is NaN (the `c ? a : b` operator)",
    ),
    op("neg", S1, Elementwise, 0.05, "-x"),
    op("abs", S1, Elementwise, 0.05, "|x|"),
    op("log", S1, Elementwise, 0.3, "ln x; NaN for x <= 0"),
    op("sign", S1, Elementwise, 0.05, "-1, 0 or 1"),
    op("sqrt", S1, Elementwise, 0.2, "sqrt x; NaN for x < 0"),
    op("exp", S1, Elementwise, 0.3, "e^x; NaN on overflow"),
    op("inv", S1, Elementwise, 0.1, "1 / x; NaN at 0"),
    comm(op("max", S2, Elementwise, 0.1, "element-wise maximum")),
    comm(op("min", S2, Elementwise, 0.1, "element-wise minimum")),
    op("clip", SCC, Elementwise, 0.1, "x clipped to [lo, hi]"),
    // time series: per asset, over the last d days including today
    lag(op("ts_delay", SW, TimeSeries, 0.3, "x d days ago")),
    lag(op("ts_delta", SW, TimeSeries, 0.3, "x - ts_delay(x, d)")),
    lag(op("ts_sum", SW, TimeSeries, 1.0, "rolling sum")),
    lag(op("ts_mean", SW, TimeSeries, 1.0, "rolling mean")),
    op(
        "ts_std",
        SW,
        TimeSeries,
        1.5,
        "rolling standard deviation, ddof 1",
    ),
    op("ts_var", SW, TimeSeries, 1.5, "rolling variance, ddof 1"),
    lag(op("ts_min", SW, TimeSeries, 1.5, "rolling minimum")),
    lag(op("ts_max", SW, TimeSeries, 1.5, "rolling maximum")),
    op(
        "ts_argmin",
        SW,
        TimeSeries,
        1.5,
        "days since the window's minimum (0 = today; ties: the earliest)",
    ),
    op(
        "ts_argmax",
        SW,
        TimeSeries,
        1.5,
        "days since the window's maximum (0 = today; ties: the earliest)",
    ),
    op(
        "ts_rank",
        SW,
        TimeSeries,
        3.0,
        "percentile rank of today's value in its window, ties averaged, in (0, 1]",
    ),
    lag(op("ts_product", SW, TimeSeries, 1.5, "rolling product")),
    op(
        "ts_skew",
        SW,
        TimeSeries,
        2.0,
        "rolling skewness (pandas: bias-corrected)",
    ),
    op(
        "ts_kurt",
        SW,
        TimeSeries,
        2.0,
        "rolling excess kurtosis (pandas: bias-corrected)",
    ),
    op("ts_median", SW, TimeSeries, 3.0, "rolling median"),
    op("ts_zscore", SW, TimeSeries, 1.5, "(x - ts_mean) / ts_std"),
    op(
        "ts_decay_linear",
        SW,
        TimeSeries,
        1.2,
        "weighted mean, weights d, d-1, ..., 1 (today heaviest)",
    ),
    op(
        "ts_ema",
        SW,
        TimeSeries,
        1.0,
        "exponential mean, pandas ewm(span=d, adjust=True, min_periods=d)",
    ),
    op(
        "ts_slope",
        SW,
        TimeSeries,
        1.5,
        "slope of x on 1..d over the window",
    ),
    op(
        "ts_rsquare",
        SW,
        TimeSeries,
        1.5,
        "R^2 of x on 1..d over the window",
    ),
    op(
        "ts_resi",
        SW,
        TimeSeries,
        1.5,
        "today's residual of x on 1..d over the window",
    ),
    op(
        "ts_count",
        SW,
        TimeSeries,
        1.0,
        "days in the window where c is non-zero (NaN counts as false)",
    ),
    op(
        "ts_corr",
        SSW,
        TimeSeries,
        2.5,
        "rolling Pearson correlation; NaN on zero variance",
    ),
    op("ts_cov", SSW, TimeSeries, 2.0, "rolling covariance, ddof 1"),
    // cross-section: per date, over in_universe assets with a value
    op(
        "rank",
        S1,
        CrossSection,
        2.0,
        "percentile rank, ties averaged, in (0, 1]",
    ),
    op(
        "cs_zscore",
        S1,
        CrossSection,
        0.5,
        "(x - mean) / std (ddof 1)",
    ),
    op("cs_demean", S1, CrossSection, 0.4, "x - mean"),
    dflt(
        op(
            "scale",
            SC,
            CrossSection,
            0.4,
            "x * a / sum|x| (a defaults to 1)",
        ),
        &[1.0],
    ),
    dflt(
        op(
            "cs_winsorize",
            SC,
            CrossSection,
            2.0,
            "x clipped to its q and 1-q quantiles (linear interpolation; q defaults to 0.01)",
        ),
        &[0.01],
    ),
    op(
        "group_neutralize",
        SG,
        CrossSection,
        0.8,
        "x - mean of x within its group",
    ),
    op(
        "group_rank",
        SG,
        CrossSection,
        2.5,
        "percentile rank within its group",
    ),
    op(
        "group_mean",
        SG,
        CrossSection,
        0.6,
        "mean of x within its group",
    ),
    // Qlib semantics (the `qlib` dialect's rolling ops; see docs/expression_language.md)
    lag(op("q_mean", SW, TimeSeries, 1.0, qdoc!("rolling mean"))),
    lag(op("q_sum", SW, TimeSeries, 1.0, qdoc!("rolling sum"))),
    op("q_std", SW, TimeSeries, 1.5, qdoc!("rolling std, ddof 1")),
    op(
        "q_var",
        SW,
        TimeSeries,
        1.5,
        qdoc!("rolling variance, ddof 1"),
    ),
    op("q_skew", SW, TimeSeries, 2.0, qdoc!("rolling skewness")),
    op(
        "q_kurt",
        SW,
        TimeSeries,
        2.0,
        qdoc!("rolling excess kurtosis"),
    ),
    lag(op("q_max", SW, TimeSeries, 1.5, qdoc!("rolling maximum"))),
    lag(op("q_min", SW, TimeSeries, 1.5, qdoc!("rolling minimum"))),
    lag(op(
        "q_idxmax",
        SW,
        TimeSeries,
        1.5,
        qdoc!("1-based position of the window's maximum, counted from the window's oldest day"),
    )),
    lag(op(
        "q_idxmin",
        SW,
        TimeSeries,
        1.5,
        qdoc!("1-based position of the window's minimum, counted from the window's oldest day"),
    )),
    lag(op("q_median", SW, TimeSeries, 3.0, qdoc!("rolling median"))),
    lag(op(
        "q_quantile",
        SWC,
        TimeSeries,
        3.0,
        qdoc!("rolling q-quantile, linear interpolation"),
    )),
    lag(op(
        "q_rank",
        SW,
        TimeSeries,
        3.0,
        qdoc!("percentile rank of today's value in its window, ties averaged"),
    )),
    lag(op(
        "q_count",
        SW,
        TimeSeries,
        1.0,
        qdoc!("number of non-NaN values in the window"),
    )),
    lag(op(
        "q_ema",
        SW,
        TimeSeries,
        1.0,
        qdoc!("exponential mean, pandas ewm(span=d, adjust=True, min_periods=1)"),
    )),
    op(
        "q_corr",
        SSW,
        TimeSeries,
        3.5,
        qdoc!("rolling correlation; NaN where either side's rolling std is within 2e-5 of 0"),
    ),
    op(
        "q_cov",
        SSW,
        TimeSeries,
        2.0,
        qdoc!("rolling covariance, ddof 1"),
    ),
    op(
        "q_slope",
        SW,
        TimeSeries,
        1.5,
        qdoc!("slope of the window's values on their positions (missing days keep theirs)"),
    ),
    op(
        "q_rsquare",
        SW,
        TimeSeries,
        2.5,
        qdoc!("R^2 of that regression; NaN where the rolling std is within 2e-5 of 0"),
    ),
    op(
        "q_resi",
        SW,
        TimeSeries,
        1.5,
        qdoc!("today's residual of that regression"),
    ),
    op(
        "q_lt",
        S2,
        Elementwise,
        0.1,
        "Qlib/numpy comparison: 1 if x < y else 0, and 0 (false) where either is NaN",
    ),
    op("q_le", S2, Elementwise, 0.1, "as q_lt, for x <= y"),
    op("q_gt", S2, Elementwise, 0.1, "as q_lt, for x > y"),
    op("q_ge", S2, Elementwise, 0.1, "as q_lt, for x >= y"),
    comm(op("q_eq", S2, Elementwise, 0.1, "as q_lt, for x == y")),
    comm(op(
        "q_ne",
        S2,
        Elementwise,
        0.1,
        "as q_lt, for x != y (true where either is NaN, as numpy)",
    )),
];

/// Find an op by canonical name.
pub fn get(name: &str) -> Option<&'static OpDef> {
    OPS.iter().find(|o| o.name == name)
}

pub fn by_symbol(sym: &str) -> Option<&'static OpDef> {
    OPS.iter().find(|o| o.symbol == Some(sym))
}

/// The op an infix symbol means in a dialect (Qlib's comparisons are numpy's: NaN is
/// false, not NaN).
pub fn resolve_symbol(dialect: &str, sym: &str) -> Option<&'static OpDef> {
    match ALIASES.iter().find(|(d, s, _)| *d == dialect && *s == sym) {
        Some((_, _, canon)) => get(canon),
        None => by_symbol(sym),
    }
}

/// Other dialects' spellings: (dialect, spelling, canonical name).
/// Qlib names whose *semantics* differ from native (partial windows, 1-based IdxMax,
/// …) are not listed here: they are parsed only where they match native exactly;
/// see docs/expression_language.md.
pub static ALIASES: &[(&str, &str, &str)] = &[
    // alpha101 ("101 Formulaic Alphas", Kakushadze 2016)
    ("alpha101", "delay", "ts_delay"),
    ("alpha101", "delta", "ts_delta"),
    ("alpha101", "correlation", "ts_corr"),
    ("alpha101", "covariance", "ts_cov"),
    ("alpha101", "stddev", "ts_std"),
    ("alpha101", "sum", "ts_sum"),
    ("alpha101", "product", "ts_product"),
    ("alpha101", "decay_linear", "ts_decay_linear"),
    ("alpha101", "SignedPower", "signed_power"),
    ("alpha101", "IndNeutralize", "group_neutralize"),
    ("alpha101", "signedpower", "signed_power"),
    ("alpha101", "indneutralize", "group_neutralize"),
    // qlib (ops whose Qlib semantics equal native ones)
    ("qlib", "Ref", "ts_delay"),
    ("qlib", "Delta", "ts_delta"),
    ("qlib", "Abs", "abs"),
    ("qlib", "Log", "log"),
    ("qlib", "Sign", "sign"),
    ("qlib", "Greater", "max"),
    ("qlib", "Less", "min"),
    ("qlib", "If", "if_else"),
    ("qlib", "Add", "add"),
    ("qlib", "Sub", "sub"),
    ("qlib", "Mul", "mul"),
    ("qlib", "Div", "div"),
    ("qlib", "Gt", "q_gt"),
    ("qlib", "Ge", "q_ge"),
    ("qlib", "Lt", "q_lt"),
    ("qlib", "Le", "q_le"),
    ("qlib", "Eq", "q_eq"),
    ("qlib", "Ne", "q_ne"),
    ("qlib", ">", "q_gt"),
    ("qlib", ">=", "q_ge"),
    ("qlib", "<", "q_lt"),
    ("qlib", "<=", "q_le"),
    ("qlib", "==", "q_eq"),
    ("qlib", "!=", "q_ne"),
    // Qlib's rolling ops: partial windows, Qlib's own rules (the q_ family)
    ("qlib", "Mean", "q_mean"),
    ("qlib", "Sum", "q_sum"),
    ("qlib", "Std", "q_std"),
    ("qlib", "Var", "q_var"),
    ("qlib", "Skew", "q_skew"),
    ("qlib", "Kurt", "q_kurt"),
    ("qlib", "Max", "q_max"),
    ("qlib", "Min", "q_min"),
    ("qlib", "IdxMax", "q_idxmax"),
    ("qlib", "IdxMin", "q_idxmin"),
    ("qlib", "Med", "q_median"),
    ("qlib", "Quantile", "q_quantile"),
    ("qlib", "Rank", "q_rank"),
    ("qlib", "Count", "q_count"),
    ("qlib", "EMA", "q_ema"),
    ("qlib", "Corr", "q_corr"),
    ("qlib", "Cov", "q_cov"),
    ("qlib", "Slope", "q_slope"),
    ("qlib", "Rsquare", "q_rsquare"),
    ("qlib", "Resi", "q_resi"),
    ("qlib", "And", "and"),
    ("qlib", "Or", "or"),
];

/// Qlib operators recognised (so the error can say so) but not evaluated yet.
pub static QLIB_PENDING: &[&str] = &["WMA", "Mad", "Power", "Mask", "Not"];

/// Resolve a spelling in a dialect to an op.
pub fn resolve(dialect: &str, name: &str) -> Option<&'static OpDef> {
    if let Some((_, _, canon)) = ALIASES.iter().find(|(d, s, _)| *d == dialect && *s == name) {
        return get(canon);
    }
    if dialect == "qlib" {
        // Qlib writes ops capitalised; native names are not Qlib syntax.
        return None;
    }
    get(name)
}

/// Every name a dialect accepts (for "did you mean" suggestions).
pub fn names(dialect: &str) -> Vec<&'static str> {
    let mut v: Vec<&'static str> = ALIASES
        .iter()
        .filter(|(d, _, _)| *d == dialect)
        .map(|(_, s, _)| *s)
        .collect();
    if dialect != "qlib" {
        v.extend(OPS.iter().filter(|o| o.symbol.is_none()).map(|o| o.name));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_unique_and_aliases_resolve() {
        let mut n: Vec<_> = OPS.iter().map(|o| o.name).collect();
        n.sort();
        n.dedup();
        assert_eq!(n.len(), OPS.len());
        for (d, s, c) in ALIASES {
            assert!(get(c).is_some(), "{d}:{s} -> {c}");
        }
    }
}

/// Ops are singletons in [`OPS`]: equal when they are the same entry.
impl PartialEq for OpDef {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

/// `op` applied alone to panel fields, for `make bench-ops` (every operator timed on
/// its own beside the streaming floor): series arguments `close`, `volume`, `open` in
/// turn, windows 20 (never below the op's minimum), scalars the op's default or a value
/// in the fields' range (`clip` to [5, 50], quantiles 0.8, others 0.5), groups
/// `industry`. The Qlib family takes the same arguments.
pub fn bench_expression(op: &OpDef) -> String {
    let mut series = ["close", "volume", "open"].iter();
    let n_scalars = op.args.iter().filter(|a| **a == Arg::Scalar).count();
    let first_default = n_scalars - op.defaults.len().min(n_scalars);
    let mut k = 0;
    let args: Vec<String> = op
        .args
        .iter()
        .map(|a| match a {
            Arg::Series => series.next().copied().unwrap_or("high").to_string(),
            Arg::Window => 20.max(op.min_window).to_string(),
            Arg::Group => "industry".to_string(),
            Arg::Scalar => {
                let v = if k >= first_default {
                    op.defaults[k - first_default]
                } else if op.name == "clip" {
                    [5.0, 50.0][k.min(1)]
                } else if op.name.ends_with("quantile") {
                    0.8
                } else {
                    0.5
                };
                k += 1;
                format!("{v}")
            }
        })
        .collect();
    format!("{}({})", op.name, args.join(", "))
}
