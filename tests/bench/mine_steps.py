"""Where a bench-mine run's time went: seconds per tool over the mining steps (gp-gen,
fitness, library-merge) from the runner's step records, and candidates per minute
through them (issue 36's throughput figure). Usage: mine_steps.py RUN_DIR... (each with
state/pipeline/mine/*.json and candidates/gen-*.parquet)."""
import glob, json, os, sys
import pyarrow.parquet as pq

for d in sys.argv[1:]:
    secs = {}
    for f in glob.glob(f"{d}/state/pipeline/mine/*.json"):
        r = json.load(open(f))
        if "tool" in r and "seconds" in r:
            secs[r["tool"]] = secs.get(r["tool"], 0.0) + r["seconds"]
    n = sum(pq.read_metadata(f).num_rows for f in glob.glob(f"{d}/candidates/gen-*[0-9].parquet"))
    mining = sum(v for k, v in secs.items() if k in ("gp-gen", "fitness", "library-merge"))
    # FULL passes saved by value fingerprints: candidates marked `equivalent`, against
    # those that went on to the FULL pass.
    eq = full = 0
    for f in glob.glob(f"{d}/candidates/gen-*.fitness.parquet"):
        t = pq.read_table(f, columns=["candidate", "status", "pass"]).to_pandas().drop_duplicates("candidate")
        eq += int(t.status.str.startswith("equivalent").sum())
        full += int((t["pass"] == "full").sum())
    print(f"{os.path.basename(d)}: {n} candidates, mining {mining:.1f} s "
          f"({60 * n / mining:.0f}/min): " + ", ".join(f"{k} {v:.1f} s" for k, v in sorted(secs.items()))
          + f"; {full} FULL passes, {eq} equivalent skipped ({100 * eq / max(1, eq + full):.1f} % saved)")
