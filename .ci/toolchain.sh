#!/usr/bin/env bash
# What building LightGBM's bindings needs (lgbm-train; toolchain.md): clang and
# libclang (bindgen) from Debian, and CMake >= 3.28 (Debian's 3.25 fails) from PyPI
# into .venv-build, which the Makefile puts first on PATH for cargo.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v clang >/dev/null 2>&1 || need+=(clang)
ls /usr/lib/llvm-*/lib/libclang.so >/dev/null 2>&1 || [ -n "${LIBCLANG_PATH:-}" ] || need+=(libclang-dev)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing ${need[*]} (Debian packages; LightGBM's Rust bindings are generated with libclang)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "error: building lgbm-train needs ${need[*]}: sudo apt-get install ${need[*]}" >&2
    exit 1
  fi
fi
if [ ! -x .venv-build/bin/cmake ]; then
  python3 -m venv .venv-build
  .venv-build/bin/pip install --quiet --disable-pip-version-check 'cmake>=3.28,<5'
fi
touch .venv-build/.stamp
