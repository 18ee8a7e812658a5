#!/usr/bin/env bash
# Debian packages the tests and the demo run: Prometheus (the tests start their own) and openssl.
set -euo pipefail
need=()
command -v prometheus >/dev/null || need+=(prometheus)
command -v openssl >/dev/null || need+=(openssl)
if ((${#need[@]})); then
  echo "[setup] apt-get install ${need[*]}" >&2
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}"
  # Debian starts the prometheus service on install; the tests start their own.
  (systemctl stop prometheus 2>/dev/null || service prometheus stop 2>/dev/null \
    || pkill -x prometheus) >/dev/null 2>&1 || true
fi
