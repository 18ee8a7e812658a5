#!/usr/bin/env bash
# Background step (scripts/setup.sh starts *.bg.sh steps first and waits for them at the end:
# this one is downloads and disk, so it overlaps the compiles of the other steps).
# A venv with the GPU image's requirement set (vllm 0.29.0, ray[serve,llm] 2.60.0, torch) at
# $WATTSERVE_CACHE/venv-gpu, wheels cached under $WATTSERVE_CACHE/wheels/gpu, so
# tests/serving/test_vllm_engine.py builds its fakes from vLLM's real classes
# (create_autospec) on a CPU machine (issue 12). Keyed by the requirement files' digest.
# Measured on the 2-core machine: 4.0 GB of wheels, a 9.4 GB venv, ~15 min cold (busy
# cores), seconds warm.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CACHE="${WATTSERVE_CACHE:-$HOME/.cache/wattserve}"
PYTHON="${PYTHON:-python3}"
VENV="$CACHE/venv-gpu"
WHEELS="$CACHE/wheels/gpu"
REQ="$ROOT/serving/requirements-gpu.txt"
CON="$ROOT/serving/constraints-gpu.txt"
log() { printf '[gpu-venv] %s\n' "$*" >&2; }

key=$(cat "$REQ" "$CON" | sha256sum | cut -c1-16)
if [[ -f "$VENV/.key" && "$(cat "$VENV/.key")" == "$key" ]] \
   && "$VENV/bin/python" -c 'import importlib.metadata as m; m.version("vllm"); m.version("ray")' \
      2>/dev/null; then
  log "GPU requirement venv up to date ($VENV)"
else
  log "GPU requirement venv: downloading wheels into $WHEELS (first time: several GB)"
  mkdir -p "$WHEELS"
  nice -n 10 "$PYTHON" -m pip --disable-pip-version-check download --progress-bar off \
    -d "$WHEELS" -r "$REQ" -c "$CON" pytest pytest-asyncio 2>&1 \
    | grep -E '^(Saved|Successfully|ERROR)' | sed 's/^/[gpu-venv]   /' >&2 || true
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  log "installing into $VENV from the wheel cache"
  nice -n 10 "$VENV/bin/python" -m pip --disable-pip-version-check install -q \
    --no-index --find-links "$WHEELS" -r "$REQ" -c "$CON" pytest pytest-asyncio
  "$VENV/bin/python" -c 'import vllm, ray.serve; print("vllm", vllm.__version__)' >&2
  echo "$key" > "$VENV/.key"
fi

