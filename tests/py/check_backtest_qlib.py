"""Qlib's own backtest (pyqlib 0.9.7: backtest_daily's machinery, TopkDropoutStrategy,
SimulatorExecutor, Exchange) on the same signal and prices as a `backtest` run.

usage: check_backtest_qlib.py PANEL SIGNAL_PARQUET COLUMN OUT_DIR TOPK N_DROP

A minimal Qlib provider folder is written from the panel: $close (NaN where the stock
cannot trade, which is how Qlib's exchange knows a suspension), $change (the panel's
returns, for the limit test), $factor = 1 and $volume. The exchange is the benchmark
config's (deal at close, open_cost 0.0005, close_cost 0.0015, min_cost 5,
limit_threshold 0.095) with trade_unit None (no lot rounding, as `backtest`); the
benchmark is the same equal-weight series. Qlib's daily `return` (gross of cost) and
`cost` must equal ours to 1e-6.
"""
import contextlib
import io
import os
import sys
import tempfile
import time

import numpy as np
import pandas as pd

from afref import read_panel
from check_qlib_export import code_of


def symbol(code):
    num, _, ex = code.partition(".")
    return f"{ex}{num}" if ex in ("SH", "SZ", "BJ") else code.upper()


def provider(w, root):
    dates = w["close"].index
    os.makedirs(f"{root}/calendars", exist_ok=True)
    os.makedirs(f"{root}/instruments", exist_ok=True)
    # Qlib's last step ends at the next calendar date: one more day, with no data.
    cal = list(dates) + [dates[-1] + pd.offsets.BDay(1)]
    with open(f"{root}/calendars/day.txt", "w") as f:
        f.writelines(d.strftime("%Y-%m-%d") + "\n" for d in cal)
    trad = w["tradable"].astype(bool)
    fields = {
        "close": w["close"].where(trad),
        "change": w["returns"],
        "volume": w["volume"].where(trad),
        "factor": w["close"] * 0 + 1.0,
    }
    lines = []
    for code in w["close"].columns:
        c = w["close"][code]
        idx = np.flatnonzero(c.notna().to_numpy())
        if not len(idx):
            continue
        a, b = idx[0], idx[-1]
        sym = symbol(code)
        lines.append(f"{sym}\t{dates[a]:%Y-%m-%d}\t{dates[b]:%Y-%m-%d}\n")
        os.makedirs(f"{root}/features/{sym.lower()}", exist_ok=True)
        for name, m in fields.items():
            v = m[code].to_numpy()[a:b + 1].astype("<f4")
            np.hstack([np.array([a], dtype="<f4"), v]).tofile(f"{root}/features/{sym.lower()}/{name}.day.bin")
    with open(f"{root}/instruments/all.txt", "w") as f:
        f.writelines(lines)


def main(panel, signal, column, out, topk, n_drop):
    _, w = read_panel(panel)
    root = tempfile.mkdtemp(prefix="af-qlib-bt-")
    provider(w, root)
    import qlib
    with contextlib.redirect_stderr(io.StringIO()):
        qlib.init(provider_uri=root, region="cn", kernels=1)
    from qlib.backtest import backtest
    from qlib.backtest.executor import SimulatorExecutor
    from qlib.contrib.strategy import TopkDropoutStrategy

    ours = pd.read_parquet(f"{out}/daily.parquet")
    ours["date"] = pd.to_datetime(ours["date"])
    ours = ours.set_index("date")
    sig = pd.read_parquet(signal)
    sig["datetime"] = pd.to_datetime(sig["date"])
    sig["instrument"] = sig["code"].map(symbol)
    score = sig.set_index(["datetime", "instrument"])[column].dropna().sort_index()
    bench = ours["bench_return"]
    strategy = TopkDropoutStrategy(signal=score, topk=topk, n_drop=n_drop)
    executor = SimulatorExecutor(time_per_step="day", generate_portfolio_metrics=True, verbose=False)
    t0 = time.time()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        pm, _ = backtest(
            start_time=ours.index[0], end_time=ours.index[-1], strategy=strategy, executor=executor,
            account=1e8, benchmark=bench,
            exchange_kwargs={"freq": "day", "limit_threshold": 0.095, "deal_price": "close",
                             "open_cost": 0.0005, "close_cost": 0.0015, "min_cost": 5,
                             "trade_unit": None},
        )
    secs = time.time() - t0
    rep = pm["1day"][0]
    rep.index = pd.to_datetime(rep.index)
    q = rep.reindex(ours.index)
    e_ret = (q["return"] - ours["gross_return"]).abs().max()
    e_cost = (q["cost"] - ours["cost"]).abs().max()
    print(f"qlib backtest: {len(rep)} days in {secs:.1f} s; max |return diff| {e_ret:.2e}, max |cost diff| {e_cost:.2e}")
    if not (e_ret <= 1e-6 and e_cost <= 1e-6):
        bad = (q["return"] - ours["gross_return"]).abs().idxmax()
        print(pd.DataFrame({"qlib": q["return"], "ours": ours["gross_return"]}).loc[bad:].head(5))
        sys.exit(1)
    print("OK")


if __name__ == "__main__":
    p, s, c, o, k, n = sys.argv[1:7]
    main(p, s, c, o, int(k), int(n))
