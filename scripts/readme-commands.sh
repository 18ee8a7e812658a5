#!/usr/bin/env bash
# Print the commands of the README's quick start: the `make ...` lines of the first code
# block under "## Quick start", without their trailing comments. .ci/run runs exactly these;
# tests/lint/test_readme_commands.py checks that each one has a recipe.
set -euo pipefail
awk '/^## Quick start/{q=1; next} q && /^## /{exit}
  q && /^```/{if (b) exit; b=1; next}
  q && b && /^make /{sub(/[[:space:]]+#.*/, ""); print}' "${1:-README.md}"
