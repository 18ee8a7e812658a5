#!/usr/bin/env bash
# The serving data path: llama-cpp-python (compiled once, wheel cached), Ray Serve, SmolLM2.
set -euo pipefail
exec bash serving/install-deps.sh
