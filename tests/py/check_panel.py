"""Compare a panel written by panel-build with an independent pandas recomputation
from the raw Parquet files. Exit non-zero with a description of the first mismatch.

usage: check_panel.py RAW_DIR PANEL [--adjust A] [--horizons 1,5,10] [--label L]
       [--min-list-days N] [--require-events]
"""
import argparse
import sys

import numpy as np
import pandas as pd

import afref

p = argparse.ArgumentParser()
p.add_argument("raw")
p.add_argument("panel")
p.add_argument("--adjust", default="forward")
p.add_argument("--horizons", default="1,5,10")
p.add_argument("--label", default="close2close")
p.add_argument("--min-list-days", type=int, default=60)
p.add_argument("--require-events", action="store_true", help="fail unless the market has suspensions, limit-up closes, listings and ex-dividend days")
a = p.parse_args()

raw = afref.read_raw(a.raw)
meta, got = afref.read_panel(a.panel)
hz = [int(h) for h in a.horizons.split(",")]
import json, os
market = json.load(open(os.path.join(a.raw, "manifest.json"))).get("market")
want = afref.expected_panel(raw, a.adjust, hz, a.label, a.min_list_days, market)

fails = []
for name, w in want.items():
    g = got[name]
    assert list(g.columns) == list(w.columns), f"{name}: asset order differs"
    assert len(g) == len(w), f"{name}: date count differs {len(g)} vs {len(w)}"
    gv = g.to_numpy()
    wv = w.reindex(index=w.index, columns=w.columns).to_numpy()
    if gv.dtype == bool or wv.dtype == bool or name in ("tradable", "in_universe"):
        bad = gv.astype(bool) != wv.astype(bool)
    else:
        gv = gv.astype(float)
        wv = wv.astype(float)
        bad, _, _ = afref.compare(gv, wv, 1e-12)
    n = int(bad.sum())
    if n:
        t, j = np.argwhere(bad)[0]
        fails.append(f"{name}: {n} cells differ, first at ({w.index[t].date()}, {w.columns[j]}): panel {gv[t, j]!r} vs pandas {wv[t, j]!r}")
    print(f"{name:12s} ok={n == 0} cells={bad.size} non-nan={int((~pd.isna(w)).to_numpy().sum())}")

if a.require_events:
    r = raw.copy()
    r["trade_date"] = pd.to_datetime(r["trade_date"])
    susp = int(r["is_suspended"].sum())
    sorted_r = r.sort_values(["code", "trade_date"])
    prev = sorted_r.groupby("code")["close"].shift(1)
    exdiv = int(((sorted_r["pre_close"] - prev).abs() > 1e-9).sum())
    listings = int((pd.to_datetime(r.groupby("code")["list_date"].first()) > r["trade_date"].min()).sum())
    buyable_excluded = int((got["tradable"].astype(bool) & got[f"fwd_ret_{hz[0]}"].isna() & got["close"].shift(-hz[0]).notna()).to_numpy().sum())
    st = int(r["is_st"].sum())
    print(f"events: suspended bars {susp}, ex-dividend bars {exdiv}, listings inside {listings}, limit-up closes {buyable_excluded}, ST bars {st}")
    for what, n in [("suspensions", susp), ("ex-dividend days", exdiv), ("listings", listings), ("limit-up closes", buyable_excluded), ("ST bars", st)]:
        if n == 0:
            fails.append(f"the market has no {what}: the comparison did not exercise that rule")

if fails:
    print("\n".join(fails), file=sys.stderr)
    sys.exit(1)
print("panel matches pandas")
