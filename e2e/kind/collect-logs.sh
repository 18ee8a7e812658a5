#!/usr/bin/env bash
# Collect what explains a failed kind e2e run into DIR (default: e2e-kind-logs/):
# nodes, pods, events, wattserve resources, operator/serving/Prometheus logs and
# `kind export logs` (kubelet, containerd, control plane). Never fails.
set -uo pipefail
# shellcheck source=e2e/kind/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

out="${1:-e2e-kind-logs}"
mkdir -p "$out"
if ! cluster_exists; then
  log "no kind cluster $KIND_CLUSTER_NAME: nothing to collect"
  exit 0
fi
export KUBECONFIG="$KIND_KUBECONFIG"
[ -s "$KUBECONFIG" ] \
  || kind export kubeconfig --name "$KIND_CLUSTER_NAME" --kubeconfig "$KUBECONFIG"

capture() {  # capture FILE COMMAND...
  local file="$out/$1"; shift
  "$@" >"$file" 2>&1 || echo "(exit $?: $*)" >>"$file"
}

log "collecting into $out/"
capture nodes.yaml kubectl get nodes -o yaml
capture pods.txt kubectl get pods -A -o wide
capture events.txt kubectl get events -A --sort-by=.lastTimestamp
capture describe-pods.txt kubectl describe pods -A
capture wattserve.yaml kubectl get modeldeployments,servingpools -A -o yaml
capture workloads.yaml kubectl get deployments,services -A -l app.kubernetes.io/managed-by -o yaml
capture helm.txt helm status "$RELEASE" -n "$RELEASE_NAMESPACE"
capture operator.log kubectl -n "$RELEASE_NAMESPACE" logs \
  -l "app.kubernetes.io/instance=$RELEASE" --all-containers --prefix --tail=-1
capture operator-previous.log kubectl -n "$RELEASE_NAMESPACE" logs \
  -l "app.kubernetes.io/instance=$RELEASE" --all-containers --prefix --previous
# kubectl logs has no --all-namespaces: one call per namespace with serving pods.
for ns in $(kubectl get pods -A -l wattserve.dev/model-deployment --no-headers \
              -o custom-columns=NS:.metadata.namespace 2>/dev/null | sort -u); do
  capture "serving-$ns.log" kubectl -n "$ns" logs -l wattserve.dev/model-deployment \
    --all-containers --prefix --tail=2000 --max-log-requests=20
done
capture prometheus.log kubectl -n "$PROMETHEUS_NAMESPACE" logs \
  "deployment/$PROMETHEUS_SERVICE" --tail=2000
kind export logs "$out/kind" --name "$KIND_CLUSTER_NAME" >/dev/null 2>&1 || true
log "done: $out/"
