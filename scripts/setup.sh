#!/usr/bin/env bash
# Idempotent, cached set-up for `make test` and `make demo` on a fresh machine of this kind.
#
# Runs every step in scripts/setup.d/ in name order; steps named *.bg.sh (downloads and disk,
# no compiling) start first in the background, overlap the compiles, and are waited for at
# the end (their output: $WATTSERVE_CACHE/logs/setup-<step>.log). Each step is a bash script that checks
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
selected() {
  local name=$1 prefix
  ((${#only[@]})) || return 0
  for prefix in "${only[@]}"; do [[ $name == "$prefix"* ]] && return 0; done
  return 1
}
logs="$WATTSERVE_CACHE/logs"
mkdir -p "$logs"
bg_names=()
bg_pids=()
for step in scripts/setup.d/*.bg.sh; do
  [[ -e $step ]] || continue
  name=$(basename "$step" .sh)
  selected "$name" || continue
  printf '[setup %4ss] %s started in the background (log: %s)\n' "$(( $(date +%s) - start ))" \
    "$name" "$logs/setup-$name.log" >&2
  bash "$step" >"$logs/setup-$name.log" 2>&1 &
  bg_names+=("$name")
  bg_pids+=("$!")
done
for step in scripts/setup.d/*.sh; do
  [[ $step == *.bg.sh ]] && continue
  name=$(basename "$step" .sh)
  selected "$name" || continue
  t0=$(date +%s)
  printf '[setup %4ss] %s\n' "$(( t0 - start ))" "$name" >&2
  if ! bash "$step"; then
    printf '[setup] step %s failed (exit above); fix it and run make again\n' "$name" >&2
    exit 1
  fi
  printf '[setup %4ss] %s done in %ss\n' "$(( $(date +%s) - start ))" "$name" \
    "$(( $(date +%s) - t0 ))" >&2
done
for i in "${!bg_pids[@]}"; do
  name=${bg_names[$i]}
  while kill -0 "${bg_pids[$i]}" 2>/dev/null; do
    printf '[setup %4ss] waiting for %s: %s\n' "$(( $(date +%s) - start ))" "$name" \
      "$(tail -n 1 "$logs/setup-$name.log" 2>/dev/null | cut -c1-100)" >&2
    sleep 30 &
    wait $! || true
  done
  if ! wait "${bg_pids[$i]}"; then
    tail -n 20 "$logs/setup-$name.log" >&2
    printf '[setup] background step %s failed (log above: %s)\n' "$name" \
      "$logs/setup-$name.log" >&2
    exit 1
  fi
  printf '[setup %4ss] %s done\n' "$(( $(date +%s) - start ))" "$name" >&2
done
