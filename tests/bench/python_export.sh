#!/usr/bin/env bash
# Issue 25's figure: a library's factors on `full` by `expr eval` (release) and by the
# module `expr python` writes (Polars + polars_ta, the tests' venv), same panel, same run.
# usage: tests/bench/python_export.sh LIBRARY.parquet [PANEL]   (not run by CI)
set -euo pipefail
cd "$(dirname "$0")/../.."
lib=${1:?library parquet}; panel=${2:-data/panel/full.arrow}
out=out/bench/python-export; mkdir -p "$out"
R=target/release; PY=.venv/bin/python
$PY - "$lib" "$out/lib.txt" <<'PY'
import sys, polars as pl
t = pl.read_parquet(sys.argv[1])
open(sys.argv[2], "w").writelines(f"f_{i[:16]} = {e}\n" for i, e in zip(t["id"], t["expression"]))
PY
$R/expr python --library "$lib" --out "$out/lib.py" -q
/usr/bin/time -f "expr eval: %e s wall, %M KB peak" $R/expr eval --panel "$panel" --file "$out/lib.txt" \
  --out "$out/engine.parquet" --no-cache -q
/usr/bin/time -f "python module (incl. reading the panel): %e s wall, %M KB peak" $PY - "$out/lib.py" "$panel" <<'PY'
import importlib.util, sys, time
import polars as pl
spec = importlib.util.spec_from_file_location("lib", sys.argv[1]); lib = importlib.util.module_from_spec(spec)
spec.loader.exec_module(lib)
t0 = time.perf_counter(); df = pl.read_ipc(sys.argv[2]); t1 = time.perf_counter()
v = lib.compute(df); t2 = time.perf_counter()
print(f"python module: read {t1 - t0:.1f} s, compute {t2 - t1:.1f} s for {len(lib.FACTORS)} factors on {df.height} rows")
PY
