#!/usr/bin/env python3
"""`make bench-ops`: every registry operator alone on a panel, 1 and 2 threads, beside
the streaming floor measured in the same run (`expr bench --floor`: read one matrix,
write one) and, with --peers, the fastest peer's time for the same operator on the same
panel (tests/bench/peers.py on out/bench/ops.txt: numpy+bottleneck, polars_ta, KunQuant,
all cores, values compared with ours). Prints a Markdown table (ns per cell; ratio to the
floor at the same thread count; best peer / ours) and writes it to --out.

usage: ops_table.py --one out/bench/ops-1t.json --two out/bench/ops-2t.json \
                    --ops out/bench/ops-list.txt [--peers out/bench/ops-peers.json] \
                    --out out/bench/ops.md
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
    ap.add_argument("--peers", help="peers.py output for the same operator lines")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    one, two = json.load(open(a.one)), json.load(open(a.two))
    # name -> (best peer, its ms, value status of every peer that ran it)
    peer = {}
    if a.peers:
        for r in json.load(open(a.peers))["exprs"]:
            bp = r.get("best_peer")
            if bp:
                bad = [f"{k} {v['compare']['status']}" for k, v in r["peers"].items()
                       if v.get("compare", {}).get("status") not in (None, "ok")]
                peer[r["name"]] = (bp, r["peers"][bp]["ms_median"], bad)
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
        f"| operator | kind | 1 thread ns/cell | {two['threads']} threads ns/cell | x floor (1) | x floor ({two['threads']}) | bound | best peer ns/cell | best peer / ours |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    over, ratios, peer_ratios, slower = [], [], [], []
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
        pcell, pratio = "n/a", "n/a"
        if n in peer:
            bp, pms, bad = peer[n]
            pr = pms / t2[n]
            peer_ratios.append(pr)
            if pr < 1:
                slower.append(f"{n[3:]} ({bp})")
            pcell = f"{ns(pms):.2f} ({bp})"
            pratio = f"{pr:.1f}x" + (f" (values: {', '.join(bad)})" if bad else "")
        lines.append(
            f"| `{n[3:]}` | {kinds.get(n, '')} | {ns(t1[n]):.2f} | {ns(t2[n]):.2f} | {r1:.1f} | {r2:.1f} | {flag} | {pcell} | {pratio} |"
        )
    gm = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
    lines += [
        "",
        f"{len(ratios)} operators; geometric mean {gm:.2f}x the floor on {two['threads']} threads; "
        f"{len(over)} over their bound: {', '.join(over) if over else 'none'}.",
    ]
    if peer_ratios:
        pg = math.exp(sum(math.log(r) for r in peer_ratios) / len(peer_ratios))
        lines.append(
            f"Best peer / ours on the {len(peer_ratios)} operators a peer has: geometric mean {pg:.1f}x, "
            f"slowest {min(peer_ratios):.1f}x; operators where a peer is faster: "
            f"{', '.join(slower) if slower else 'none'}."
        )
    text = "\n".join(lines) + "\n"
    open(a.out, "w").write(text)
    print(text)


if __name__ == "__main__":
    main()
