#!/usr/bin/env bash
# Run the kind e2e suite (e2e/test_kind_serving.py) against the cluster e2e/kind/up.sh
# created: the operator runs in-cluster, SmolLM2 is served for real by its pod on a CPU pool,
# and the suite reaches it and the in-cluster Prometheus through the API server's service
# proxy (`kubectl proxy`; WATTSERVE_E2E_PROVIDER=kind).
# Extra arguments go to pytest:  bash e2e/kind/run.sh -k smollm2 -x
set -euo pipefail
# shellcheck source=e2e/kind/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$ROOT"

require kind kubectl
cluster_exists || die "no kind cluster $KIND_CLUSTER_NAME: run bash e2e/kind/up.sh first"
[ -s "$KIND_KUBECONFIG" ] \
  || kind export kubeconfig --name "$KIND_CLUSTER_NAME" --kubeconfig "$KIND_KUBECONFIG"

export KUBECONFIG="$KIND_KUBECONFIG"
export WATTSERVE_E2E_PROVIDER=kind
# Where up.sh put things, for the suite's kind provider.
export WATTSERVE_E2E_KIND_CLUSTER="$KIND_CLUSTER_NAME"
export WATTSERVE_E2E_RELEASE="$RELEASE"
export WATTSERVE_E2E_RELEASE_NAMESPACE="$RELEASE_NAMESPACE"
export WATTSERVE_E2E_PROMETHEUS_NAMESPACE="$PROMETHEUS_NAMESPACE"
export WATTSERVE_E2E_PROMETHEUS_SERVICE="$PROMETHEUS_SERVICE"

log "pytest e2e -m e2e (provider kind, KUBECONFIG=$KUBECONFIG)"
exec "${PYTHON:-python3}" -m pytest e2e -m e2e "$@"
