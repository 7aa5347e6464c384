import numpy as np
import polars as pl
import polars_ta.wq.time_series as T

# ---------------------------------------------------------------------------
# Runtime: one function per operator of alpha-factory's native registry, with the
# engine's semantics (docs/expression_language.md, "Numerical rules"). Every value is
# Float64 and a missing value is null (never NaN or inf). Time-series operators run
# `.over(ASSET)` on a complete (code, date) grid sorted by code then date, so a window
# is the last d *trading days*, and it is full only when all d values are present.
# Cross-sectional operators run `.over(DATE)` on the assets in the universe.
#
# Where polars_ta's defaults differ from the engine, the call says so:
#   - ts_std/ts_var use ddof = 1 (polars_ta's ts_std_dev defaults to 0);
#   - every rolling call passes min_samples = d (polars_ta falls back to its global
#     MIN_SAMPLES, which a user may have set lower);
#   - rank is Polars' average-tie rank / count (polars_ta's cs_rank is dense);
#   - constant windows are found exactly (ts_max == ts_min), because rolling std and
#     corr leave rounding residue there and the engine's rule is an exact 0 / NaN.

ASSET, DATE, UNIVERSE = "code", "date", "_universe"
C = pl.col
F64 = pl.Float64


def _fin(e):
    """NaN and ±inf become null: the engine never returns either."""
    return pl.when(e.is_finite()).then(e)


def _both(x, y, e):
    return pl.when(x.is_not_null() & y.is_not_null()).then(e)


def _ts(e):
    return _fin(e).over(ASSET)


def _flat(x, d):
    return T.ts_max(x, d, min_samples=d) == T.ts_min(x, d, min_samples=d)


# element-wise


def add(x, y):
    return _fin(x + y)


def sub(x, y):
    return _fin(x - y)


def mul(x, y):
    return _fin(x * y)


def div(x, y):
    return _fin(pl.when(y != 0).then(x / y))


def signed_power(x, a):
    return _fin(x.sign() * x.abs().pow(a))


def _cmp(x, y, e):
    return _both(x, y, e.cast(F64))


def lt(x, y):
    return _cmp(x, y, x < y)


def le(x, y):
    return _cmp(x, y, x <= y)


def gt(x, y):
    return _cmp(x, y, x > y)


def ge(x, y):
    return _cmp(x, y, x >= y)


def eq(x, y):
    return _cmp(x, y, x == y)


def ne(x, y):
    return _cmp(x, y, x != y)


def and_(x, y):
    return _cmp(x, y, (x != 0) & (y != 0))


def or_(x, y):
    return _cmp(x, y, (x != 0) | (y != 0))


def if_else(c, a, b):
    return pl.when(c.is_null()).then(None).when(c != 0).then(a).otherwise(b)


def neg(x):
    return -x


def abs_(x):
    return x.abs()


def log(x):
    return _fin(pl.when(x > 0).then(x.log()))


def sign(x):
    return x.sign().cast(F64)


def sqrt(x):
    return _fin(pl.when(x >= 0).then(x.sqrt()))


def exp(x):
    return _fin(x.exp())


def inv(x):
    return _fin(pl.when(x != 0).then(1.0 / x))


def max_(x, y):
    return _both(x, y, pl.max_horizontal(x, y))


def min_(x, y):
    return _both(x, y, pl.min_horizontal(x, y))


def clip(x, lo, hi):
    return x.clip(lo, hi)


# time series (per asset, the last d trading days including today)


def ts_delay(x, d):
    return T.ts_delay(x, d).over(ASSET)


def ts_delta(x, d):
    return _ts(x - T.ts_delay(x, d))


# Polars' running sums keep residue after large values leave the window (a volume
# window of zeros after 1e6 gives 1e-9); the engine's constant windows are exact


def ts_sum(x, d):
    return _ts(pl.when(_flat(x, d)).then(x * d).otherwise(T.ts_sum(x, d, min_samples=d)))


def ts_mean(x, d):
    return _ts(pl.when(_flat(x, d)).then(x).otherwise(T.ts_mean(x, d, min_samples=d)))


def ts_std(x, d):
    return _ts(pl.when(_flat(x, d)).then(0.0).otherwise(T.ts_std_dev(x, d, ddof=1, min_samples=d)))


def ts_var(x, d):
    return _ts(pl.when(_flat(x, d)).then(0.0).otherwise(x.rolling_var(d, ddof=1, min_samples=d)))


def ts_min(x, d):
    return _ts(T.ts_min(x, d, min_samples=d))


def ts_max(x, d):
    return _ts(T.ts_max(x, d, min_samples=d))


def ts_argmin(x, d):
    # polars_ta counts from the window's oldest day with reverse=False, so ties go
    # to the earliest day like the engine's; reverse=True would pick the newest
    return _ts((d - 1) - T.ts_arg_min(x, d, reverse=False, min_samples=d).cast(F64))


def ts_argmax(x, d):
    return _ts((d - 1) - T.ts_arg_max(x, d, reverse=False, min_samples=d).cast(F64))


def ts_rank(x, d):
    return _ts(T.ts_rank(x, d, min_samples=d))


def ts_product(x, d):
    return _ts(T.ts_product(x, d, min_samples=d))


def ts_skew(x, d):
    return _ts(pl.when(~_flat(x, d)).then(T.ts_skewness(x, d, bias=False, min_samples=d)))


def ts_kurt(x, d):
    return _ts(pl.when(~_flat(x, d)).then(T.ts_kurtosis(x, d, bias=False, min_samples=d)))


def ts_median(x, d):
    return _ts(T.ts_median(x, d, min_samples=d))


def ts_zscore(x, d):
    sd = T.ts_std_dev(x, d, ddof=1, min_samples=d)
    return _ts(pl.when(~_flat(x, d) & (sd > 0)).then((x - T.ts_mean(x, d, min_samples=d)) / sd))


def ts_decay_linear(x, d):
    return _ts(T.ts_decay_linear(x, d, min_samples=d))


def ts_ema(x, d):
    # pandas ewm(span=d, adjust=True, min_periods=d): on a missing day pandas repeats
    # the last mean where Polars gives null, hence the forward fill of those days only
    e = x.ewm_mean(span=d, adjust=True, min_samples=d, ignore_nulls=False)
    return _ts(pl.when(x.is_null()).then(e.forward_fill()).otherwise(e))


def _linreg(x, d):
    """Slope of the window's values on 1..d (today = d) as one weighted sum with the
    centred weights i - (d+1)/2: a window like (a, b, a) gives exactly 0, as the
    engine does, where a difference of two running sums leaves rounding residue that
    a later rank would tell apart. Polars' weighted windows refuse nulls, so missing
    values pass through as NaN and come out as null."""
    xn = x.fill_null(np.nan)
    w = [i - (d + 1) / 2.0 for i in range(1, d + 1)]
    sw2 = d * (d * d - 1) / 12.0
    slope = xn.rolling_sum(d, weights=w, min_samples=d).fill_nan(None) / sw2
    return pl.when(_flat(x, d)).then(0.0).otherwise(slope)


def ts_slope(x, d):
    return _ts(_linreg(x, d))


def ts_resi(x, d):
    # today's residual: x - (mean + slope * (d - (d+1)/2))
    resi = x - (T.ts_mean(x, d, min_samples=d) + _linreg(x, d) * ((d - 1) / 2.0))
    return _ts(pl.when(_flat(x, d)).then(0.0).otherwise(resi))


def ts_rsquare(x, d):
    var_i = (d * d - 1) / 12.0
    var_x = x.rolling_var(d, ddof=0, min_samples=d)
    slope = _linreg(x, d)
    return _ts(pl.when(~_flat(x, d) & (var_x > 0)).then(slope * slope * var_i / var_x))


def ts_count(c, d):
    hit = (c.fill_null(0.0) != 0).cast(F64)
    return _ts(hit.rolling_sum(d, min_samples=d))


def _pair(x, y):
    # a day counts only when both sides have a value
    return pl.when(y.is_not_null()).then(x), pl.when(x.is_not_null()).then(y)


def ts_corr(x, y, d):
    xm, ym = _pair(x, y)
    r = T.ts_corr(xm, ym, d, min_samples=d)
    return _ts(pl.when(~(_flat(xm, d) | _flat(ym, d))).then(r.clip(-1.0, 1.0)))


def ts_cov(x, y, d):
    xm, ym = _pair(x, y)
    c = T.ts_covariance(xm, ym, d, ddof=1, min_samples=d)
    return _ts(pl.when(_flat(xm, d) | _flat(ym, d)).then(pl.when(c.is_not_null()).then(0.0)).otherwise(c))


# cross-section (per date, over the universe's assets that have a value)


def _u(x):
    return pl.when(C(UNIVERSE)).then(x)


def _cs(e, by=(DATE,)):
    return _fin(e).over(list(by))


def _col(u, agg):
    """A group aggregate as a full column: Polars divides by a broadcast scalar as a
    multiplication by its reciprocal, so n / n would come out as 0.9999999999999999
    where the engine (and pandas) divide and give 1."""
    return pl.when(u.is_not_null()).then(agg)


def rank(x):
    u = _u(x)
    return _cs(u.rank("average") / _col(u, u.count().cast(F64)))


def cs_zscore(x):
    u = _u(x)
    return _cs((u - u.mean()) / _col(u, u.std(ddof=1)))


def cs_demean(x):
    u = _u(x)
    return _cs(u - u.mean())


def scale(x, a=1.0):
    u = _u(x)
    return _cs(u * a / _col(u, u.abs().sum()))


def cs_winsorize(x, q=0.01):
    u = _u(x)
    return _cs(u.clip(u.quantile(q, "linear"), u.quantile(1.0 - q, "linear")))


def _g(x, g):
    return pl.when(C(g).is_not_null()).then(_u(x))


def group_neutralize(x, g):
    u = _g(x, g)
    return _cs(u - u.mean(), (DATE, g))


def group_rank(x, g):
    u = _g(x, g)
    return _cs(u.rank("average") / _col(u, u.count().cast(F64)), (DATE, g))


def group_mean(x, g):
    u = _g(x, g)
    return _cs(pl.when(u.is_not_null()).then(u.mean()), (DATE, g))


# ---------------------------------------------------------------------------
# The frame


def grid(df, fields, groups, universe):
    """The complete (code, date) grid, sorted by code then date, with the fields the
    factors read as Float64 (NaN -> null) and the universe mask as `_universe`."""
    need = ["date", "code"]
    missing = [c for c in need + list(fields) + list(groups) + ([universe] if universe else []) if c not in df.columns]
    if missing:
        raise ValueError(f"the frame has no column(s) {missing}; it needs date, code, the fields {list(fields)}"
                         + (f", the groups {list(groups)}" if groups else "")
                         + (f" and the universe mask {universe!r}" if universe else ""))
    cols = [C("date"), C("code").cast(pl.String)]
    cols += [C(f).cast(F64).fill_nan(None).alias(f) for f in fields]
    cols += [C(g).cast(pl.String).alias(g) for g in groups]
    cols += [(C(universe).cast(pl.Boolean).fill_null(False) if universe else pl.lit(True)).alias(UNIVERSE)]
    data = df.select(cols)
    if data.select(pl.struct("date", "code").is_duplicated().any()).item():
        raise ValueError("the frame has more than one row for some (date, code)")
    dates = data.select(C("date").unique().sort())
    codes = data.select(C("code").unique().sort())
    full = codes.join(dates, how="cross").join(data, on=["code", "date"], how="left")
    return full.with_columns(C(UNIVERSE).fill_null(False)).sort(["code", "date"])
