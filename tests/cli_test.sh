#!/bin/sh
# End-to-end checks of the lq program.
set -eu
lq=$1
"$lq" --version | grep -q "libquant"
"$lq" --help >/dev/null
"$lq" info | grep -q "dispatch:"
"$lq" info --json | grep -q '"physical_cores":'
if "$lq" info --bogus 2>/dev/null; then echo "unknown option accepted"; exit 1; fi
if "$lq" nosuchcommand 2>/dev/null; then echo "unknown command accepted"; exit 1; fi
LQ_SIMD=scalar "$lq" info | grep -q "dispatch:   scalar"

# ---- the method registry drives --method and the help text ------------------
"$lq" quantize --help >"/tmp/lq_qhelp.$$" 2>&1 || true
methods=$(sed -n 's/^  Methods: \(.*\) (defaults.*/\1/p' "/tmp/lq_qhelp.$$" | tr -d ',')
[ "$(echo $methods | wc -w)" -eq 6 ] || { echo "cli: help lists methods '$methods'"; exit 1; }
for m in $methods; do
  grep -q "^    $m: --" "/tmp/lq_qhelp.$$" || { echo "cli: no option line for method $m"; exit 1; }
done
rm -f "/tmp/lq_qhelp.$$"
if "$lq" quantize --method nosuch a.npy b.lqt 2>/dev/null; then echo "cli: unknown method accepted"; exit 1; fi

# ---- quantize / inspect / demo end to end -----------------------------------
d=$(mktemp -d /tmp/lq_cli_test.XXXXXX)
trap 'rm -rf "$d"' EXIT
fail() { echo "cli: $*"; exit 1; }

# The demo's synthetic layer as files: F32, F16 and BF16 weights (safetensors),
# a Hessian (safetensors) and calibration activations (.npy).
"$lq" demo --synthetic --save "$d/L" --rows 32 --cols 128 --samples 256 >/dev/null
for f in L.safetensors L.hessian.safetensors L.calib.npy; do
  [ -s "$d/$f" ] || fail "demo --save did not write $f"
done

# Every 2-D tensor, Hessian from a file, JSON summary.
"$lq" quantize --method int --bits 4 --group 64 --quiet --json \
  --hessian "$d/L.hessian.safetensors" "$d/L.safetensors" "$d/q.lqt" >"$d/q.json"
[ -s "$d/q.lqt" ] || fail "no output file"
[ ! -e "$d/q.lqt.part" ] || fail "partial file left behind"
for t in layer.weight layer_f16.weight layer_bf16.weight; do
  grep -q "\"name\":\"$t\",\"rows\":32,\"cols\":128,\"bits_per_weight\":4.3125" "$d/q.json" ||
    fail "JSON summary lacks $t: $(cat "$d/q.json")"
done
grep -q '"method":"int"' "$d/q.json" || fail "JSON: method"
grep -q '"hessian":"file"' "$d/q.json" || fail "JSON: hessian"
if grep -q '"proxy_loss":null' "$d/q.json"; then fail "JSON: proxy loss missing with H"; fi
[ "$(grep -o '"rel_error":' "$d/q.json" | wc -l)" -eq 3 ] || fail "JSON: 3 tensors expected"

# The output file: valid, three int tensors at 4 bits + side info.
"$lq" inspect "$d/q.lqt" >"$d/inspect.txt" || fail "inspect rejected a fresh file"
grep -q "tensors:    3" "$d/inspect.txt" || fail "inspect: count"
grep -q "format:   int" "$d/inspect.txt" || fail "inspect: format"
grep -q "valid:    yes" "$d/inspect.txt" || fail "inspect: valid"
"$lq" inspect --json --mmap "$d/q.lqt" | grep -q '"valid":true}$' || fail "inspect --json"

# Calibration activations instead of H; one tensor; .npy input; table output.
"$lq" quantize --method int --bits 3 --calib "$d/L.calib.npy" --tensor layer_bf16.weight \
  --json "$d/L.safetensors" "$d/one.lqt" 2>"$d/progress.txt" >"$d/one.json"
grep -q '"hessian":"calib"' "$d/one.json" || fail "calib JSON"
grep -q '"name":"layer_bf16.weight"' "$d/one.json" || fail "--tensor"
if grep -q '"proxy_loss":null' "$d/one.json"; then fail "calib: no proxy loss"; fi
grep -q "quantize: \[1/1\] layer_bf16.weight" "$d/progress.txt" || fail "plain progress lines"
"$lq" quantize --method int --rtn "$d/L.calib.npy" "$d/npy.lqt" 2>/dev/null |
  grep -q "1 tensor(s)" || fail "npy input / table"
"$lq" inspect "$d/npy.lqt" >/dev/null || fail "inspect npy.lqt"

# NestQuant beta selection rule from the command line.
"$lq" quantize --method nestquant --q 14 --select exhaustive --rtn --quiet \
  --tensor layer.weight "$d/L.safetensors" "$d/nq.lqt" >/dev/null || fail "nestquant --select"
"$lq" inspect "$d/nq.lqt" | grep -q "valid:    yes" || fail "inspect nq.lqt"
"$lq" quantize --method nestquant --codebook e8p --quiet --json \
  --tensor layer.weight "$d/L.safetensors" "$d/e8p.lqt" >"$d/e8p.json" || fail "nestquant e8p"
grep -q '"bits_per_weight":2.265625' "$d/e8p.json" || fail "e8p bits: $(cat "$d/e8p.json")"
"$lq" inspect "$d/e8p.lqt" | grep -q "format:   e8p" || fail "inspect e8p"
if "$lq" quantize --method nestquant --select nosuch "$d/L.safetensors" "$d/x.lqt" 2>/dev/null; then
  fail "unknown --select accepted"; fi

# Errors are reported, not crashes.
if "$lq" quantize --method nosuch "$d/L.safetensors" "$d/x.lqt" 2>/dev/null; then
  fail "unknown method accepted"; fi
if "$lq" quantize --method int "$d/nonexistent" "$d/x.lqt" 2>/dev/null; then
  fail "missing input accepted"; fi
if "$lq" quantize --method int --tensor nope "$d/L.safetensors" "$d/x.lqt" 2>/dev/null; then
  fail "unknown tensor accepted"; fi
if "$lq" quantize --method int --bits 99 "$d/L.safetensors" "$d/x.lqt" 2>/dev/null; then
  fail "bad option value accepted"; fi
[ ! -e "$d/x.lqt" ] && [ ! -e "$d/x.lqt.part" ] || fail "failed run left a file"
cp "$d/q.lqt" "$d/bad.lqt"
printf '\377' | dd of="$d/bad.lqt" bs=1 seek=700 conv=notrunc 2>/dev/null
if "$lq" inspect "$d/bad.lqt" >"$d/bad.txt"; then fail "corrupt file passed inspect"; fi
grep -qi "invalid" "$d/bad.txt" || fail "inspect: no invalid verdict"
head -c 100 "$d/q.lqt" >"$d/trunc.lqt"
if "$lq" inspect "$d/trunc.lqt" >/dev/null; then fail "truncated file passed inspect"; fi

# The demo on a small layer (two rows of the table).
"$lq" demo --synthetic --rows 32 --cols 128 --samples 256 --methods int-gptq --json >"$d/demo.txt"
grep -q "^int-rtn " "$d/demo.txt" || fail "demo: reference row"
grep -q "^int-gptq " "$d/demo.txt" || fail "demo: gptq row"
grep -q '"method":"int-gptq","bits":4,"status":"ok"' "$d/demo.txt" || fail "demo: JSON"

# ---- lq bench matvec builds its tensors through the methods ------------------
# GPTVQ's default at 64 x 512: 2-bit codes + a 16 x 2 half codebook per 16 rows
# x 256 columns = 2.125 stored bits/weight, decode kernel layout counted apart.
"$lq" bench matvec --method gptvq --rows 64 --cols 512 --hot --no-stream --no-deq \
  --min-time 0.01 --mode exact >"$d/bm.txt" || fail "bench matvec --method gptvq"
grep -q "matvec vq (method gptvq) 64x512" "$d/bm.txt" || fail "bench matvec: header: $(cat "$d/bm.txt")"
grep -q "stored 2.141 bits/weight" "$d/bm.txt" || fail "bench matvec: stored bits: $(cat "$d/bm.txt")"
grep -q "kernel layout" "$d/bm.txt" || fail "bench matvec: kernel layout bytes"
grep -q "CACHE-RESIDENT" "$d/bm.txt" || fail "bench matvec: --hot must be labelled cache-resident"
# method options reach the method: AQLM 1 x 4-bit codebook of 8-vectors,
# first 16 rows fitted and repeated
"$lq" bench matvec --method aqlm --codebooks 1 --code-bits 4 --rounds 1 --beam 1 \
  --kmeans-iters 1 --rows 64 --cols 64 --fit-rows 16 --hot --no-stream --no-deq \
  --min-time 0.01 >"$d/bm2.txt" || fail "bench matvec --method aqlm"
grep -q "first 16 rows fitted" "$d/bm2.txt" || fail "bench matvec: --fit-rows: $(cat "$d/bm2.txt")"
if "$lq" bench matvec --method nosuch --rows 16 --cols 16 2>/dev/null; then
  fail "bench matvec accepted an unknown method"; fi
if "$lq" bench matvec --method gptvq --fit-rows 8 --rows 16 --cols 16 --hot --no-stream \
  --no-deq 2>/dev/null; then fail "bench matvec: --fit-rows accepted for gptvq"; fi
echo "cli: ok"
