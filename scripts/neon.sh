#!/bin/sh
# Cross-compile libquant for aarch64 (gcc-aarch64-linux-gnu) and run the
# kernel tests (NEON vs scalar, vs dequantize-then-GEMV) under qemu-user.
# Check is not available for arm64 here, so tests/neon_kernels_main.c is a
# plain driver. hwloc and SLEEF are off (no arm64 packages installed); the
# cross build is -Werror like the native ones. Exit status 0 on success;
# 77 with a message when the cross tools are missing (skipped: scripts/test.sh
# reports it), anything else on failure.
set -eu
cd "$(dirname "$0")/.."
if ! command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 || ! command -v qemu-aarch64-static >/dev/null 2>&1; then
  echo "neon.sh: aarch64-linux-gnu-gcc or qemu-aarch64-static missing: skipped"
  exit 77
fi
B=build-neon
cmake -S . -B "$B" -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-toolchain.cmake -DCMAKE_BUILD_TYPE=Release \
      -DLQ_WITH_HWLOC=OFF -DLQ_WITH_SLEEF=OFF -DLQ_BUILD_TESTS=OFF -DLQ_WERROR=ON >/dev/null
cmake --build "$B" -j "$(nproc)" --target quant_static
aarch64-linux-gnu-gcc -std=c11 -O2 -Wall -Wextra -Wpedantic -Wshadow -Wmissing-prototypes -Wvla \
  -Wcast-qual -Werror -Iinclude -I"$B/include" -Isrc -DLQ_STATIC \
  tests/neon_kernels_main.c "$B/libquant.a" -lm -lpthread -o "$B/neon_kernels"
qemu-aarch64-static -L /usr/aarch64-linux-gnu "$B/neon_kernels"
LQ_SIMD=scalar qemu-aarch64-static -L /usr/aarch64-linux-gnu "$B/neon_kernels"
