#!/usr/bin/env bash
# Delete the kind e2e cluster (and its kubeconfig). Safe to run when it does not exist.
set -euo pipefail
# shellcheck source=e2e/kind/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

require kind
if cluster_exists; then
  log "deleting kind cluster $KIND_CLUSTER_NAME"
  kind delete cluster --name "$KIND_CLUSTER_NAME"
else
  log "no kind cluster $KIND_CLUSTER_NAME"
fi
rm -f "$KIND_KUBECONFIG"
