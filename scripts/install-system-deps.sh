#!/usr/bin/env bash
# Installs the Debian packages the test suite and the demo need, only those missing; with arguments, those
# packages instead (`make image` passes its tools).
# iptables/nftables: SNAT and portmap; golang + libcni sources: the libcni test driver;
# containernetworking-plugins: portmap/tuning/bandwidth chained after our plugin; iproute2: ip netns.
set -euo pipefail
pkgs=(iptables nftables iproute2 golang-go golang-github-appc-cni-dev containernetworking-plugins procps)
if [ $# -gt 0 ]; then pkgs=("$@"); fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "install-system-deps: need root to apt-get install: ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
