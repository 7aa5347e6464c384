"""Measure each planted alpha's mean RankIC on a panel with pandas and compare with the
ground truth's stated strength; also check that unrelated signals show nothing.

usage: check_planted.py PANEL GROUND_TRUTH_JSON
"""
import json
import sys

import numpy as np

import afref

meta, w = afref.read_panel(sys.argv[1])
gt = json.load(open(sys.argv[2]))
u = w["in_universe"].astype(bool)
fails = []
for a in gt["alphas"]:
    sig = afref.planted_signal(a["name"], w)
    ic = afref.rank_ic_series(sig, w[a["label"]], u)
    m = ic.mean()
    ok = abs(m - a["target_rank_ic"]) <= a["tolerance"]
    print(f'{a["name"]:22s} {a["expression"]:52s} h={a["horizon"]} target {a["target_rank_ic"]:.3f} +- {a["tolerance"]:.3f}  measured {m:.4f}  {"ok" if ok else "FAIL"}')
    if not ok:
        fails.append(a["name"])

# Unrelated signals: a 30-day-lagged return (outside every planted window) and noise.
se1 = [a["standard_error"] for a in gt["alphas"] if a["horizon"] == 1][0]
rng = np.random.default_rng(12345)
controls = {
    "ts_delay(returns, 30)": w["returns"].shift(30),
    "gaussian noise": w["close"] * 0 + rng.standard_normal(w["close"].shape),
}
for name, sig in controls.items():
    m = afref.rank_ic_series(sig, w["fwd_ret_1"], u).mean()
    ok = abs(m) < 3 * se1
    print(f"control {name:24s} measured {m:.4f} (|IC| < {3 * se1:.4f})  {'ok' if ok else 'FAIL'}")
    if not ok:
        fails.append(name)
if fails:
    print("failed: " + ", ".join(fails), file=sys.stderr)
    sys.exit(1)
