"""Summarise `make bench` item 2 from the logs `fitness` and alphalens_peer.py wrote."""
import json
import re
import sys

out_dir = sys.argv[1]


def parse(path):
    text = open(path).read()
    r = {}
    for m in re.finditer(r"(FAST|FULL): (\d+) candidates in ([\d.]+) s \(([\d.]+)/s\): setup ([\d.]+) s, "
                         r"evaluate ([\d.]+) s, score ([\d.]+) s", text):
        name, n, secs, _, setup, ev, sc = m.groups()
        n, secs, setup, ev, sc = int(n), float(secs), float(setup), float(ev), float(sc)
        r[name] = dict(candidates=n, seconds=secs, setup_s=setup, evaluate_s=ev, score_s=sc,
                       per_candidate_s=round((ev + sc) / n, 4), candidates_per_s=round(n / secs, 2))
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    r["peak_rss_mb"] = round(int(m.group(1)) / 1024) if m else None
    return r


both = parse(f"{out_dir}/fitness-both.log")
few = parse(f"{out_dir}/fitness-few.log")
peer = json.load(open(f"{out_dir}/alphalens.json"))
ours_few = few["FULL"]["seconds"] / few["FULL"]["candidates"]
peer_mean = sum(peer.values()) / len(peer)
res = dict(full=both.get("FULL"), fast=both.get("FAST"), peak_rss_mb=both["peak_rss_mb"],
           fast_speedup_per_candidate=round(both["FULL"]["per_candidate_s"] / both["FAST"]["per_candidate_s"], 2),
           alphalens=dict(per_factor_s=peer, mean_s=round(peer_mean, 2),
                          ours_full_per_factor_s=round(ours_few, 3),
                          ratio=round(peer_mean / ours_few, 1)))
json.dump(res, open(f"{out_dir}/fitness.json", "w"), indent=1)
f, q = res["full"], res["fast"]
print(f"fitness on full: FULL {f['candidates']} candidates, {f['per_candidate_s']:.3f} s each "
      f"(evaluate {f['evaluate_s']:.2f} s + score {f['score_s']:.2f} s, setup {f['setup_s']:.2f} s), "
      f"{f['candidates_per_s']} candidates/s")
print(f"                 FAST {q['per_candidate_s']:.3f} s each, {q['candidates_per_s']} candidates/s; "
      f"FAST is {res['fast_speedup_per_candidate']}x faster per candidate; peak RSS {res['peak_rss_mb']} MB")
print(f"alphalens-reloaded: {peer_mean:.1f} s per factor (analysis only) vs ours {ours_few:.2f} s "
      f"(evaluate + winsorize + neutralize + metrics): {res['alphalens']['ratio']}x")
