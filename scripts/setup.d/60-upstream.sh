#!/usr/bin/env bash
# The real upstream packages the GPU path is tested against (issue 12):
#  * a venv with the GPU image's requirement set (vllm 0.29.0, ray[serve,llm] 2.60.0, torch)
#    at $WATTSERVE_CACHE/venv-gpu, with wheels cached under $WATTSERVE_CACHE/wheels/gpu, so
#    tests/serving/test_vllm_engine.py can build its fakes from vLLM's real classes
#    (create_autospec) on a CPU machine. Keyed by the requirement files' digest. Measured on
#    the 2-core CI-like machine: 4.0 GB of wheels, a 9.4 GB venv, ~15 min cold, seconds warm.
#  * the KubeRay operator, built from its Go module like the dev cluster's binaries
#    (v1.5.0: 15.5 min cold on 2 busy cores, cached by version afterwards).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CACHE="${WATTSERVE_CACHE:-$HOME/.cache/wattserve}"
PYTHON="${PYTHON:-python3}"
VENV="$CACHE/venv-gpu"
WHEELS="$CACHE/wheels/gpu"
REQ="$ROOT/serving/requirements-gpu.txt"
CON="$ROOT/serving/constraints-gpu.txt"
log() { printf '[60-upstream] %s\n' "$*" >&2; }

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
    | grep -E '^(Saved|Successfully|ERROR)' | sed 's/^/[60-upstream]   /' >&2 || true
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  log "installing into $VENV from the wheel cache"
  nice -n 10 "$VENV/bin/python" -m pip --disable-pip-version-check install -q \
    --no-index --find-links "$WHEELS" -r "$REQ" -c "$CON" pytest pytest-asyncio
  "$VENV/bin/python" -c 'import vllm, ray.serve; print("vllm", vllm.__version__)' >&2
  echo "$key" > "$VENV/.key"
fi

log "KubeRay operator (Go module, cached by version)"
cd "$ROOT"
PYTHONPATH="$ROOT/operator${PYTHONPATH:+:$PYTHONPATH}" "$PYTHON" -m wattserve.cli.main \
  dev-cluster build --only kuberay
