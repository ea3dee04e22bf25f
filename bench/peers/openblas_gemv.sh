#!/bin/sh
# Optional peer: fp32 OpenBLAS GEMV (batch 1) / GEMM (batch > 1) on the same
# shape as `lq bench matvec`. Usage: openblas_gemv.sh [--rows R] [--cols C]
# [--batch N] [--threads T] [--hot]. Needs libopenblas-dev; skips otherwise.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${TMPDIR:-/tmp}/lq_openblas_gemv
inc=$(pkg-config --cflags openblas 2>/dev/null || echo "-I/usr/include/x86_64-linux-gnu/openblas-pthread")
lib=$(pkg-config --libs openblas 2>/dev/null || echo "-lopenblas")
if ! cc -O2 -std=c11 $inc "$here/openblas_gemv.c" -o "$out" $lib 2>/dev/null; then
  echo "openblas_gemv.sh: OpenBLAS not found: skipped"
  exit 0
fi
"$out" "$@"
