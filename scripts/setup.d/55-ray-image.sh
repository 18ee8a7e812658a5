#!/usr/bin/env bash
# The CPU Ray image of KubeRay RayServices (issue 12): serving-cpu's hash-locked wheels
# (ray[serve], the cached llama-cpp-python wheel, the serving package) plus wget for
# KubeRay's probes; operator/wattserve/images/definitions/serving-cpu-ray.yaml. Built like
# the 50-images step (mmdebstrap + offline wheels + umoci, about 2.5 min cold on 2 busy
# cores), cached by a hash of its inputs: seconds when nothing changed. The real-node KubeRay
# test imports it into the node's containerd itself (it is not one of the node's default
# images). Skipped, in one line, where the builder cannot run.
set -euo pipefail
if [ "$(uname -s)" != Linux ] || [ "$(id -u)" != 0 ]; then
  echo "[setup] ray image: skipped (the registry-less builder needs root on Linux)" >&2
  exit 0
fi
for tool in mmdebstrap umoci; do
  if ! command -v "$tool" >/dev/null; then
    echo "[setup] ray image: skipped ($tool missing: run the 50-images step first)" >&2
    exit 0
  fi
done
exec nice -n 10 "${PYTHON:-python3}" -m wattserve.cli.main images build serving-cpu-ray
