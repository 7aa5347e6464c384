"""Mean per-date RankIC (Spearman over the universe, dates with >= 30 assets) of a
prediction file against fwd_ret_1, split at the library's selection end: how much of a
model's test figure comes from dates its factors were selected on.

usage: oos_split.py PANEL PREDICTIONS SELECTION_END [LO HI]
  PANEL        panel-build's .arrow; PREDICTIONS lgbm-train's predictions.parquet
  SELECTION_END first date index after the library's train + valid splits
  LO HI        also the mean over date indices LO..HI (end exclusive)
"""
import sys

import numpy as np
import pandas as pd
import pyarrow.ipc as ipc

panel, preds, sel_end = sys.argv[1], sys.argv[2], int(sys.argv[3])
t = ipc.open_file(panel).read_all().select(["date", "code", "fwd_ret_1", "in_universe"]).to_pandas()
p = pd.read_parquet(preds)[["date", "code", "prediction"]]
t["date"] = pd.to_datetime(t["date"])
p["date"] = pd.to_datetime(p["date"])
m = p.merge(t, on=["date", "code"])
m = m[m.in_universe & m.fwd_ret_1.notna() & m.prediction.notna()]
index = {d: i for i, d in enumerate(sorted(t.date.unique()))}
m["t"] = m.date.map(index)
ric = m.groupby("t").apply(
    lambda g: g.prediction.rank().corr(g.fwd_ret_1.rank()) if len(g) >= 30 else np.nan
).dropna()
ins, oos = ric[ric.index < sel_end], ric[ric.index > sel_end]
print(f"all {ric.mean():.4f} over {len(ric)} dates; in selection (t < {sel_end}) "
      f"{ins.mean():.4f} over {len(ins)}; out of selection (t > {sel_end}) {oos.mean():.4f} over {len(oos)}")
if len(sys.argv) > 5:
    lo, hi = int(sys.argv[4]), int(sys.argv[5])
    w = ric[(ric.index >= lo) & (ric.index < hi)]
    print(f"dates {lo}..{hi}: {w.mean():.4f} over {len(w)}")
