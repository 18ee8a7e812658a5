#!/usr/bin/env bash
# Idempotent, cached set-up for `make test` and `make demo` on a fresh machine of this kind.
#
# Runs every step in scripts/setup.d/ in name order. Each step is a bash script that checks
# whether its work is already done (in seconds) and only then does it, printing progress on
# slow parts. Heavy results are cached under $WATTSERVE_CACHE (default ~/.cache/wattserve),
# keyed by their inputs, so a second run skips everything in seconds.
#
#   scripts/setup.sh            # all steps
#   scripts/setup.sh 20 30      # only the steps whose names start with 20 or 30
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export WATTSERVE_CACHE="${WATTSERVE_CACHE:-$HOME/.cache/wattserve}"
export PIP_DISABLE_PIP_VERSION_CHECK=1
export PYTHON="${PYTHON:-python3}"
start=$(date +%s)
only=("$@")
for step in scripts/setup.d/*.sh; do
  name=$(basename "$step" .sh)
  if ((${#only[@]})); then
    keep=0
    for prefix in "${only[@]}"; do [[ $name == "$prefix"* ]] && keep=1; done
    ((keep)) || continue
  fi
  t0=$(date +%s)
  printf '[setup %4ss] %s\n' "$(( t0 - start ))" "$name" >&2
  if ! bash "$step"; then
    printf '[setup] step %s failed (exit above); fix it and run make again\n' "$name" >&2
    exit 1
  fi
  printf '[setup %4ss] %s done in %ss\n' "$(( $(date +%s) - start ))" "$name" "$(( $(date +%s) - t0 ))" >&2
done
