#!/usr/bin/env bash
# The operator, CPU serving and SmolLM2 model images, built without Docker or a registry
# (mmdebstrap + offline wheels + umoci; see docs/images.md) into
# $WATTSERVE_CACHE/images/<name>-<inputs hash>.tar. Cached by a hash of all their inputs:
# seconds when nothing changed. Skipped, in one line, where it cannot run (not root or not
# Linux); the kwok-only dev cluster and the unit tests do not need the images.
set -euo pipefail
if [ "$(uname -s)" != Linux ] || [ "$(id -u)" != 0 ]; then
  echo "[setup] images: skipped (the registry-less builder needs root on Linux)" >&2
  exit 0
fi
need=()
for pkg in mmdebstrap umoci containerd; do
  command -v "$pkg" >/dev/null || need+=("$pkg")
done
command -v runc >/dev/null || need+=(runc)
if ((${#need[@]})); then
  echo "[setup] apt-get install ${need[*]}" >&2
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}"
fi
# llama-cpp-python's compiled wheel comes from 30-serving.sh's cache when it matches.
exec nice -n 10 "${PYTHON:-python3}" -m wattserve.cli.main images build \
  operator serving-cpu serving-cpu-smollm2 model-smollm2
