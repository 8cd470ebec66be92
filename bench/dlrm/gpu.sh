#!/usr/bin/env bash
# The CPU-to-GPU gap on one machine that has a CUDA GPU: BlueWhale on its CPUs against the PyTorch DLRM
# (bench/dlrm/torch_dlrm.py) on its GPU, in one run (bench/dlrm/gpu_gap.py). Generates and prepares the
# rows with the given binary, so the GPU machine needs no BlueWhale build, only a python3 with CUDA torch.
#
#   bash bench/dlrm/gpu.sh [REPORT_DIR]
#
# Environment (all optional):
#   BLUEWHALE=build/bluewhale   the binary; BW_LIBS=DIR adds DIR to LD_LIBRARY_PATH (its shared libraries,
#                               for a machine that lacks them: bench/dlrm/pack-binary.sh makes such a DIR)
#   BENCH_DLRM_ROWS=1000000     generated rows
#   BENCH_GPU_SKIP_TRAIN=0      1: random batches only
#   PY=python3                  a python3 whose torch sees the GPU
#   BENCH_GPU_REPORT=DIR/gpu_gap.md  where the report goes (rewritten after every measurement)
#   BENCH_GPU_DEVICE=cuda       torch's device (cpu: a dry run of the script on a machine without a GPU)
#   BENCH_GPU_STEPS_SCALE=1     multiplies every step count (0.1: a quick dry run)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
OUTDIR="${1:-$ROOT/bench/out}"
ROWS="${BENCH_DLRM_ROWS:-1000000}"
BW="${BLUEWHALE:-$ROOT/build/bluewhale}"
PY="${PY:-python3}"
die() { printf 'gpu-bench: %s\n' "$*" >&2; exit 1; }
[[ -x "$BW" ]] || die "$BW not found or not executable"
mkdir -p "$OUTDIR"
if [[ -n "${BW_LIBS:-}" ]]; then
  # The carried libraries are for the binary alone: python's torch must keep the machine's own libstdc++.
  libs="$(cd "$BW_LIBS" && pwd)"
  printf '#!/bin/sh\nLD_LIBRARY_PATH="%s" exec "%s" "$@"\n' "$libs" "$(cd "$(dirname "$BW")" && pwd)/$(basename "$BW")" \
    > "$OUTDIR/bluewhale-with-libs"
  chmod +x "$OUTDIR/bluewhale-with-libs"
  BW="$OUTDIR/bluewhale-with-libs"
fi
"$BW" --help > /dev/null || die "$BW does not run here (missing shared libraries? set BW_LIBS)"
DEVICE="${BENCH_GPU_DEVICE:-cuda}"
if [[ "$DEVICE" == cuda* ]]; then
  "$PY" -c "import torch, numpy, sys; sys.exit(0 if torch.cuda.is_available() else 1)" \
    || die "$PY: torch sees no CUDA GPU"
fi
[[ "$ROWS" =~ ^[1-9][0-9]*$ ]] || die "BENCH_DLRM_ROWS must be a positive integer, got '$ROWS'"

data="$OUTDIR/criteo-gen-$ROWS.tsv"
ds="$OUTDIR/criteo-gen-$ROWS"
if [[ ! -f "$ds/meta.json" ]]; then
  "$BW" gen criteo --rows "$ROWS" --seed 1 --threads "$(nproc)" --out "$data"
  "$BW" prep --recipe recipes/dlrm-criteo.yaml --input "$data" --out "$ds" --threads "$(nproc)" --overwrite --quiet
fi
PYTHONUNBUFFERED=1 "$PY" bench/dlrm/gpu_gap.py --bw "$BW" --py "$PY" --data "$ds" --truth "$data.truth.json" \
  --device "$DEVICE" --steps-scale "${BENCH_GPU_STEPS_SCALE:-1}" --report "${BENCH_GPU_REPORT:-$OUTDIR/gpu_gap.md}" \
  $([[ "${BENCH_GPU_SKIP_TRAIN:-0}" == 1 ]] && echo --skip-train)
