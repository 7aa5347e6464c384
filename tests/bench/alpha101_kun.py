#!/usr/bin/env python3
"""`make bench-alpha101` (issue 26 item 4): KunQuant's own Alpha101 on our panel, timed
beside `expr bench --all-at-once` on the same alphas in the same run.

usage:
  alpha101_kun.py subset --alphas tests/fixtures/alpha101.txt --out SUBSET.txt
      write the lines of our alpha101 file that KunQuant also implements
      (KunQuant.predefined.Alpha101.all_alpha: 82 of the 101; it leaves out the
      IndNeutralize ones and a few others)
  alpha101_kun.py run --panel data/panel/full.arrow --ours-all OURS_ALL.json \
      --ours-subset OURS_SUB.json --out out/bench/alpha101.json [--repeat 3]
      [--kun-cache DIR] [--assets N]
      time KunQuant on the subset and write the comparison (JSON + a table on stdout)

KunQuant is built the way its README builds Alpha101: one module holding every alpha as
an output (its compiler shares common sub-expressions across them), compiled once with
cfake (not timed; cached under --kun-cache), dtype double, TS layout ([time][stocks]
in and out), its default options, run with createMultiThreadExecutor on every core.
Inputs are our panel's fields (open, high, low, close, volume, amount and our vwap), so
both engines see the same numbers. Peak memory is the process's max RSS (ru_maxrss)
after KunQuant's runs minus before them.
"""
import argparse
import hashlib
import json
import os
import resource
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peers import Panel, read_exprs  # noqa: E402


def kun_names():
    from KunQuant.predefined.Alpha101 import all_alpha

    return [f.__name__ for f in all_alpha]


def cmd_subset(a):
    have = set(kun_names())
    lines = [ln for ln in open(a.alphas, encoding="utf-8")]
    keep = ["# dialect: alpha101\n",
            "# The alphas of tests/fixtures/alpha101.txt that KunQuant.predefined.Alpha101 also has.\n"]
    n = 0
    for name, text in read_exprs(a.alphas):
        if name in have:
            keep.append(f"{name} = {text}\n")
            n += 1
    with open(a.out, "w", encoding="utf-8") as f:
        f.writelines(keep)
    print(f"{n} of {len(read_exprs(a.alphas))} alphas are in KunQuant's all_alpha; wrote {a.out}")


def maxrss_bytes():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def cmd_run(a):
    from KunQuant.Driver import KunCompilerConfig
    from KunQuant.jit import cfake
    from KunQuant.Op import Builder, Input, Output
    from KunQuant.Stage import Function
    from KunQuant.predefined.Alpha101 import AllData, all_alpha
    from KunQuant.runner import KunRunner as kr
    import importlib.metadata as md

    p = Panel(a.panel)
    na = p.na if a.assets is None else min(a.assets, p.na)
    na -= na % 8  # KunQuant's TS layout works on blocks of 8 stocks
    names = [f.__name__ for f in all_alpha]
    fields = ("open", "high", "low", "close", "volume", "amount", "vwap")
    data = {k: np.ascontiguousarray(p.f[k][:, :na]) for k in fields}
    del p

    b = Builder()
    with b:
        ins = {k: Input(k) for k in fields}
        d = AllData(open=ins["open"], close=ins["close"], high=ins["high"], low=ins["low"],
                    volume=ins["volume"], amount=ins["amount"], vwap=ins["vwap"])
        for f in all_alpha:
            Output(f(d), f.__name__)
    cfg = KunCompilerConfig(dtype="double", input_layout="TS", output_layout="TS")
    key = hashlib.sha256((md.version("kunquant") + open(__file__, encoding="utf-8").read()).encode()).hexdigest()[:16]
    libname = f"alpha101_{key}"
    os.makedirs(a.kun_cache, exist_ok=True)
    path = os.path.join(a.kun_cache, libname, f"{libname}.so")
    t0 = time.perf_counter()
    if not os.path.exists(path):
        path = cfake.compileit([("alpha101", Function(b.ops), cfg)], libname, cfake.CppCompilerConfig(),
                               tempdir=a.kun_cache, keep_files=True, load=False)
    compile_s = time.perf_counter() - t0
    lib = kr.Library.load(path)
    mod = lib.getModule("alpha101")
    exe = kr.createMultiThreadExecutor(os.cpu_count() or 1)
    nd = data["close"].shape[0]

    rss0 = maxrss_bytes()
    ms = []
    for i in range(a.repeat + 1):
        t = time.perf_counter()
        out = kr.runGraph(exe, mod, data, 0, nd)
        el = (time.perf_counter() - t) * 1e3
        if i > 0:
            ms.append(el)
        n_out = len(out)
        del out
    rss1 = maxrss_bytes()
    kun = {
        "alphas": n_out, "n_dates": nd, "n_assets": na,
        "ms_median": statistics.median(ms), "ms_all": ms,
        "peak_rss_bytes": rss1, "peak_rss_growth_bytes": rss1 - rss0,
        "compile_s_if_not_cached": compile_s,
        "version": md.version("kunquant"), "threads": os.cpu_count(),
        "build": "KunQuant.predefined.Alpha101.all_alpha as one module, dtype double, TS layout, default options, cfake, createMultiThreadExecutor(all cores)",
    }
    ours_all = json.load(open(a.ours_all, encoding="utf-8"))
    ours_sub = json.load(open(a.ours_subset, encoding="utf-8"))

    def whole(o):
        w = o.get("all_at_once") or {}
        return {k: w.get(k) for k in ("expressions", "ms_median", "one_by_one_ms_total", "peak_live_bytes",
                                      "peak_rss_bytes", "operator_nodes_evaluated", "nodes_in_trees")}

    res = {"kunquant": kun, "ours_all_101": whole(ours_all), "ours_same_alphas": whole(ours_sub),
           "panel": a.panel}
    o_ms = res["ours_same_alphas"]["ms_median"]
    res["kunquant_over_ours_same_alphas"] = kun["ms_median"] / o_ms if o_ms else None
    with open(a.out + ".tmp", "w", encoding="utf-8") as f:
        json.dump(res, f, indent=2)
        f.write("\n")
    os.replace(a.out + ".tmp", a.out)

    gb = 1e9
    print(f"panel {nd} dates x {na} assets")
    print("| run | alphas | at once ms | one by one ms | peak memory GB |")
    print("| --- | --- | --- | --- | --- |")
    for label, w in (("ours, all 101", res["ours_all_101"]), ("ours, KunQuant's set", res["ours_same_alphas"])):
        obo = w["one_by_one_ms_total"]
        print(f"| {label} | {w['expressions']} | {w['ms_median']:.0f} | {obo:.0f} | "
              f"{(w['peak_rss_bytes'] or 0) / gb:.2f} RSS ({w['peak_live_bytes'] / gb:.2f} live) |"
              if obo is not None else
              f"| {label} | {w['expressions']} | {w['ms_median']:.0f} | - | {(w['peak_rss_bytes'] or 0) / gb:.2f} |")
    print(f"| KunQuant {kun['version']} | {kun['alphas']} | {kun['ms_median']:.0f} | - | "
          f"{kun['peak_rss_bytes'] / gb:.2f} RSS |")
    print(f"KunQuant / ours on the same alphas: {res['kunquant_over_ours_same_alphas']:.2f}x; wrote {a.out}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("subset")
    s.add_argument("--alphas", required=True)
    s.add_argument("--out", required=True)
    r = sub.add_parser("run")
    r.add_argument("--panel", required=True)
    r.add_argument("--ours-all", required=True)
    r.add_argument("--ours-subset", required=True)
    r.add_argument("--out", required=True)
    r.add_argument("--repeat", type=int, default=3)
    r.add_argument("--kun-cache", default="out/bench/kun-cache")
    r.add_argument("--assets", type=int, default=None)
    a = ap.parse_args()
    cmd_subset(a) if a.cmd == "subset" else cmd_run(a)


if __name__ == "__main__":
    main()
