#!/usr/bin/env bash
# The budget curve (issue 36): GP and random search at several evaluation budgets, from
# one run per seed and mode — the library after G generations is the G × POP budget's.
# For each budget: the captured share (LightGBM on the library vs on the planted
# expressions, same folds), pool recovery and per-factor recovery, mean ± se over seeds
# (tests/bench/mine_runs.py), then a table and a chart (out/bench/budget*.{md,svg}).
#   SEEDS="1 2 3" BUDGETS="10 25 50" tests/bench/budget.sh          # 2k, 5k, 10k at POP 200
#   PANEL=data/panel/hard.arrow GT=data/raw/hard/ground_truth.json OUT=out/bench/budget-hard ...
set -euo pipefail
REL=${REL:-target/release}
PANEL=${PANEL:-data/panel/csi500.arrow}
GT=${GT:-data/raw/csi500/ground_truth.json}
POP=${POP:-200}
SEEDS=${SEEDS:-"1 2 3"}
MODES=${MODES:-"gp random"}
BUDGETS=${BUDGETS:-"10 25 50"}
HORIZONS=${HORIZONS:-1,5}
PY=${PY:-.venv-bench/bin/python}
OUT=${OUT:-out/bench/budget}
# KEEP=1: add seeds to an existing OUT (one seed per call keeps each experiment short).
[ "${KEEP:-0}" = 1 ] || rm -rf "$OUT"
mkdir -p "$OUT"
MAXG=$(for b in $BUDGETS; do echo "$b"; done | sort -n | tail -1)
"$PY" -c "import json; [print(a['name'], '=', a['expression']) for a in json.load(open('$GT'))['alphas']]" > "$OUT/planted.txt"
[ -f "$OUT/planted_values.parquet" ] || "$REL/expr" eval --panel "$PANEL" --file "$OUT/planted.txt" --no-cache --out "$OUT/planted_values.parquet" -q

for seed in $SEEDS; do
  for mode in $MODES; do
    D="$OUT/runs/$mode-$seed"
    rm -rf "$D" && mkdir -p "$D"
    sets=(--set "panel=$PANEL" --set "run=$D" --set "ckpt=$D/ckpt" --set "gp_seed=$seed"
          --set "generations=$MAXG" --set "pop=$POP" --set "raw=$(dirname "$GT")"
          --set "horizons=$HORIZONS")
    [ "$mode" = random ] && sets+=(--set search=--random)
    start=$(date +%s.%N)
    /usr/bin/time -f "%M" -o "$D/rss" "$REL/pipeline" run pipelines/mine.yaml --tools "$REL" \
      --state "$D/state" --from gp-gen-000 --to "library-$(printf %03d $((MAXG - 1)))" --quiet "${sets[@]}" 2>> "$D/log"
    end=$(date +%s.%N)
    for b in $BUDGETS; do
      last=$(printf %03d $((b - 1)))
      B="$OUT/b$b/$mode-$seed"
      mkdir -p "$B"
      ln -sf "$(realpath "$D/libraries/lib-$last.parquet")" "$B/lib.parquet"
      cp "$D/rss" "$B/rss"
      echo "$start $end" > "$B/wall"
      "$REL/lgbm-train" --library "$B/lib.parquet" --panel "$PANEL" --compare ground-truth \
        --ground-truth "$GT" --out "$B/model" -q 2>> "$D/log" >/dev/null
      "$REL/fitness" --panel "$PANEL" --candidates "$OUT/planted.txt" --library "$B/lib.parquet" \
        --horizons "$HORIZONS" --out "$B/planted.parquet" -q >/dev/null 2>> "$D/log"
    done
    # Only the budgets' snapshots keep their values (each is ~300 MB on csi500).
    keep=$(for b in $BUDGETS; do printf 'lib-%03d.values.arrow\n' $((b - 1)); done)
    find "$D/libraries" -name 'lib-*.values.arrow' | while read -r f; do
      grep -qx "$(basename "$f")" <<< "$keep" || rm -f "$f"
    done
    echo "seed $seed $mode done"
  done
done

for b in $BUDGETS; do
  cp "$OUT/planted_values.parquet" "$OUT/b$b/" 2>/dev/null || true
  "$PY" tests/bench/mine_runs.py "$OUT/b$b" "$b" "$POP" "$OUT/b$b.json" "$PANEL" > "$OUT/b$b.txt"
done
"$PY" - "$OUT" "$POP" $BUDGETS <<'PY'
import json, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
out, pop, budgets = sys.argv[1], int(sys.argv[2]), [int(b) for b in sys.argv[3:]]
rows = []
for b in budgets:
    for m in json.load(open(f"{out}/b{b}.json"))["mean"]:
        rows.append(dict(evals=b * pop, **m))
lines = ["| evaluations | search | captured (mean ± se) | pool recovered | per-factor recovered | runs |",
         "| --- | --- | --- | --- | --- | --- |"]
for r in rows:
    n = sum(1 for x in json.load(open(f"{out}/b{r['evals'] // pop}.json"))["runs"] if x["mode"] == r["mode"])
    lines.append(f"| {r['evals']} | {r['mode']} | {r['captured_mean']:.3f} ± {r['captured_sem']:.3f} | "
                 f"{r['pool_recovered_mean']:.2f} ± {r['pool_recovered_sem']:.2f} | "
                 f"{r['recovered_mean']:.2f} ± {r['recovered_sem']:.2f} | {n} |")
open(f"{out}.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
fig, ax = plt.subplots(1, 2, figsize=(9, 3.5))
for mode in sorted({r["mode"] for r in rows}):
    rs = [r for r in rows if r["mode"] == mode]
    x = [r["evals"] for r in rs]
    ax[0].errorbar(x, [r["captured_mean"] for r in rs], yerr=[2 * r["captured_sem"] for r in rs],
                   marker="o", capsize=3, label=mode)
    ax[1].errorbar(x, [r["pool_recovered_mean"] for r in rs], yerr=[2 * r["pool_recovered_sem"] for r in rs],
                   marker="o", capsize=3, label=mode)
ax[0].set(xlabel="evaluations", ylabel="captured share (±2 se)", xscale="log")
ax[1].set(xlabel="evaluations", ylabel="planted alphas pool-recovered (±2 se)", xscale="log")
ax[0].legend()
fig.tight_layout()
fig.savefig(f"{out}.svg")
print(f"wrote {out}.md and {out}.svg")
PY
