#!/usr/bin/env python3
"""Trials and trial time until each DLRM study's best AUC is within 0.002 of the best AUC of all runs."""
import json
import statistics
import sys
from collections import defaultdict

TOL = 0.002


def main():
    runs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
    studies = []
    for r in runs:
        trials = json.load(open(r["export"]))["trials"]
        studies.append((r, trials))
    best = max(t["values"][0] for _, trials in studies for t in trials if t["status"] == "complete")
    rows = defaultdict(list)
    for r, trials in studies:
        elapsed, hit = 0.0, None
        for i, t in enumerate(trials):
            elapsed += t["seconds"]
            if t["status"] == "complete" and t["values"][0] >= best - TOL:
                hit = (i + 1, elapsed)
                break
        run_best = max((t["values"][0] for t in trials if t["status"] == "complete"), default=float("nan"))
        pruned = sum(t["status"] == "pruned" for t in trials)
        rows[(r["algorithm"], r["early_stopping"])].append((hit, run_best, sum(t["seconds"] for t in trials), pruned))
    print(f"Best AUC over all runs: {best:.4f}; target: within {TOL} of it. Per configuration, over seeds:")
    print()
    print("| algorithm | early stopping | seeds reaching | trials to reach (median) | trial time to reach, s (median) | best AUC (median) | total trial time, s (median) | pruned (median) |")
    print("|---|---|---|---|---|---|---|---|")
    for (algo, es), v in sorted(rows.items()):
        hits = [h for h, _, _, _ in v if h]
        med = lambda xs: statistics.median(xs) if xs else float("nan")
        print(f"| {algo} | {es} | {len(hits)}/{len(v)} | {med([h[0] for h in hits]):.1f} | {med([h[1] for h in hits]):.1f} | "
              f"{med([b for _, b, _, _ in v]):.4f} | {med([t for _, _, t, _ in v]):.1f} | {med([p for _, _, _, p in v]):.0f} |")


if __name__ == "__main__":
    main()
