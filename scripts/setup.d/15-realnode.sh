#!/usr/bin/env bash
# The dev cluster's real node: containerd, runc, CNI plugins, umoci, busybox (pause image),
# iptables/conntrack (kube-proxy), socat, mmdebstrap (image builds). Debian packages only.
# Debian's containerd service is stopped and disabled: the dev cluster runs its own containerd
# (own config, root, state and socket) and nothing else may hold the CRI on this machine.
# Skipped where a real node cannot run (not root / not Linux); `dev-cluster up` then says so.
set -euo pipefail
if [[ $(uname -s) != Linux || $(id -u) != 0 ]]; then
  echo "[setup] real node: skipped (needs root on Linux); the dev cluster runs kwok pools only" >&2
  exit 0
fi
pkgs=(containerd runc containernetworking-plugins umoci mmdebstrap socat conntrack iptables
      busybox-static iproute2)
need=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || need+=("$p")
done
if ((${#need[@]})); then
  echo "[setup] apt-get install ${need[*]}" >&2
  # Do not let the package start Debian's containerd service.
  policy=/usr/sbin/policy-rc.d
  created=0
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && created=1
  fi
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" \
    || { ((created)) && rm -f "$policy"; exit 1; }
  ((created)) && rm -f "$policy"
fi
# Debian's own containerd service must not run (it would own /run/containerd and the CRI).
if command -v systemctl >/dev/null && systemctl is-system-running >/dev/null 2>&1; then
  systemctl disable --now containerd >/dev/null 2>&1 || true
elif [[ -x /etc/init.d/containerd ]]; then
  /etc/init.d/containerd stop >/dev/null 2>&1 || true
fi
pid=$(cat /run/containerd/containerd.pid 2>/dev/null || true)
if [[ -n $pid ]] && [[ $(readlink "/proc/$pid/exe" 2>/dev/null) == */containerd ]]; then
  echo "[setup] stopping Debian's containerd (pid $pid)" >&2
  kill "$pid" || true
fi
exit 0
