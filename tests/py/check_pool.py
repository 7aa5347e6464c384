"""Independent check of a pool-selected library (`library-merge --select pool`, issue 36).

From the panel and the library's stored processed values only, in numpy: the per-date
label ranks (pandas pct ranks, centred) on each date's scored cells with a label, the
members' values there (NaN -> 0), the ridge least-squares weights fit on the usable
train dates (ridge 1e-4 per train cell), the combined IC on train and valid (the
uncentred correlation of the fitted combination with the label ranks over the split's
cells) and each member's contribution (train combined IC lost when it is removed and the
rest refit). Checks the library's `pool_weight` and `pool_contribution` columns (1e-8
relative) and that members are listed by contribution. Prints the combined ICs.
"""
import argparse
import sys

import numpy as np
import pandas as pd

import check_fitness as cf
from afref import read_library, read_panel

RIDGE = 1e-4


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--panel", required=True)
    ap.add_argument("--library", required=True)
    a = ap.parse_args()
    lmeta, lib, vt = read_library(a.library)
    _, w = read_panel(a.panel)
    dates = w["close"].index
    nd, na = w["close"].shape
    univ, ind, logcap = cf.exposures(w)
    proc = lmeta["processing"]
    h = proc["horizon"]
    label = w[f"fwd_ret_{h}"].to_numpy()
    cells = univ.copy()
    if "industry" in proc["neutralize"]:
        cells &= ind >= 0
    if "size" in proc["neutralize"]:
        cells &= np.isfinite(logcap)
    pairs = cells & np.isfinite(label)

    def usable(name):
        s = next((s for s in proc["splits"] if s["name"] == name), None)
        if s is None:
            return None
        t0 = dates.get_loc(pd.Timestamp(s["first"]))
        t1 = dates.get_loc(pd.Timestamp(s["last"]))
        return list(range(t0, max(t0, t1 + 1 - h)))

    fit = usable("train") or usable("all")
    splits = [("train", fit)] + ([("valid", usable("valid"))] if usable("valid") else [])

    ids = list(lib["id"])
    vals = [vt.column(i).to_numpy().reshape(nd, na) for i in ids]

    def design(ds):
        X, Y = [], []
        for t in ds:
            m = pairs[t]
            if m.sum() == 0:
                continue
            y = pd.Series(label[t][m]).rank(pct=True, method="average").to_numpy()
            Y.append(y - y.mean())
            X.append(np.column_stack([np.nan_to_num(v[t][m], nan=0.0) for v in vals])
                     if vals else np.zeros((m.sum(), 0)))
        return np.vstack(X), np.concatenate(Y)

    data = {n: design(ds) for n, ds in splits}
    Xf, Yf = data["train"]
    lam = RIDGE * len(Yf)

    def ics(cols):
        if not cols:
            return {n: 0.0 for n in data}
        A = Xf[:, cols]
        wts = np.linalg.solve(A.T @ A + lam * np.eye(len(cols)), A.T @ Yf)
        out = {}
        for n, (X, Y) in data.items():
            z = X[:, cols] @ wts
            out[n] = float(z @ Y / np.sqrt((z @ z) * (Y @ Y)))
        return out, wts

    k = len(ids)
    full, wts = ics(list(range(k)))
    fails = []
    contrib = []
    for j in range(k):
        rest = [c for c in range(k) if c != j]
        without = ics(rest)[0] if rest else {n: 0.0 for n in data}
        contrib.append(full["train"] - without["train"])
    rel = lambda x, y: abs(x - y) / max(1e-12, abs(y))
    for j, i in enumerate(ids):
        gw, gc = lib["pool_weight"].iloc[j], lib["pool_contribution"].iloc[j]
        if rel(gw, wts[j]) > 1e-8:
            fails.append(f"{i[:12]}: pool_weight {gw} != numpy {wts[j]}")
        if abs(gc - contrib[j]) > 1e-8 * max(1.0, abs(full["train"])):
            fails.append(f"{i[:12]}: pool_contribution {gc} != numpy {contrib[j]}")
    if list(lib["pool_contribution"]) != sorted(lib["pool_contribution"], reverse=True):
        fails.append("members are not listed by contribution")
    print(f"{k} members, combined IC " + ", ".join(f"{n} {v:.6f}" for n, v in full.items())
          + f", contributions {min(contrib):.6f}..{max(contrib):.6f}")
    if fails:
        print("\n".join(fails))
        sys.exit(1)


if __name__ == "__main__":
    main()
