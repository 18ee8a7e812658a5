#!/usr/bin/env bash
# The local control plane's binaries, built from Go modules once and cached by version.
set -euo pipefail
exec "$PYTHON" -m wattserve.cli.main dev-cluster build
