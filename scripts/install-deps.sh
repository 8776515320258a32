#!/usr/bin/env bash
# install-deps.sh - installs detloss's build and test dependencies on Debian 12
# (and derivatives) when they are missing: a C compiler with OpenMP (gcc),
# cmake, pkg-config, cJSON and cmocka. As root it runs apt-get; otherwise it
# prints the exact command to run. Extra packages can be named as arguments
# (e.g. valgrind). Exits 0 when everything is present.
set -euo pipefail
pkgs=(gcc libc6-dev make cmake pkg-config libcjson-dev libcmocka-dev "$@")
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-deps: not a Debian system; install: ${missing[*]} (cJSON, cmocka, OpenMP-capable C compiler)" >&2
  exit 1
fi
cmd="apt-get update && apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    echo "install-deps: installing ${missing[*]} with sudo" >&2
    sudo sh -c "DEBIAN_FRONTEND=noninteractive $cmd"
    exit 0
  fi
  echo "install-deps: missing packages: ${missing[*]}" >&2
  echo "install-deps: run as root:  $cmd" >&2
  exit 1
fi
echo "install-deps: installing ${missing[*]}" >&2
sh -c "DEBIAN_FRONTEND=noninteractive $cmd" >/dev/null
