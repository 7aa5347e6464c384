"""Independent re-run of `library-merge` in pandas.

Given the fitness files, the expression values of every admissible candidate (from
`expr eval`, columns named by candidate id prefix) and the library written, this
recomputes the greedy selection — admissible rows, best score first, admitted while the
mean over train dates of the per-date cross-sectional |corr| with every member stays
below max_corr — with check_fitness' processing, and checks the library's ids, order,
stored values (1e-9), recorded correlations and the member pairs' correlations kept for
the next merge (`pair_corr`).
"""
import argparse
import glob
import sys

import numpy as np
import pandas as pd

import check_fitness as cf
from afref import read_library, read_panel


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--panel", required=True)
    ap.add_argument("--fitness", required=True, help="glob")
    ap.add_argument("--values", required=True, help="expr eval of the admissible candidates")
    ap.add_argument("--library", required=True)
    a = ap.parse_args()
    lmeta, lib, vt = read_library(a.library)
    _, w = read_panel(a.panel)
    dates = w["close"].index
    nd, na = w["close"].shape
    univ, ind, logcap = cf.exposures(w)
    proc = lmeta["processing"]
    label = w[f"fwd_ret_{proc['horizon']}"].to_numpy()
    args = argparse.Namespace(
        winsor=proc["winsor"], min_assets=proc["min_assets"],
        industry="industry" in proc["neutralize"], size="size" in proc["neutralize"],
    )
    train = next(s for s in proc["splits"] if s["name"] in ("train", "all"))
    t0, t1 = dates.get_loc(pd.Timestamp(train["first"])), dates.get_loc(pd.Timestamp(train["last"]))
    train_dates = range(t0, t1 + 1)

    rows = []
    for f in sorted(glob.glob(a.fitness)):
        d = pd.read_parquet(f)
        rows.append(d[(d.status == "ok") & (d["pass"] == "full") & d.admit])
    pool = pd.concat(rows).drop_duplicates("id", keep="first")
    pool = pool.sort_values(["score", "id"], ascending=[False, True], kind="mergesort")
    vals = pd.read_parquet(a.values)

    def processed(i):
        F = vals[i[:16]].to_numpy().reshape(nd, na)
        return np.array([cf.process_date(F[t], univ[t], ind[t], logcap[t], label[t], args)["resid"] for t in range(nd)])

    def mean_corr(x, y):
        cs = []
        for t in train_dates:
            m = np.isfinite(x[t]) & np.isfinite(y[t])
            if m.sum() >= 2 and x[t][m].std() > 0 and y[t][m].std() > 0:
                cs.append(np.corrcoef(x[t][m], y[t][m])[0, 1])
        return abs(np.mean(cs)) if cs else np.nan

    chosen, chosen_vals, corrs = [], [], []
    for _, r in pool.iterrows():
        if len(chosen) >= lmeta["max_size"]:
            break
        v = processed(r["id"])
        c = max([mean_corr(v, u) for u in chosen_vals], default=0.0)
        if c < lmeta["max_corr"]:
            chosen.append(r["id"])
            chosen_vals.append(v)
            corrs.append(c)
    fails = []
    if list(lib["id"]) != chosen:
        fails.append(f"library ids {list(lib['id'])[:5]}... != pandas greedy {chosen[:5]}...")
    worst = 0.0
    for k, i in enumerate(chosen):
        if i not in vt.column_names:
            continue
        got = vt.column(i).to_numpy().reshape(nd, na)
        want = chosen_vals[k]
        both = np.isfinite(want)
        if not (np.isfinite(got) == both).all():
            fails.append(f"{i}: NaN pattern of stored values differs")
            continue
        d = np.max(np.abs(got[both] - want[both]) / np.maximum(1, np.abs(want[both])))
        worst = max(worst, d)
        if d > 1e-9:
            fails.append(f"{i}: stored values differ by {d:.2e}")
        rc = lib.loc[lib.id == i, "max_corr_in_library"].iloc[0]
        if abs(rc - corrs[k]) > 1e-9:
            fails.append(f"{i}: recorded max corr {rc} != {corrs[k]}")
    # The member pairs' correlations the library keeps for the next merge.
    pairs = lmeta.get("pair_corr", {})
    n_pairs = 0
    for k, i in enumerate(chosen):
        for j in range(k):
            want = mean_corr(chosen_vals[k], chosen_vals[j])
            key = " ".join(sorted([i, chosen[j]]))
            if not np.isfinite(want):
                continue
            n_pairs += 1
            if key not in pairs:
                fails.append(f"pair {key[:40]}... missing from pair_corr")
            elif abs(abs(pairs[key]) - want) > 1e-9:
                fails.append(f"pair {key[:40]}...: stored {pairs[key]} != pandas {want}")
    if len(pairs) != n_pairs:
        fails.append(f"pair_corr holds {len(pairs)} pairs, expected {n_pairs}")
    print(f"{len(pool)} admissible, {len(chosen)} chosen, {n_pairs} member pairs, worst value difference {worst:.2e}")
    if fails:
        print("\n".join(fails))
        sys.exit(1)


if __name__ == "__main__":
    main()
