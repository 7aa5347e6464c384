"""Spot checks of the S&P 500 ingest against the original CSV inside the wheel.

usage: check_sp500.py ORIGINAL_CSV PANEL MANIFEST_JSON
"""
import json
import sys

import numpy as np
import pandas as pd

import afref

orig = pd.read_csv(sys.argv[1])
orig["Date"] = pd.to_datetime(orig["Date"].astype(str))
meta, w = afref.read_panel(sys.argv[2])
man = json.load(open(sys.argv[3]))
fails = []

def check(cond, msg):
    print(("ok   " if cond else "FAIL ") + msg)
    if not cond:
        fails.append(msg)

check(man["rows"] == len(orig), f"all {len(orig)} rows ingested (manifest: {man['rows']})")
check(set(w["close"].columns) == set(orig["Symbol"].unique()), "every symbol is an asset")
check(len(w["close"]) == orig["Date"].nunique(), "calendar = the file's dates")
# Splits the data really has (2-for-1 in 2010): inferred, and the adjusted series is continuous.
for sym, day in [("DHR", "2010-06-14"), ("ESRX", "2010-06-08"), ("GIS", "2010-06-09")]:
    moves = [m for m in man["moves"] if (m["code"], m["date"], m["action"]) == (sym, day, "split")]
    check(len(moves) == 1 and moves[0]["split_ratio"] == 0.5, f"{sym} split on {day} inferred")
    r = w["returns"].loc[pd.Timestamp(day), sym]
    check(abs(r) < 0.06, f"{sym} adjusted return on the split day is small ({r:.4f})")
    before = orig[(orig.Symbol == sym) & (orig.Date < pd.Timestamp(day))].iloc[-1]
    got = w["close"].loc[before.Date, sym]
    check(np.isclose(got, before.Close / 2, rtol=1e-12), f"{sym} pre-split close forward-adjusted: {got} = {before.Close}/2")
# An unadjusted price on a day after the last split equals the file's close.
last = orig[orig.Symbol == "AAPL"].iloc[-1]
check(w["close"].loc[last.Date, "AAPL"] == last.Close, "AAPL last close unchanged by forward adjustment")
check(man["cleaning"].get("ohlc_repaired", 0) > 0, f"inconsistent OHLC repaired and counted ({man['cleaning'].get('ohlc_repaired', 0)})")
kept = [m for m in man["moves"] if m["action"] == "kept"]
check(man["cleaning"].get("large_jumps_kept", 0) >= 3, f"non-split jumps kept and counted ({man['cleaning'].get('large_jumps_kept', 0)})")
check(len(kept) == man["cleaning"]["large_jumps_kept"], f"every kept jump is listed under moves ({len(kept)})")
# E*Trade's 1:10 reverse split of 2010 shows as x8.3 on its day: not a split ratio, and
# beyond the x5 bound of a market without limits: a break, with no return.
breaks = [m for m in man["moves"] if m["action"] == "break"]
check([(m["code"], m["date"]) for m in breaks] == [("ETFC", "2010-06-30")], f"the x8.3 day is the one break ({breaks})")
check(len(breaks) == man["cleaning"].get("breaks", 0), "every break is counted")
check(np.isnan(w["returns"].loc[pd.Timestamp("2010-06-30"), "ETFC"]), "no return spans the break")
check(np.nanmax(np.abs(w["returns"].to_numpy())) < 4.0, "no return of the panel beyond x5")
check(man["provenance"]["params"]["market"] == "generic", "the market profile is recorded")
check(man["columns"]["total_mv"].startswith("absent"), "caps reported absent")
check(not meta["cap_available"] and any("size neutralization" in x for x in meta["warnings"]), "panel warns that size neutralization will be skipped")
# Assets that join late (fewer rows) are outside the universe for their first 60 days.
short = orig.groupby("Symbol").size().idxmin()
first = orig[orig.Symbol == short].Date.min()
if first > orig.Date.min():
    t0 = w["close"].index.get_loc(first)
    check(not w["in_universe"][short].iloc[t0:t0 + 60].astype(bool).any(), f"{short} (first bar {first.date()}) not in the universe for 60 days")
if fails:
    sys.exit(1)
