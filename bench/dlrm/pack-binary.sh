#!/usr/bin/env bash
# Copies a bluewhale binary (stripped) and the shared libraries it loads, except the C library's own, into
# DIR/bluewhale and DIR/lib, so that it runs on a machine without our build dependencies (a lent GPU
# machine, for bench/dlrm/gpu.sh: BLUEWHALE=DIR/bluewhale BW_LIBS=DIR/lib). The target's C library must be
# at least as new as this machine's.
#
#   bash bench/dlrm/pack-binary.sh DIR [BINARY]
set -euo pipefail
out="${1:?usage: pack-binary.sh DIR [BINARY]}"
bin="${2:-build/bluewhale}"
[[ -x "$bin" ]] || { echo "pack-binary: $bin not found: build first" >&2; exit 1; }
rm -rf "$out"
mkdir -p "$out/lib"
strip -o "$out/bluewhale" "$bin"
ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// {print $3}' \
  | grep -v -E '/(libc|libm|libpthread|libdl|librt|libresolv)\.so|/ld-linux' \
  | while read -r lib; do cp -L "$lib" "$out/lib/"; done
du -sh "$out"
