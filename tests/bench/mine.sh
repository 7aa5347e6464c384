#!/usr/bin/env bash
# `make bench` item 3 (bench.md): mining end to end on csi500, GP against a random-search
# baseline given the same number of fitness evaluations, over several seeds. For each
# run: wall time, peak memory, how many planted alphas a library factor matches
# (|corr| >= 0.8 on the test split, measured by `fitness --library` on the planted
# expressions) and the library's best test RankIC. Results: out/bench/mining.json.
set -euo pipefail
REL=${REL:-target/release}
PANEL=${PANEL:-data/panel/csi500.arrow}
GT=${GT:-data/raw/ground_truth.json}
GENS=${GENS:-10}
POP=${POP:-200}
SEEDS=${SEEDS:-"1 2 3 4 5"}
MODES=${MODES:-"gp random"}
# Extra arguments (experiments), one token each: GP_EXTRA for gp-gen (e.g.
# --corr-pressure=2), FIT_EXTRA for fitness.
GP_EXTRA=${GP_EXTRA:-}
FIT_EXTRA=${FIT_EXTRA:-}
PY=${PY:-.venv-bench/bin/python}
OUT=${OUT:-out/bench/mine}
JSON=${JSON:-out/bench/mining.json}
rm -rf "$OUT" && mkdir -p "$OUT"
"$PY" -c "import json,sys; [print(a['name'], '=', a['expression']) for a in json.load(open('$GT'))['alphas']]" > "$OUT/planted.txt"

# Each run is `make mine`'s own loop (pipelines/mine.yaml, from gp-gen-000 on: the
# panel exists), in its own folder and with its own step records.
for seed in $SEEDS; do
  for mode in $MODES; do
    D="$OUT/$mode-$seed"
    mkdir -p "$D"
    sets=(--set "panel=$PANEL" --set "run=$D" --set "ckpt=$D/ckpt" --set "gp_seed=$seed"
          --set "generations=$GENS" --set "pop=$POP")
    [ "$mode" = random ] && sets+=(--set search=--random)
    [ -n "$GP_EXTRA" ] && sets+=(--set "gp_extra=$GP_EXTRA")
    [ -n "$FIT_EXTRA" ] && sets+=(--set "fitness_extra=$FIT_EXTRA")
    start=$(date +%s.%N)
    /usr/bin/time -f "%M" -o "$D/rss" "$REL/pipeline" run pipelines/mine.yaml --tools "$REL" \
      --state "$D/state" --from gp-gen-000 --quiet "${sets[@]}" 2>> "$D/log"
    end=$(date +%s.%N)
    echo "$start $end" > "$D/wall"
    last=$(printf %03d $((GENS - 1)))
    ln -sf "libraries/lib-$last.parquet" "$D/lib.parquet"
    # Only the last snapshot's values are read again (each is ~300 MB on csi500).
    find "$D/libraries" -name 'lib-*.values.arrow' ! -name "lib-$last.values.arrow" -delete
    "$REL/fitness" --panel "$PANEL" --candidates "$OUT/planted.txt" --library "$D/lib.parquet" \
      --out "$D/planted.parquet" >/dev/null 2>> "$D/log"
    echo "seed $seed $mode done"
  done
done

"$PY" - "$OUT" "$GENS" "$POP" "$JSON" <<'PY'
import json, sys, glob, os
import numpy as np
import pandas as pd
out, gens, pop, js = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
rows = []
for d in sorted(glob.glob(f"{out}/*-*")):
    if not os.path.isdir(d):
        continue
    mode, seed = os.path.basename(d).split("-")
    p = pd.read_parquet(f"{d}/planted.parquet")
    t = p[p.split == "test"]
    lib = pd.read_parquet(f"{d}/lib.parquet")
    s, e = map(float, open(f"{d}/wall").read().split())
    rss = max(int(x) for x in open(f"{d}/rss").read().split())
    rows.append(dict(mode=mode, seed=int(seed), wall_s=round(e - s, 1), peak_rss_mb=round(rss / 1024),
                     planted=len(t), recovered=int((t.library_max_corr >= 0.8).sum()),
                     best_planted_corr=[round(x, 3) for x in t.library_max_corr],
                     library_size=len(lib), # signed as the factor is used: by its train sign (test is never used to choose)
                     best_test_rank_ic=round(float((lib.test_rank_ic_mean * np.sign(lib.train_rank_ic_mean)).max()), 4),
                     # LightGBM on the library, judged on the dates after its selection
                     model_test_rank_ic=json.load(open(f"{d}/model/summary.json"))["test_rank_ic"]["model"],
                     evaluations=gens * pop))
df = pd.DataFrame(rows)
print(df.drop(columns=["best_planted_corr"]).to_string(index=False))
summary = df.groupby("mode")[["recovered", "best_test_rank_ic", "wall_s"]].mean().round(3)
print("\nmean over seeds:\n" + summary.to_string())
json.dump(dict(runs=rows, mean=summary.reset_index().to_dict("records"), gens=gens, pop=pop),
          open(js, "w"), indent=1)
PY
