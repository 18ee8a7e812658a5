#!/usr/bin/env bash
# Create the kind e2e cluster and install wattserve into it (see e2e/kind/README.md):
#   1. kind cluster from e2e/kind/kind-config.yaml (labelled pool workers), then taint the
#      workers, untaint the control plane, patch fake nvidia.com/gpu onto the GPU workers
#   2. build the operator and CPU serving images (SmolLM2 inside) and `kind load` them
#   3. the in-cluster Prometheus (e2e/kind/prometheus.yaml)
#   4. `helm upgrade --install` the chart with e2e/kind/pools-values.yaml, wait for the operator
# Needs docker, kind, kubectl, helm. Idempotent: an existing cluster of the same name is
# reused (KIND_RECREATE=1 deletes it first). SKIP_BUILD=1 reuses images already built.
# Then: bash e2e/kind/run.sh; bash e2e/kind/down.sh.
set -Eeuo pipefail
# shellcheck source=e2e/kind/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$ROOT"

require docker kind kubectl helm
docker info >/dev/null 2>&1 || die "docker is installed but its engine is not reachable"

on_error() {
  log "FAILED; cluster state follows (bash e2e/kind/collect-logs.sh DIR keeps everything)"
  kubectl get nodes -o wide 2>/dev/null || true
  kubectl get pods -A -o wide 2>/dev/null || true
  kubectl get events -A --sort-by=.lastTimestamp 2>/dev/null | tail -n 40 || true
}
trap on_error ERR

# --- 1. the cluster -------------------------------------------------------------------------
mkdir -p "$(dirname "$KIND_KUBECONFIG")"
if cluster_exists && [ "${KIND_RECREATE:-0}" = 1 ]; then
  log "deleting the existing cluster $KIND_CLUSTER_NAME (KIND_RECREATE=1)"
  kind delete cluster --name "$KIND_CLUSTER_NAME"
fi
if cluster_exists; then
  log "reusing the existing kind cluster $KIND_CLUSTER_NAME"
  kind export kubeconfig --name "$KIND_CLUSTER_NAME" --kubeconfig "$KIND_KUBECONFIG"
  # Never taint and relabel someone else's cluster that happens to have this name.
  pools=$(KUBECONFIG="$KIND_KUBECONFIG" kubectl get nodes -l wattserve.dev/pool -o name)
  [ -n "$pools" ] || die "kind cluster $KIND_CLUSTER_NAME exists but was not made by up.sh \
(no node labelled wattserve.dev/pool): set WATTSERVE_KIND_CLUSTER to another name"
else
  log "creating kind cluster $KIND_CLUSTER_NAME (e2e/kind/kind-config.yaml)"
  image_args=()
  [ -n "$KIND_NODE_IMAGE" ] && image_args=(--image "$KIND_NODE_IMAGE")
  kind create cluster --name "$KIND_CLUSTER_NAME" --config "$KIND_DIR/kind-config.yaml" \
    --kubeconfig "$KIND_KUBECONFIG" --wait 180s "${image_args[@]}"
fi
export KUBECONFIG="$KIND_KUBECONFIG"
kubectl wait --for=condition=Ready nodes --all --timeout=180s >/dev/null

log "control plane: removing its NoSchedule taint (the operator and Prometheus run there)"
kubectl taint nodes -l node-role.kubernetes.io/control-plane \
  node-role.kubernetes.io/control-plane:NoSchedule- >/dev/null 2>&1 || true  # absent: fine

# Workers only: kind puts the config's labels on the control plane too (its cpu-local label),
# and a tainted control plane would leave Prometheus and the operator Pending.
log "workers: taint wattserve.dev/pool=<pool>:NoSchedule (+ nvidia.com/gpu=present on GPU pools)"
while read -r node pool product; do
  [ -n "$node" ] || continue
  kubectl taint nodes "$node" "wattserve.dev/pool=$pool:NoSchedule" --overwrite >/dev/null
  if [ "$product" != "<none>" ]; then
    kubectl taint nodes "$node" nvidia.com/gpu=present:NoSchedule --overwrite >/dev/null
  fi
done < <(kubectl get nodes -l 'wattserve.dev/pool,!node-role.kubernetes.io/control-plane' \
           --no-headers \
           -o custom-columns='N:.metadata.name,P:.metadata.labels.wattserve\.dev/pool,G:.metadata.labels.nvidia\.com/gpu\.product')

log "GPU workers: fake nvidia.com/gpu capacity on the node status (no GPU, no device plugin)"
for pool in "${!GPUS_PER_POOL[@]}"; do
  count="${GPUS_PER_POOL[$pool]}"
  for node in $(kubectl get nodes -l "wattserve.dev/pool=$pool" -o name); do
    kubectl patch "$node" --subresource=status --type=json -p "[
      {\"op\": \"add\", \"path\": \"/status/capacity/nvidia.com~1gpu\", \"value\": \"$count\"},
      {\"op\": \"add\", \"path\": \"/status/allocatable/nvidia.com~1gpu\", \"value\": \"$count\"}
    ]" >/dev/null
    got=$(kubectl get "$node" -o jsonpath='{.status.allocatable.nvidia\.com/gpu}')
    [ "$got" = "$count" ] || die "$node: allocatable nvidia.com/gpu is '$got', wanted $count"
    log "  $node ($pool): $count x nvidia.com/gpu"
  done
done

# --- 2. images ------------------------------------------------------------------------------
operator_image="$OPERATOR_IMAGE_REPO:$E2E_TAG"
serving_image="$SERVING_CPU_IMAGE_REPO:$E2E_TAG"
if [ "${SKIP_BUILD:-0}" = 1 ]; then
  log "SKIP_BUILD=1: using the images already built ($operator_image, $serving_image)"
else
  log "building $operator_image (operator/Dockerfile)"
  docker build -f operator/Dockerfile -t "$operator_image" .
  # The Dockerfiles are generated from operator/wattserve/images/definitions (the same
  # definitions the registry-less builder of the dev cluster's real node uses).
  log "building $serving_image-base (serving/Dockerfile.cpu; compiles llama.cpp)"
  docker build -f serving/Dockerfile.cpu -t "$serving_image-base" .
  log "building $serving_image (+ the GGUF at the path examples/models/smollm2-135m.yaml names)"
  docker build -f "$KIND_DIR/Dockerfile.serving-cpu" --build-arg "BASE_IMAGE=$serving_image-base" \
    -t "$serving_image" .
  log "building $MODEL_IMAGE (serving/Dockerfile.model-smollm2, for oci:// sources)"
  docker build -f serving/Dockerfile.model-smollm2 -t "$MODEL_IMAGE" .
fi

# Tag each image by its content: a rebuilt image gets a new tag, so helm upgrade rolls the
# operator and the operator re-renders the serving pods (with one fixed tag and pullPolicy
# Never, a second up.sh after a code change kept the old pods running).
operator_image=$(content_tag "$operator_image" "$OPERATOR_IMAGE_REPO")
serving_image=$(content_tag "$serving_image" "$SERVING_CPU_IMAGE_REPO")
log "content tags: $operator_image, $serving_image"

# Load each image only where it runs: the operator on the control plane, serving on the CPU
# pools: cpu-general's workers and cpu-local, the control plane (kind copies an image into
# every node otherwise, ~1.5 GB each for serving; the GPU workers run no image here).
control_plane=$(nodes_with node-role.kubernetes.io/control-plane)
cpu_nodes=$(nodes_with 'wattserve.dev/pool in (cpu-general,cpu-local)')
[ -n "$cpu_nodes" ] || die "no node labelled wattserve.dev/pool=cpu-general or cpu-local"
log "kind load $operator_image -> $control_plane"
kind load docker-image "$operator_image" --name "$KIND_CLUSTER_NAME" --nodes "$control_plane"
log "kind load $serving_image -> $cpu_nodes"
kind load docker-image "$serving_image" --name "$KIND_CLUSTER_NAME" --nodes "$cpu_nodes"
log "kind load $MODEL_IMAGE -> $cpu_nodes"
kind load docker-image "$MODEL_IMAGE" --name "$KIND_CLUSTER_NAME" --nodes "$cpu_nodes"

# --- 3. Prometheus --------------------------------------------------------------------------
log "in-cluster Prometheus ($PROMETHEUS_URL)"
kubectl apply -f "$KIND_DIR/prometheus.yaml" >/dev/null
# A run cut off in the suite's Prometheus-outage step left it scaled to 0: apply keeps that.
kubectl -n "$PROMETHEUS_NAMESPACE" scale "deployment/$PROMETHEUS_SERVICE" --replicas=1 >/dev/null
kubectl -n "$PROMETHEUS_NAMESPACE" rollout status "deployment/$PROMETHEUS_SERVICE" --timeout=300s

# --- 4. the chart ---------------------------------------------------------------------------
log "helm upgrade --install $RELEASE charts/wattserve -n $RELEASE_NAMESPACE"
helm upgrade --install "$RELEASE" charts/wattserve \
  --namespace "$RELEASE_NAMESPACE" --create-namespace \
  -f "$KIND_DIR/pools-values.yaml" \
  --set operator.replicas=1 \
  --set "operator.image.repository=$OPERATOR_IMAGE_REPO" \
  --set "operator.image.tag=${operator_image##*:}" \
  --set operator.image.pullPolicy=Never \
  --set "serving.image.cpu.repository=$SERVING_CPU_IMAGE_REPO" \
  --set "serving.image.cpu.tag=${serving_image##*:}" \
  --set serving.image.cpu.pullPolicy=Never \
  --set "serving.image.gpu.repository=$SERVING_GPU_IMAGE_REPO" \
  --set "serving.image.gpu.tag=$SERVING_GPU_IMAGE_TAG" \
  --set serving.image.gpu.pullPolicy=Never \
  --set "prometheus.url=$PROMETHEUS_URL" \
  --set energySource=wattserve \
  --wait --timeout 5m

log "waiting for the operator Deployment"
kubectl -n "$RELEASE_NAMESPACE" wait --for=condition=Available deployment \
  -l "app.kubernetes.io/instance=$RELEASE" --timeout=300s

log "ready"
kubectl get nodes \
  -o custom-columns='NAME:.metadata.name,POOL:.metadata.labels.wattserve\.dev/pool,GPUS:.status.allocatable.nvidia\.com/gpu,TAINTS:.spec.taints[*].key'
kubectl get servingpools 2>/dev/null || true
kubectl -n "$RELEASE_NAMESPACE" get pods -o wide
log "next: bash e2e/kind/run.sh   (KUBECONFIG=$KIND_KUBECONFIG)"
