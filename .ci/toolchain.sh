#!/usr/bin/env bash
# What building LightGBM's bindings needs (lgbm-train; toolchain.md): clang and
# libclang (bindgen) from Debian, and CMake >= 3.28 (Debian's 3.25 fails) from PyPI
# into .venv-build, which the Makefile puts first on PATH for cargo.
set -euo pipefail
cd "$(dirname "$0")/.."
# clang's Debian package is named clang; libclang is found by its .so (or LIBCLANG_PATH).
need=()
command -v clang >/dev/null 2>&1 || need+=(clang)
ls /usr/lib/llvm-*/lib/libclang.so >/dev/null 2>&1 || [ -n "${LIBCLANG_PATH:-}" ] || need+=(libclang-dev)
[ ${#need[@]} -eq 0 ] || .ci/apt-need.sh "building lgbm-train (LightGBM's Rust bindings are generated with libclang)" "${need[@]}"
if [ ! -x .venv-build/bin/cmake ]; then
  python3 -m venv .venv-build
  .venv-build/bin/pip install --quiet --disable-pip-version-check 'cmake>=3.28,<5'
fi
touch .venv-build/.stamp
