#!/bin/sh
# k-means: libquant (`lq bench kmeans`) beside FAISS (faiss::Clustering, from
# Debian's libfaiss-dev) on the same data and from the same initial centroids.
#
# usage: bench/peers/faiss_kmeans.sh [path/to/lq] [configs] [threads] [iters] [reps]
#   configs: "d:k ..." (default "8:256 8:4096 2:256 2:4096"), n = 10^6 points
#   threads: default "1 2"; iters: default 20; reps (timed runs, median): 1
#
# FAISS is optional: without its headers the script runs lq alone. FAISS
# runs twice per point: with subsampling off (all 10^6 points, the same work
# as lq) and with its default max_points_per_centroid = 256 (trains on
# min(n, 256 k) points: 65536 points for k = 256). Its BLAS is Debian's
# libblas alternative; OPENBLAS_CORETYPE=SkylakeX is exported so that an
# OpenBLAS behind it uses its AVX-512 kernels on CPUs it does not recognise.
# Each point runs lq and FAISS back to back (same machine load). "wall x" and
# "cpu x" are FAISS (all points) over lq: > 1 means lq is faster.
set -eu
LQ=${1:-build/lq}
CONFIGS=${2:-"8:256 8:4096 2:256 2:4096"}
THREADS=${3:-"1 2"}
ITERS=${4:-20}
REPS=${5:-1}
N=1000000
HERE=$(cd "$(dirname "$0")" && pwd)
TMP=${TMPDIR:-/tmp}/lq_kmeans_peer.$$
mkdir -p "$TMP"
trap 'rm -rf "$TMP"' EXIT

PEER=""
if [ -e /usr/include/faiss/Clustering.h ]; then
  if ${CXX:-c++} -O2 -std=c++17 -fopenmp -o "$TMP/faiss_kmeans" "$HERE/faiss_kmeans.cpp" \
       -lfaiss -lblas -llapack 2>"$TMP/cxx.log"; then
    PEER="$TMP/faiss_kmeans"
  else
    echo "note: could not build the FAISS peer:"; cat "$TMP/cxx.log"
  fi
else
  echo "note: FAISS headers not found; running lq only"
fi
export OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-SkylakeX}
# Idle OpenMP threads sleep instead of spinning: on a shared (oversubscribed)
# machine spinning makes FAISS's 2-thread runs many times slower.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}

get() { sed -n "s/.*\"$1\":\([0-9.e+-]*\).*/\1/p" | tail -n 1; }

printf '%2s %5s %3s | %7s %7s %13s | %7s %7s %13s | %7s %13s | %6s %6s\n' d k thr "lq s" "lq cpu" \
  "lq inertia" "faiss s" "f cpu" "faiss inertia" "fsub s" "fsub inertia" "wall x" "cpu x"
for cfg in $CONFIGS; do
  d=${cfg%%:*}; k=${cfg##*:}
  "$LQ" bench kmeans --n $N --d "$d" --k "$k" --iters "$ITERS" --threads 1 --reps 1 \
    --export "$TMP" >/dev/null
  for t in $THREADS; do
    L=$("$LQ" bench kmeans --n $N --d "$d" --k "$k" --iters "$ITERS" --threads "$t" --reps "$REPS" | tail -n 1)
    ls=$(echo "$L" | get seconds_median); lc=$(echo "$L" | get cpu_seconds_median)
    li=$(echo "$L" | get inertia_final)
    fs=-; fc=-; fi=-; ss=-; si=-; sp=-; cp=-
    if [ -n "$PEER" ]; then
      F=$(OMP_NUM_THREADS=$t OPENBLAS_NUM_THREADS=$t "$PEER" "$TMP" $N "$d" "$k" "$ITERS" "$t" 0 "$REPS")
      if [ $((k * 256)) -lt $N ]; then
        S=$(OMP_NUM_THREADS=$t OPENBLAS_NUM_THREADS=$t "$PEER" "$TMP" $N "$d" "$k" "$ITERS" "$t" 256 "$REPS")
      else
        S=$F # k * 256 >= n: FAISS's default does not subsample
      fi
      fs=$(echo "$F" | get seconds_median); fc=$(echo "$F" | get cpu_seconds_median)
      fi=$(echo "$F" | get inertia_final)
      ss=$(echo "$S" | get seconds_median); si=$(echo "$S" | get inertia_final)
      sp=$(awk "BEGIN{printf \"%.2f\", $fs/$ls}"); cp=$(awk "BEGIN{printf \"%.2f\", $fc/$lc}")
      echo "$F" >>"$TMP/json"; echo "$S" >>"$TMP/json"
    fi
    echo "$L" >>"$TMP/json"
    printf '%2s %5s %3s | %7.2f %7.2f %13.6g | %7s %7s %13s | %7s %13s | %6s %6s\n' "$d" "$k" "$t" \
      "$ls" "$lc" "$li" "$fs" "$fc" "$fi" "$ss" "$si" "$sp" "$cp"
  done
done
echo
cat "$TMP/json"
