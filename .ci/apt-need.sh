#!/usr/bin/env bash
# apt-need.sh WHY PKG...: install the Debian packages among PKG that are missing (as
# root), or name them and fail. Shared by toolchain.sh (build) and test-deps.sh (tests).
set -euo pipefail
why=$1
shift
missing=()
for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing ${missing[*]} (Debian packages: $why)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "error: $why needs ${missing[*]}: sudo apt-get install ${missing[*]}" >&2
  exit 1
fi
