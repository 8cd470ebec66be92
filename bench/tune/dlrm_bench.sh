#!/usr/bin/env bash
# DLRM tuning benchmark on generated Criteo-like data: trials and wall time until a study is within 0.002
# of the best AUC any run found, for GP-EI and random search, with and without early stopping (ASHA),
# same space, budget and seeds, in the same run. Writes bench/out/tune_dlrm_bench.md.
#
#   bash bench/tune/dlrm_bench.sh
#
# Environment (all optional): BENCH_ROWS=200000, BENCH_BUDGET=20, BENCH_SEEDS="0 1 ... 9", BENCH_THREADS=2,
# BENCH_OUT=bench/out, BLUEWHALE=build/bluewhale
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
ROWS="${BENCH_ROWS:-200000}"
BUDGET="${BENCH_BUDGET:-20}"
SEEDS="${BENCH_SEEDS:-0 1 2 3 4 5 6 7 8 9}"
THREADS="${BENCH_THREADS:-2}"
OUT="${BENCH_OUT:-$ROOT/bench/out}/tune_dlrm"
BW="${BLUEWHALE:-$ROOT/build/bluewhale}"
PY=/usr/bin/python3
mkdir -p "$OUT"
if [[ ! -f "$OUT/ds/meta.json" ]]; then
  "$BW" gen criteo --rows "$ROWS" --seed 7 --out "$OUT/day.tsv" >/dev/null
  "$BW" prep --recipe recipes/dlrm-criteo.yaml --input "$OUT/day.tsv" --out "$OUT/ds" --quiet >/dev/null
fi
steps=$(( ROWS * 9 / 10 / 256 ))
cat > "$OUT/recipe.yaml" <<YAML
model: {type: dlrm, dim: 8, bottom: [64, 32, 8], top: [64, 1], lr: 0.05, optimizer: sgd, sparse_optimizer: sgd}
train: {epochs: 1, batch_size: 256, eval_every: $(( steps / 8 ))}
tune:
  objectives: [{name: auc, direction: max}]
  early_stopping: {type: asha, eta: 3, min_steps: $(( steps / 8 )), min_trials: 3}
  params:
    - {name: model.lr, type: float, low: 0.003, high: 1.0, log: true}
    - {name: model.dim, type: int, low: 2, high: 32, log: true}
    - {name: train.batch_size, type: categorical, choices: [128, 256, 512, 1024]}
    - {name: model.sparse_optimizer, type: categorical, choices: [sgd, rowwise_adagrad]}
    - {name: model.optimizer, type: categorical, choices: [sgd, adagrad]}
YAML
for seed in $SEEDS; do
  for algo in gp random; do
    for es in on off; do
      dir="$OUT/study-$algo-es$es-s$seed"
      rm -rf "$dir"
      flag=""; [[ $es == off ]] && flag="--no-early-stopping"
      start=$(date +%s.%N)
      "$BW" tune --recipe "$OUT/recipe.yaml" --data "$OUT/ds" --out "$dir" --algorithm $algo --seed $seed \
        --budget "$BUDGET" --threads "$THREADS" $flag > "$dir.log"
      end=$(date +%s.%N)
      "$BW" tune export "$dir" --format json --out "$dir.json"
      echo "{\"algorithm\": \"$algo\", \"early_stopping\": \"$es\", \"seed\": $seed, \"wall\": $(awk "BEGIN{print $end - $start}"), \"export\": \"$dir.json\"}" >> "$OUT/runs.jsonl.tmp"
    done
  done
done
mv "$OUT/runs.jsonl.tmp" "$OUT/runs.jsonl"
"$PY" bench/tune/dlrm_summarize.py "$OUT/runs.jsonl" | tee "${BENCH_OUT:-$ROOT/bench/out}/tune_dlrm_bench.md"
