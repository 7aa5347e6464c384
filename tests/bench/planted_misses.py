#!/usr/bin/env python3
"""Why planted alphas were missed, per search mode, from a `tests/bench/mine.sh` output
folder: each (run, planted alpha) case is *recovered* (a library factor has |corr| >= 0.8
on test), *blocked* (not recovered, but a library member already resembles it at >= 0.7
on train, so the exact form would score 0 as a near-copy and competes only on its merit
gain over that member), or *far* (the library's best is below 0.7: the search never came
near). Reads each run's planted.parquet (`fitness --library` on the planted expressions).

usage: planted_misses.py out/bench/mine-hard
"""
import glob
import os
import sys

import pandas as pd


def main():
    out = sys.argv[1]
    stats = {}
    for d in sorted(glob.glob(f"{out}/*-*")):
        if not os.path.exists(f"{d}/planted.parquet"):
            continue
        mode = os.path.basename(d).split("-")[0]
        p = pd.read_parquet(f"{d}/planted.parquet")
        tr = p[p.split == "train"].reset_index(drop=True)
        te = p[p.split == "test"].reset_index(drop=True)
        s = stats.setdefault(mode, dict(cases=0, recovered=0, blocked=0, far=0))
        for i in range(len(te)):
            s["cases"] += 1
            if te.library_max_corr[i] >= 0.8:
                s["recovered"] += 1
            elif tr.library_max_corr[i] >= 0.7:
                s["blocked"] += 1
            else:
                s["far"] += 1
    for m, s in sorted(stats.items()):
        print(f"{m}: {s['cases']} cases, {s['recovered']} recovered, {s['blocked']} blocked, {s['far']} far")


if __name__ == "__main__":
    main()
