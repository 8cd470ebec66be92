#!/usr/bin/env python3
"""Alternating A/B timing of `bluewhale prep` runs, with the phase times prep logs at BW_LOG=debug.

A variant is a binary path, VAR=VALUE (environment for the default binary) or a prep option (`--x=y`), or
several joined by commas (`/tmp/old,BW_X=1`; options after `--`: `ab.py -- --fit-sharing=chunks --fit-sharing=columns`). Pairs run in ABBA order (A first in odd pairs, B first in even ones) so that a drift
of the machine or an order effect (the second run of a pair is often slower on the 2-core VMs) falls on
both variants alike. Each run writes a fresh output directory. Prints per-variant means and medians and,
per measure, the mean of the paired differences B - A with a 95 % bootstrap interval; a difference whose
interval holds 0 is not a difference. Run the same variant twice (A/A) to see the noise floor.

  bench/prep/ab.py -n 12 build/bluewhale /tmp/bluewhale.old
  bench/prep/ab.py -n 12 BW_SOMETHING=0 BW_SOMETHING=1
"""
import argparse
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PHASES = [("setup", r"prep: setup (\d+) ms \(cpu (\d+) ms\)"),
          ("pass1", r"prep: pass 1 streamed at (\d+) ms \(cpu (\d+) ms\)"),
          ("fitend", r"prep: fit passes done at (\d+) ms \(cpu (\d+) ms\)"),
          ("pass2", r"prep: pass 2 streamed at (\d+) ms \(cpu (\d+) ms\)"),
          ("commit", r"prep: dataset committed at (\d+) ms \(cpu (\d+) ms\)")]


def parse_variant(spec, default_bin):
    binary, env, extra = default_bin, {}, []
    for part in spec.split(","):
        if part.startswith("--"):
            extra += part.split("=", 1)
        elif "=" in part and not os.path.sep in part.split("=", 1)[0]:
            k, v = part.split("=", 1)
            env[k] = v
        else:
            binary = part
    if not os.access(binary, os.X_OK):
        sys.exit(f"ab.py: '{binary}' is not an executable (variant '{spec}')")
    return binary, env, extra


def run_once(binary, env, extra, args, out_dir):
    shutil.rmtree(out_dir, ignore_errors=True)
    cmd = [binary, "prep", "--recipe", args.recipe, "--input", args.input, "--out", out_dir,
           "--threads", str(args.threads)] + args.prep_args.split() + extra
    e = dict(os.environ, BW_LOG="debug", **env)
    t0 = time.perf_counter()
    p = subprocess.run(cmd, env=e, capture_output=True, text=True)
    wall = (time.perf_counter() - t0) * 1000
    if p.returncode != 0:
        sys.exit(f"ab.py: {' '.join(cmd)} failed ({p.returncode}):\n{p.stderr[-2000:]}")
    marks = {}
    for name, pat in PHASES:
        m = re.search(pat, p.stderr)
        if not m:
            sys.exit(f"ab.py: no '{name}' line in the run's log (is this a bluewhale with phase logging?)")
        marks[name] = (int(m.group(1)), int(m.group(2)))
    r = {"wall": wall, "cpu": marks["commit"][1]}
    prev = marks["setup"]
    for name, _ in PHASES[1:]:
        r[name] = marks[name][0] - prev[0]
        r[name + "_cpu"] = marks[name][1] - prev[1]
        prev = marks[name]
    return r


def boot_ci(diffs, reps=4000, seed=1):
    rng = random.Random(seed)
    n = len(diffs)
    means = sorted(statistics.fmean(rng.choice(diffs) for _ in range(n)) for _ in range(reps))
    return means[int(0.025 * reps)], means[int(0.975 * reps) - 1]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("-n", "--pairs", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--input", default=os.path.join(ROOT, "bench/out/criteo_gen_s1_1m.tsv"))
    ap.add_argument("--recipe", default=os.path.join(ROOT, "bench/out/dlrm-criteo-nosplit.yaml"))
    ap.add_argument("--bin", default=os.path.join(ROOT, "build/bluewhale"), help="binary for VAR=VALUE variants")
    ap.add_argument("--sleep", type=float, default=0.3, help="seconds between runs")
    ap.add_argument("--prep-args", default="", help="more prep options for every run, e.g. '--fit-sharing chunks'")
    args = ap.parse_args()
    for f in (args.input, args.recipe):
        if not os.path.exists(f):
            sys.exit(f"ab.py: {f} does not exist (bench/prep/run.sh makes both)")
    variants = [parse_variant(args.a, args.bin), parse_variant(args.b, args.bin)]
    labels = ["A", "B"]
    results = [[], []]
    out_dir = tempfile.mkdtemp(prefix="bw-ab-")
    try:
        for i in range(args.pairs):
            order = (0, 1) if i % 2 == 0 else (1, 0)
            for k in order:
                time.sleep(args.sleep)
                r = run_once(*variants[k], args, os.path.join(out_dir, "out"))
                results[k].append(r)
                print(f"pair {i + 1:2d} {labels[k]}: wall {r['wall']:.0f} ms, pass 1 {r['pass1']} ms, "
                      f"fit end {r['fitend']}, pass 2 {r['pass2']}, commit {r['commit']}, cpu {r['cpu']} ms",
                      flush=True)
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
    print(f"\nA = {args.a}\nB = {args.b}\n{args.pairs} pairs, ABBA order, ms")
    print(f"{'measure':10s} {'A mean':>8s} {'A med':>8s} {'B mean':>8s} {'B med':>8s} {'B-A':>8s}  95% interval")
    for m in ("wall", "pass1", "fitend", "pass2", "commit", "cpu", "pass1_cpu", "pass2_cpu"):
        a = [r[m] for r in results[0]]
        b = [r[m] for r in results[1]]
        d = [y - x for x, y in zip(a, b)]
        lo, hi = boot_ci(d)
        flag = "" if lo <= 0 <= hi else "  *"
        print(f"{m:10s} {statistics.fmean(a):8.1f} {statistics.median(a):8.1f} {statistics.fmean(b):8.1f} "
              f"{statistics.median(b):8.1f} {statistics.fmean(d):8.1f}  [{lo:.1f}, {hi:.1f}]{flag}")


if __name__ == "__main__":
    main()
