#!/bin/sh
# Additive quantizers on 8-dimensional data, M = 2, B = 8: libquant's
# plain-MSE beam search (`lq bench aqlm --mode mse`) beside FAISS's
# ResidualQuantizer (beam search, with and without its beam LUT) and
# LocalSearchQuantizer (ICM) from Debian's libfaiss-dev, on the same training
# and test vectors (i.i.d. Gaussian and weight-like Student-t), the same beam
# size, 1 and 2 threads. "rq-lqcb" is FAISS's beam search run on lq's
# trained codebooks: the same search on the same codebooks, so its MSE must
# equal lq's and only the time differs.
#
# usage: bench/peers/faiss_aq.sh [path/to/lq] [beam] [ntrain] [ntest] [reps] [lsq 0|1]
#   defaults: build/lq 8 65536 100000 3 1
# FAISS is optional: without its headers the script runs lq alone. Times are
# medians of reps runs, wall and process CPU (the CPU column is the fairer
# one on a shared machine).
set -eu
LQ=${1:-build/lq}
BEAM=${2:-8}
NTRAIN=${3:-65536}
NTEST=${4:-100000}
REPS=${5:-3}
LSQ=${6:-1}
HERE=$(cd "$(dirname "$0")" && pwd)
TMP=${TMPDIR:-/tmp}/lq_aq_peer.$$
mkdir -p "$TMP"
trap 'rm -rf "$TMP"' EXIT

PEER=""
if [ -e /usr/include/faiss/impl/ResidualQuantizer.h ]; then
  if ${CXX:-c++} -O2 -std=c++17 -fopenmp -o "$TMP/faiss_aq" "$HERE/faiss_aq.cpp" \
       -lfaiss -lblas -llapack 2>"$TMP/cxx.log"; then
    PEER="$TMP/faiss_aq"
  else
    echo "note: could not build the FAISS peer:"; cat "$TMP/cxx.log"
  fi
else
  echo "note: FAISS headers not found; running lq only"
fi
export OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-SkylakeX}

"$LQ" bench aqlm --mode mse --beam "$BEAM" --ntrain "$NTRAIN" --ntest "$NTEST" --mreps "$REPS" \
  --rounds 6 --export "$TMP" > "$TMP/lq.out"
cat "$TMP/lq.out" | grep -v '^{'
grep '^{' "$TMP/lq.out" > "$TMP/json"
if [ -n "$PEER" ]; then
  for kind in gauss weights; do
    for t in 1 2; do
      OMP_NUM_THREADS=$t OPENBLAS_NUM_THREADS=$t "$PEER" "$TMP" "$kind" "$NTRAIN" "$NTEST" "$BEAM" \
        "$t" "$REPS" "$LSQ" >> "$TMP/json"
    done
  done
fi
get() { sed -n "s/.*\"$1\":\"*\([a-z0-9.e+-]*\).*/\1/p"; }
echo
printf '%-12s %-8s %4s %3s | %12s | %9s %9s\n' method data beam thr "mse_test" "enc s" "enc cpu s"
while read -r line; do
  m=$(echo "$line" | get method); [ -z "$m" ] && m=lq
  printf '%-12s %-8s %4s %3s | %12s | %9s %9s\n' "$m" "$(echo "$line" | get data)" \
    "$(echo "$line" | get beam)" "$(echo "$line" | get threads)" "$(echo "$line" | get mse_test)" \
    "$(echo "$line" | get encode_seconds_median)" "$(echo "$line" | get encode_cpu_seconds_median)"
done < "$TMP/json"
echo
cat "$TMP/json"
