"""The module `expr python` writes, run with Polars + polars_ta, against the engine.

usage: check_python_export.py MODULE.py PANEL EVAL_PARQUET [--expr BIN [--max-explained N]]

EVAL_PARQUET is `expr eval` of the same expressions on PANEL. Every factor must agree
to 1e-9 relative, NaN where NaN: relative to max(1, |engine|, the factor's median
|value|), the last so that a factor on the scale of `cap` (1e10) is not failed for a
residual of 1e-7 that is rounding in both implementations.

With --expr, a factor that differs is taken apart: every sub-expression is evaluated
by the engine (`expr eval`) and by a module of its own (`expr python`), and the first
nodes that differ while their inputs agree are named. A difference is *explained* only
when each such node is an operator that turns last-bit differences of agreeing inputs
into different numbers, and (but for the degenerate case) the share of cells is at
most 5 %:
  - an ordering (rank, ts_rank, group_rank, ts_argmax, ts_argmin): two values that are
    equal in exact arithmetic come out tied in one summation order and a few ulps
    apart in the other, and the rank moves by a step;
  - an ordering of an input that is zero within rounding everywhere (an expression
    identically 0 in exact arithmetic, e.g. group_mean(group_neutralize(x, g), g)):
    every digit is rounding, any share of cells;
  - a normalisation of a window or value that is zero or constant within rounding
    (ts_zscore, cs_zscore, ts_corr, ts_rsquare, ts_skew, ts_kurt, sqrt, log, div, inv):
    noise divided by noise.
Anything else fails the check, as does an explained factor beyond --max-explained.
Prints one line per factor, the explanations, and the module's evaluation time.
"""
import argparse
import importlib.util
import os
import time

import numpy as np
import polars as pl

import afref

ap = argparse.ArgumentParser()
ap.add_argument("module")
ap.add_argument("panel")
ap.add_argument("eval")
ap.add_argument("--expr", help="the expr binary, to take differing factors apart")
ap.add_argument("--max-explained", type=int, default=10)
a = ap.parse_args()




def load(path, name="lib"):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def differ(g, e):
    """Cells where the module's value g and the engine's e disagree (see the docstring)."""
    scale = max(1.0, float(np.nanmedian(np.abs(e)))) if np.isfinite(e).any() else 1.0
    bad, rel, both = afref.compare(g / scale, e / scale, 1e-9)
    return bad, rel, both


def column(frame, name):
    return frame.get_column(name).cast(pl.Float64).fill_null(np.nan).to_numpy()


def calls(text):
    """(canonical text, op, [child call texts]) of every call in a canonical
    expression (function-call syntax, no spaces), children before parents."""
    out = []

    def walk(i):
        j = i
        while j < len(text) and text[j] not in "(),":
            j += 1
        if j == len(text) or text[j] != "(":
            return j, None
        op, kids, k = text[i:j], [], j + 1
        while True:
            k2, kid = walk(k)
            if kid:
                kids.append(kid)
            if text[k2] == ")":
                break
            k = k2 + 1
        out.append((text[i:k2 + 1], op, kids))
        return k2 + 1, text[i:k2 + 1]

    walk(0)
    return out


ORDERING = {"rank", "ts_rank", "group_rank", "ts_argmax", "ts_argmin"}
NORMALISING = {"ts_zscore", "cs_zscore", "ts_corr", "ts_rsquare", "ts_skew", "ts_kurt", "sqrt", "log", "div", "inv"}


def explain(names):
    """For each differing factor, (explained?, text) from its sub-expressions."""
    import subprocess
    import tempfile

    tmp = tempfile.mkdtemp()
    nodes = {}
    for n in names:
        for text, op, kids in calls(lib.FACTORS[n]):
            nodes.setdefault(text, (op, kids))
    label = {t: f"n{i}" for i, t in enumerate(nodes)}
    src = os.path.join(tmp, "nodes.txt")
    with open(src, "w") as f:
        f.writelines(f"{label[t]} = {t}\n" for t in nodes)
    subprocess.run([a.expr, "eval", "--panel", a.panel, "--file", src, "--out", os.path.join(tmp, "nodes.parquet"), "--no-cache", "-q"], check=True, cwd=tmp)
    subprocess.run([a.expr, "python", "--file", src, "--out", os.path.join(tmp, "nodes.py"), "-q"], check=True, cwd=tmp)
    eng = pl.read_parquet(os.path.join(tmp, "nodes.parquet")).with_columns(pl.col("code").cast(pl.String))
    mod = want.select("date", "code").join(load(os.path.join(tmp, "nodes.py"), "nodes").compute(df), on=["date", "code"], how="left", maintain_order="left")
    bad = {t: differ(column(mod, label[t]), column(eng, label[t]))[0] for t in nodes}

    def zero(t):
        """The engine's values of node t are zero within rounding (|x| < 1e-9) on 99 % of
        its cells: an expression that is identically 0 in exact arithmetic, such as
        group_mean(group_neutralize(x, g), g), whose every digit is rounding."""
        v = column(eng, label[t])
        v = v[np.isfinite(v)]
        return len(v) > 0 and (np.abs(v) < 1e-9).mean() >= 0.99
    out = {}
    for n in names:
        first = [(t, op) for t, op, kids in calls(lib.FACTORS[n]) if bad[t].any() and not any(bad[k].any() for k in kids)]
        why = []
        ok = bool(first)
        for t, op in first:
            share = bad[t].mean()
            kids = nodes[t][1]
            if op in ORDERING and kids and all(zero(k) for k in kids):
                kind = "ordering an input that is zero within rounding (a degenerate factor)"
            elif op in ORDERING and share <= 0.05:
                kind = "ordering of near-ties"
            elif op in NORMALISING and share <= 0.05:
                kind = "normalising a constant-within-rounding input"
            else:
                kind = None
            ok &= kind is not None
            why.append(f"{t}: {int(bad[t].sum())} cells ({share:.2%}), inputs agree; {kind or 'NOT AN AMPLIFYING OPERATOR'}")
        out[n] = (ok, "; ".join(why) or "no sub-expression differs on its own")
    return out


lib = load(a.module)
df = pl.read_ipc(a.panel)
t0 = time.perf_counter()
got = lib.compute(df)
secs = time.perf_counter() - t0
want = pl.read_parquet(a.eval).with_columns(pl.col("code").cast(pl.String))
codes = want.get_column("code").to_numpy()
dates = want.get_column("date").to_numpy()
# the module sorts by (date, code); the engine writes the panel's (date, asset) order
got = want.select("date", "code").join(got, on=["date", "code"], how="left", maintain_order="left")
assert got.height == want.height, (got.height, want.height)

fails, differing = [], []
for name in lib.FACTORS:
    g, e = column(got, name), column(want, name)
    bad, rel, both = differ(g, e)
    n = int(bad.sum())
    print(f"{name:20s} values={int(both.sum()):7d} max_rel={rel.max() if both.any() else 0:.1e} {'ok' if n == 0 else f'{n} cells differ'}  {lib.FACTORS[name]}")
    if n:
        i = int(np.argmax(bad))
        differing.append(name)
        fails.append(f"{name} = {lib.FACTORS[name]}: {n} cells differ, first at row {i} ({dates[i]}, {codes[i]}): "
                     f"python {g[i]!r} vs engine {e[i]!r}")
print(f"module evaluation: {secs:.3f} s for {len(lib.FACTORS)} factors on {df.height} rows")
print(f"{len(lib.FACTORS) - len(differing)} of {len(lib.FACTORS)} factors match the engine")
if differing and a.expr:
    why = explain(differing)
    fails = [f for f, n in zip(fails, differing) if not why[n][0]]
    for n in differing:
        print(f"  {'explained' if why[n][0] else 'UNEXPLAINED'} {n} = {lib.FACTORS[n]}: {why[n][1]}")
    if len(differing) - len(fails) > a.max_explained:
        fails.append(f"{len(differing) - len(fails)} factors differ for explained reasons, more than --max-explained {a.max_explained}")
if fails:
    print("\n".join(fails))
    raise SystemExit(1)
print("every factor matches the engine or differs for an explained reason")
