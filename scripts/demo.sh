#!/usr/bin/env bash
# The end-to-end demo behind `make demo`: generate Criteo-like logs, prepare them, inspect the dataset,
# apply the fitted pipeline to a new day of logs, measure the loader, train DLRM and evaluate it.
set -euo pipefail
build="${1:-build}"
bw="$build/bluewhale"
rows="${DEMO_ROWS:-1000000}"
out="${DEMO_DIR:-data/demo}"
mkdir -p "$out"

echo "== 1. generate ${rows} rows of Criteo-like click logs (planted click model, known best AUC)"
"$bw" gen criteo --rows "$rows" --seed 1 --out "$out/day_0.tsv"
"$bw" gen criteo --rows $((rows / 10)) --seed 2 --out "$out/day_1.tsv.gz"

echo
echo "== 2. prep: the standard DLRM Criteo recipe (fill, clip, log1p, frequency categorify)"
"$bw" prep --recipe recipes/dlrm-criteo.yaml --input "$out/day_0.tsv" --out "$out/criteo" --overwrite

echo
echo "== 3. inspect the dataset"
"$bw" inspect "$out/criteo" --rows 3 --loader-bench

echo
echo "== 4. apply the fitted pipeline to a new (gzip) day: same dictionaries, nothing refitted"
"$bw" prep --apply-to "$out/criteo" --input "$out/day_1.tsv.gz" --out "$out/criteo-day1" --overwrite

echo
echo "== 5. train DLRM (the recipe's model and train sections) and evaluate on the held-out test split"
rm -rf "$out/run"
"$bw" train --data "$out/criteo" --out "$out/run"
"$bw" eval --model "$out/run" --data "$out/criteo" --split test
echo "best achievable AUC on this data (the generator's true click probabilities): $(grep -o '"best_auc_all": *[0-9.]*' "$out/day_0.tsv.truth.json" | grep -o '[0-9.]*$')"

echo
echo "demo done: datasets in $out/criteo and $out/criteo-day1, model in $out/run"
