#!/usr/bin/env bash
# DLRM benchmark: BlueWhale against a plain PyTorch DLRM (bench/dlrm/torch_dlrm.py, Debian python3-torch),
# side by side in one run: training steps on random batches at the Criteo Kaggle shapes, then one epoch of
# the recipe's DLRM by each on the same generated dataset, with test AUC, training and evaluation speed.
# Builds and installs nothing: `make bench` does that first.
#
#   bash bench/dlrm/run.sh
#
# Environment (all optional):
#   BENCH_DLRM_ROWS=1000000   generated rows (90% train after the recipe's split)
#   BENCH_THREADS=2           threads for both
#   BENCH_DLRM_SEEDS=0        comma separated training seeds, each trained by both
#   BENCH_DLRM_PAIRED=0       1: also a paired run per seed (PyTorch starts from BlueWhale's initial weights,
#                             both unshuffled), which isolates the implementations from seed noise
#   BENCH_DLRM_SKIP_RANDOM=0  1: skip the random-batch throughput part
#   BENCH_OUT=bench/out       data cache and the report (bench/out/dlrm_bench.md)
#   BLUEWHALE=build/bluewhale the binary under test
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
ROWS="${BENCH_DLRM_ROWS:-1000000}"
THREADS="${BENCH_THREADS:-2}"
SEEDS="${BENCH_DLRM_SEEDS:-0}"
OUT="${BENCH_OUT:-$ROOT/bench/out}"
BW="${BLUEWHALE:-$ROOT/build/bluewhale}"
PY=/usr/bin/python3  # Debian's python3 with python3-torch, not a pyenv/venv one on PATH

die() { printf 'dlrm-bench: %s\n' "$*" >&2; exit 1; }
[[ -x "$BW" ]] || die "$BW not found: build first (make bench)"
"$PY" -c "import torch, numpy" 2>/dev/null || die "$PY cannot import torch and numpy: apt-get install python3-torch (make bench does)"
[[ "$ROWS" =~ ^[1-9][0-9]*$ ]] || die "BENCH_DLRM_ROWS must be a positive integer, got '$ROWS'"

mkdir -p "$OUT"
data="$OUT/criteo-gen-$ROWS.tsv"
ds="$OUT/criteo-gen-$ROWS"
if [[ ! -f "$ds/meta.json" ]]; then
  "$BW" gen criteo --rows "$ROWS" --seed 1 --threads "$THREADS" --out "$data"
  "$BW" prep --recipe recipes/dlrm-criteo.yaml --input "$data" --out "$ds" --threads "$THREADS" --overwrite --quiet
fi
"$PY" bench/dlrm/compare.py --bw "$BW" --py "$PY" --data "$ds" --truth "$data.truth.json" --threads "$THREADS" \
  --seeds "$SEEDS" --report "$OUT/dlrm_bench.md" \
  $([[ "${BENCH_DLRM_PAIRED:-0}" == 1 ]] && echo --paired) $([[ "${BENCH_DLRM_SKIP_RANDOM:-0}" == 1 ]] && echo --skip-random)
