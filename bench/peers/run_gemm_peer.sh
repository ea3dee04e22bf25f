#!/bin/sh
# sgemm: libquant (`lq bench gemm`) beside OpenBLAS in the same run.
#
# usage: bench/peers/run_gemm_peer.sh [path/to/lq] [sizes] [threads] [reps]
#   defaults: build/lq, "512 1024 2048 4096", "1 2", 5 (3 at n >= 4096)
#
# OpenBLAS is optional: when libopenblas (Debian's libopenblas-dev) is not
# installed the script only runs lq. OpenBLAS is measured twice: with its own
# CPU detection (the Debian 0.3.21 build falls back to the generic Prescott
# kernels on CPUs it does not know, e.g. recent Xeons under KVM) and with
# OPENBLAS_CORETYPE=SkylakeX (its AVX-512 sgemm kernels), which is the fair
# peer on an AVX-512 machine. Each (n, threads) point runs lq and the peers
# back to back so that they see the same machine load.
set -eu
LQ=${1:-build/lq}
SIZES=${2:-"512 1024 2048 4096"}
THREADS=${3:-"1 2"}
REPS=${4:-5}
HERE=$(cd "$(dirname "$0")" && pwd)
TMP=${TMPDIR:-/tmp}/lq_gemm_peer.$$
mkdir -p "$TMP"
trap 'rm -rf "$TMP"' EXIT

PEER=""
if [ -e /usr/include/x86_64-linux-gnu/cblas.h ] || [ -e /usr/include/cblas.h ]; then
  if ${CC:-cc} -O2 -o "$TMP/openblas_gemm" "$HERE/openblas_gemm.c" -lopenblas 2>"$TMP/cc.log"; then
    PEER="$TMP/openblas_gemm"
  else
    echo "note: could not build the OpenBLAS peer:"; cat "$TMP/cc.log"
  fi
else
  echo "note: OpenBLAS headers not found; running lq only"
fi

json() { sed -n 's/.*"gflops":\([0-9.]*\).*/\1/p' | tail -n 1; }

printf '%6s %4s %10s %14s %14s %9s %9s\n' n thr "lq GF/s" "OB-auto GF/s" "OB-skx GF/s" "lq/auto" "lq/skx"
ALL=""
for n in $SIZES; do
  for t in $THREADS; do
    lq=$("$LQ" bench gemm --n "$n" --threads "$t" --reps "$REPS" | json)
    auto=NaN; skx=NaN
    if [ -n "$PEER" ]; then
      auto=$("$PEER" "$n" "$t" "$REPS" | json)
      skx=$(OPENBLAS_CORETYPE=SkylakeX "$PEER" "$n" "$t" "$REPS" | json)
    fi
    ra=$(awk -v a="$lq" -v b="$auto" 'BEGIN { if (b == "NaN" || b == 0) print "NaN"; else printf "%.2f", a / b }')
    rs=$(awk -v a="$lq" -v b="$skx" 'BEGIN { if (b == "NaN" || b == 0) print "NaN"; else printf "%.2f", a / b }')
    printf '%6s %4s %10s %14s %14s %9s %9s\n' "$n" "$t" "$lq" "$auto" "$skx" "$ra" "$rs"
    ALL="$ALL${ALL:+,}{\"n\":$n,\"threads\":$t,\"lq\":$lq,\"openblas_auto\":$auto,\"openblas_skylakex\":$skx}"
  done
done
echo "{\"bench\":\"gemm_peer\",\"results\":[$ALL]}"
