"""Qlib's Alpha158 features recomputed with pandas, compared with the qlib dialect.

usage: check_alpha158.py PANEL EVAL_PARQUET [--fixture FILE] [--only A,B,...]
                         [--rtol 1e-9] [--atol 1e-12] [--min-match 25]
                         [--allow-missing] [--numerics exact|qlib]
                         [--write-reference OUT.parquet]

EVAL_PARQUET is `expr eval --panel PANEL --file tools/af-expr/sets/alpha158.txt` (columns
`date`, `code` and one per feature). Every `NAME = expression` of the fixture (default
tools/af-expr/sets/alpha158.txt, the 158 features as written in Qlib's own source) is
evaluated here by an independent interpreter of Qlib's expression language that
implements each operator the way qlib/data/ops.py (pyqlib 0.9.7) does -- pandas
`rolling(N, min_periods=1)`, `ewm(span=N)`, the Cython regression loops, numpy
element-wise rules -- without importing Qlib. See docs/qlib_semantics.md.

How Qlib's per-instrument evaluation maps onto our dense date x asset panel: Qlib loads
each instrument's series from its first to its last stored day and evaluates the
expression on that series alone. Here an asset's *span* is its first..last row with a
non-NaN `close` (docs/data_contract.md: outside it every field is NaN; inside it a
suspended day is a row with carried prices and volume 0). Every operator sees windows
truncated at the span start exactly as Qlib's would be (this matters for IdxMax/IdxMin,
WMA, EMA(N=0), Ref/Delta(N=0) and for comparisons, which are 0/1 and never NaN), and
every result is NaN outside the span. Numbers are float64 throughout (Qlib itself
stores float32 and casts the result to float32; we do not).

--numerics exact (default) computes Std/Var/Skew/Kurt/Corr/Cov/Slope/Rsquare/Resi
afresh per window (two-pass): Qlib's semantics without the rounding residue of pandas'
online kernels and Qlib's never-reset Cython sums. --numerics qlib uses those very
algorithms and is bit-identical to Qlib 0.9.7 (checked on the `small` panel against
Qlib's own operator classes: 158/158 Alpha158 features, 74/74 operator probes).

A cell matches when both are NaN, both are the same infinity, or
|got - want| <= rtol * |want| + atol (defaults 1e-9 and 1e-12; the printed error is
|got - want| / max(|want|, atol / rtol)). Prints one line
per feature with its max error and `N features match Qlib semantics`; exits 1 if any
compared feature mismatches, if a fixture feature is missing from EVAL_PARQUET (unless
--allow-missing) or if fewer than --min-match features matched.
"""
import argparse
import ast
import os
import re
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from numpy.lib.stride_tricks import sliding_window_view

import afref

np.seterr(all="ignore")  # as qlib/data/ops.py does (np.seterr(invalid="ignore")), and more

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_FIXTURE = os.path.join(HERE, "..", "..", "tools", "af-expr", "sets", "alpha158.txt")
CHUNK_CELLS = 8_000_000  # max elements of one (dates x assets x window) block


class QlibError(Exception):
    """The expression would raise in Qlib too (or is outside what Qlib evaluates)."""


# ----------------------------------------------------------------------------- panel

class Panel:
    """Fields as (dates x assets) arrays plus each asset's span [first, last]."""

    def __init__(self, meta, wide):
        self.wide = wide
        close = wide["close"]
        self.index, self.columns = close.index, close.columns
        self.nd, self.na = close.shape
        ok = close.notna().to_numpy()
        has = ok.any(axis=0)
        first = np.where(has, ok.argmax(axis=0), self.nd)
        last = np.where(has, self.nd - 1 - ok[::-1].argmax(axis=0), -1)
        self.first, self.last = first, last
        t = np.arange(self.nd)[:, None]
        self.live = (t >= first[None, :]) & (t <= last[None, :])
        self._cache = {}

    def field(self, name):
        if name not in self.wide:
            num = sorted(k for k, v in self.wide.items() if np.issubdtype(np.asarray(v.to_numpy()).dtype, np.number))
            raise QlibError(f"${name}: no such panel field (numeric fields: {', '.join(num)})")
        if name not in self._cache:
            try:
                self._cache[name] = np.asarray(self.wide[name].to_numpy(), dtype=np.float64)
            except (TypeError, ValueError):
                raise QlibError(f"${name} is not a numeric panel field") from None
        return self._cache[name]


# ---------------------------------------------------------------- operator semantics

def is_series(v):
    return isinstance(v, np.ndarray)


def f64(P, x):
    """A series as pandas sees it inside a rolling op: float64, NaN outside the span."""
    if not is_series(x):
        raise QlibError(f"a rolling operator got the constant {x!r} (Qlib needs an expression)")
    a = np.asarray(x).astype(np.float64)
    return np.where(P.live, a, np.nan)


def frame(P, x):
    return pd.DataFrame(f64(P, x), index=P.index, columns=P.columns)


def check_window(op, N, allow_float=False, allow_zero=True):
    if isinstance(N, bool) or not isinstance(N, (int, float)):
        raise QlibError(f"{op}: window must be a number, got {N!r}")
    if isinstance(N, float):
        if allow_float and 0 < N < 1:
            return
        raise QlibError(f"{op}: float window {N} (Qlib: pandas rejects a non-integer window)")
    if N < 0 or (N == 0 and not allow_zero):
        raise QlibError(f"{op}: window {N} not supported")


def roller(P, x, N):
    df = frame(P, x)
    return df.expanding(min_periods=1) if N == 0 else df.rolling(N, min_periods=1)


NUMERICS = {"mode": "exact"}  # --numerics exact|qlib


def exact_var(P, x, N):
    """Rolling/expanding variance, ddof 1, of the non-NaN (and non-inf) values of each
    window, computed afresh per window (two-pass). pandas' rolling var/std (Welford
    add/remove) gives the same numbers up to its rounding residue, which on windows
    that follow much larger values is far above 1e-9 (e.g. std 5.9 instead of 0 for
    five zero volumes after volumes of 1e8)."""
    a = pandas_apply_values(f64(P, x))
    out = np.full((P.nd, P.na), np.nan)
    for cols in chunks(P, N):
        win, S, W = windows(P, a, N, cols)
        valid = ~np.isnan(win)
        n = valid.sum(axis=2)
        m = np.where(valid, win, 0.0).sum(axis=2) / n
        d = np.where(valid, win - m[:, :, None], 0.0)
        out[:, cols] = np.where(n >= 2, (d * d).sum(axis=2) / (n - 1), np.nan)
    return out


def exact_moment(P, x, N, kind):
    """pandas' rolling skew (bias-corrected G1, n >= 3) / kurt (bias-corrected excess
    kurtosis G2, n >= 4) over the non-NaN values, NaN on a constant window, computed
    two-pass per window. pandas 3.1.1's online kernels agree to ~5e-8 relative."""
    a = pandas_apply_values(f64(P, x))
    out = np.full((P.nd, P.na), np.nan)
    need = 3 if kind == "skew" else 4
    for cols in chunks(P, N):
        win, S, W = windows(P, a, N, cols)
        valid = ~np.isnan(win)
        n = valid.sum(axis=2).astype(np.float64)
        m = np.where(valid, win, 0.0).sum(axis=2) / n
        d = np.where(valid, win - m[:, :, None], 0.0)
        s2 = (d * d).sum(axis=2)
        const = np.nanmax(np.where(valid, win, -np.inf), axis=2) == np.nanmin(np.where(valid, win, np.inf), axis=2)
        if kind == "skew":
            m2, m3 = s2 / n, (d * d * d).sum(axis=2) / n
            r = np.sqrt(n * (n - 1)) / (n - 2) * m3 / m2 ** 1.5
        else:
            s4 = (d * d * d * d).sum(axis=2)
            r = n * (n + 1) * (n - 1) * s4 / ((n - 2) * (n - 3) * s2 * s2) - 3 * (n - 1) ** 2 / ((n - 2) * (n - 3))
        out[:, cols] = np.where((n >= need) & ~const, r, np.nan)
    return out


def rolling_std(P, x, N):
    """x.rolling(N, min_periods=1).std() (expanding for N == 0)."""
    if NUMERICS["mode"] == "qlib":
        return roller(P, x, N).std().to_numpy()
    return np.sqrt(exact_var(P, x, N))


def exact_pair(P, x, y, N, kind):
    """Rolling cov/corr over the pairs where both sides are non-NaN and finite
    (pandas aligns the two with x + 0*y, so an inf on one side drops the pair), ddof 1,
    two-pass per window. Fewer than 2 pairs: NaN."""
    ax, ay = pandas_apply_values(f64(P, x)), pandas_apply_values(f64(P, y))
    both = ~np.isnan(ax) & ~np.isnan(ay)
    ax, ay = np.where(both, ax, np.nan), np.where(both, ay, np.nan)
    out = np.full((P.nd, P.na), np.nan)
    for cols in chunks(P, N):
        wx, S, W = windows(P, ax, N, cols)
        wy, _, _ = windows(P, ay, N, cols)
        valid = ~np.isnan(wx)
        n = valid.sum(axis=2)
        dx = np.where(valid, wx - (np.where(valid, wx, 0.0).sum(axis=2) / n)[:, :, None], 0.0)
        dy = np.where(valid, wy - (np.where(valid, wy, 0.0).sum(axis=2) / n)[:, :, None], 0.0)
        sxy = (dx * dy).sum(axis=2)
        if kind == "cov":
            r = sxy / (n - 1)
        else:
            r = sxy / np.sqrt((dx * dx).sum(axis=2) * (dy * dy).sum(axis=2))
        out[:, cols] = np.where(n >= 2, r, np.nan)
    return out


def rolling_builtin(func):
    """Qlib's Rolling._load_internal (ops.py 742-755): expanding for N == 0,
    ewm(alpha=N).mean() for a float 0 < N < 1 (whatever the operator!), else
    rolling(N, min_periods=1).<func>()."""

    def op(P, x, N):
        check_window(func, N, allow_float=True)
        if isinstance(N, float):
            return frame(P, x).ewm(alpha=N, min_periods=1).mean().to_numpy()
        if func in ("std", "var") and NUMERICS["mode"] == "exact":
            v = exact_var(P, x, N)
            return np.sqrt(v) if func == "std" else v
        if func in ("skew", "kurt") and NUMERICS["mode"] == "exact":
            return exact_moment(P, x, N, func)
        return getattr(roller(P, x, N), func)().to_numpy()

    return op


def windows(P, a, N, cols):
    """(dates, len(cols), W) windows of the float64 array `a` ending at each date, the
    count S of leading positions that fall before the asset's span start (Qlib's
    series does not have them), and W. N == 0 means expanding (W = all dates)."""
    W = P.nd if N == 0 else N
    pad = np.full((W - 1, len(cols)), np.nan)
    win = sliding_window_view(np.vstack([pad, a[:, cols]]), W, axis=0)  # (nd, ncols, W)
    t = np.arange(P.nd)[:, None]
    S = np.clip(P.first[cols][None, :] - (t - W + 1), 0, W)
    return win, S, W


def chunks(P, N):
    W = P.nd if N == 0 else N
    step = max(1, CHUNK_CELLS // max(1, P.nd * W))
    for s in range(0, P.na, step):
        yield np.arange(s, min(P.na, s + step))


def pandas_apply_values(a):
    """pandas' _prep_values turns +-inf into NaN before rolling/apply/ewm."""
    return np.where(np.isinf(a), np.nan, a)


def idx_ext(kind):
    """IdxMax/IdxMin (ops.py 990-996, 1038-1044): rolling(N, min_periods=1).apply(
    lambda x: x.argmax() + 1, raw=True): 1-based position in the window *as Qlib
    sees it* (truncated at the series start), first occurrence wins, and a NaN in the
    window is the argmax/argmin (numpy returns the first NaN). NaN if the window has no
    non-NaN value (min_periods=1)."""

    def op(P, x, N):
        check_window(kind, N)
        a = pandas_apply_values(f64(P, x))
        out = np.full((P.nd, P.na), np.nan)
        for cols in chunks(P, N):
            win, S, W = windows(P, a, N, cols)
            k = np.arange(W)[None, None, :]
            before = k < S[:, :, None]
            nan = np.isnan(win)
            if kind == "IdxMax":
                score = np.where(nan, np.inf, win)
                score = np.where(before, -np.inf, score)
                pos = score.argmax(axis=2)
            else:
                score = np.where(nan, -np.inf, win)
                score = np.where(before, np.inf, score)
                pos = score.argmin(axis=2)
            nvalid = (~nan & ~before).sum(axis=2)
            res = (pos - S + 1).astype(np.float64)
            out[:, cols] = np.where(nvalid > 0, res, np.nan)
        return out

    return op


def op_wma(P, x, N):
    """WMA (ops.py 1333-1346): weights 1..L over the window as Qlib sees it (L = its
    length, truncated at the series start), normalised to sum 1, then np.nanmean(w*x):
    sum over non-NaN w_i x_i divided by the number of non-NaN values (so a full window
    is the usual WMA divided by L)."""
    check_window("WMA", N)
    a = pandas_apply_values(f64(P, x))
    out = np.full((P.nd, P.na), np.nan)
    for cols in chunks(P, N):
        win, S, W = windows(P, a, N, cols)
        k = np.arange(W)[None, None, :]
        before = k < S[:, :, None]
        L = (W - S)[:, :, None].astype(np.float64)
        w = np.where(before, 0.0, k - S[:, :, None] + 1.0) / (L * (L + 1) / 2)
        valid = ~np.isnan(win) & ~before
        n = valid.sum(axis=2)
        s = np.where(valid, w * np.nan_to_num(win), 0.0).sum(axis=2)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[:, cols] = np.where(n > 0, s / n, np.nan)
    return out


def op_ema(P, x, N):
    """EMA (ops.py 1368-1383): N == 0: expanding apply with a = 1 - 2/(1+L),
    w_k = a^(L-1-k) normalised over all L positions, np.nansum(w*x) (NaNs drop out,
    no renormalisation); 0 < N < 1: ewm(alpha=N, min_periods=1).mean();
    else ewm(span=N, min_periods=1).mean() (adjust=True, ignore_na=False)."""
    check_window("EMA", N, allow_float=True)
    if isinstance(N, float):
        return frame(P, x).ewm(alpha=N, min_periods=1).mean().to_numpy()
    if N > 0:
        return frame(P, x).ewm(span=N, min_periods=1).mean().to_numpy()
    a_ = pandas_apply_values(f64(P, x))
    out = np.full((P.nd, P.na), np.nan)
    for cols in chunks(P, 0):
        win, S, W = windows(P, a_, 0, cols)
        k = np.arange(W)[None, None, :]
        before = k < S[:, :, None]
        L = (W - S)[:, :, None].astype(np.float64)
        alpha = 1.0 - 2.0 / (1.0 + L)
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            w = np.where(before, 0.0, np.power(alpha, np.maximum(W - 1 - k, 0).astype(np.float64)))
            w = w / w.sum(axis=2, keepdims=True)
            valid = ~np.isnan(win) & ~before
            s = np.where(valid, w * np.nan_to_num(win), 0.0).sum(axis=2)
        out[:, cols] = np.where(valid.any(axis=2), s, np.nan)
    return out


def op_mad(P, x, N):
    """Mad (ops.py 1118-1130): mean absolute deviation around the mean of the non-NaN
    values of the window."""
    check_window("Mad", N)
    a = pandas_apply_values(f64(P, x))
    out = np.full((P.nd, P.na), np.nan)
    for cols in chunks(P, N):
        win, S, W = windows(P, a, N, cols)
        valid = ~np.isnan(win)
        n = valid.sum(axis=2)
        with np.errstate(invalid="ignore", divide="ignore"):
            m = np.where(valid, win, 0.0).sum(axis=2) / n
            d = np.where(valid, np.abs(win - m[:, :, None]), 0.0).sum(axis=2) / n
        out[:, cols] = np.where(n > 0, d, np.nan)
    return out




def qlib_regression_loop(kind, a, N, first):
    """Qlib's Cython loops (_libs/rolling.pyx 49-182, _libs/expanding.pyx 38-127)
    transcribed operation by operation, vectorised over assets: running sums that are
    never reset, positions x = 1..N (newest = N) for rolling and x = 1..size from the
    series start for expanding. Same IEEE operations in the same order, so the same
    bits as Qlib (float64 input)."""
    nd, na = a.shape
    z = lambda: np.zeros(na)
    i_sum, x_sum, x2_sum, y_sum, y2_sum, xy_sum = z(), z(), z(), z(), z(), z()
    out = np.full((nd, na), np.nan)
    if N > 0:
        w = float(N)
        ww = float(N * N)
        na_count = np.full(na, N, dtype=np.int64)
        for t in range(nd):
            val = a[t]
            front = a[t - N] if t >= N else np.full(na, np.nan)
            xy_sum = xy_sum - y_sum
            x2_sum = x2_sum + i_sum - 2 * x_sum
            x_sum = x_sum - i_sum
            fv = ~np.isnan(front)
            i_sum = np.where(fv, i_sum - 1, i_sum)
            y_sum = np.where(fv, y_sum - front, y_sum)
            y2_sum = np.where(fv, y2_sum - front * front, y2_sum)
            na_count = np.where(fv, na_count, na_count - 1)
            vv = ~np.isnan(val)
            na_count = np.where(vv, na_count, na_count + 1)
            i_sum = np.where(vv, i_sum + 1, i_sum)
            x_sum = np.where(vv, x_sum + w, x_sum)
            x2_sum = np.where(vv, x2_sum + ww, x2_sum)
            y_sum = np.where(vv, y_sum + val, y_sum)
            y2_sum = np.where(vv, y2_sum + val * val, y2_sum)
            xy_sum = np.where(vv, xy_sum + w * val, xy_sum)
            n = (N - na_count).astype(np.float64)
            out[t] = _regression_value(kind, n, x_sum, x2_sum, y_sum, y2_sum, xy_sum, val, w)
    else:
        na_count = np.zeros(na, dtype=np.int64)
        for t in range(nd):
            on = t >= first  # the series starts at the span start
            size = (t - first + 1).astype(np.float64)
            val = a[t]
            vv = on & ~np.isnan(val)
            na_count = np.where(on & ~vv, na_count + 1, na_count)
            x_sum = np.where(vv, x_sum + size, x_sum)
            x2_sum = np.where(vv, x2_sum + size * size, x2_sum)
            y_sum = np.where(vv, y_sum + val, y_sum)
            y2_sum = np.where(vv, y2_sum + val * val, y2_sum)
            xy_sum = np.where(vv, xy_sum + size * val, xy_sum)
            n = size - na_count
            out[t] = np.where(on, _regression_value(kind, n, x_sum, x2_sum, y_sum, y2_sum, xy_sum, val, size), np.nan)
    return out


def _regression_value(kind, n, x_sum, x2_sum, y_sum, y2_sum, xy_sum, val, xnew):
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        if kind == "Rsquare":
            r = (n * xy_sum - x_sum * y_sum) / np.sqrt((n * x2_sum - x_sum * x_sum) * (n * y2_sum - y_sum * y_sum))
            return r * r
        slope = (n * xy_sum - x_sum * y_sum) / (n * x2_sum - x_sum * x_sum)
        if kind == "Slope":
            return slope
        x_mean = x_sum / n
        y_mean = y_sum / n
        interp = y_mean - slope * x_mean
        return val - (slope * xnew + interp)


def regression(kind):
    """Slope/Rsquare/Resi (ops.py 1248-1311, _libs/rolling.pyx, _libs/expanding.pyx):
    OLS of the window's values on their positions (newest = N, oldest = 1; NaNs are
    skipped but keep their positions; a partial window at the series start is the
    available points). n valid points: n < 2 gives NaN (0/0). Resi is the residual of
    the newest point (NaN when it is NaN). Rsquare with N > 0 is set to NaN where
    rolling(N, min_periods=1).std() is within 2e-5 of 0 (np.isclose(., 0, atol=2e-5)).
    The Cython loops never forget an infinity: from the first +-inf on, all NaN.

    --numerics qlib runs Qlib's own running-sum loop (bit-identical to Qlib, including
    its rounding drift: up to ~5e-9 on Rsquare of near-degenerate windows); --numerics
    exact (default) computes each window afresh (two-pass, centred)."""

    def op(P, x, N):
        check_window(kind, N)
        a = f64(P, x)
        if NUMERICS["mode"] == "qlib":
            out = qlib_regression_loop(kind, a, N, P.first)
        else:
            out = np.full((P.nd, P.na), np.nan)
            for cols in chunks(P, N):
                win, S, W = windows(P, a, N, cols)
                valid = ~np.isnan(win)
                n = valid.sum(axis=2).astype(np.float64)
                xs = np.arange(1, W + 1, dtype=np.float64)[None, None, :]
                with np.errstate(invalid="ignore", divide="ignore"):
                    xm = np.where(valid, xs, 0.0).sum(axis=2) / n
                    ym = np.where(valid, win, 0.0).sum(axis=2) / n
                    dx = np.where(valid, xs - xm[:, :, None], 0.0)
                    dy = np.where(valid, win - ym[:, :, None], 0.0)
                    sxx = (dx * dx).sum(axis=2)
                    sxy = (dx * dy).sum(axis=2)
                    slope = sxy / sxx
                    if kind == "Slope":
                        r = slope
                    elif kind == "Resi":
                        r = win[:, :, -1] - (ym + slope * (W - xm))
                    else:
                        syy = (dy * dy).sum(axis=2)
                        r = sxy * sxy / (sxx * syy)
                out[:, cols] = np.where(n >= 2, r, np.nan)
            out[np.cumsum(np.isinf(a), axis=0) > 0] = np.nan
        if kind == "Rsquare" and N != 0:
            out[np.isclose(rolling_std(P, x, N), 0, atol=2e-05)] = np.nan
        return out

    return op


def op_ref(P, x, N):
    """Ref (ops.py 800-809): shift(N) (N < 0 looks ahead); N == 0 is the series' first
    value (the asset's first span row) everywhere."""
    if not isinstance(N, int) or isinstance(N, bool):
        raise QlibError(f"Ref: integer N expected, got {N!r}")
    a = np.asarray(x)
    if a.dtype == bool:
        a = a.astype(np.float64)  # pandas would give an object Series
    a = np.where(P.live, a, np.nan) if a.dtype.kind == "f" else a
    if N == 0:
        firstv = a[np.minimum(P.first, P.nd - 1), np.arange(P.na)]
        return np.broadcast_to(firstv, a.shape).copy()
    return pd.DataFrame(a).shift(N).to_numpy()


def op_delta(P, x, N):
    """Delta (ops.py 1210-1216): x - x.shift(N); N == 0: x - first value."""
    if not isinstance(N, int) or isinstance(N, bool):
        raise QlibError(f"Delta: integer N expected, got {N!r}")
    a = np.asarray(x)
    with np.errstate(invalid="ignore"):
        return a - op_ref(P, x, N)


def pair_rolling(func):
    """Corr/Cov (ops.py 1415-1433, 1488-1498): left.rolling(N, min_periods=1).corr(right)
    (pairwise-complete, +-inf treated as NaN, ddof 1); Corr is then NaN wherever either
    side's rolling(N, min_periods=1).std() is within 2e-5 of 0. N == 0 raises for Corr
    (pandas: min_periods 1 must be <= window 0)."""

    def op(P, x, y, N):
        check_window(func, N, allow_zero=(func == "cov"))
        if not (is_series(x) and is_series(y)):
            raise QlibError(f"{func}: both arguments must be expressions")
        if NUMERICS["mode"] == "exact":
            res = exact_pair(P, x, y, N, func)
        else:
            lx, ly = frame(P, x), frame(P, y)
            r = lx.expanding(min_periods=1) if N == 0 else lx.rolling(N, min_periods=1)
            res = getattr(r, func)(ly).to_numpy().copy()
        if func == "corr":
            sx, sy = rolling_std(P, x, N), rolling_std(P, y, N)
            res[np.isclose(sx, 0, atol=2e-05) | np.isclose(sy, 0, atol=2e-05)] = np.nan
        return res

    return op


def np_elem(fn):
    def op(P, x):
        if not is_series(x):
            raise QlibError(f"{fn}: argument must be an expression")
        with np.errstate(all="ignore"):
            return getattr(np, fn)(x)

    return op


def op_sign(P, x):
    """Sign (ops.py 157-164): astype(float32) then np.sign -> float32."""
    return np.sign(np.asarray(x).astype(np.float32))


def op_not(P, x):
    """Not (ops.py 212-227): np.bitwise_not -- only defined on booleans."""
    a = np.asarray(x)
    if a.dtype != bool:
        raise QlibError("Not: Qlib's np.bitwise_not raises on a non-boolean series")
    return ~a


def np_pair(fn, boolean_only=False):
    def op(P, x, y):
        if not (is_series(x) or is_series(y)):
            raise QlibError(f"{fn}: at least one argument must be an expression")
        if boolean_only:
            for v in (x, y):
                if is_series(v) and np.asarray(v).dtype != bool:
                    raise QlibError(f"{fn}: Qlib's np.{fn} raises on a non-boolean series")
        with np.errstate(all="ignore"):
            return getattr(np, fn)(x, y)

    return op


def op_if(P, c, x, y):
    """If (ops.py 660-671): np.where(cond, left, right) -- a NaN condition is true."""
    if not is_series(c):
        raise QlibError("If: the condition must be an expression")
    return np.where(np.asarray(c), x, y)


def op_quantile(P, x, N, q):
    check_window("Quantile", N)
    return roller(P, x, N).quantile(q).to_numpy()


def op_rank(P, x, N):
    """Rank (ops.py 1153-1168): rolling(N, min_periods=1).rank(pct=True): average rank
    of the newest value among the window's non-NaN values / their count; NaN when the
    newest value is NaN."""
    check_window("Rank", N)
    return roller(P, x, N).rank(pct=True).to_numpy()


def op_skew(P, x, N):
    if N != 0 and isinstance(N, int) and N < 3:
        raise QlibError("Skew: window must be >= 3")
    return rolling_builtin("skew")(P, x, N)


def op_kurt(P, x, N):
    if N != 0 and isinstance(N, int) and N < 4:
        raise QlibError("Kurt: window must be >= 4")
    return rolling_builtin("kurt")(P, x, N)


OPS = {
    "Ref": op_ref, "Delta": op_delta,
    "Mean": rolling_builtin("mean"), "Sum": rolling_builtin("sum"), "Std": rolling_builtin("std"),
    "Var": rolling_builtin("var"), "Max": rolling_builtin("max"), "Min": rolling_builtin("min"),
    "Med": rolling_builtin("median"), "Count": rolling_builtin("count"),
    "Skew": op_skew, "Kurt": op_kurt,
    "IdxMax": idx_ext("IdxMax"), "IdxMin": idx_ext("IdxMin"),
    "Quantile": op_quantile, "Rank": op_rank, "Mad": op_mad, "WMA": op_wma, "EMA": op_ema,
    "Slope": regression("Slope"), "Rsquare": regression("Rsquare"), "Resi": regression("Resi"),
    "Corr": pair_rolling("corr"), "Cov": pair_rolling("cov"),
    "Abs": np_elem("abs"), "Log": np_elem("log"), "Sign": op_sign, "Not": op_not,
    "Power": np_pair("power"), "Add": np_pair("add"), "Sub": np_pair("subtract"),
    "Mul": np_pair("multiply"), "Div": np_pair("divide"),
    "Greater": np_pair("maximum"), "Less": np_pair("minimum"),
    "Gt": np_pair("greater"), "Ge": np_pair("greater_equal"), "Lt": np_pair("less"),
    "Le": np_pair("less_equal"), "Eq": np_pair("equal"), "Ne": np_pair("not_equal"),
    "And": np_pair("bitwise_and", True), "Or": np_pair("bitwise_or", True),
    "If": op_if,
}

# Python operators on Qlib expressions (qlib/data/base.py 32-140; Qlib eval()s the text).
BINOPS = {ast.Add: "Add", ast.Sub: "Sub", ast.Mult: "Mul", ast.Div: "Div", ast.Pow: "Power",
          ast.BitAnd: "And", ast.BitOr: "Or"}
CMPOPS = {ast.Gt: "Gt", ast.GtE: "Ge", ast.Lt: "Lt", ast.LtE: "Le", ast.Eq: "Eq", ast.NotEq: "Ne"}
FIELD = re.compile(r"\$([A-Za-z_]\w*)")


# ------------------------------------------------------------------------ interpreter

def evaluate(P, text):
    """Evaluate one Qlib expression; returns a (dates x assets) float64 array, NaN
    outside each asset's span (booleans become 1.0 / 0.0)."""
    if "$$" in text:
        raise QlibError("$$ (point-in-time) fields are not supported")
    src = FIELD.sub(lambda m: f"__field_{m.group(1)}", text)
    try:
        tree = ast.parse(src.strip(), mode="eval").body
    except SyntaxError as e:
        raise QlibError(f"syntax: {e}") from None

    def ev(n):
        if isinstance(n, ast.Constant) and isinstance(n.value, (int, float)) and not isinstance(n.value, bool):
            return n.value
        if isinstance(n, ast.Name) and n.id.startswith("__field_"):
            return P.field(n.id[len("__field_"):])
        if isinstance(n, ast.UnaryOp) and isinstance(n.op, (ast.USub, ast.UAdd)):
            v = ev(n.operand)
            if is_series(v):
                raise QlibError("unary minus on an expression (Qlib's Expression has no __neg__)")
            return -v if isinstance(n.op, ast.USub) else v
        if isinstance(n, ast.BinOp) and type(n.op) in BINOPS:
            l, r = ev(n.left), ev(n.right)
            if not (is_series(l) or is_series(r)):
                return eval(compile(ast.Expression(ast.BinOp(ast.Constant(l), n.op, ast.Constant(r))), "<c>", "eval"))
            return OPS[BINOPS[type(n.op)]](P, l, r)
        if isinstance(n, ast.Compare):
            if len(n.ops) != 1 or type(n.ops[0]) not in CMPOPS:
                raise QlibError("chained or unsupported comparison")
            l, r = ev(n.left), ev(n.comparators[0])
            return OPS[CMPOPS[type(n.ops[0])]](P, l, r)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and not n.keywords:
            name = n.func.id
            if name not in OPS:
                raise QlibError(f"operator {name} is not one this reference implements")
            return OPS[name](P, *[ev(a) for a in n.args])
        raise QlibError(f"unsupported syntax: {ast.dump(n)[:80]}")

    try:
        v = ev(tree)
    except TypeError as e:
        raise QlibError(f"bad arguments: {e}") from None
    if not is_series(v):
        raise QlibError("the expression is a constant")
    out = np.asarray(v).astype(np.float64)
    return np.where(P.live, out, np.nan)


# ----------------------------------------------------------------------- comparison

def read_fixture(path):
    feats = []
    for line in open(path, encoding="utf-8"):
        l = line.strip()
        if not l or l.startswith("#"):
            continue
        name, sep, expr = l.partition("=")
        if not sep or not re.fullmatch(r"\w+", name.strip()):
            raise SystemExit(f"{path}: not `NAME = expression`: {l}")
        feats.append((name.strip(), expr.strip()))
    return feats


def read_eval(path, P):
    """Feature columns of an `expr eval` parquet as (dates x assets) arrays aligned
    with the panel (by date/code when present, else by row order date-major)."""
    if not os.path.exists(path):
        raise SystemExit(f"{path}: no such file")
    t = pq.read_table(path).to_pandas()
    cols = [c for c in t.columns if c not in ("date", "code")]
    out = {}
    if "date" in t.columns and "code" in t.columns:
        d = pd.to_datetime(t["date"]).dt.normalize().to_numpy()
        di = pd.Index(P.index.normalize()).get_indexer(d)
        ci = pd.Index([str(c) for c in P.columns]).get_indexer(t["code"].astype(str).to_numpy())
        keep = (di >= 0) & (ci >= 0)
        if (~keep).any():
            print(f"warning: {int((~keep).sum())} rows of {path} are not panel (date, code) cells")
        for c in cols:
            a = np.full((P.nd, P.na), np.nan)
            a[di[keep], ci[keep]] = pd.to_numeric(t[c], errors="coerce").to_numpy(dtype=np.float64)[keep]
            out[c] = a
    else:
        if len(t) != P.nd * P.na:
            raise SystemExit(f"{path}: {len(t)} rows, no date/code columns, panel has {P.nd}x{P.na}")
        for c in cols:
            out[c] = pd.to_numeric(t[c], errors="coerce").to_numpy(dtype=np.float64).reshape(P.nd, P.na)
    return out


def compare(got, want, rtol, atol):
    """(bad mask, max relative error, cells with a value on both sides, NaN
    disagreements). A cell is bad when exactly one side is NaN, the infinities differ,
    or |got - want| > rtol * |want| + atol."""
    gn, wn = np.isnan(got), np.isnan(want)
    gi, wi = np.isinf(got), np.isinf(want)
    both = ~gn & ~wn & ~gi & ~wi
    diff = np.zeros(got.shape)
    diff[both] = np.abs(got[both] - want[both])
    rel = np.zeros(got.shape)
    rel[both] = diff[both] / np.maximum(np.abs(want[both]), atol / rtol)
    inf_bad = (gi | wi) & ~(gi & wi & (np.sign(np.where(gi, got, 0)) == np.sign(np.where(wi, want, 0))))
    nan_bad = gn != wn
    bad = nan_bad | inf_bad | (diff > rtol * np.abs(np.where(both, want, 0)) + atol)
    return bad, float(rel.max(initial=0.0)), int(both.sum()), int(nan_bad.sum())


def write_reference(path, P, ref):
    nd, na = P.nd, P.na
    cols = {
        "date": pa.array(np.repeat(P.index.values.astype("datetime64[D]"), na)),
        "code": pa.array(np.tile(np.array([str(c) for c in P.columns], dtype=object), nd)),
    }
    for n, a in ref.items():
        cols[n] = pa.array(a.reshape(-1))
    pq.write_table(pa.table(cols), path)


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("panel")
    ap.add_argument("eval_parquet", nargs="?")
    ap.add_argument("--fixture", default=DEFAULT_FIXTURE)
    ap.add_argument("--only", help="comma-separated feature names")
    ap.add_argument("--rtol", type=float, default=1e-9)
    ap.add_argument("--atol", type=float, default=1e-12,
                    help="absolute floor, for values that are 0 up to rounding")
    ap.add_argument("--min-match", type=int, default=25)
    ap.add_argument("--allow-missing", action="store_true")
    ap.add_argument("--write-reference", metavar="OUT.parquet")
    ap.add_argument("--numerics", choices=["exact", "qlib"], default="exact",
                    help="exact: Std/Var/Skew/Kurt/Corr/Cov/Slope/Rsquare/Resi computed afresh per window "
                         "(two-pass); qlib: pandas' online algorithms and Qlib's Cython loops, "
                         "bit-identical to Qlib 0.9.7 on pandas 3.1.1 (rounding residue included)")
    ap.add_argument("--show", type=int, default=3, help="worst cells to print per failing feature")
    a = ap.parse_args(argv)
    NUMERICS["mode"] = a.numerics
    if a.eval_parquet is None and a.write_reference is None:
        ap.error("give EVAL_PARQUET and/or --write-reference")

    meta, wide = afref.read_panel(a.panel)
    P = Panel(meta, wide)
    feats = read_fixture(a.fixture)
    if a.only:
        want = a.only.split(",")
        unknown = [n for n in want if n not in dict(feats)]
        if unknown:
            raise SystemExit(f"--only: not in {a.fixture}: {', '.join(unknown)}")
        feats = [(n, e) for n, e in feats if n in want]

    ref, errors = {}, {}
    for n, e in feats:
        try:
            ref[n] = evaluate(P, e)
        except QlibError as ex:
            errors[n] = str(ex)
    if a.write_reference:
        write_reference(a.write_reference, P, ref)
        print(f"wrote reference values of {len(ref)} features to {a.write_reference}")
    if a.eval_parquet is None:
        return 1 if errors else 0

    got = read_eval(a.eval_parquet, P)
    matched, failed, missing = [], [], []
    print(f"{'feature':10} {'max rel':>10} {'cells':>7} {'nan!=':>6}  expression")
    for n, e in feats:
        if n in errors:
            failed.append(n)
            print(f"{n:10} {'ERROR':>10} {'':>7} {'':>6}  {e}\n           reference cannot evaluate it: {errors[n]}")
            continue
        if n not in got:
            missing.append(n)
            print(f"{n:10} {'MISSING':>10} {'':>7} {'':>6}  {e}")
            continue
        bad, err, cells, nanbad = compare(got[n], ref[n], a.rtol, a.atol)
        ok = not bad.any()
        (matched if ok else failed).append(n)
        print(f"{n:10} {err:10.2e} {cells:7d} {nanbad:6d}  {e}{'' if ok else '   <-- MISMATCH'}")
        if not ok:
            ti, ai = np.nonzero(bad)
            g, w = got[n][ti, ai], ref[n][ti, ai]
            with np.errstate(invalid="ignore"):
                sev = np.where(np.isnan(g) != np.isnan(w), np.inf, np.abs(g - w))
            for k in np.argsort(-np.nan_to_num(sev, nan=np.inf))[: a.show]:
                t_, c_ = ti[k], ai[k]
                if t_ < P.first[c_]:
                    where = f"{P.first[c_] - t_} rows before its span"
                elif t_ > P.last[c_]:
                    where = f"{t_ - P.last[c_]} rows after its span"
                else:
                    where = f"row {t_ - P.first[c_]} of its span"
                print(f"           {P.index[t_].date()} {P.columns[c_]} ({where}): got {float(g[k])!r} want {float(w[k])!r}")
            print(f"           {int(bad.sum())} bad cells")
    extra = sorted(set(got) - {n for n, _ in feats})
    if extra and not a.only:
        print(f"note: columns not in the fixture, not compared: {', '.join(extra[:10])}{' ...' if len(extra) > 10 else ''}")
    print(f"{len(matched)} features match Qlib semantics"
          + (f"; {len(failed)} mismatch: {', '.join(failed)}" if failed else "")
          + (f"; {len(missing)} missing from {os.path.basename(a.eval_parquet)}" if missing else ""))
    if failed or (missing and not a.allow_missing) or len(matched) < a.min_match:
        if len(matched) < a.min_match:
            print(f"fewer than --min-match {a.min_match} features matched")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
