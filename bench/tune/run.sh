#!/usr/bin/env bash
# Optimizer benchmark: our GP, TPE and random search against Optuna's TPE on Branin, Hartmann-6 and
# noisy Rosenbrock-4, same evaluation budget and seeds, in the same run. Writes bench/out/tune_bench.md.
#
#   bash bench/tune/run.sh
#
# Environment (all optional): BENCH_SEEDS=10, BENCH_EVALS=50, BENCH_OUT=bench/out, BUILD=build
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
SEEDS="${BENCH_SEEDS:-10}"
EVALS="${BENCH_EVALS:-50}"
OUT="${BENCH_OUT:-$ROOT/bench/out}"
BUILD="${BUILD:-$ROOT/build}"
PY=/usr/bin/python3   # Debian's python3 with python3-optuna
FUNCS="branin,hartmann6,rosenbrock4-noisy"
mkdir -p "$OUT"
cmake --build "$BUILD" --target tune_bench >/dev/null
"$BUILD/tune_bench" --functions "$FUNCS" --seeds "$SEEDS" --evals "$EVALS" > "$OUT/tune_bench_ours.jsonl"
"$PY" bench/tune/optuna_bench.py --functions "$FUNCS" --seeds "$SEEDS" --evals "$EVALS" > "$OUT/tune_bench_optuna.jsonl"
"$PY" bench/tune/summarize.py "$OUT/tune_bench_ours.jsonl" "$OUT/tune_bench_optuna.jsonl" | tee "$OUT/tune_bench.md"
