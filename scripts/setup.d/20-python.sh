#!/usr/bin/env bash
# wattserve itself (editable) with the test tools; skipped while pyproject.toml is unchanged
# since the last install from this checkout.
set -euo pipefail
stamp_dir="$WATTSERVE_CACHE/stamps"
mkdir -p "$stamp_dir"
key=$( (pwd; cat pyproject.toml) | sha256sum | cut -c1-16)
stamp="$stamp_dir/python-$key"
if [[ -f $stamp ]] && "$PYTHON" -c 'import wattserve, kopf, pytest, ruff, mypy' 2>/dev/null \
   && command -v wattserve >/dev/null; then
  echo "[setup] python packages up to date" >&2
  exit 0
fi
echo "[setup] pip install -e '.[dev,sim]'" >&2
"$PYTHON" -m pip install -q -e '.[dev,sim]'
touch "$stamp"
