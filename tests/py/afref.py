"""Independent pandas reference for alpha-factory's data tools.

Used by the end-to-end tests (tests/*.rs) to recompute, from the raw Parquet files
alone, what panel-build should have written, and to measure planted-alpha strength.
Nothing here imports alpha-factory code: it reads the files the tools wrote.
"""
import glob
import json
import os

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq


def read_library(path):
    """A library snapshot (library-merge's --out or current.parquet): its af.library
    metadata, its table, and its stored processed values (a pyarrow Table, one column
    per member id), read beside the real file as the library itself resolves them."""
    meta = json.loads(pq.read_metadata(path).metadata[b"af.library"])
    vpath = os.path.join(os.path.dirname(os.path.realpath(path)), meta["values"])
    with pa.memory_map(vpath) as src:
        values = ipc.open_file(src).read_all()
    return meta, pd.read_parquet(path), values


def read_panel(path):
    """Panel as (meta, dict of wide DataFrames [date x code])."""
    with pa.memory_map(path) as src:
        table = ipc.open_file(src).read_all()
    meta = json.loads(table.schema.metadata[b"af.panel"])
    df = table.to_pandas()
    dates = pd.to_datetime(meta["dates"])
    codes = meta["codes"]
    nd, na = len(dates), len(codes)
    wide = {}
    for name in df.columns:
        if name in ("date", "code"):
            continue
        col = df[name]
        if isinstance(col.dtype, pd.CategoricalDtype):
            vals = col.astype(str).to_numpy()
        else:
            vals = col.to_numpy()
        wide[name] = pd.DataFrame(vals.reshape(nd, na), index=dates, columns=codes)
    return meta, wide


def compare(got, want, tol):
    """NaN-aware relative comparison of two float arrays: (bad cells, relative error,
    cells where both have a value). Relative to max(1, |want|)."""
    got = np.asarray(got, dtype=float)
    want = np.asarray(want, dtype=float)
    both = ~np.isnan(got) & ~np.isnan(want)
    rel = np.zeros_like(got)
    rel[both] = np.abs(got[both] - want[both]) / np.maximum(1.0, np.abs(want[both]))
    bad = (np.isnan(got) != np.isnan(want)) | (rel > tol)
    return bad, rel, both


def read_raw(raw_dir):
    files = sorted(glob.glob(os.path.join(raw_dir, "year=*", "*.parquet")))
    return pd.concat([pq.read_table(f).to_pandas() for f in files], ignore_index=True)


def round2(x):
    return np.floor(x * 100.0 + 0.5 + 1e-7) / 100.0


def limit_pct(code, is_st, listing_day):
    """(up, down) or None; mirrors docs/data_contract.md."""
    ok = len(code) == 9 and code[6] == "." and code[:6].isdigit()
    if not ok or code[7:] not in ("SH", "SZ", "BJ"):
        return None
    growth = code[:3] in ("300", "301", "688", "689")
    if listing_day:
        return (0.44, 0.36) if (code[7:] != "BJ" and not growth) else None
    if is_st:
        return (0.05, 0.05)
    if code[7:] == "BJ":
        return (0.3, 0.3)
    return (0.2, 0.2) if growth else (0.1, 0.1)


def find_breaks(raw, market=None):
    """Break cells per the documented rule (docs/own-data.md, "Breaks"), recomputed
    here: {(date, code): adjusted close / previous real close}. `market` is the raw
    manifest's `market` (None: cn with the default rule)."""
    market = market or {"name": "cn", "limits": "cn"}
    rule = market.get("breaks") or {}
    if rule.get("keep"):
        return {}
    max_move = rule.get("max_move", 5.0)
    limits = market["limits"]
    out = {}
    real = raw[~raw["is_suspended"].astype(bool)].sort_values(["code", "trade_date"])
    cols = ["trade_date", "close", "adj_factor", "pre_close", "is_st"]
    for code, g in real.groupby("code", sort=False):
        prev_c = prev_a = None
        seen = 0
        for d, c, a, pre, st in g[cols].itertuples(index=False):
            adj = a if np.isfinite(a) else (prev_a if prev_a is not None else 1.0)
            if prev_c is not None:
                ratio = c * adj / (prev_c * prev_a)
                prev_px = pre if (pre == pre and pre > 0) else prev_c
                if seen < 5 or limits == "none":
                    lim = None
                elif limits == "cn":
                    lim = limit_pct(code, bool(st), False)
                else:
                    lim = tuple(limits["flat"])
                if lim is None:
                    brk = ratio > max_move or ratio < 1.0 / max_move
                else:
                    tick = 0.01 / prev_px if prev_px > 0 else 0.0
                    brk = ratio > (1 + lim[0]) * 1.01 + tick or ratio < (1 - lim[1]) * 0.99 - tick
                if brk:
                    out[(pd.Timestamp(d), code)] = ratio
            prev_c, prev_a = c, adj
            seen += 1
    return out


def expected_panel(raw, adjust="forward", horizons=(1, 5, 10), label="close2close", min_list_days=60, market=None):
    """Recompute every panel field from raw bars, per the documented rules."""
    breaks = find_breaks(raw, market)
    raw = raw.copy()
    raw["trade_date"] = pd.to_datetime(raw["trade_date"])
    dates = pd.DatetimeIndex(sorted(raw["trade_date"].unique()))
    codes = sorted(raw["code"].unique())
    piv = lambda c: raw.pivot(index="trade_date", columns="code", values=c).reindex(index=dates, columns=codes)
    real = ~raw["is_suspended"].astype(bool)
    present = piv("close").notna() | raw.assign(x=1).pivot(index="trade_date", columns="code", values="x").reindex(index=dates, columns=codes).notna()
    rr = raw[real]
    pr = lambda c: rr.pivot(index="trade_date", columns="code", values=c).reindex(index=dates, columns=codes)
    is_real = pr("close").notna()
    adj = pr("adj_factor")
    adj_latest = raw.sort_values("trade_date").groupby("code")["adj_factor"].last().reindex(codes)
    if adjust == "forward":
        k = adj / adj_latest
    elif adjust == "backward":
        k = adj
    else:
        k = adj * 0 + 1.0
    # Breaks: the prices before one re-based by its ratio (after it, for backward).
    if adjust != "none":
        for (d, c), r in breaks.items():
            if adjust == "forward":
                k.loc[k.index < d, c] *= r
            else:
                k.loc[k.index >= d, c] /= r
    # span of each asset: first..last row of any kind
    rows = raw.assign(x=1.0).pivot(index="trade_date", columns="code", values="x").reindex(index=dates, columns=codes)
    started = rows.notna().cumsum() > 0
    ended = rows[::-1].notna().cumsum()[::-1] == 0
    alive = started & ~ended
    close_raw_ff = pr("close").ffill().where(alive)
    k_ff = k.ffill().where(alive)
    out = {}
    for f in ["open", "high", "low", "close"]:
        real_v = pr(f) * k
        out[f] = real_v.where(is_real, close_raw_ff * k_ff)
    vol = pr("volume") / k
    # A field the source lacks stays NaN on no-bar days too (never 0).
    any_vol, any_amt = raw["volume"].notna().any(), raw["amount"].notna().any()
    out["volume"] = vol.where(is_real, 0.0 if any_vol else np.nan).where(close_raw_ff.notna())
    out["amount"] = pr("amount").where(is_real, 0.0 if any_amt else np.nan).where(close_raw_ff.notna())
    out["vwap"] = (pr("amount") / vol).where(is_real & (vol > 0))
    cmv = pr("circ_mv")
    turn_real = (pr("volume") * pr("close") / cmv).where(cmv > 0)
    cmv_ff = cmv.ffill().where(alive)
    out["turnover"] = turn_real.where(is_real, pd.DataFrame(np.where((cmv_ff > 0) & any_vol, 0.0, np.nan), index=dates, columns=codes)).where(close_raw_ff.notna())
    out["cap"] = pr("total_mv").where(is_real, pr("total_mv").ffill().where(alive)).where(close_raw_ff.notna())
    out["returns"] = out["close"] / out["close"].shift(1) - 1.0
    for (d, c) in breaks:
        out["returns"].loc[d, c] = np.nan
    tradable = is_real & ((pr("volume") > 0) if any_vol else (pr("amount") > 0))
    out["tradable"] = tradable
    # universe
    listd = raw.groupby("code")["list_date"].last().reindex(codes)
    first_idx = {}
    for c in codes:
        ld = listd[c]
        if pd.notna(ld):
            ld = pd.Timestamp(ld)
            if ld >= dates[0]:
                first_idx[c] = int(np.searchsorted(dates.values, np.datetime64(ld)))
            else:
                first_idx[c] = -int(np.busday_count(ld.date(), dates[0].date()))
        else:
            fi = int(np.argmax(rows[c].notna().to_numpy()))
            first_idx[c] = -10**9 if fi == 0 else fi
    tidx = np.arange(len(dates))[:, None]
    listed = pd.DataFrame((tidx - np.array([first_idx[c] for c in codes])[None, :]) >= min_list_days, index=dates, columns=codes)
    st = pr("is_st").astype("boolean").fillna(False).astype(bool)
    out["in_universe"] = tradable & ~st & listed
    # buyability: not closed at the up-limit
    pre = pr("pre_close")
    close_raw = pr("close")
    open_raw = pr("open")
    up_close = pd.DataFrame(False, index=dates, columns=codes)
    up_open = pd.DataFrame(False, index=dates, columns=codes)
    for j, c in enumerate(codes):
        ld = listd[c]
        for t in np.nonzero(is_real[c].to_numpy())[0]:
            listing = (pd.notna(ld) and pd.Timestamp(ld) == dates[t]) or (pd.isna(ld) and first_idx[c] == t and t > 0)
            pct = limit_pct(c, bool(st.iat[t, j]), listing)
            if pct is None or not (pre.iat[t, j] > 0) or (dates[t], c) in breaks:
                continue
            up = round2(pre.iat[t, j] * (1 + pct[0]))
            up_close.iat[t, j] = close_raw.iat[t, j] >= up - 0.005
            up_open.iat[t, j] = open_raw.iat[t, j] >= up - 0.005
    buyable = tradable & ~up_close
    open_ok = tradable & ~up_open
    for h in horizons:
        if label == "close2close":
            lab = out["close"].shift(-h) / out["close"] - 1.0
            out[f"fwd_ret_{h}"] = lab.where(buyable)
        else:
            lab = out["open"].shift(-(1 + h)) / out["open"].shift(-1) - 1.0
            out[f"fwd_ret_{h}"] = lab.where(buyable & open_ok.shift(-1, fill_value=False))
        # No label spans a break.
        reach = h if label == "close2close" else h + 1
        for (d, c) in breaks:
            tb = dates.get_loc(d)
            out[f"fwd_ret_{h}"].iloc[max(0, tb - reach):tb, codes.index(c)] = np.nan
    return out


# --- planted-alpha signals, written directly with pandas rolling windows -------------

def cs_rank(x, universe):
    x = x.where(universe)
    return x.rank(axis=1, pct=True)


def planted_signal(name, w):
    r, c, v, tu, u = w["returns"], w["close"], w["volume"], w["turnover"], w["in_universe"].astype(bool)
    if name == "reversal_5d":
        return -r.rolling(5, min_periods=5).sum()
    if name == "pv_corr_10d":
        return -c.rolling(10, min_periods=10).corr(v)
    if name == "low_vol_20d":
        return -r.rolling(20, min_periods=20).std()
    if name == "turnover_surge":
        ratio = tu.rolling(5, min_periods=5).mean() / tu.rolling(60, min_periods=60).mean()
        return -cs_rank(ratio, u)
    if name == "industry_rel_mom_20d":
        m = r.rolling(20, min_periods=20).sum().where(u)
        ind = w["industry"]
        out = m.copy()
        for t in range(len(m)):
            row = m.iloc[t]
            g = ind.iloc[t]
            out.iloc[t] = row - row.groupby(g).transform("mean")
        return out
    # The hard set (ts-fetch --planted hard).
    roll = lambda x, d: x.rolling(d, min_periods=d)
    if name == "reversal_and_pv":
        return cs_rank(-roll(r, 5).sum(), u) + cs_rank(-roll(c, 10).corr(v), u)
    if name == "risk_adjusted_momentum":
        x = (roll(r, 20).sum() / roll(r, 20).std()).replace([np.inf, -np.inf], np.nan).where(u)
        return _demean_by(x, w["industry"])
    if name == "surge_in_volatile":
        ratio = roll(tu, 5).mean() / roll(tu, 60).mean()
        return -(cs_rank(ratio, u) * cs_rank(roll(r, 20).std(), u))
    if name == "trend_quality":
        zs = lambda x: x.where(u).sub(x.where(u).mean(axis=1), axis=0).div(x.where(u).std(axis=1), axis=0)
        return zs(roll(r, 10).mean()) - zs(roll(r, 10).std())
    if name == "volume_confirmed_reversal":
        ratio = roll(v, 5).mean() / roll(v, 20).mean()
        return -(cs_rank(ratio, u) * roll(r, 5).sum())
    raise KeyError(name)


def _demean_by(x, groups):
    """Each row minus its group means (groups: same shape, per date)."""
    out = x.copy()
    for t in range(len(x)):
        row = x.iloc[t]
        out.iloc[t] = row - row.groupby(groups.iloc[t]).transform("mean")
    return out


def rank_ic_series(signal, label, universe):
    s = signal.where(universe)
    l = label.where(universe)
    ok = s.notna() & l.notna()
    s, l = s.where(ok), l.where(ok)
    sr, lr = s.rank(axis=1), l.rank(axis=1)
    n = ok.sum(axis=1)
    keep = n >= 10
    return sr[keep].corrwith(lr[keep], axis=1)
