#!/usr/bin/env bash
# Installs the Debian packages BlueWhale needs, only those missing; safe to run again.
#   scripts/install-deps.sh          build + tests
#   scripts/install-deps.sh --bench  also the peers of `make bench` (pandas, PyTorch, DuckDB through npm, GNU time)
set -euo pipefail

build_pkgs=(build-essential cmake pkg-config zlib1g-dev libzstd-dev libxxhash-dev libyaml-cpp-dev
            nlohmann-json3-dev libgtest-dev libgmock-dev libopenblas-dev libsqlite3-dev
            libopenmpi-dev openmpi-bin)
bench_pkgs=(python3 python3-pandas python3-numpy python3-torch python3-hnswlib python3-faiss python3-optuna time
            nodejs npm zstd libbenchmark-dev libdnnl-dev)

want=("${build_pkgs[@]}")
if [[ "${1:-}" == "--bench" ]]; then want+=("${bench_pkgs[@]}"); fi

missing=()
for p in "${want[@]}"; do
  # nodejs/npm may come from outside Debian's packages (a preinstalled Node): accept the binaries.
  if [[ "$p" == nodejs ]] && command -v node >/dev/null 2>&1; then continue; fi
  if [[ "$p" == npm ]] && command -v npm >/dev/null 2>&1; then continue; fi
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then missing+=("$p"); fi
done

if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}"
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then SUDO=sudo; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "install-deps: all Debian packages present"
fi

if [[ "${1:-}" == "--bench" ]]; then
  here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  if [[ ! -d "$here/bench/node_modules/@duckdb/node-api" ]]; then
    echo "install-deps: installing DuckDB for Node (npm) into bench/node_modules"
    (cd "$here/bench" && npm install --no-audit --no-fund --loglevel=error)
  fi
fi
