#!/usr/bin/env bash
# `make bench` item 3 (bench.md): mining end to end on csi500, GP against a random-search
# baseline given the same number of fitness evaluations, over several seeds. For each
# run: wall time, peak memory, how many planted alphas a library factor matches
# (|corr| >= 0.8 on the test split, measured by `fitness --library` on the planted
# expressions) and the library's best test RankIC. Results: out/bench/mining.json.
set -euo pipefail
REL=${REL:-target/release}
PANEL=${PANEL:-data/panel/csi500.arrow}
GT=${GT:-data/raw/csi500/ground_truth.json}
GENS=${GENS:-10}
POP=${POP:-200}
SEEDS=${SEEDS:-"1 2 3 4 5"}
MODES=${MODES:-"gp random"}
# Extra arguments (experiments), one token each: GP_EXTRA for gp-gen (e.g.
# --corr-pressure=2), FIT_EXTRA for fitness.
# HORIZONS: fitness --horizons for the runs (and the planted check, which must score
# like the library), e.g. 1,5.
HORIZONS=${HORIZONS:-}
# NICHE, MEMETIC: gp-gen --niche-pressure / --memetic (empty: the tool's default).
NICHE=${NICHE:-}
MEMETIC=${MEMETIC:-}
GP_EXTRA=${GP_EXTRA:-}
FIT_EXTRA=${FIT_EXTRA:-}
PY=${PY:-.venv-bench/bin/python}
# MODEL=0: stop after the last library-merge (no LightGBM model: its test RankIC is
# then not recorded); by default the run goes up to the model (backtest and report,
# which measure nothing here, are left out).
MODEL=${MODEL:-1}
if [ "$MODEL" = 0 ]; then TO="library-$(printf %03d $((GENS - 1)))"; else TO=model; fi
OUT=${OUT:-out/bench/mine}
JSON=${JSON:-out/bench/mining.json}
# KEEP=1: add these seeds' runs to an existing OUT (the table then covers all of them).
[ "${KEEP:-0}" = 1 ] || rm -rf "$OUT"
mkdir -p "$OUT"
"$PY" -c "import json,sys; [print(a['name'], '=', a['expression']) for a in json.load(open('$GT'))['alphas']]" > "$OUT/planted.txt"
# The planted alphas' values once, for the pool recovery (issue 36).
"$REL/expr" eval --panel "$PANEL" --file "$OUT/planted.txt" --no-cache --out "$OUT/planted_values.parquet" -q

# Each run is `make mine`'s own loop (pipelines/mine.yaml, from gp-gen-000 on: the
# panel exists), in its own folder and with its own step records.
for seed in $SEEDS; do
  for mode in $MODES; do
    D="$OUT/$mode-$seed"
    mkdir -p "$D"
    # The model is compared with the oracle only (the planted expressions, same folds):
    # `captured` = library / oracle test RankIC (issue 36).
    sets=(--set "panel=$PANEL" --set "run=$D" --set "ckpt=$D/ckpt" --set "gp_seed=$seed"
          --set "generations=$GENS" --set "pop=$POP" --set "raw=$(dirname "$GT")"
          --set compare=ground-truth)
    [ "$mode" = random ] && sets+=(--set search=--random)
    [ -n "$GP_EXTRA" ] && sets+=(--set "gp_extra=$GP_EXTRA")
    [ -n "$FIT_EXTRA" ] && sets+=(--set "fitness_extra=$FIT_EXTRA")
    [ -n "$HORIZONS" ] && sets+=(--set "horizons=$HORIZONS")
    [ -n "$NICHE" ] && sets+=(--set "niche_pressure=$NICHE")
    [ -n "$MEMETIC" ] && sets+=(--set "memetic=$MEMETIC")
    start=$(date +%s.%N)
    /usr/bin/time -f "%M" -o "$D/rss" "$REL/pipeline" run pipelines/mine.yaml --tools "$REL" \
      --state "$D/state" --from gp-gen-000 --to "$TO" --quiet "${sets[@]}" 2>> "$D/log"
    end=$(date +%s.%N)
    echo "$start $end" > "$D/wall"
    last=$(printf %03d $((GENS - 1)))
    ln -sf "libraries/lib-$last.parquet" "$D/lib.parquet"
    # Only the last snapshot's values are read again (each is ~300 MB on csi500).
    find "$D/libraries" -name 'lib-*.values.arrow' ! -name "lib-$last.values.arrow" -delete
    "$REL/fitness" --panel "$PANEL" --candidates "$OUT/planted.txt" --library "$D/lib.parquet" \
      ${HORIZONS:+--horizons "$HORIZONS"} --out "$D/planted.parquet" >/dev/null 2>> "$D/log"
    echo "seed $seed $mode done"
  done
done

"$PY" tests/bench/mine_runs.py "$OUT" "$GENS" "$POP" "$JSON" "$PANEL"
