#!/usr/bin/env bash
# The KubeRay operator, built from its Go module like the dev cluster's binaries (issue 12;
# v1.5.0: 15.5 min cold on 2 busy cores, cached by version afterwards). The GPU requirement
# venv the vLLM tests use is the background step 05-gpu-venv.bg.sh.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PYTHON="${PYTHON:-python3}"
log() { printf '[60-upstream] %s\n' "$*" >&2; }

log "KubeRay operator (Go module, cached by version)"
cd "$ROOT"
PYTHONPATH="$ROOT/operator${PYTHONPATH:+:$PYTHONPATH}" "$PYTHON" -m wattserve.cli.main \
  dev-cluster build --only kuberay
