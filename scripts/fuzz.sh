#!/bin/sh
# Build the libFuzzer harnesses with clang (ASan + UBSan, coverage on the
# library) in build-fuzz, generate the seed corpora into fuzz/corpus/<harness>/,
# and run each harness for N seconds (default 30). New inputs go to
# build-fuzz/corpus/<harness>/ (the seeds stay untouched). Fails on any crash,
# leak, sanitizer report or timeout; crash inputs are left in build-fuzz/.
#   scripts/fuzz.sh [N] [harness...]   harnesses: every fuzz/fuzz_<name>.c by default
set -eu
cd "$(dirname "$0")/.."
secs=${1:-30}
[ $# -gt 0 ] && shift
all=$(for f in fuzz/fuzz_*.c; do basename "$f" .c | sed 's/^fuzz_//'; done)
harnesses=${*:-$all}
cc=${LQ_FUZZ_CC:-clang}
command -v "$cc" >/dev/null || { echo "fuzz.sh: $cc not found" >&2; exit 1; }

cmake -S . -B build-fuzz -DCMAKE_C_COMPILER="$cc" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DLQ_BUILD_FUZZ=ON -DLQ_BUILD_TESTS=OFF -DLQ_SANITIZE=address,undefined >/dev/null
targets="lq_fuzz_corpus"
for h in $harnesses; do targets="$targets fuzz_$h"; done
# shellcheck disable=SC2086
cmake --build build-fuzz -j "$(nproc)" --target $targets

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:allocator_may_return_null=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# Seeds (each method runs in a child process of the generator: a method that
# crashes is reported and only its seeds are missing).
build-fuzz/fuzz/lq_fuzz_corpus fuzz/corpus

for h in $harnesses; do
  rm -rf "build-fuzz/artifacts/$h"
  mkdir -p "build-fuzz/corpus/$h" "build-fuzz/artifacts/$h" "fuzz/corpus/$h"
  dict=""
  [ -f "fuzz/$h.dict" ] && dict="-dict=fuzz/$h.dict"
  echo "=== fuzz_$h: ${secs}s"
  rc=0
  # shellcheck disable=SC2086
  build-fuzz/fuzz/"fuzz_$h" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
    -max_len=16384 -artifact_prefix="build-fuzz/artifacts/$h/" $dict \
    "build-fuzz/corpus/$h" "fuzz/corpus/$h" >"build-fuzz/fuzz_$h.log" 2>&1 || rc=$?
  grep -E "^(Done|stat::number_of_executed_units|INFO: seed corpus)" "build-fuzz/fuzz_$h.log" || true
  if [ "$rc" -ne 0 ] || ls "build-fuzz/artifacts/$h"/* >/dev/null 2>&1; then
    tail -n 60 "build-fuzz/fuzz_$h.log" >&2
    echo "fuzz.sh: fuzz_$h failed (status $rc); inputs in build-fuzz/artifacts/$h/" >&2
    exit 1
  fi
done
echo "fuzz.sh: all harnesses ran ${secs}s without findings"
