"""Every native operator against a plain pandas/numpy definition, to 1e-9 relative.

usage: check_ops.py PANEL EVAL_PARQUET
The parquet is `expr eval --file tests/fixtures/ops_native.txt` on PANEL.
"""
import sys

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

import afref

meta, w = afref.read_panel(sys.argv[1])
got_t = pq.read_table(sys.argv[2]).to_pandas()
nd, na = meta["n_dates"], meta["n_assets"]
idx, cols = w["close"].index, w["close"].columns
got = {c: pd.DataFrame(got_t[c].to_numpy().reshape(nd, na), index=idx, columns=cols) for c in got_t.columns if c not in ("date", "code")}
U = w["in_universe"].astype(bool)
ind = w["industry"]
close, open_, high, low, volume, returns = (w[k] for k in ["close", "open", "high", "low", "volume", "returns"])


def nan_cmp(mask, a, b):
    return mask.astype(float).where(a.notna() & b.notna())


def roll(x, d):
    return x.rolling(d, min_periods=d)


def rapply(x, d, f):
    return roll(x, d).apply(f, raw=True)


def regress(win):
    i = np.arange(1, len(win) + 1, dtype=float)
    s, c = np.polyfit(i, win, 1)
    fit = c + s * i
    ss_res = ((win - fit) ** 2).sum()
    ss_tot = ((win - win.mean()) ** 2).sum()
    return s, c, (1 - ss_res / ss_tot) if ss_tot > 0 else np.nan, win[-1] - (c + s * len(win))


def pair(x, y, d, corr):
    """Two-pass numpy covariance / correlation per full window (pandas' rolling cov is
    one-pass and loses ~1e-8 on near-constant windows)."""
    from numpy.lib.stride_tricks import sliding_window_view as sw
    X, Y = x.to_numpy(), y.to_numpy()
    out = np.full(X.shape, np.nan)
    wx, wy = sw(X, d, axis=0), sw(Y, d, axis=0)  # (nd-d+1, na, d)
    cx = wx - wx.mean(axis=2, keepdims=True)
    cy = wy - wy.mean(axis=2, keepdims=True)
    cov = (cx * cy).sum(axis=2) / (d - 1)
    if corr:
        den = np.sqrt((cx * cx).sum(axis=2) * (cy * cy).sum(axis=2))
        with np.errstate(invalid="ignore", divide="ignore"):
            cov = np.where(den > 0, (cx * cy).sum(axis=2) / den, np.nan)
    out[d - 1:] = cov
    return pd.DataFrame(out, index=x.index, columns=x.columns)


def cs(x, f):
    x = x.where(U)
    return x.apply(f, axis=1)


def grp(x, how):
    x = x.where(U)
    out = x.copy() * np.nan
    for t in range(len(x)):
        row, g = x.iloc[t], ind.iloc[t]
        if how == "neutralize":
            out.iloc[t] = row - row.groupby(g).transform("mean")
        elif how == "mean":
            out.iloc[t] = row.groupby(g).transform("mean").where(row.notna())
        else:
            out.iloc[t] = row.groupby(g).rank(pct=True)
    return out


def count(x, d):
    c = ((x != 0) & x.notna()).astype(float).rolling(d, min_periods=d).sum()
    return c


want = {
    "add": close + open_,
    "sub": close - open_,
    "mul": close * volume,
    "div": returns / (close - close.shift(1)),
    "signed_power": np.sign(returns) * returns.abs() ** 0.5,
    "signed_power_nan": np.sign(returns - returns) * (returns - returns).abs() ** (close.shift(20) / close),
    "lt": nan_cmp(close < open_, close, open_),
    "le": nan_cmp(close <= open_, close, open_),
    "gt": nan_cmp(close > open_, close, open_),
    "ge": nan_cmp(close >= open_, close, open_),
    "eq": nan_cmp(close == open_, close, open_),
    "ne": nan_cmp(close != open_, close, open_),
    "and": nan_cmp((close > open_) & (volume > 0), close, volume).where(open_.notna()),
    "or": nan_cmp((close > open_) | (volume == 0), close, volume).where(open_.notna()),
    "if_else": returns.where(close > open_, -returns).where(close.notna() & open_.notna()),
    "neg": -returns,
    "abs": returns.abs(),
    "log": np.log(volume.where(volume > 0)),
    "sign": np.sign(returns),
    "sqrt": np.sqrt(returns.where(returns >= 0)),
    "exp": np.exp(returns),
    "inv": 1 / volume.where(volume != 0),
    "max": np.maximum(open_, close),
    "min": np.minimum(open_, close),
    "clip": returns.clip(-0.02, 0.03),
    "ts_delay": close.shift(3),
    "ts_delta": close - close.shift(3),
    "ts_sum": roll(returns, 5).sum(),
    "ts_mean": roll(volume, 10).mean(),
    "ts_std": roll(returns, 20).std(),
    "ts_var": roll(close, 10).var(),
    "ts_min": roll(low, 10).min(),
    "ts_max": roll(high, 10).max(),
    "ts_argmin": rapply(close, 10, lambda a: len(a) - 1 - np.argmin(a)),
    "ts_argmax": rapply(close, 10, lambda a: len(a) - 1 - np.argmax(a)),
    "ts_rank": roll(volume, 10).rank(pct=True),
    "ts_product": rapply(returns + 1, 5, np.prod),
    "ts_skew": roll(returns, 20).skew(),
    "ts_kurt": roll(returns, 20).kurt(),
    "ts_median": roll(volume, 7).median(),
    # two-pass numpy per window: pandas' online rolling std loses ~1e-8 on near-constant windows
    "ts_zscore": rapply(close, 20, lambda a: (a[-1] - a.mean()) / a.std(ddof=1) if a.std(ddof=1) > 0 else np.nan),
    "ts_decay_linear": rapply(close, 10, lambda a: np.dot(a, np.arange(1, 11)) / 55.0),
    "ts_ema": close.ewm(span=10, adjust=True, min_periods=10).mean(),
    "ts_slope": rapply(close, 10, lambda a: regress(a)[0]),
    "ts_rsquare": rapply(close, 10, lambda a: regress(a)[2]),
    "ts_resi": rapply(close, 10, lambda a: regress(a)[3]),
    "ts_corr": pair(close, volume, 10, True),
    "ts_cov": pair(close, volume, 10, False),
    "rank": cs(volume, lambda r: r.rank(pct=True)),
    "cs_zscore": cs(returns, lambda r: (r - r.mean()) / r.std()),
    "cs_demean": cs(returns, lambda r: r - r.mean()),
    "scale": cs(returns, lambda r: r * 2 / r.abs().sum()),
    "cs_winsorize": cs(returns, lambda r: r.clip(r.quantile(0.05), r.quantile(0.95))),
    "group_neutralize": grp(returns, "neutralize"),
    "group_rank": grp(returns, "rank"),
    "group_mean": grp(returns, "mean"),
}
# ts_count: NaN where the window is not yet full; otherwise count (NaN counts as false).
want["ts_count"] = ((returns > 0) & returns.notna()).astype(float).rolling(10, min_periods=10).sum()

# Zero-variance windows: our rule is NaN (pandas may give inf, 0 or garbage there).
const10 = (close.rolling(10, min_periods=10).max() == close.rolling(10, min_periods=10).min())
constv10 = (volume.rolling(10, min_periods=10).max() == volume.rolling(10, min_periods=10).min())
for k in ("ts_corr",):
    want[k] = want[k].where(~(const10 | constv10))
for k in ("ts_rsquare",):
    want[k] = want[k].where(~const10)
const20 = (close.rolling(20, min_periods=20).max() == close.rolling(20, min_periods=20).min())
want["ts_zscore"] = want["ts_zscore"].where(~const20)

fails = []
for name, wv in want.items():
    if name not in got:
        fails.append(f"{name}: not evaluated")
        continue
    g = got[name].to_numpy(dtype=float)
    e = wv.to_numpy(dtype=float)
    e = np.where(np.isinf(e), np.nan, e)
    bad, rel, both = afref.compare(g, e, 1e-9)
    n = int(bad.sum())
    status = "ok" if n == 0 else f"{n} cells differ"
    print(f"{name:18s} values={int(both.sum()):6d} max_rel={rel.max() if both.any() else 0:.1e} {status}")
    if n:
        t, j = np.argwhere(bad)[0]
        fails.append(f"{name}: {n} cells differ, first at ({idx[t].date()}, {cols[j]}): engine {g[t, j]!r} vs pandas {e[t, j]!r}")
if fails:
    print("\n".join(fails), file=sys.stderr)
    sys.exit(1)
print("all operators match pandas")
