#!/usr/bin/env bash
# The serving data path: llama-cpp-python (compiled once, wheel cached), Ray Serve, SmolLM2.
# Skipped while its inputs are unchanged since the last successful install.
set -euo pipefail
stamp_dir="$WATTSERVE_CACHE/stamps"
mkdir -p "$stamp_dir"
key=$(cat serving/constraints.txt serving/install-deps.sh | sha256sum | cut -c1-16)
stamp="$stamp_dir/serving-$key"
if [[ -f $stamp ]] && "$PYTHON" -c 'import llama_cpp, ray, fastapi, uvicorn, openai' 2>/dev/null
then
  echo "[setup] serving data path up to date" >&2
  exit 0
fi
bash serving/install-deps.sh
touch "$stamp"
