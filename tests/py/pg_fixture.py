"""A synthetic raw folder as a Tushare-shaped CSV for PostgreSQL's COPY.

usage: pg_fixture.py RAW OUT_CSV
Columns: ts_code, trade_date, open, high, low, close, pre_close (yuan), vol (lots of
100 shares), amount (thousands of yuan), adj_factor, is_st, is_suspended, industry,
total_mv, circ_mv (10k yuan), list_date, up_limit, down_limit (stk_limit's). Floats are written so they read back exactly.
"""
import glob
import sys

import pandas as pd

raw, out = sys.argv[1:3]
df = pd.concat([pd.read_parquet(f) for f in sorted(glob.glob(f"{raw}/year=*/*.parquet"))])
pd.DataFrame({
    "ts_code": df.code, "trade_date": df.trade_date, "open": df.open, "high": df.high,
    "low": df.low, "close": df.close, "pre_close": df.pre_close, "vol": df.volume / 100,
    "amount": df.amount / 1000, "adj_factor": df.adj_factor, "is_st": df.is_st,
    "is_suspended": df.is_suspended, "industry": df.industry,
    "total_mv": df.total_mv / 10000, "circ_mv": df.circ_mv / 10000, "list_date": df.list_date,
    "up_limit": df.up_limit, "down_limit": df.down_limit,
}).to_csv(out, index=False, float_format="%.17g")
