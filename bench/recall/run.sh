#!/usr/bin/env bash
# Recall benchmark: bluewhale index (hnsw, flat) against hnswlib and FAISS on the same files, same run.
# Report: bench/out/recall_bench.md. Builds nothing: `make bench` (or cmake --build) does that first.
#
#   bash bench/recall/run.sh
#
# Environment (all optional):
#   BENCH_RECALL_SETS="sift5k gen100k_d128 gen100k_d64"  sets to run (gen1m_d128 for 1M vectors)
#   BENCH_THREADS_LIST=1,2     search thread counts      BENCH_BUILD_THREADS=2   build threads, every tool
#   BENCH_EF_LIST=10,16,...    ef values                 BENCH_MIN_SECONDS=0.5   time per measured point
#   BENCH_SKIP="faiss-flat"    tools to leave out        BLUEWHALE=build/bluewhale
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
[[ -x /usr/bin/time ]] || { echo "recall-bench: /usr/bin/time missing (Debian package 'time')" >&2; exit 1; }
/usr/bin/python3 -c "import hnswlib, faiss, numpy" 2>/dev/null ||
  { echo "recall-bench: needs python3-hnswlib python3-faiss python3-numpy (make bench installs them)" >&2; exit 1; }
exec /usr/bin/python3 "$ROOT/bench/recall/run.py"
