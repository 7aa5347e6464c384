"""Two checks around the fake Tushare server (fake_tushare.py).

usage: check_tushare.py client URL TOKEN RAW
    The official client (PyPI `tushare`) fetches `daily` and `stock_basic` from the
    fake server; the frames must match the synthetic raw folder in Tushare's units:
    proof the stand-in speaks the real protocol.
usage: check_tushare.py same RAW_A RAW_B
    Two raw folders equal column by column: exact, except columns that went through a
    unit scale (amount, total_mv, circ_mv: thousands / 10k yuan) to 1 ulp.
"""
import glob
import sys

import numpy as np
import pandas as pd


def read(d):
    return pd.concat([pd.read_parquet(f) for f in sorted(glob.glob(f"{d}/year=*/*.parquet"))]).reset_index(drop=True)


def same(a_dir, b_dir):
    a, b = read(a_dir), read(b_dir)
    assert list(a.columns) == list(b.columns), (list(a.columns), list(b.columns))
    assert len(a) == len(b), f"{len(a)} rows vs {len(b)}"
    for c in a.columns:
        x, y = a[c], b[c]
        if x.dtype.kind == "f":
            scaled = c in ("amount", "total_mv", "circ_mv")
            ok = np.allclose(x, y, rtol=4.5e-16 if scaled else 0.0, atol=0.0, equal_nan=True)
            bad = ~np.isclose(x, y, rtol=4.5e-16 if scaled else 0.0, atol=0.0, equal_nan=True)
        else:
            bad = (x.astype(str) != y.astype(str)).to_numpy()
            ok = not bad.any()
        if not ok:
            i = np.flatnonzero(bad)[0]
            sys.exit(f"{c} differs in {bad.sum()} rows, first {a.loc[i, ['trade_date', 'code']].tolist()}: {x[i]!r} vs {y[i]!r}")
        print(f"ok   {c}")
    print(f"same: {len(a)} rows, every column")


def client(url, token, raw):
    import tushare as ts
    pro = ts.pro_api(token)
    pro._DataApi__http_url = url  # the client's own endpoint attribute
    df = read(raw)
    day = sorted(df.trade_date.unique())[3]
    want = df[(df.trade_date == day) & ~df.is_suspended].sort_values("code")
    got = pro.daily(trade_date=pd.Timestamp(day).strftime("%Y%m%d")).sort_values("ts_code")
    assert list(got.ts_code) == list(want.code), "daily: the day's codes"
    for g, w, k in [("close", "close", 1), ("vol", "volume", 100), ("amount", "amount", 1000), ("pre_close", "pre_close", 1)]:
        assert np.allclose(got[g].to_numpy() * k, want[w].to_numpy(), rtol=1e-12), g
    listed = pro.stock_basic(list_status="L", fields="ts_code,industry,list_date")
    delisted = pro.stock_basic(list_status="D", fields="ts_code,delist_date")
    assert len(listed) + len(delisted) == df.code.nunique(), "stock_basic L + D = every code"
    ind = df.groupby("code").industry.first()
    assert (listed.set_index("ts_code").industry == ind.reindex(listed.ts_code)).all(), "industry"
    print(f"official client: daily {len(got)} rows, stock_basic {len(listed)} listed + {len(delisted)} delisted: OK")


def universe(raw, plain, indexed, n=30):
    """The index panel's in_universe = the plain panel's AND membership, where members
    are recomputed here from the market (the stand-in's rule: the n largest by total_mv
    on each month's first trading day, in force until the next month's list)."""
    from afref import read_panel
    df = read(raw)
    df["trade_date"] = pd.to_datetime(df["trade_date"])
    _, a = read_panel(plain)
    _, b = read_panel(indexed)
    ua, ub = a["in_universe"].astype(bool), b["in_universe"].astype(bool)
    member = pd.DataFrame(False, index=ua.index, columns=ua.columns)
    month, cur = None, set()
    for d in ua.index:
        if (d.year, d.month) != month:
            month = (d.year, d.month)
            cur = set(df[df.trade_date == d].nlargest(n, "total_mv").code)
        member.loc[d, [c for c in ua.columns if c in cur]] = True
    want = ua & member
    bad = (want != ub).to_numpy().sum()
    assert bad == 0, f"{bad} cells differ"
    assert ub.sum(axis=1).max() <= n
    print(f"universe: {int(ub.to_numpy().sum())} member cells, as recomputed")


if __name__ == "__main__":
    if sys.argv[1] == "same":
        same(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "universe":
        universe(*sys.argv[2:5])
    else:
        client(*sys.argv[2:5])
