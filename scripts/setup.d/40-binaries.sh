#!/usr/bin/env bash
# The local control plane's binaries, built from Go modules once and cached by version.
set -euo pipefail
exec wattserve dev-cluster build
