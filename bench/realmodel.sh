#!/bin/sh
# The real-model table (lq demo) on the shipped model and on student-d512:
#   bench/realmodel.sh [LQ] [STUDENT_DIR] [OUT_DIR]
# LQ defaults to build/lq; STUDENT_DIR to ../shared/realmodel/student-d512
# (skipped with a note when absent: it is not part of the repository).
# Writes OUT_DIR/demo-d64.txt and OUT_DIR/demo-student.txt (JSON lines
# included) and prints both tables. Environment: LQ_BENCH_CALIB (calibration
# chunks, default 32), LQ_BENCH_EVAL (evaluation chunks, default 100),
# LQ_BENCH_THREADS (default 0: all physical cores).
set -eu
cd "$(dirname "$0")/.."
lq=${1:-build/lq}
student=${2:-../shared/realmodel/student-d512}
out=${3:-bench/results}
mkdir -p "$out"
D=tests/data/realmodel
calib=${LQ_BENCH_CALIB:-32}
ev=${LQ_BENCH_EVAL:-100}
th=${LQ_BENCH_THREADS:-0}
echo "== shipped model (tests/data/realmodel/tinystories_d64_l5.bin)"
"$lq" demo --json --calib-chunks "$calib" --eval-chunks "$ev" --threads "$th" | tee "$out/demo-d64.txt" | grep -v '^{'
if [ -d "$student" ]; then
  echo "== student-d512 ($student)"
  "$lq" demo --json --model "$student" --tokenizer $D/tok512.bin --text $D/tinystories_val.txt \
    --calib-text $D/tinystories_train_head.txt --calib-chunks "$calib" --eval-chunks "$ev" \
    --threads "$th" | tee "$out/demo-student.txt" | grep -v '^{'
else
  echo "== student-d512: $student not found (give its folder as the second argument)"
fi
