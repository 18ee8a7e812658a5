#!/usr/bin/env bash
# Copy the CRDs from the repository's top-level crds/ (the one source of truth) into the
# chart's crds/ byte-for-byte, and remove chart CRDs whose source is gone.
#   charts/sync-crds.sh          # sync
#   charts/sync-crds.sh --check  # exit 1 (listing the differences) if the chart is out of date
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
src="${here}/../crds"
dst="${here}/wattserve/crds"
check=0
case "${1:-}" in
  --check) check=1 ;;
  "") ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

shopt -s nullglob
mkdir -p "${dst}"
status=0
for f in "${src}"/*; do
  [ -f "${f}" ] || continue
  name="$(basename "${f}")"
  if ! cmp -s "${f}" "${dst}/${name}"; then
    if [ "${check}" = 1 ]; then
      echo "out of date: charts/wattserve/crds/${name}" >&2; status=1
    else
      cp -p "${f}" "${dst}/${name}"; echo "synced crds/${name}"
    fi
  fi
done
for f in "${dst}"/*; do
  name="$(basename "${f}")"
  if [ ! -e "${src}/${name}" ]; then
    if [ "${check}" = 1 ]; then
      echo "stale (not in crds/): charts/wattserve/crds/${name}" >&2; status=1
    else
      rm -f "${f}"; echo "removed stale charts/wattserve/crds/${name}"
    fi
  fi
done
if [ "${check}" = 1 ] && [ "${status}" != 0 ]; then
  echo "run charts/sync-crds.sh to update the chart's CRDs" >&2
fi
exit "${status}"
