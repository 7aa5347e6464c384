"""`report` against alphalens-reloaded: on the processed factor values the report used
(`report --dump-values`) and forward returns recomputed here from the panel (its label
where it has one, else close(t+h)/close(t) - 1 where the shortest label says the asset
could be bought), alphalens' per-date Spearman IC averaged over the split gives the
report's IC decay, and its per-date quintile mean returns give the report's.
"""
import argparse
import contextlib
import io
import json
import sys
import warnings

import alphalens.performance as perf
import alphalens.utils as au
import numpy as np
import pandas as pd

from afref import read_panel

Q = 5


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--panel", required=True)
    ap.add_argument("--report", required=True)
    ap.add_argument("--horizons", default="1,2,5,10,20")
    ap.add_argument("--tol", type=float, default=1e-9)
    a = ap.parse_args()
    s = json.load(open(f"{a.report}/summary.json"))
    series = json.load(open(f"{a.report}/{s['series']}"))
    k = s["return_bound"]["k"]
    _, w = read_panel(a.panel)
    dates = w["close"].index
    codes = w["close"].columns
    close = w["close"].to_numpy()
    nd = len(dates)
    labels = sorted(int(c[8:]) for c in w if c.startswith("fwd_ret_"))
    buy = np.isfinite(w[f"fwd_ret_{labels[0]}"].to_numpy())
    split = next(x for x in s["processing"]["splits"] if x["name"] == s["split"])
    lo, hi = dates.get_loc(pd.Timestamp(split["first"])), dates.get_loc(pd.Timestamp(split["last"])) + 1
    vals = pd.read_parquet(f"{a.report}/values.parquet")
    vals["date"] = pd.to_datetime(vals["date"])
    fails, checked = [], 0

    def fwd(h):
        if f"fwd_ret_{h}" in w:
            return w[f"fwd_ret_{h}"].to_numpy()
        out = np.full(close.shape, np.nan)
        t = np.arange(nd - h)
        ok = buy[t] | (t[:, None] + labels[0] >= nd)
        out[t] = np.where(ok, close[t + h] / close[t] - 1.0, np.nan)
        return out

    def cmp(tag, got, want):
        nonlocal checked
        checked += 1
        if not (np.isfinite(got) and np.isfinite(want)):
            if np.isfinite(got) != np.isfinite(want):
                fails.append(f"{tag}: report {got}, alphalens {want}")
            return
        if abs(got - want) > a.tol * max(1.0, abs(want)):
            fails.append(f"{tag}: report {got}, alphalens {want}")

    univ = w["in_universe"].to_numpy().astype(bool)

    def bounded(r):
        # The report's chart returns: per date, clipped to median ± k·1.4826·MAD over
        # the universe's assets with a label (numpy, independently of the Rust code).
        if not k:
            return r
        out = r.copy()
        for t in range(nd):
            m = univ[t] & np.isfinite(r[t])
            if not m.any():
                continue
            v = r[t, m]
            med = np.median(v)
            mad = np.median(np.abs(v - med)) * 1.4826
            if mad > 0:
                out[t, m] = np.clip(v, med - k * mad, med + k * mad)
        return out

    def clean(fac, r, h):
        # alphalens' factor data on the split's dates with an h-day label.
        t_use = dates[lo:hi - h]
        rets = pd.DataFrame(r[lo:hi - h], index=t_use, columns=codes).stack(future_stack=True)
        rets.index.names = ["date", "code"]
        df = pd.DataFrame({"factor": fac, f"{h}D": rets}).dropna()
        df = df[df.index.get_level_values(0).isin(t_use)]
        return au.get_clean_factor(df["factor"], df[[f"{h}D"]], quantiles=Q, max_loss=1.0)

    for f in s["factors"]:
        fac = vals.set_index(["date", "code"])[f["id"]]
        for h in [int(x) for x in a.horizons.split(",")]:
            if h > len(f["decay"]):
                continue
            r = fwd(h)
            with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
                warnings.simplefilter("ignore")
                ic = perf.factor_information_coefficient(clean(fac, r, h))[f"{h}D"]
                if h == s["horizon"]:
                    fb = clean(fac, bounded(r), h)
                    mq, _ = perf.mean_return_by_quantile(fb, by_date=True, demeaned=False)
            cmp(f"{f['rank']}/decay/{h}", f["decay"][h - 1]["rank_ic_mean"], ic.mean())
            if h == s["horizon"]:
                ser = series[f["rank"]]
                for i, d in enumerate(pd.to_datetime(ser["date"])):
                    for q in range(Q):
                        got = ser["quantile_mean_return"][q][i]
                        if got is not None and np.isfinite(got) and (q + 1, d) in mq.index:
                            cmp(f"{f['rank']}/q{q + 1}/{d.date()}", got, mq.loc[(q + 1, d), f"{h}D"])
    # Where the IC lives: RankIC within each date's liquidity thirds (trailing 20-day
    # median traded value over the universe), recomputed with pandas.
    amt = w["amount"].to_numpy()
    if not np.isfinite(amt).any():
        amt = w["volume"].to_numpy() * close
    med = pd.DataFrame(amt).rolling(20, min_periods=1).median().to_numpy()
    third = np.full(close.shape, -1)
    for t in range(nd):
        m = np.flatnonzero(univ[t] & np.isfinite(med[t]))
        order = m[np.lexsort((m, med[t, m]))]
        for r, i in enumerate(order):
            third[t, i] = min(2, 3 * r // len(order))
    wide = vals.pivot(index="date", columns="code")
    rows = s.get("ic_by_liquidity", [])
    if not rows:
        fails.append("no ic_by_liquidity in summary.json")
    for row in rows:
        h = row["horizon"]
        r = fwd(h)
        fac = wide[row["id"]].reindex(index=dates, columns=codes).to_numpy()
        for k, key in enumerate(["rank_ic_low", "rank_ic_mid", "rank_ic_high"]):
            ics = []
            for t in range(lo, hi - h):
                m = (third[t] == k) & np.isfinite(fac[t]) & np.isfinite(r[t])
                if m.sum() < 2:
                    continue
                c = pd.Series(fac[t, m]).rank().corr(pd.Series(r[t, m]).rank())
                if np.isfinite(c):
                    ics.append(c)
            cmp(f"{row['name']}/{key}", row[key], np.mean(ics) if ics else np.nan)
    print(f"{checked} figures compared with alphalens-reloaded and pandas, {len(fails)} differ")
    if fails:
        print("\n".join(fails[:20]))
        sys.exit(1)
    print("OK")


if __name__ == "__main__":
    main()
