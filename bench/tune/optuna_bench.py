#!/usr/bin/env python3
"""Optuna's TPE (default settings) on the functions of tune_bench.cpp, same output format.

    optuna_bench.py [--functions branin,hartmann6,rosenbrock4-noisy] [--seeds 10] [--evals 50]
"""
import argparse
import json
import math
import time

import numpy as np
import optuna

A6 = [[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14], [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]]
P6 = [[0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886], [0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991],
      [0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650], [0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381]]
ALPHA6 = [1.0, 1.2, 3.0, 3.2]


def branin(x):
    a, b, c, r, s, t = 1, 5.1 / (4 * math.pi ** 2), 5 / math.pi, 6, 10, 1 / (8 * math.pi)
    return a * (x[1] - b * x[0] ** 2 + c * x[0] - r) ** 2 + s * (1 - t) * math.cos(x[0]) + s


def hartmann6(x):
    return -sum(ALPHA6[i] * math.exp(-sum(A6[i][j] * (x[j] - P6[i][j]) ** 2 for j in range(6))) for i in range(4))


def rosenbrock(x):
    return sum(100 * (x[i + 1] - x[i] ** 2) ** 2 + (1 - x[i]) ** 2 for i in range(len(x) - 1))


FUNCTIONS = {
    "branin": (branin, [(-5, 10), (0, 15)], 0.397887357729738, 0.0),
    "hartmann6": (hartmann6, [(0, 1)] * 6, -3.32236801141551, 0.0),
    "rosenbrock4": (rosenbrock, [(-2, 2)] * 4, 0.0, 0.0),
    "rosenbrock4-noisy": (rosenbrock, [(-2, 2)] * 4, 0.0, 1.0),
}


def run(name, seed, evals):
    f, bounds, minimum, noise_sd = FUNCTIONS[name]
    noise = np.random.default_rng(seed + 12345)
    best = [math.inf]
    trace = []

    def objective(trial):
        x = [trial.suggest_float(f"x{i}", lo, hi) for i, (lo, hi) in enumerate(bounds)]
        v = f(x)
        best[0] = min(best[0], v)
        trace.append(best[0] - minimum)
        return v + noise_sd * noise.normal()

    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, n_trials=evals)
    return trace


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--functions", default="branin,hartmann6,rosenbrock4-noisy")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--evals", type=int, default=50)
    args = ap.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for name in args.functions.split(","):
        for seed in range(args.seeds):
            t0 = time.time()
            trace = run(name, seed, args.evals)
            print(json.dumps({"function": name, "algorithm": "optuna-tpe", "seed": seed,
                              "seconds": round(time.time() - t0, 3), "regret": trace}), flush=True)


if __name__ == "__main__":
    main()
