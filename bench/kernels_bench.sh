#!/bin/sh
# The kernel benchmark grid of docs/benchmarks.md ("Kernels"): every format
# at 2, 3 and 4 bits on the issue's shapes, batch 1 and 16, 1 and 2 threads,
# beside the streaming read bandwidth and OpenBLAS fp32 GEMV/GEMM (optional
# peer). Writes JSON lines to $OUT (default /tmp/lq_kernels_bench.jsonl) and
# prints a markdown table (bench/kernels_table.py).
# Usage: bench/kernels_bench.sh [build-dir]   (quick: QUICK=1)
set -eu
cd "$(dirname "$0")/.."
B=${1:-build-release}
LQ="$B/lq"
OUT=${OUT:-/tmp/lq_kernels_bench.jsonl}
MT=${MIN_TIME:-0.3}
: > "$OUT"
for t in 1 2; do "$LQ" bench stream --threads $t | tail -1 >> "$OUT"; done
shapes="4096x4096 14336x4096 4096x14336"
[ "${QUICK:-0}" = 1 ] && shapes="4096x4096"
for shape in $shapes; do
  R=${shape%x*}; C=${shape#*x}
  for f in int e8 vq bcq aq; do
    for bits in 2 3 4; do
      for batch in 1 16; do
        for t in 1 2; do
          # full grid on 4096x4096; the other shapes: batch 1 / 1 thread
          # (memory-bound) and batch 16 / 2 threads (compute-bound)
          if [ "$shape" != 4096x4096 ] && { [ $batch = 1 ] && [ $t = 2 ]; } ; then continue; fi
          if [ "$shape" != 4096x4096 ] && { [ $batch = 16 ] && [ $t = 1 ]; } ; then continue; fi
          deq=""; [ $batch = 16 ] && deq="--no-deq"
          "$LQ" bench matvec --format $f --bits $bits --rows $R --cols $C --batch $batch \
              --threads $t --min-time "$MT" --no-stream $deq | tail -1 >> "$OUT" || true
        done
      done
    done
  done
  for batch in 1 16; do
    for t in 1 2; do
      bench/peers/openblas_gemv.sh --rows $R --cols $C --batch $batch --threads $t >> "$OUT" || true
    done
  done
done
/usr/bin/python3 bench/kernels_table.py "$OUT"
