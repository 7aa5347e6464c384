#!/usr/bin/env python3
"""`make bench-ops`: every registry operator alone on a panel, 1 and 2 threads, beside
the streaming floor measured in the same run (`expr bench --floor`: read one matrix,
write one). Prints a Markdown table (ns per cell; ratio to the floor at the same thread
count) and writes it to --out.

usage: ops_table.py --one out/bench/ops-1t.json --two out/bench/ops-2t.json \
                    --ops out/bench/ops-list.txt --out out/bench/ops.md
Standard library only.
"""
import argparse
import json
import math

# Operators that sort (ranks, quantiles, medians): the bound is 6x the floor,
# 3x for the rest.
SORTING = ("rank", "quantile", "median", "winsorize")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--one", required=True)
    ap.add_argument("--two", required=True)
    ap.add_argument("--ops", required=True, help="`expr ops` output (name, args, kind, ...)")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    one, two = json.load(open(a.one)), json.load(open(a.two))
    cells = one["n_dates"] * one["n_assets"]
    kinds = {}
    for line in open(a.ops):
        parts = line.rstrip("\n").split("\t")
        if len(parts) >= 2:
            kinds["op_" + parts[0].split("(")[0]] = parts[1]
    t1 = {e["name"]: e["ms_median"] for e in one["exprs"]}
    t2 = {e["name"]: e["ms_median"] for e in two["exprs"]}
    f1, f2 = t1.pop("floor"), t2.pop("floor")
    ns = lambda ms: ms * 1e6 / cells
    lines = [
        f"Panel {one['panel']} ({one['n_dates']} x {one['n_assets']} = {cells:,} cells); "
        f"streaming floor {ns(f1):.2f} ns/cell on 1 thread ({f1:.1f} ms), "
        f"{ns(f2):.2f} on {two['threads']} ({f2:.1f} ms).",
        "",
        f"| operator | kind | 1 thread ns/cell | {two['threads']} threads ns/cell | x floor (1) | x floor ({two['threads']}) | bound |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    over, ratios = [], []
    for e in one["exprs"]:
        n = e["name"]
        if n == "floor" or n not in t2:
            continue
        r1, r2 = t1[n] / f1, t2[n] / f2
        bound = 6 if any(s in n for s in SORTING) else 3
        ratios.append(r2)
        flag = "ok" if r2 <= bound else f"**over {bound}x**"
        if r2 > bound:
            over.append(n[3:])
        lines.append(
            f"| `{n[3:]}` | {kinds.get(n, '')} | {ns(t1[n]):.2f} | {ns(t2[n]):.2f} | {r1:.1f} | {r2:.1f} | {flag} |"
        )
    gm = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
    lines += [
        "",
        f"{len(ratios)} operators; geometric mean {gm:.2f}x the floor on {two['threads']} threads; "
        f"{len(over)} over their bound: {', '.join(over) if over else 'none'}.",
    ]
    text = "\n".join(lines) + "\n"
    open(a.out, "w").write(text)
    print(text)


if __name__ == "__main__":
    main()
