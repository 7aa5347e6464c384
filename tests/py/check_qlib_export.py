"""Real Qlib (pyqlib 0.9.7) reading a `qlib-export` folder.

usage: check_qlib_export.py fields QDIR PANEL
    D.features of every exported field equals the panel (built with --adjust backward
    from the same raw folder) on every cell of each instrument's span, to float32.
usage: check_qlib_export.py alpha158 QDIR EVAL_PARQUET [--min-match 20]
    Alpha158 features computed by Qlib itself on the export equal `expr eval
    --dialect qlib` on the panel to 1e-5 relative (Qlib computes in float32).
usage: check_qlib_export.py at QDIR SYMBOL DATE FIELD
    Prints Qlib's value of $FIELD for one instrument and date.
"""
import argparse
import io
import contextlib
import re
import sys

import numpy as np
import pandas as pd

import afref


def init(qdir):
    import qlib
    with contextlib.redirect_stderr(io.StringIO()):
        qlib.init(provider_uri=qdir, region="cn", kernels=1)
    from qlib.data import D
    return D


def code_of(sym):
    m = re.fullmatch(r"(SH|SZ|BJ)(\d{6})", sym.upper())
    return f"{m.group(2)}.{m.group(1)}" if m else sym.upper()


def features(qdir, exprs, names):
    D = init(qdir)
    df = D.features(D.instruments("all"), exprs, freq="day")
    df.columns = names
    df = df.reset_index()
    df["code"] = df["instrument"].map(code_of)
    return df.rename(columns={"datetime": "date"}).set_index(["date", "code"]).drop(columns="instrument")


def fields(qdir, panel):
    _, w = afref.read_panel(panel)
    names = ["open", "high", "low", "close", "volume", "vwap", "amount", "change"]
    got = features(qdir, [f"${n}" for n in names], names)
    n = 0
    for f in names:
        want = w["returns" if f == "change" else f].stack(future_stack=True)
        want.index.names = ["date", "code"]
        want = want.reindex(got.index)
        g = got[f].to_numpy(np.float64)
        x = want.to_numpy(np.float64).astype(np.float32).astype(np.float64)
        same = (g == x) | (np.isnan(g) & np.isnan(x))
        if not same.all():
            i = np.flatnonzero(~same)[0]
            sys.exit(f"${f} differs on {(~same).sum()} cells, first {got.index[i]}: qlib {g[i]} vs panel {x[i]}")
        n += len(g)
    print(f"fields: {n} values equal the panel's (float32), {len(got)} instrument-days")


def alpha158(qdir, ev, min_match):
    fx = [l.split(" = ", 1) for l in open("../../tools/af-expr/sets/alpha158.txt", encoding="utf-8")
          if " = " in l and not l.startswith("#")]
    ours = pd.read_parquet(ev)
    ours["date"] = pd.to_datetime(ours["date"])
    ours = ours.set_index(["date", "code"])
    got = features(qdir, [e.strip() for _, e in fx], [n.strip() for n, _ in fx])
    ours = ours.reindex(got.index)
    matched, rows = 0, []
    for name, _ in fx:
        name = name.strip()
        q = got[name].to_numpy(np.float64)
        o = ours[name].to_numpy(np.float64)
        both = np.isfinite(q) & np.isfinite(o)
        nan_ok = (np.isnan(q) == np.isnan(o)).mean()
        scale = np.nanmax(np.abs(o)) if np.isfinite(o).any() else 1.0
        err = np.abs(q - o)[both] / np.maximum(np.abs(o[both]), 1e-3 * scale)
        e = err.max() if err.size else 0.0
        ok = e <= 1e-5 and nan_ok == 1.0
        matched += ok
        rows.append(f"{'ok  ' if ok else 'diff'} {name:10s} max rel err {e:.2e} nan agreement {nan_ok:.4f}")
    print("\n".join(rows))
    print(f"{matched} Alpha158 features computed by Qlib on the export match ours to 1e-5")
    if matched < min_match:
        sys.exit(1)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("mode")
    ap.add_argument("args", nargs="*")
    ap.add_argument("--min-match", type=int, default=20)
    a = ap.parse_args()
    if a.mode == "fields":
        fields(*a.args)
    elif a.mode == "alpha158":
        alpha158(*a.args, a.min_match)
    elif a.mode == "at":
        qdir, sym, day, f = a.args
        D = init(qdir)
        df = D.features([sym], [f"${f}"], start_time=day, end_time=day, freq="day")
        print(float(df.iloc[0, 0]) if len(df) else "none")
