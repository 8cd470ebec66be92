#!/usr/bin/env python3
"""Trials, trial time and training samples until each DLRM study's best AUC is within 0.002 of the best AUC
of all runs; medians over seeds with the spread (25th-75th percentile) beside them."""
import json
import statistics
import sys
from collections import defaultdict

TOL = 0.002


def quartiles(xs):
    if not xs:
        return float("nan"), float("nan"), float("nan")
    if len(xs) == 1:
        return xs[0], xs[0], xs[0]
    q = statistics.quantiles(xs, n=4, method="inclusive")
    return statistics.median(xs), q[0], q[2]


def fmt(xs, digits):
    m, lo, hi = quartiles(xs)
    if m != m:
        return "-"
    return f"{m:.{digits}f} ({lo:.{digits}f}-{hi:.{digits}f})"


def trained_samples(t):
    # Steps reached by the last evaluation, times the trial's batch size: the work a trial did, which
    # unlike its seconds does not depend on what else ran on the machine.
    steps = max((i["step"] for i in t.get("intermediate", [])), default=0)
    return steps * int(t["params"].get("train.batch_size", 0))


def main():
    runs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
    studies = []
    for r in runs:
        trials = json.load(open(r["export"]))["trials"]
        studies.append((r, trials))
    best = max(t["values"][0] for _, trials in studies for t in trials if t["status"] == "complete")
    rows = defaultdict(list)
    for r, trials in studies:
        elapsed, samples, hit = 0.0, 0, None
        for i, t in enumerate(trials):
            elapsed += t["seconds"]
            samples += trained_samples(t)
            if t["status"] == "complete" and t["values"][0] >= best - TOL:
                hit = (i + 1, elapsed, samples)
                break
        run_best = max((t["values"][0] for t in trials if t["status"] == "complete"), default=float("nan"))
        pruned = sum(t["status"] == "pruned" for t in trials)
        total = sum(t["seconds"] for t in trials)
        total_samples = sum(trained_samples(t) for t in trials)
        rows[(r["algorithm"], r["early_stopping"])].append((hit, run_best, total, pruned, total_samples))
    seeds = sorted({r["seed"] for r in runs})
    print(f"Best AUC over all runs: {best:.4f}; target: within {TOL} of it. Per configuration over {len(seeds)} "
          f"seeds: median (25th-75th percentile); 'to reach' over the seeds that reached it.")
    print()
    print("| algorithm | early stopping | seeds reaching | trials to reach | trial time to reach, s | "
          "samples to reach, M | best AUC | total trial time, s | total samples, M | pruned |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for (algo, es), v in sorted(rows.items()):
        hits = [h for h, *_ in v if h]
        print(f"| {algo} | {es} | {len(hits)}/{len(v)} | {fmt([h[0] for h in hits], 1)} | "
              f"{fmt([h[1] for h in hits], 1)} | {fmt([h[2] / 1e6 for h in hits], 2)} | "
              f"{fmt([x[1] for x in v], 4)} | {fmt([x[2] for x in v], 1)} | {fmt([x[4] / 1e6 for x in v], 2)} | "
              f"{fmt([x[3] for x in v], 0)} |")


if __name__ == "__main__":
    main()
