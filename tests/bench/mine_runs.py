"""The table of a bench-mine run folder (tests/bench/mine.sh, budget.sh): for every
`<mode>-<seed>` run in OUT, per-factor recovery of the planted alphas, pool recovery,
captured share, the library's best and blended test RankIC, wall time; mean ± se per
mode; written as JSON. Usage: mine_runs.py OUT GENS POP JSON PANEL
"""
import json, sys, glob, os
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
out, gens, pop, js, panel = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
with pa.memory_map(panel) as src:
    pt = ipc.open_file(src).read_all()
pmeta = json.loads(pt.schema.metadata[b"af.panel"])
dates = pd.to_datetime(pmeta["dates"])
nd = len(dates)
na = pt.num_rows // nd
univ = pt.column("in_universe").to_numpy(zero_copy_only=False).reshape(nd, na).astype(bool)
labels = {h: pt.column(f"fwd_ret_{h}").to_numpy().reshape(nd, na) for h in (1, 5)}


def blend_test_rank_ic(d):
    """The library's equal-weight blend out of sample: each factor's processed values
    signed by its train RankIC, averaged per cell; mean per-date Spearman RankIC with
    the 1- and 5-day labels over the test split (in-universe cells)."""
    lib = pd.read_parquet(f"{d}/lib.parquet")
    lmeta = json.loads(pq.read_metadata(f"{d}/lib.parquet").metadata[b"af.library"])
    vpath = os.path.join(os.path.dirname(os.path.realpath(f"{d}/lib.parquet")), lmeta["values"])
    with pa.memory_map(vpath) as src:
        vt = ipc.open_file(src).read_all()
    acc = np.zeros((nd, na))
    cnt = np.zeros((nd, na))
    for fid, sgn in zip(lib["id"], np.sign(lib["train_rank_ic_mean"])):
        v = vt.column(fid).to_numpy().reshape(nd, na) * sgn
        ok = np.isfinite(v)
        acc[ok] += v[ok]
        cnt[ok] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        blend = acc / cnt
    test = [s for s in lmeta["processing"]["splits"] if s["name"] == "test"][0]
    a, b = dates.get_loc(pd.Timestamp(test["first"])), dates.get_loc(pd.Timestamp(test["last"])) + 1
    res = {}
    for h, lab in labels.items():
        ics = []
        for t in range(a, b - h):
            ok = univ[t] & np.isfinite(blend[t]) & np.isfinite(lab[t])
            if ok.sum() > 10:
                ics.append(pd.Series(blend[t][ok]).rank().corr(pd.Series(lab[t][ok]).rank()))
        res[h] = round(float(np.nanmean(ics)), 4)
    return res


def cs_rank(m):
    # Per date, the percentile rank over the universe minus 0.5; 0 where missing.
    r = pd.DataFrame(np.where(univ, m, np.nan)).rank(axis=1, pct=True).to_numpy() - 0.5
    return np.nan_to_num(r)


pv = pd.read_parquet(f"{out}/planted_values.parquet")
pv["date"] = pd.to_datetime(pv["date"])
codes = pmeta.get("codes") or sorted(pv["code"].unique())
planted = {}
for c in [c for c in pv.columns if c not in ("date", "code")]:
    w = pv.pivot(index="date", columns="code", values=c).reindex(index=dates, columns=codes)
    planted[c] = cs_rank(w.to_numpy())


def pool_recovered(d):
    """Planted alphas a least-squares combination of the library's factors (per-date
    ranks) reproduces at r >= 0.8: fit on the first half of the test dates, r (pooled
    over in-universe cells) on the second half."""
    lib = pd.read_parquet(f"{d}/lib.parquet")
    lmeta = json.loads(pq.read_metadata(f"{d}/lib.parquet").metadata[b"af.library"])
    vpath = os.path.join(os.path.dirname(os.path.realpath(f"{d}/lib.parquet")), lmeta["values"])
    with pa.memory_map(vpath) as src:
        vt = ipc.open_file(src).read_all()
    test = [s for s in lmeta["processing"]["splits"] if s["name"] == "test"][0]
    a, b = dates.get_loc(pd.Timestamp(test["first"])), dates.get_loc(pd.Timestamp(test["last"])) + 1
    mid = (a + b) // 2
    X = np.stack([cs_rank(vt.column(f).to_numpy().reshape(nd, na)) for f in lib["id"]], axis=-1)
    fit_m, eval_m = univ.copy(), univ.copy()
    fit_m[:a] = fit_m[mid:] = False
    eval_m[:mid] = eval_m[b:] = False
    out_r = {}
    for name, y in planted.items():
        coef, *_ = np.linalg.lstsq(X[fit_m], y[fit_m], rcond=None)
        pred = X[eval_m] @ coef
        out_r[name] = round(float(np.corrcoef(pred, y[eval_m])[0, 1]), 3)
    return out_r


rows = []
for d in sorted(glob.glob(f"{out}/*-*")):
    if not os.path.isdir(d):
        continue
    mode, seed = os.path.basename(d).split("-")
    p = pd.read_parquet(f"{d}/planted.parquet")
    t = p[p.split == "test"]
    lib = pd.read_parquet(f"{d}/lib.parquet")
    s, e = map(float, open(f"{d}/wall").read().split())
    rss = max(int(x) for x in open(f"{d}/rss").read().split())
    rows.append(dict(mode=mode, seed=int(seed), wall_s=round(e - s, 1), peak_rss_mb=round(rss / 1024),
                     planted=len(t), recovered=int((t.library_max_corr >= 0.8).sum()),
                     best_planted_corr=[round(x, 3) for x in t.library_max_corr],
                     library_size=len(lib), # signed as the factor is used: by its train sign (test is never used to choose)
                     best_test_rank_ic=round(float((lib.test_rank_ic_mean * np.sign(lib.train_rank_ic_mean)).max()), 4),
                     # LightGBM on the library, judged on the dates after its selection
                     model_test_rank_ic=(json.load(open(f"{d}/model/summary.json"))["test_rank_ic"]["model"]
                                         if os.path.exists(f"{d}/model/summary.json") else float("nan")),
                     **{f"blend_test_rank_ic_{h}": v for h, v in blend_test_rank_ic(d).items()},
                     # the library's model vs the oracle's (planted expressions), same folds
                     captured=((json.load(open(f"{d}/model/summary.json")).get("compare") or {}).get("captured")
                               if os.path.exists(f"{d}/model/summary.json") else None),
                     pool_r=(pr := pool_recovered(d)),
                     pool_recovered=sum(r >= 0.8 for r in pr.values()),
                     evaluations=gens * pop))
df = pd.DataFrame(rows)
print(df.drop(columns=["best_planted_corr", "pool_r"]).to_string(index=False))
df["captured"] = df["captured"].astype(float)
summary = df.groupby("mode")[["recovered", "pool_recovered", "captured", "best_test_rank_ic",
                              "blend_test_rank_ic_1", "blend_test_rank_ic_5", "wall_s"]].agg(["mean", "sem"]).round(4)
print("\nmean over seeds:\n" + summary.to_string())
summary.columns = [f"{a}_{b}" for a, b in summary.columns]
json.dump(dict(runs=rows, mean=summary.reset_index().to_dict("records"), gens=gens, pop=pop),
          open(js, "w"), indent=1)
