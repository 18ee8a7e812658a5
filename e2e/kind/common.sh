# shellcheck shell=bash disable=SC2034  # the variables are used by the scripts sourcing this
# Settings shared by e2e/kind/{up,run,down,collect-logs}.sh (sourced, not run).
# Every setting can be overridden from the environment.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
KIND_DIR="$ROOT/e2e/kind"

# The kind cluster and where its kubeconfig is written (never ~/.kube/config).
# Not read from KIND_CLUSTER_NAME: kind itself takes that as every command's default
# cluster, so a user's exported value would have up.sh retaint and down.sh delete theirs.
KIND_CLUSTER_NAME="${WATTSERVE_KIND_CLUSTER:-wattserve-e2e}"
WATTSERVE_CACHE="${WATTSERVE_CACHE:-$HOME/.cache/wattserve}"
KIND_KUBECONFIG="${KIND_KUBECONFIG:-$WATTSERVE_CACHE/kind/$KIND_CLUSTER_NAME.kubeconfig}"
# Optional node image (kindest/node:vX.Y.Z@sha256:...); empty: the kind release's default.
KIND_NODE_IMAGE="${KIND_NODE_IMAGE:-}"

# Images built by up.sh and loaded into the kind nodes (never pushed anywhere).
E2E_TAG="${E2E_TAG:-e2e}"
OPERATOR_IMAGE_REPO="${OPERATOR_IMAGE_REPO:-wattserve/operator}"
SERVING_CPU_IMAGE_REPO="${SERVING_CPU_IMAGE_REPO:-wattserve/serving-cpu}"
# The SmolLM2 model image (operator/wattserve/images/definitions/model-smollm2.yaml), the ref
# examples/models/smollm2-135m-oci.yaml names.
MODEL_IMAGE="${MODEL_IMAGE:-ghcr.io/wattserve/model-smollm2-135m:q4_1}"
# The GPU serving image is not built (vLLM + CUDA, ~10 GB, and no GPU to run it on): GPU
# pods get this name with pullPolicy Never, so they are scheduled and then stay in
# ErrImageNeverPull, quickly and without any download.
SERVING_GPU_IMAGE_REPO="${SERVING_GPU_IMAGE_REPO:-wattserve/serving-gpu}"
SERVING_GPU_IMAGE_TAG="${SERVING_GPU_IMAGE_TAG:-not-built-on-kind}"

# The Helm release, the in-cluster Prometheus (e2e/kind/prometheus.yaml).
RELEASE="${RELEASE:-wattserve}"
RELEASE_NAMESPACE="${RELEASE_NAMESPACE:-wattserve-system}"
PROMETHEUS_NAMESPACE="monitoring"
PROMETHEUS_SERVICE="prometheus"
PROMETHEUS_URL="http://$PROMETHEUS_SERVICE.$PROMETHEUS_NAMESPACE.svc:9090"

# Fake GPUs patched onto the GPU workers' status, by pool (as in examples/pools.yaml).
declare -A GPUS_PER_POOL=([gpu-l4]=4 [gpu-h100]=8)

_kind_t0=$(date +%s)
log() { printf '[kind-e2e %4ss] %s\n' "$(( $(date +%s) - _kind_t0 ))" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

require() {
  local tool missing=()
  for tool in "$@"; do command -v "$tool" >/dev/null || missing+=("$tool"); done
  ((${#missing[@]} == 0)) || die "missing tools: ${missing[*]} (see e2e/kind/README.md)"
}

cluster_exists() {
  kind get clusters 2>/dev/null | grep -qx -- "$KIND_CLUSTER_NAME"
}

# Names of the nodes carrying label selector $1, comma-separated.
nodes_with() {
  kubectl get nodes -l "$1" -o jsonpath='{range .items[*]}{.metadata.name}{","}{end}' \
    | sed 's/,$//'
}

# content_tag IMAGE REPO: tag IMAGE also as REPO:e2e-<12 hex of its image ID>; prints that.
content_tag() {
  local id
  id=$(docker image inspect -f '{{.Id}}' "$1") || die "image $1 not found (build it first)"
  id=${id#sha256:}
  docker tag "$1" "$2:e2e-${id:0:12}"
  printf '%s\n' "$2:e2e-${id:0:12}"
}
