"""Pool the results of several `make bench-mine` runs (tests/bench/mine.sh JSON files,
e.g. seeds 1-5 and 6-10 run separately) and print, per mode: runs, planted alphas
recovered on average (and its standard error over seeds), how often each planted alpha
was recovered, and the library's best test RankIC. Runs of the same (mode, seed) in
two files must agree (the pipeline is deterministic), else it stops. `FILE:MODE` takes
only that mode's runs from a file (e.g. the random runs of a bench whose GP runs were
made with older settings).

    python tests/bench/mine_summary.py out/bench/mining.json [more.json[:gp|:random] ...] [--out pooled.json]
"""

import argparse
import json
import math
import sys

ap = argparse.ArgumentParser()
ap.add_argument("files", nargs="+")
ap.add_argument("--gt", default="data/raw/csi500/ground_truth.json")
ap.add_argument("--out")
a = ap.parse_args()

names = [x["name"] for x in json.load(open(a.gt))["alphas"]]
runs = {}
for spec in a.files:
    f, _, only = spec.partition(":")
    for r in json.load(open(f))["runs"]:
        if only and r["mode"] != only:
            continue
        key = (r["mode"], r["seed"])
        if key in runs and runs[key]["best_planted_corr"] != r["best_planted_corr"]:
            sys.exit(f"{f}: {key} differs from an earlier file's run of the same seed")
        runs[key] = r

summary = {}
for mode in sorted({m for m, _ in runs}):
    rs = [runs[k] for k in sorted(runs) if k[0] == mode]
    rec = [r["recovered"] for r in rs]
    n = len(rec)
    mean = sum(rec) / n
    sd = math.sqrt(sum((x - mean) ** 2 for x in rec) / (n - 1)) if n > 1 else float("nan")
    per = {nm: sum(r["best_planted_corr"][i] >= 0.8 for r in rs) for i, nm in enumerate(names)}
    summary[mode] = dict(
        runs=n,
        seeds=[r["seed"] for r in rs],
        recovered_mean=round(mean, 3),
        recovered_se=round(sd / math.sqrt(n), 3),
        recovered_per_seed=rec,
        recovered_per_alpha=per,
        best_test_rank_ic_mean=round(sum(r["best_test_rank_ic"] for r in rs) / n, 4),
    )
    for k in ("captured", "pool_recovered"):
        v = [r[k] for r in rs if r.get(k) is not None]
        if v:
            m = sum(v) / len(v)
            sd = math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1)) if len(v) > 1 else float("nan")
            summary[mode][k] = (round(m, 4), round(sd / math.sqrt(len(v)), 4))
    for h in (1, 5):
        k = f"blend_test_rank_ic_{h}"
        v = [r[k] for r in rs if k in r]
        if v:
            m = sum(v) / len(v)
            sd = math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1)) if len(v) > 1 else float("nan")
            summary[mode][k] = (round(m, 4), round(sd / math.sqrt(len(v)), 4))

w = max(len(x) for x in names)
modes = list(summary)
print(f"{'':<{w}} " + " ".join(f"{m:>12}" for m in modes))
print(f"{'runs':<{w}} " + " ".join(f"{summary[m]['runs']:>12}" for m in modes))
print(f"{'recovered (mean ± se)':<{w}} " + " ".join(
    f"{summary[m]['recovered_mean']:>6.2f} ± {summary[m]['recovered_se']:.2f}" for m in modes))
for nm in names:
    print(f"{nm:<{w}} " + " ".join(
        f"{summary[m]['recovered_per_alpha'][nm]:>6} / {summary[m]['runs']:<3}" for m in modes))
print(f"{'best test RankIC (mean)':<{w}} " + " ".join(
    f"{summary[m]['best_test_rank_ic_mean']:>12.4f}" for m in modes))
for k, label in (("captured", "captured: library / oracle (± se)"),
                 ("pool_recovered", "pool recovered (± se)")):
    if all(k in summary[m] for m in modes):
        print(f"{label:<{w}} " + " ".join(
            f"{summary[m][k][0]:>6.4f} ± {summary[m][k][1]:.4f}" for m in modes))
for h in (1, 5):
    k = f"blend_test_rank_ic_{h}"
    if all(k in summary[m] for m in modes):
        print(f"{'blend test RankIC ' + str(h) + 'd (± se)':<{w}} " + " ".join(
            f"{summary[m][k][0]:>6.4f} ± {summary[m][k][1]:.4f}" for m in modes))
if a.out:
    with open(a.out, "w") as fh:
        json.dump(dict(files=a.files, summary=summary), fh, indent=1)
