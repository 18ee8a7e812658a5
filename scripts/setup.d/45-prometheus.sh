#!/usr/bin/env bash
# Prometheus with Kubernetes service discovery, for the e2e suite (Debian's `prometheus` has
# no kubernetes_sd_configs). Built from the Go module pinned in e2e/prometheus/ with only the
# Kubernetes discoverer (plus the always-present static, file and HTTP ones), cached by the
# hash of go.mod + go.sum + this script; the e2e harness runs $WATTSERVE_CACHE/bin/prometheus-k8s-sd/prometheus.
set -euo pipefail
cache="${WATTSERVE_CACHE:-$HOME/.cache/wattserve}"
mod="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/e2e/prometheus"
key=$(cat "$mod/go.mod" "$mod/go.sum" "${BASH_SOURCE[0]}" | sha256sum | cut -c1-12)
version=$(awk '$1 == "github.com/prometheus/prometheus" {print $2}' "$mod/go.mod")
out="$cache/bin/prometheus-k8s-sd-$key"
link="$cache/bin/prometheus-k8s-sd"
if [[ -x $out/prometheus ]]; then
  ln -sfn "$out" "$link"
  exit 0
fi
if ! command -v go >/dev/null; then
  echo "45-prometheus: no Go toolchain; the e2e suite will skip its real-pod steps" >&2
  exit 0
fi
mkdir -p "$cache/bin" "$cache/logs"
log="$cache/logs/prometheus-k8s-sd-$key.build.log"
echo "building Prometheus (Kubernetes discovery) from e2e/prometheus/go.mod; log: $log" >&2
rm -rf "$out.tmp"
( cd "$mod" && nice go build -trimpath -tags remove_all_sd,enable_kubernetes_sd \
    -ldflags "-X github.com/prometheus/common/version.Version=$version" \
    -o "$out.tmp/" github.com/prometheus/prometheus/cmd/prometheus ) >"$log" 2>&1 &
pid=$!
t0=$(date +%s)
while kill -0 "$pid" 2>/dev/null; do
  sleep 5 & wait $! || true
  (( ($(date +%s) - t0) % 30 < 5 )) && echo "  ... building Prometheus, $(( $(date +%s) - t0 )) s" >&2
done
if ! wait "$pid"; then
  tail -n 20 "$log" >&2
  exit 1
fi
"$out.tmp/prometheus" --version | head -n 1 >&2
mv "$out.tmp" "$out"
ln -sfn "$out" "$link"
echo "Prometheus built in $(( $(date +%s) - t0 )) s: $out/prometheus" >&2
