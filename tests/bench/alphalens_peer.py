"""`make bench` item 2 peer: the same factors through alphalens-reloaded on `full`.

Factor values come from `expr eval` (not timed here: alphalens has no expression
engine); what is timed is what alphalens does with them for the figures `fitness`
reports: cleaning/quantizing (`get_clean_factor`), per-date IC, quantile mean returns,
factor rank autocorrelation and top-quantile turnover. alphalens does no winsorizing or
neutralization, so the comparison favours it.
"""
import argparse
import contextlib
import io
import json
import time
import warnings

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.ipc as ipc


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--panel", required=True)
    ap.add_argument("--values", required=True)
    ap.add_argument("--horizon", type=int, default=1)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    import alphalens.performance as perf
    import alphalens.utils as au

    with pa.memory_map(a.panel) as src:
        t = ipc.open_file(src).read_all()
    univ = t.column("in_universe").to_numpy()
    idx = pd.MultiIndex.from_arrays(
        [pd.to_datetime(t.column("date").to_numpy()), t.column("code").to_pandas().astype(str)],
        names=["date", "asset"],
    )
    fwd = pd.DataFrame({f"{a.horizon}D": t.column(f"fwd_ret_{a.horizon}").to_numpy()}, index=idx)
    vals = pd.read_parquet(a.values)
    res = {}
    for col in [c for c in vals.columns if c not in ("date", "code")]:
        f = pd.Series(np.where(univ, vals[col].to_numpy(), np.nan), index=idx).dropna()
        t0 = time.perf_counter()
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            fd = au.get_clean_factor(f, fwd.loc[f.index], quantiles=5, max_loss=1.0)
            perf.factor_information_coefficient(fd)
            perf.mean_return_by_quantile(fd, by_date=True, demeaned=False)
            perf.factor_rank_autocorrelation(fd, period=1)
            perf.quantile_turnover(fd["factor_quantile"], 5, period=1)
        res[col] = time.perf_counter() - t0
        print(f"alphalens {col}: {res[col]:.1f} s")
    json.dump(res, open(a.out, "w"), indent=1)


if __name__ == "__main__":
    main()
