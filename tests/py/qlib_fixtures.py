"""Inputs for the Qlib-format tests, made from a raw folder.

usage: qlib_fixtures.py prefix RAW SHORT_CSV LONG_CSV
    Contract CSVs (ts-fetch --source files, identity mapping): LONG is the whole market
    less one stock's bar on the 300th date; SHORT is LONG up to that date (so that
    stock's last bar in SHORT is the day before). Prints `gap CODE DATE`.
usage: qlib_fixtures.py dumpcsv RAW CSV_DIR
    One CSV per symbol in Qlib's convention for its scripts/dump_bin.py: symbol, date,
    backward-adjusted open/high/low/close, volume / factor, factor; no row on a
    suspended day.
"""
import glob
import os
import re
import sys

import pandas as pd


def read(raw):
    return pd.concat([pd.read_parquet(f) for f in sorted(glob.glob(f"{raw}/year=*/*.parquet"))]).reset_index(drop=True)


def prefix(raw, short, long):
    df = read(raw)
    dates = sorted(df.trade_date.unique())
    x = dates[299]
    code = sorted(df[(df.trade_date == x) & ~df.is_suspended].code)[7]
    df = df[~((df.code == code) & (df.trade_date == x))]
    df.to_csv(long, index=False)
    df[df.trade_date <= x].to_csv(short, index=False)
    print(f"gap {code} {x}")


def dumpcsv(raw, out):
    df = read(raw)
    df = df[~df.is_suspended]
    os.makedirs(out, exist_ok=True)
    for code, d in df.groupby("code"):
        m = re.fullmatch(r"(\d{6})\.(SH|SZ|BJ)", code)
        sym = f"{m.group(2)}{m.group(1)}".lower() if m else code.lower()
        f = d.adj_factor
        pd.DataFrame({
            "symbol": sym.upper(), "date": d.trade_date,
            "open": d.open * f, "high": d.high * f, "low": d.low * f, "close": d.close * f,
            "volume": d.volume / f, "factor": f,
        }).to_csv(f"{out}/{sym}.csv", index=False)


if __name__ == "__main__":
    {"prefix": prefix, "dumpcsv": dumpcsv}[sys.argv[1]](*sys.argv[2:])
