#!/bin/sh
# Optional peer: llama.cpp's ggml kernels (ggml_mul_mat on the CPU backend)
# beside `lq bench matvec`, same shape, batch and threads, alternating in one
# run. No ggml code is in this repository: the script builds ggml from a
# source tree you point it to (a ggml or llama.cpp checkout; for llama.cpp
# pass its ggml/ directory), CPU only, Release, -DGGML_NATIVE=ON as
# llama.cpp builds it, no BLAS, into a build directory under /tmp, then
# builds bench/peers/ggml_matvec.c against it.
#
# Usage: bench/peers/ggml_matvec.sh GGML_SRC [options]
#   --lq PATH        the lq tool of a libquant Release build (default: $LQ or build/lq)
#   --shape S        large (4096 inputs x 14336 outputs, default) | square (4096 x 4096)
#   --batch N        activation vectors (default 1; 16 for the batched figure)
#   --threads T      threads for both (default 1; 2 on a 2-core machine)
#   --rounds R       alternation rounds; each pair is measured R times (default 3)
#   --min-time S     seconds per measurement, both tools (default 0.5)
#   --buft B         ggml weight buffer: auto (what llama.cpp picks: AMX or
#                    CPU_REPACK when they take the type; default at batch 1) |
#                    noamx (auto without AMX; default at batch > 1: ggml's AMX
#                    tile path faulted with SIGILL on the test VM) | cpu (plain)
#   --tiers "4 3 2"  bit tiers to run (default all three)
#   --fit-rows F     ggml: quantize the first F rows and repeat them (default 1024;
#                    0 = all rows; kernel speed does not depend on the values)
#   --build DIR      ggml build directory (default /tmp/lq-ggml-peer-build)
#   --out FILE       JSON lines of every measurement (default DIR/results.jsonl)
#   --commit C       ggml commit to print when GGML_SRC is not a git checkout
# Prints each measurement as it is made, then the tables of
# docs/benchmarks.md ("Against llama.cpp's ggml kernels").
set -eu

usage() {
  sed -n '2,28p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
}

[ $# -ge 1 ] || usage
case $1 in -h | --help) usage ;; esac
src=$1
shift
here=$(cd "$(dirname "$0")" && pwd)
lq=${LQ:-build/lq}
shape=large batch=1 threads=1 rounds=3 min_time=0.5 buft="" tiers="4 3 2" fit=1024
build=/tmp/lq-ggml-peer-build out="" commit=""
while [ $# -gt 0 ]; do
  [ $# -ge 2 ] || usage
  case $1 in
    --lq) lq=$2 ;;
    --shape) shape=$2 ;;
    --batch) batch=$2 ;;
    --threads) threads=$2 ;;
    --rounds) rounds=$2 ;;
    --min-time) min_time=$2 ;;
    --buft) buft=$2 ;;
    --tiers) tiers=$2 ;;
    --fit-rows) fit=$2 ;;
    --build) build=$2 ;;
    --out) out=$2 ;;
    --commit) commit=$2 ;;
    *) usage ;;
  esac
  shift 2
done
case $shape in
  large) rows=14336 cols=4096 ;;
  square) rows=4096 cols=4096 ;;
  *) usage ;;
esac
if [ ! -f "$src/include/ggml.h" ] || [ ! -f "$src/CMakeLists.txt" ]; then
  echo "ggml_matvec.sh: $src is not a ggml source tree (no include/ggml.h)" >&2
  exit 1
fi
[ -x "$lq" ] || {
  echo "ggml_matvec.sh: no lq at $lq (build libquant, pass --lq)" >&2
  exit 1
}
out=${out:-$build/results.jsonl}
if [ -z "$buft" ]; then
  buft=auto
  [ "$batch" -eq 1 ] || buft=noamx
fi
if [ -z "$commit" ]; then
  commit=$(git -C "$src" rev-parse --short=8 HEAD 2>/dev/null || echo unknown)
fi

# ---- build ggml (CPU backend only) and the peer program -------------------
echo "== building ggml from $src (commit $commit) in $build"
cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DGGML_BLAS=OFF \
  -DGGML_CPU=ON -DGGML_CUDA=OFF -DGGML_METAL=OFF -DGGML_VULKAN=OFF -DGGML_BUILD_TESTS=OFF \
  -DGGML_BUILD_EXAMPLES=OFF -DBUILD_SHARED_LIBS=ON >"$build.cmake.log" 2>&1 || {
  cat "$build.cmake.log" >&2
  exit 1
}
cmake --build "$build" -j"${JOBS:-2}" --target ggml ggml-cpu >"$build.build.log" 2>&1 || {
  tail -40 "$build.build.log" >&2
  exit 1
}
libdir=$(dirname "$(find "$build" -name 'libggml-cpu.so' | head -n 1)")
peer=$build/ggml_matvec
cc -O2 -std=c11 -Wall -Wextra -I"$src/include" "$here/ggml_matvec.c" -o "$peer" \
  -L"$libdir" -lggml -lggml-cpu -lggml-base -lm -Wl,-rpath,"$libdir"

# ---- the pairs --------------------------------------------------------------
# Per tier: ggml types, then libquant configurations (label|lq options), each
# made by the method itself through `lq bench matvec --method`.
ggml_types() {
  case $1 in
    4) echo "q4_0 q4_k iq4_nl" ;;
    3) echo "q3_k iq3_xxs" ;;
    2) echo "q2_k iq2_xs iq2_xxs" ;;
  esac
}
lq_configs() {
  case $1 in
    4)
      echo "INT4 g32 (GGUF q4_0 grid)|--method int --gguf-compatible q4_0"
      echo "INT4 g128|--method int --bits 4 --group 128"
      echo "NestQuant q=16|--method nestquant --q 16"
      ;;
    3)
      echo "INT3 g128|--method int --bits 3 --group 128"
      echo "GPTQT k=3|--method gptqt --k 3"
      echo "NestQuant q=8|--method nestquant --q 8"
      echo "GPTVQ d=1 3-bit|--method gptvq --dim 1 --index-bits 3"
      ;;
    2)
      echo "INT2 g128|--method int --bits 2 --group 128"
      echo "BCQ k=2|--method bcq --k 2"
      echo "GPTVQ default (d=2)|--method gptvq"
      echo "AQLM 2x8 (256 rows fitted)|--method aqlm --fit-rows 256"
      echo "NestQuant E8P|--method nestquant --codebook e8p"
      ;;
  esac
}

# ---- alternate: in each round, every ggml type and every lq config of a tier,
# interleaved (ggml, lq, ggml, lq, ...), so both see the same machine state.
echo "== $("$lq" info | sed -n 's/^cpu: *//p'); $(uptime | sed 's/.*load/load/')"
"$lq" info
: >"$out"
shape_opts="--rows $rows --cols $cols --batch $batch --threads $threads --min-time $min_time"
r=1
while [ "$r" -le "$rounds" ]; do
  for tier in $tiers; do
    g=$(ggml_types "$tier")
    lq_configs "$tier" >"$build.cfgs"
    n_g=$(echo "$g" | wc -w)
    n_l=$(wc -l <"$build.cfgs")
    n=$((n_g > n_l ? n_g : n_l))
    i=1
    while [ "$i" -le "$n" ]; do
      t=$(echo "$g" | cut -d' ' -f"$i")
      if [ "$i" -le "$n_g" ] && [ -n "$t" ]; then
        # shellcheck disable=SC2086
        line=$("$peer" --type "$t" $shape_opts --buft "$buft" --fit-rows "$fit" | tail -n 1)
        echo "$line" | sed "s/^{/{\"round\":$r,\"tier\":$tier,/" >>"$out"
        echo "round $r  ggml $t: $line"
      fi
      if [ "$i" -le "$n_l" ]; then
        cfg=$(sed -n "${i}p" "$build.cfgs")
        label=${cfg%%|*}
        opts=${cfg#*|}
        # shellcheck disable=SC2086
        line=$("$lq" bench matvec $opts $shape_opts --mode both --no-deq --no-stream | tail -n 1)
        echo "$line" | sed "s/^{/{\"round\":$r,\"tier\":$tier,\"label\":\"$label\",/" >>"$out"
        echo "round $r  lq $label: $line"
      fi
      i=$((i + 1))
    done
  done
  r=$((r + 1))
done

# ---- tables -----------------------------------------------------------------
echo "== results in $out (ggml commit $commit)"
python3 - "$out" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
med = statistics.median
def agg(key, sel):
    out = {}
    for r in rows:
        if sel(r):
            out.setdefault(key(r), []).append(r)
    return out
g = agg(lambda r: (r["tier"], r["type"]), lambda r: r["bench"] == "ggml_matvec")
l = agg(lambda r: (r["tier"], r["label"]), lambda r: r["bench"] == "matvec")
print("| tier | kernel | config | stored bpw | read bpw | copies | ms/call wall | CPU ms/call | GB/s read (CPU) | runs |")
print("|---|---|---|---|---|---|---|---|---|---|")
G, L = {}, {}
for (tier, t), rs in sorted(g.items(), key=lambda x: (-x[0][0], x[0][1])):
    w, c = med(r["us"] for r in rs) / 1e3, med(r["cpu_us"] for r in rs) / 1e3
    G[(tier, t)] = (w, c, rs[0]["bpw"])
    by = rs[0]["read_bpw"] * rs[0]["rows"] * rs[0]["cols"] / 8
    print(f"| {tier} | ggml | {t} ({rs[0]['buft']}) | {rs[0]['bpw']:.3f} | {rs[0]['read_bpw']:.3f} | {rs[0]['copies']} | {w:.3f} | {c:.3f} | {by / c / 1e6:.1f} | {len(rs)} |")
for (tier, lab), rs in sorted(l.items(), key=lambda x: -x[0][0]):
    for p in ("codes-exact", "codes-fast"):
        w, c = med(r[p + "_us"] for r in rs) / 1e3, med(r[p + "_cpu_us"] for r in rs) / 1e3
        if p == "codes-fast":
            L[(tier, lab)] = (w, c, rs[0]["bpw"])
        by = rs[0]["kernel_bpw"] * rs[0]["rows"] * rs[0]["cols"] / 8
        print(f"| {tier} | lq {p[6:]} | {lab} | {rs[0]['bpw']:.3f} | {rs[0]['kernel_bpw']:.3f} | {rs[0]['copies']} | {w:.3f} | {c:.3f} | {by / c / 1e6:.1f} | {len(rs)} |")
print()
print("Ratio ggml CPU time / libquant fast CPU time (> 1: libquant faster); * = closest bits/weight")
for tier in sorted({k[0] for k in G}, reverse=True):
    gt = [k for k in G if k[0] == tier]
    lt = [k for k in L if k[0] == tier]
    print()
    print("| ggml type (bpw) | " + " | ".join(f"{k[1]} ({L[k][2]:.3f})" for k in lt) + " |")
    print("|---|" + "---|" * len(lt))
    for k in sorted(gt):
        best = min(lt, key=lambda m: abs(L[m][2] - G[k][2])) if lt else None
        cells = [f"{G[k][1] / L[m][1]:.2f}{'*' if m == best else ''} (wall {G[k][0] / L[m][0]:.2f})" for m in lt]
        print(f"| {k[1]} ({G[k][2]:.3f}) | " + " | ".join(cells) + " |")
EOF
