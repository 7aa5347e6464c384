#!/usr/bin/env bash
# `make bench-model` (issue 35): the mined library against the field's standard on three
# markets — the synthetic csi500 (`make mine`), the hard planted market, and the public
# S&P 500 2009-2010 set (a PyPI package's data, as in the tests; no planted alphas, so no
# oracle) — each through pipelines/mine.yaml with `--compare alpha158,ground-truth`:
# test RankIC and top-k portfolio of library, Alpha158, library + Alpha158 and the
# oracle, and the seconds the comparison adds (the model step with and without it).
# Results: out/bench/model/<market>.txt (compare.txt) and out/bench/model.md.
set -euo pipefail
REL=${REL:-target/release}
OUT=${OUT:-out/bench/model}
GENS=${GENS:-10}
mkdir -p "$OUT"
run() { # name, then --set arguments
  local name=$1; shift
  "$REL/pipeline" run pipelines/mine.yaml --quiet --set name="$name" --set generations="$GENS" "$@"
  local m="out/runs/$name-seed1/model"
  cp "$m/compare.txt" "$OUT/$name.txt"
  # The model step alone, timed with and without the comparison (same library).
  local lib; lib=$(ls out/runs/$name-seed1/libraries/lib-*.parquet | sort | tail -1)
  local t0 t1 t2
  t0=$(date +%s.%N)
  "$REL/lgbm-train" --library "$lib" --panel "data/panel/$name.arrow" --out "$OUT/$name-plain" -q
  t1=$(date +%s.%N)
  "$REL/lgbm-train" --library "$lib" --panel "data/panel/$name.arrow" --compare alpha158,ground-truth \
    --ground-truth "data/raw/$name/ground_truth.json" --out "$OUT/$name-cmp" -q > /dev/null
  t2=$(date +%s.%N)
  python3 -c "import sys; a,b,c=map(float,sys.argv[1:]); print(f'model step: {b-a:.1f} s alone, {c-b:.1f} s with the comparison (+{c-b-(b-a):.1f} s)')" "$t0" "$t1" "$t2" >> "$OUT/$name.txt"
  { echo "### $name"; echo; echo '```'; cat "$OUT/$name.txt"; echo '```'; echo; } >> "$OUT/model.md"
}
rm -f "$OUT/model.md"
run csi500
run hard --set "fetch_args=--planted hard"
SP=${SP:-target/e2e/own-market}
if [ -f "$SP/bars.csv" ]; then
  run sp --set source=files --set "path=$SP/bars.csv" --set "mapping=$SP/map.yaml" \
    --set market=generic --set infer_splits=always --set "meta=$SP/sectors.csv"
else
  echo "no $SP/bars.csv (made by tests/foundation.rs own_market...): S&P 500 skipped" | tee -a "$OUT/model.md"
fi
cp "$OUT/model.md" out/bench/model.md
cat out/bench/model.md
