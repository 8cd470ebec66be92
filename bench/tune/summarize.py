#!/usr/bin/env python3
"""Markdown table of simple regret (median and interquartile range over seeds) from JSON lines."""
import json
import sys
from collections import defaultdict

import numpy as np


def main():
    runs = defaultdict(list)
    secs = defaultdict(list)
    for path in sys.argv[1:]:
        with open(path) as f:
            for line in f:
                if line.strip():
                    r = json.loads(line)
                    runs[(r["function"], r["algorithm"])].append(r["regret"])
                    secs[(r["function"], r["algorithm"])].append(r["seconds"])
    functions = sorted({k[0] for k in runs})
    algorithms = sorted({k[1] for k in runs})
    evals = max(len(t) for v in runs.values() for t in v)
    checkpoints = sorted({c for c in (10, 25, evals) if c <= evals})
    print(f"Simple regret (noiseless value of the best point evaluated minus the optimum), median [IQR] over seeds")
    print()
    print("| function | algorithm | seeds | " + " | ".join(f"after {c}" for c in checkpoints) + " | s/run |")
    print("|---|---|---|" + "---|" * len(checkpoints) + "---|")
    for fn in functions:
        for al in algorithms:
            traces = runs.get((fn, al))
            if not traces:
                continue
            cells = []
            for c in checkpoints:
                v = np.array([t[c - 1] for t in traces])
                q1, med, q3 = np.percentile(v, [25, 50, 75])
                cells.append(f"{med:.3g} [{q1:.3g}, {q3:.3g}]")
            print(f"| {fn} | {al} | {len(traces)} | " + " | ".join(cells) + f" | {np.mean(secs[(fn, al)]):.2f} |")


if __name__ == "__main__":
    main()
