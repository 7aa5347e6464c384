"""Independent pandas/numpy/scipy reference for `fitness` (semantics.md §3).

Recomputes, from the panel and the factor values `expr eval` wrote, every column of
`fitness`' output and of its `--ic-series`, and compares them to 1e-9. With
--alphalens it also runs alphalens-reloaded on the same processed factor and forward
returns and compares per-date IC, quantile mean returns, rank autocorrelation and
top-quintile turnover. Nothing here imports alpha-factory code.

Exit status 0 when everything matches; a report of the worst differences otherwise.
"""
import argparse
import contextlib
import io
import json
import sys
import warnings

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from scipy import stats

from afref import read_library, read_panel

Q = 5


def winsorize(x, how):
    kind, _, arg = how.partition(":")
    if kind == "none":
        return x
    if kind == "quantile":
        p = float(arg)
        lo, hi = np.quantile(x, [p, 1 - p])
        return np.clip(x, lo, hi)
    k = float(arg)
    med = np.median(x)
    mad = np.median(np.abs(x - med)) * 1.4826
    if mad == 0:
        return x
    return np.clip(x, med - k * mad, med + k * mad)


def exposures(w):
    """Universe mask, industry codes and log(cap) (NaN where cap <= 0) as matrices."""
    univ = w["in_universe"].to_numpy(bool)
    names = w["industry"].to_numpy()
    cats = {n: i for i, n in enumerate(sorted(set(names.ravel())))}
    ind = np.vectorize(cats.get)(names)
    cap = w["cap"].to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        logcap = np.where(np.isfinite(cap) & (cap > 0), np.log(cap), np.nan)
    return univ, ind, logcap


def process_date(f, univ, ind, logcap, label, args):
    """One date: processed factor (Series over assets, NaN where not scored) and stats."""
    ok = univ & np.isfinite(f)
    if args.industry:
        ok &= ind >= 0
    if args.size:
        ok &= np.isfinite(logcap)
    out = dict(resid=np.full(len(f), np.nan), dropped=None)
    if ok.sum() < args.min_assets:
        out["dropped"] = "few"
        return out
    x = winsorize(f[ok], args.winsor)
    sd = x.std(ddof=1)
    if not sd > 0:
        out["dropped"] = "constant"
        return out
    z = (x - x.mean()) / sd
    if args.industry or args.size:
        cols = []
        if args.industry:
            g = ind[ok]
            for k in np.unique(g):
                cols.append((g == k).astype(float))
        else:
            cols.append(np.ones(len(z)))
        if args.size:
            cols.append(logcap[ok])
        X = np.column_stack(cols)
        beta = np.linalg.solve(X.T @ X + 1e-6 * np.eye(X.shape[1]), X.T @ z)
        z = z - X @ beta
    out["resid"][ok] = z
    r = out["resid"]
    pair = np.isfinite(r) & np.isfinite(label)
    out["n"] = int(pair.sum())
    if pair.sum() < args.min_assets:
        out["dropped"] = "few"
        return out
    rp, yp = r[pair], label[pair]
    if rp.std() == 0:
        out["dropped"] = "constant"
        return out
    out["ic"] = stats.pearsonr(rp, yp)[0]
    out["rank_ic"] = stats.spearmanr(rp, yp)[0]
    ranks = np.full(len(f), np.nan)
    ranks[pair] = stats.rankdata(rp)
    out["rank"] = ranks
    quint = np.zeros(len(f), dtype=int)
    try:
        qs = pd.qcut(rp, Q, labels=False) + 1
        quint[pair] = qs
        means = [yp[qs == q].mean() if (qs == q).any() else np.nan for q in range(1, Q + 1)]
        out["q_mean"] = means
        out["long_short"] = means[-1] - means[0]
    except ValueError:
        out["q_mean"] = [np.nan] * Q
        out["long_short"] = np.nan
    out["quint"] = quint
    return out


def library_corr(rows, resid_of, lib):
    """max over library factors of |mean over used dates of the per-date Pearson|."""
    best, which = np.nan, None
    for k, (lid, L) in enumerate(lib):
        cs = []
        for r in rows:
            if r["dropped"] is not None:
                continue
            x, y = resid_of(r["t"]), L[r["t"]]
            m = np.isfinite(x) & np.isfinite(y)
            if m.sum() >= 2 and x[m].std() > 0 and y[m].std() > 0:
                cs.append(np.corrcoef(x[m], y[m])[0, 1])
        if cs:
            v = abs(np.mean(cs))
            if which is None or v > best:
                best, which = v, lid
    return best, which


def summarise(rows, dates, cov):
    used = [r for r in rows if r["dropped"] is None]
    n = len(used)
    s = {}
    ic = np.array([r["ic"] for r in used])
    ric = np.array([r["rank_ic"] for r in used])
    for name, v in (("ic", ic), ("rank_ic", ric)):
        m, sd = (v.mean(), v.std(ddof=1)) if n > 1 else (np.nan, np.nan)
        s[f"{name}_mean"], s[f"{name}_std"] = m, sd
        s[f"{name}ir" if name == "ic" else "rank_icir"] = m / sd
        s[f"{name}_tstat"] = m / sd * np.sqrt(n)
    s["rank_ic_positive"] = (ric > 0).mean() if n else np.nan
    ac = np.array([r["ac"] for r in used])
    s["rank_autocorr"] = np.nanmean(ac) if np.isfinite(ac).any() else np.nan
    s["turnover"] = 1 - s["rank_autocorr"]
    tt = np.array([r["tt"] for r in used])
    s["top_turnover"] = np.nanmean(tt) if np.isfinite(tt).any() else np.nan
    ls = np.array([r["long_short"] for r in used])
    s["long_short_mean"] = np.nanmean(ls) if np.isfinite(ls).any() else np.nan
    s["coverage"] = cov[0] / cov[1]
    s["dates_used"] = n
    s["dates_dropped"] = len(rows) - n
    years = pd.Series(ric, index=[d.year for d in dates[[r["t"] for r in used]]])
    by = years.groupby(level=0).mean()
    s["rank_ic_by_year"] = {str(k): v for k, v in by.items()}
    s["rank_ic_min_year"] = by.min() if len(by) else np.nan
    return s


def score_of(train, size, p):
    ric = train["rank_ic_mean"]
    ps = p["size_penalty"] * size
    pt = p["turnover_penalty"] * max(0.0, train["turnover"] - p["max_turnover"])
    share = train["dates_used"] / max(train["dates_used"] + train["dates_dropped"], 1)
    pcov = 0.0 if train["coverage"] >= p["min_coverage"] and share >= p["min_coverage"] else 1.0
    sc = 0.0 if pcov else max(0.0, abs(ric) - ps - pt)
    return sc, ps, pt, pcov


def candidate_figures(F, h, label, splits, univ, ind, logcap, dates, lib, args):
    """One candidate's figures on one horizon: (train summary, {split: (rows, summary)},
    the per-date processing function)."""
    cache = {}

    def get(t):
        if t not in cache:
            cache[t] = process_date(F[t], univ[t], ind[t], logcap[t], label[t], args)
        return cache[t]

    per_split = {}
    for name, ds in splits:
        rows = []
        cov = [0, 0]
        for t in ds:
            r = dict(get(t))
            r["t"] = t
            cov[0] += int((univ[t] & np.isfinite(F[t])).sum())
            cov[1] += int(univ[t].sum())
            r["ac"] = r["tt"] = np.nan
            if r["dropped"] is None and t > 0 and get(t - 1)["dropped"] is None:
                prev = get(t - 1)
                a0 = pd.Series(prev["rank"])
                a1 = pd.Series(r["rank"])
                both = a0.notna() & a1.notna()
                r["ac"] = np.corrcoef(a1[both], a0[both])[0, 1] if both.sum() > 1 else np.nan
                if (prev["quint"] > 0).any():
                    top_now = set(np.where(r["quint"] == Q)[0])
                    top_prev = set(np.where(prev["quint"] == Q)[0])
                    if top_now:
                        r["tt"] = len(top_now - top_prev) / len(top_now)
            rows.append(r)
        summ = summarise(rows, dates, cov)
        if lib:
            summ["library_max_corr"], summ["_lib_id"] = library_corr(
                rows, lambda t: get(t)["resid"], lib
            )
        per_split[name] = (rows, summ)
    train = per_split.get("train", per_split.get("all"))[1]
    return train, per_split, get


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--panel", required=True)
    ap.add_argument("--values", required=True, help="expr eval output (f0, f1, ...)")
    ap.add_argument("--fitness", required=True)
    ap.add_argument("--ic-series", required=True)
    ap.add_argument("--alphalens", action="store_true")
    ap.add_argument("--library", help="library parquet given to fitness --library")
    ap.add_argument("--tol", type=float, default=1e-9)
    args = ap.parse_args()
    meta = pq.read_metadata(args.fitness).metadata
    # Processing under af.processing, the scoring rules in the provenance's params.
    p = {**json.loads(meta[b"af.params"]), **json.loads(meta[b"af.processing"])}
    # Several horizons (fitness --horizons): each candidate's figures are on its best
    # one (highest merit, the first on a tie), the `horizon` column says which.
    horizons = p.get("horizons") or [p["horizon"]]
    args.winsor = p["winsor"]
    args.min_assets = p["min_assets"]
    args.industry = "industry" in p["neutralize"]
    args.size = "size" in p["neutralize"]

    _, w = read_panel(args.panel)
    dates = w["close"].index
    univ, ind, logcap = exposures(w)
    labels = {h: w[f"fwd_ret_{h}"].to_numpy() for h in horizons}
    vals = pd.read_parquet(args.values)
    nd, na = len(dates), w["close"].shape[1]
    fit = pd.read_parquet(args.fitness)
    ics = pd.read_parquet(args.ic_series)

    lib = []
    if args.library:
        _, ltable, vt = read_library(args.library)
        for lid in ltable["id"]:
            lib.append((lid, vt.column(lid).to_numpy().reshape(nd, na)))

    def splits_of(h):
        out = []
        for s in p["splits"]:
            a = dates.get_loc(pd.Timestamp(s["first"]))
            b = dates.get_loc(pd.Timestamp(s["last"])) + 1
            out.append((s["name"], list(range(a, b - h))))
        return out

    worst = 0.0
    fails = []
    checked = 0

    def cmp(what, got, want):
        nonlocal worst, checked
        checked += 1
        if isinstance(want, dict):
            got = json.loads(got)
            if set(got) != set(want):
                fails.append(f"{what}: keys {sorted(got)} != {sorted(want)}")
                return
            for k in want:
                cmp(f"{what}[{k}]", got[k], want[k])
            return
        g, e = float(got), float(want)
        if np.isnan(g) and np.isnan(e):
            return
        d = abs(g - e) / max(1.0, abs(e))
        worst = max(worst, d) if np.isfinite(d) else worst
        if not d <= args.tol:
            fails.append(f"{what}: got {g!r}, want {e!r}")

    columns = [c for c in vals.columns if c not in ("date", "code")]
    for ci, col in enumerate(columns):
        F = vals[col].to_numpy().reshape(nd, na)
        rows_c = fit[fit.candidate == ci]
        if not (rows_c.status == "ok").all():
            continue
        size = int(rows_c["size"].iloc[0])
        figures = {h: candidate_figures(F, h, labels[h], splits_of(h), univ, ind, logcap, dates, lib, args)
                   for h in horizons}
        merits = {h: score_of(f[0], size, p)[0] for h, f in figures.items()}
        h = horizons[int(np.argmax([merits[k] for k in horizons]))]
        label = labels[h]
        cmp(f"{col}/horizon", rows_c["horizon"].iloc[0], h)
        if len(horizons) > 1:
            for k in horizons:
                cmp(f"{col}/merit_h{k}", rows_c[f"merit_h{k}"].iloc[0], merits[k])
        train, per_split, get = figures[h]
        sc, ps, pt, pcov = score_of(train, size, p)
        pc = 0.0
        if lib and train["library_max_corr"] >= p["near_copy_corr"]:
            sc, pc = 0.0, 1.0
        for name, (rows, s) in per_split.items():
            row = rows_c[rows_c.split == name].iloc[0]
            for k, v in s.items():
                if k == "_lib_id":
                    checked_id = row["library_max_corr_id"] == v
                    if not checked_id:
                        fails.append(f"{col}/{name}: library factor {row['library_max_corr_id']} != {v}")
                    continue
                cmp(f"{col}/{name}/{k}", row[k], v)
            if lib:
                cmp(f"{col}/{name}/penalty_corr", row["penalty_corr"], pc)
            cmp(f"{col}/{name}/score", row["score"], sc)
            cmp(f"{col}/{name}/penalty_size", row["penalty_size"], ps)
            cmp(f"{col}/{name}/penalty_turnover", row["penalty_turnover"], pt)
            cmp(f"{col}/{name}/penalty_coverage", row["penalty_coverage"], pcov)
            ser = ics[(ics.candidate == ci) & (ics.split == name)]
            if len(ser) != len(rows):
                fails.append(f"{col}/{name}: ic-series has {len(ser)} dates, want {len(rows)}")
                continue
            for (_, got), r in zip(ser.iterrows(), rows):
                tag = f"{col}/{name}/{dates[r['t']].date()}"
                if bool(got["used"]) != (r["dropped"] is None):
                    fails.append(f"{tag}: used {got['used']} but reference dropped={r['dropped']}")
                    continue
                if r["dropped"] is not None:
                    continue
                cmp(tag + "/ic", got["ic"], r["ic"])
                cmp(tag + "/rank_ic", got["rank_ic"], r["rank_ic"])
                cmp(tag + "/long_short", got["long_short"], r["long_short"])
                cmp(tag + "/rank_autocorr", got["rank_autocorr"], r["ac"])
                cmp(tag + "/top_turnover", got["top_turnover"], r["tt"])
                for q in range(Q):
                    cmp(f"{tag}/q{q + 1}", got[f"q{q + 1}_mean_ret"], r["q_mean"][q])
        if args.alphalens:
            check_alphalens(col, ci, per_split, dates, w, label, ics, cmp, get)

    print(f"{checked} figures compared, worst relative difference {worst:.2e}")
    if fails:
        print(f"{len(fails)} mismatches:")
        for f in fails[:40]:
            print("  " + f)
        sys.exit(1)


def check_alphalens(col, ci, per_split, dates, w, label, ics, cmp, get):
    """alphalens-reloaded on our definition's processed factor and the panel's label."""
    import alphalens.performance as perf
    import alphalens.utils as au

    codes = w["close"].columns
    for name, (rows, _) in per_split.items():
        ts = sorted({r["t"] for r in rows} | {r["t"] - 1 for r in rows if r["t"] > 0})
        recs = []
        for t in ts:
            res = get(t)["resid"]
            for a in np.where(np.isfinite(res))[0]:
                recs.append((dates[t], codes[a], res[a], label[t][a]))
        df = pd.DataFrame(recs, columns=["date", "asset", "factor", "1D"]).set_index(["date", "asset"])
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            fd = au.get_clean_factor(
                df["factor"], df[["1D"]], quantiles=Q, max_loss=1.0
            )
            ic = perf.factor_information_coefficient(fd)["1D"]
            mean_q, _ = perf.mean_return_by_quantile(fd, by_date=True, demeaned=False)
            ac = perf.factor_rank_autocorrelation(fd, period=1)
            tt = perf.quantile_turnover(fd["factor_quantile"], Q, period=1)
        ser = ics[(ics.candidate == ci) & (ics.split == name) & ics.used].set_index("date")
        ser.index = pd.to_datetime(ser.index)
        # alphalens shifts to the previous row of its own data: compare where that row is
        # the previous trading day and was scored, as in fitness.
        prev_ok = {dates[r["t"]] for r in rows if r["t"] > 0 and get(r["t"] - 1)["dropped"] is None}
        for d, got in ser.iterrows():
            tag = f"alphalens/{col}/{name}/{d.date()}"
            cmp(tag + "/rank_ic", got["rank_ic"], ic.loc[d])
            for q in range(1, Q + 1):
                cmp(f"{tag}/q{q}", got[f"q{q}_mean_ret"], mean_q.loc[(q, d), "1D"])
            if d in prev_ok:
                cmp(tag + "/rank_autocorr", got["rank_autocorr"], ac.loc[d])
                cmp(tag + "/top_turnover", got["top_turnover"], tt.loc[d])


if __name__ == "__main__":
    main()
