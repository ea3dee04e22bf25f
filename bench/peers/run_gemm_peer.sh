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

field() { sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p" | tail -n 1; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == "NaN" || b == 0 || a == "NaN") print "NaN"; else printf "%.2f", a / b }'; }

# Wall-clock GFLOP/s is what a user gets; GFLOP per CPU-second (process CPU
# time) is the per-core efficiency, robust to other processes holding the
# cores (meaningful for one thread; OpenBLAS threads may spin).
printf '%6s %4s | %8s %8s %8s %7s %7s | %8s %8s %7s\n' n thr lq OB-skx OB-auto lq/skx lq/auto \
  "lq cpu" "skx cpu" "ratio"
ALL=""
for n in $SIZES; do
  for t in $THREADS; do
    out=$("$LQ" bench gemm --n "$n" --threads "$t" --reps "$REPS" | tail -n 1)
    lq=$(echo "$out" | field gflops); lqc=$(echo "$out" | field cpu_gflops)
    auto=NaN; skx=NaN; skxc=NaN
    if [ -n "$PEER" ]; then
      auto=$("$PEER" "$n" "$t" "$REPS" | field gflops)
      o=$(OPENBLAS_CORETYPE=SkylakeX "$PEER" "$n" "$t" "$REPS")
      skx=$(echo "$o" | field gflops); skxc=$(echo "$o" | field cpu_gflops)
    fi
    printf '%6s %4s | %8s %8s %8s %7s %7s | %8s %8s %7s\n' "$n" "$t" "$lq" "$skx" "$auto" \
      "$(ratio "$lq" "$skx")" "$(ratio "$lq" "$auto")" "$lqc" "$skxc" "$(ratio "$lqc" "$skxc")"
    ALL="$ALL${ALL:+,}{\"n\":$n,\"threads\":$t,\"lq\":$lq,\"lq_cpu\":$lqc,\"openblas_skylakex\":$skx,\"openblas_skylakex_cpu\":$skxc,\"openblas_auto\":$auto}"
  done
done
echo "{\"bench\":\"gemm_peer\",\"results\":[$ALL]}"
