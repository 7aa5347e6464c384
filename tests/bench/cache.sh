#!/usr/bin/env bash
# `make bench-cache` (issue 7): one GP generation scored by `fitness` (full pass) on the
# `full` panel at horizons 1, 5 and 10 (three runs of the same workload), without and
# with the materialized sub-expression cache, beside what `cache-plan --runs 3`
# predicted. Generation 1 is bred from a scored generation 0, so it shares building
# blocks the way a running search does. (Scored once, --runs 1, the planner caches
# nothing on `full`: writing a 200 MB entry costs more than the shared nodes save.)
# Results: out/bench/cache.json.
set -euo pipefail
REL=${REL:-target/release}
PANEL=${PANEL:-data/panel/full.arrow}
POP=${POP:-200}
HORIZONS=${HORIZONS:-"1 5 10"}
RUNS=$(echo $HORIZONS | wc -w)
PY=${PY:-.venv-bench/bin/python}
OUT=${OUT:-out/bench/cache}
rm -rf "$OUT" && mkdir -p "$OUT"
C="$OUT/cache"

"$REL/gp-gen" --panel "$PANEL" --seed 1 --pop "$POP" --state "$OUT/state" --out "$OUT/gen-000.parquet" 2> "$OUT/log"
"$REL/fitness" --panel "$PANEL" --candidates "$OUT/gen-000.parquet" --horizon 1 --fast --no-cache \
  --out "$OUT/gen-000.fitness.parquet" > /dev/null 2>> "$OUT/log"
"$REL/gp-gen" --panel "$PANEL" --seed 1 --pop "$POP" --state "$OUT/state" --prev "$OUT/gen-000.parquet" \
  --prev-fitness "$OUT/gen-000.fitness.parquet" --out "$OUT/gen-001.parquet" 2>> "$OUT/log"

/usr/bin/time -f "%e %M" -o "$OUT/plan.time" "$REL/cache-plan" --exprs "$OUT/gen-001.parquet" \
  --panel "$PANEL" --budget 8GiB --runs "$RUNS" --out "$OUT/manifest.json" > /dev/null 2> "$OUT/plan.log"
/usr/bin/time -f "%e %M" -o "$OUT/materialize.time" "$REL/cache-materialize" --manifest "$OUT/manifest.json" \
  --panel "$PANEL" --out "$C" --report "$OUT/materialize.json" > /dev/null 2> "$OUT/materialize.log"
for mode in without with; do
  flag="--no-cache"; [ "$mode" = with ] && flag="--cache $C"
  : > "$OUT/fitness-$mode.log"
  for h in $HORIZONS; do
    /usr/bin/time -f "%e %M" -a -o "$OUT/fitness-$mode.time" "$REL/fitness" --panel "$PANEL" \
      --candidates "$OUT/gen-001.parquet" --horizon "$h" $flag --out "$OUT/fitness-$mode-h$h.parquet" \
      > /dev/null 2>> "$OUT/fitness-$mode.log"
  done
done
for h in $HORIZONS; do cmp "$OUT/fitness-without-h$h.parquet" "$OUT/fitness-with-h$h.parquet"; done
echo "fitness output identical with and without the cache"

"$PY" - "$OUT" "$HORIZONS" <<'PY'
import json, re, sys
out = sys.argv[1]
m = json.load(open(f"{out}/manifest.json"))
t = m["totals"]
def fit(mode):
    log = open(f"{out}/fitness-{mode}.log").read()
    full = re.findall(r"FULL: (\d+) candidates in ([\d.]+) s .*?evaluate ([\d.]+) s, score ([\d.]+) s", log)
    times = [l.split() for l in open(f"{out}/fitness-{mode}.time").read().splitlines() if l.strip()]
    cache = [l for l in log.splitlines() if l.startswith("cache ")]
    return dict(runs=len(full), candidates=int(full[0][0]), full_pass_s=sum(float(f[1]) for f in full),
                evaluate_s=sum(float(f[2]) for f in full), score_s=sum(float(f[3]) for f in full),
                wall_s=sum(float(t[0]) for t in times), peak_rss_mb=round(max(int(t[1]) for t in times) / 1024),
                cache=cache)
a, b = fit("without"), fit("with")
mat = json.load(open(f"{out}/materialize.json"))
plan_s = float(open(f"{out}/plan.time").read().split()[0])
r = dict(
    panel=m["panel"], chosen=t["chosen"], bytes=t["bytes"], shared_nodes=t["shared_nodes"], nodes=t["nodes"],
    predicted=dict(compute_without_s=t["workload_ms_without"] / 1e3, compute_with_s=t["workload_ms_with"] / 1e3,
                   saving_s=(t["workload_ms_without"] - t["workload_ms_with"]) / 1e3,
                   materialize_s=t["materialize_ms"] / 1e3, net_s=t["net_saving_ms"] / 1e3),
    measured=dict(without=a, with_cache=b, evaluate_saving_s=round(a["evaluate_s"] - b["evaluate_s"], 2),
                  full_pass_saving_s=round(a["full_pass_s"] - b["full_pass_s"], 2),
                  materialize_s=mat["seconds"], plan_s=plan_s,
                  net_s=round(a["full_pass_s"] - b["full_pass_s"] - mat["seconds"], 2),
                  ratio_full_pass=round(a["full_pass_s"] / b["full_pass_s"], 3),
                  ratio_evaluate=round(a["evaluate_s"] / b["evaluate_s"], 3)),
)
json.dump(r, open("out/bench/cache.json", "w"), indent=1)
p, s = r["predicted"], r["measured"]
print(f"{t['expressions']} candidates, {t['nodes']} operator nodes ({t['shared_nodes']} shared by 2+ batches); "
      f"cached {t['chosen']} nodes, {t['bytes']/1e9:.2f} GB")
print(f"{'':28}{'predicted':>12}{'measured':>12}")
print(f"over {a['runs']} runs (horizons {sys.argv[2] if len(sys.argv) > 2 else ''})")
print(f"{'expression compute, no cache':28}{p['compute_without_s']:>11.1f}s{a['evaluate_s']:>11.1f}s")
print(f"{'expression compute, cache':28}{p['compute_with_s']:>11.1f}s{b['evaluate_s']:>11.1f}s")
print(f"{'saving, all runs':28}{p['saving_s']:>11.1f}s{s['evaluate_saving_s']:>11.1f}s")
print(f"{'materialize (once)':28}{p['materialize_s']:>11.1f}s{s['materialize_s']:>11.1f}s")
print(f"fitness full pass: {a['full_pass_s']:.1f} s without, {b['full_pass_s']:.1f} s with the cache "
      f"(x{s['ratio_full_pass']}); expression evaluation x{s['ratio_evaluate']}; net of materializing {s['net_s']:+.1f} s")
print("\n".join(b["cache"]))
PY
