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
# Extra arguments (experiments): GP_ARGS for gp-gen, FIT_ARGS for fitness.
GP_ARGS=${GP_ARGS:-}
FIT_ARGS=${FIT_ARGS:-}
PY=${PY:-.venv-bench/bin/python}
OUT=${OUT:-out/bench/mine}
JSON=${JSON:-out/bench/mining.json}
# FIT_LIB=0: fitness scores without the library (selection on raw train RankIC).
FIT_LIB=${FIT_LIB:-1}
rm -rf "$OUT" && mkdir -p "$OUT"
"$PY" -c "import json,sys; [print(a['name'], '=', a['expression']) for a in json.load(open('$GT'))['alphas']]" > "$OUT/planted.txt"

for seed in $SEEDS; do
  for mode in $MODES; do
    D="$OUT/$mode-$seed"
    mkdir -p "$D/c"
    flag=""; [ "$mode" = random ] && flag="--random"
    start=$(date +%s.%N)
    prev=""
    for g in $(seq 0 $((GENS - 1))); do
      n=$(printf %03d "$g")
      # The library so far: gp-gen breeds away from its members, fitness scores their
      # near-copies 0 (|corr| >= 0.7), library-merge absorbs this generation.
      lib=""; [ -e "$D/lib/current.parquet" ] && lib="--library $D/lib/current.parquet"
      /usr/bin/time -f "%M" -a -o "$D/rss" "$REL/gp-gen" --panel "$PANEL" --seed "$seed" --pop "$POP" $flag $GP_ARGS \
        --state "$D/state" $prev $lib --out "$D/c/gen-$n.parquet" 2>> "$D/log"
      /usr/bin/time -f "%M" -a -o "$D/rss" "$REL/fitness" --panel "$PANEL" --candidates "$D/c/gen-$n.parquet" \
        --horizon 1 --fast $([ "$FIT_LIB" = 1 ] && echo $lib) $FIT_ARGS --out "$D/c/gen-$n.fitness.parquet" >/dev/null 2>> "$D/log"
      /usr/bin/time -f "%M" -a -o "$D/rss" "$REL/library-merge" --fitness "$D/c/gen-$n.fitness.parquet" $lib \
        --panel "$PANEL" --max-size 50 --out "$D/lib/lib-$n.parquet" >/dev/null 2>> "$D/log"
      prev="--prev $D/c/gen-$n.parquet --prev-fitness $D/c/gen-$n.fitness.parquet"
      # Only the current snapshot's values are read again (each is ~300 MB on csi500).
      if [ "$g" -gt 0 ]; then rm -f "$D/lib/lib-$(printf %03d $((g - 1))).values.arrow"; fi
    done
    ln -sf "lib/current.parquet" "$D/lib.parquet"
    end=$(date +%s.%N)
    echo "$start $end" > "$D/wall"
    "$REL/fitness" --panel "$PANEL" --candidates "$OUT/planted.txt" --horizon 1 --library "$D/lib.parquet" \
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
                     evaluations=gens * pop))
df = pd.DataFrame(rows)
print(df.drop(columns=["best_planted_corr"]).to_string(index=False))
summary = df.groupby("mode")[["recovered", "best_test_rank_ic", "wall_s"]].mean().round(3)
print("\nmean over seeds:\n" + summary.to_string())
json.dump(dict(runs=rows, mean=summary.reset_index().to_dict("records"), gens=gens, pop=pop),
          open(js, "w"), indent=1)
PY
