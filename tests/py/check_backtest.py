"""`backtest` re-implemented with pandas from its documented rules (docs/backtest.md),
compared day by day.

usage: check_backtest.py PANEL SIGNAL_PARQUET OUT_DIR [--topk 50 --n-drop 5 ...]
Rules: on trading day t the scores of date t-1 decide (Qlib's TopkDropoutStrategy:
holdings sorted by score, NaN last; the best n_drop + topk - len(holdings) scored
non-holdings; sell the holdings among the n_drop worst of both; buy the best
len(sell) + topk - len(holdings) non-holdings with cash * risk_degree / len(buy) each);
deal at t's close; no trade when the stock is not tradable or |change| >= limit; cost
max(value * rate, min_cost); gross = (value_t + cost_t) / value_{t-1} - 1, net = gross
- cost_t / value_{t-1}; the benchmark is the mean return of the previous day's universe.
Daily net returns must agree to 1e-10, and so must every trade's status.
"""
import argparse
import sys

import numpy as np
import pandas as pd

from afref import read_panel

ap = argparse.ArgumentParser()
ap.add_argument("panel")
ap.add_argument("signal")
ap.add_argument("out")
ap.add_argument("--column", default="prediction")
ap.add_argument("--topk", type=int, default=50)
ap.add_argument("--n-drop", type=int, default=5)
ap.add_argument("--cost-buy", type=float, default=0.0005)
ap.add_argument("--cost-sell", type=float, default=0.0015)
ap.add_argument("--min-cost", type=float, default=5.0)
ap.add_argument("--account", type=float, default=1e8)
ap.add_argument("--risk-degree", type=float, default=0.95)
ap.add_argument("--limit", type=float, default=0.095)
ap.add_argument("--limit-rule", default="board")
ap.add_argument("--deal", default="close")
a = ap.parse_args()

_, w = read_panel(a.panel)
close, change = w["close"], w["returns"]
deal = w[a.deal]


def board_limit(code):
    num, _, ex = code.partition(".")
    if len(num) != 6 or not num.isdigit() or ex not in ("SH", "SZ", "BJ"):
        return np.inf
    if ex == "BJ":
        return 0.295
    return 0.195 if num[:3] in ("300", "301", "688", "689") else 0.095


lim = {c: (a.limit if a.limit_rule == "flat" else board_limit(c)) for c in close.columns}
tradable, univ = w["tradable"].astype(bool), w["in_universe"].astype(bool)
dates, codes = close.index, close.columns
sig = pd.read_parquet(a.signal)
sig["date"] = pd.to_datetime(sig["date"])
S = sig.pivot(index="date", columns="code", values=a.column).reindex(index=dates, columns=codes)
bench = change.where(univ.shift(1, fill_value=False)).mean(axis=1)

first = next(i for i in range(1, len(dates)) if S.iloc[i - 1].notna().any())
shares = pd.Series(0.0, index=codes)
last_px = pd.Series(np.nan, index=codes)
cash, value_prev = a.account, a.account
rows, trades = [], []


def order(scores, names):
    s = scores.reindex(names)
    return list(s.sort_values(ascending=False, kind="mergesort", na_position="last").index)


for i in range(first, len(dates)):
    d = dates[i]
    s = S.iloc[i - 1]
    px, ch, tr = deal.iloc[i], change.iloc[i], tradable.iloc[i]
    last_px = last_px.where(close.iloc[i].isna(), close.iloc[i])
    held = list(shares[shares > 0].index)
    last = order(s, held)
    cand = order(s[s.notna() & (shares == 0)], list(s[s.notna() & (shares == 0)].index))
    today = cand[: max(a.n_drop + a.topk - len(last), 0)]
    comb = order(s, last + today)
    worst = comb[len(comb) - a.n_drop:] if a.n_drop else []
    sell = [c for c in last if c in worst]
    buy = today[: max(len(sell) + a.topk - len(last), 0)]

    def refused(c):
        if not tr[c] or not np.isfinite(px[c]):
            return "suspended"
        if ch[c] >= lim[c]:
            return "limit_up"
        if ch[c] <= -lim[c]:
            return "limit_down"
        return "done"

    cost_day = 0.0
    for c in sell:
        st = refused(c)
        trades.append((d, c, "sell", st))
        if st == "done":
            v = shares[c] * px[c]
            k = max(v * a.cost_sell, a.min_cost)
            cash += v - k
            cost_day += k
            shares[c] = 0.0
    each = cash * a.risk_degree / len(buy) if buy else 0.0
    for c in buy:
        st = refused(c)
        trades.append((d, c, "buy", st))
        if st == "done" and px[c] > 0:
            k = max(each * a.cost_buy, a.min_cost)
            cash -= each + k
            cost_day += k
            shares[c] += each / px[c]
    value = cash + (shares[shares > 0] * last_px[shares > 0]).sum()
    gross = (value + cost_day) / value_prev - 1
    rows.append((d, gross - cost_day / value_prev, bench[d]))
    value_prev = value

want = pd.DataFrame(rows, columns=["date", "net", "bench"]).set_index("date")
got = pd.read_parquet(f"{a.out}/daily.parquet")
got["date"] = pd.to_datetime(got["date"])
got = got.set_index("date")
assert list(got.index) == list(want.index), f"dates: {len(got)} vs {len(want)}"
err = (got["net_return"] - want["net"]).abs().max()
berr = (got["bench_return"] - want["bench"]).abs().max()
gt = pd.read_parquet(f"{a.out}/trades.parquet")
wt = pd.DataFrame(trades, columns=["date", "code", "side", "status"])
gt["date"] = pd.to_datetime(gt["date"])
same_trades = [tuple(map(str, r)) for r in gt[["date", "code", "side", "status"]].itertuples(index=False)] == \
    [tuple(map(str, r)) for r in wt.itertuples(index=False)]
print(f"{len(want)} days: max |net return diff| {err:.2e}, benchmark {berr:.2e}; "
      f"{len(wt)} orders ({(wt.status != 'done').sum()} refused) identical: {same_trades}")
if not (err <= 1e-10 and berr <= 1e-12 and same_trades):
    sys.exit(1)
print("OK")
