#!/bin/sh
# lq on the real model (tests/data/realmodel): generate, eval, quantize a
# complete model with every method, products on the codes against the
# dequantized weights, and the errors on bad input.
set -eu
lq=$1
R=$(cd "$(dirname "$0")" && pwd)/data/realmodel
M=$R/tinystories_d64_l5.bin
T=$R/tok512.bin
d=$(mktemp -d /tmp/lq_model_test.XXXXXX)
trap 'rm -rf "$d"' EXIT
fail() { echo "model cli: $*"; exit 1; }
num() { sed -n "s/.*\"$1\":\([-0-9.e+]*\).*/\1/p" "$2"; }
# |a - b| <= tol * |b|
close() { awk -v a="$1" -v b="$2" -v t="$3" 'BEGIN { d = a - b; if (d < 0) d = -d; m = b < 0 ? -b : b; exit !(d <= t * m) }'; }

# greedy text of the fp32 model
"$lq" generate "$M" --tokenizer "$T" -n 30 2>/dev/null >"$d/gen.txt"
grep -q "^Once upon a time, there was a little girl named Lily. She loved to play outside" "$d/gen.txt" ||
  fail "greedy text: $(cat "$d/gen.txt")"
# sampling is reproducible for a seed
"$lq" generate "$M" --tokenizer "$T" -n 20 --temp 1 --seed 7 2>/dev/null >"$d/s1.txt"
"$lq" generate "$M" --tokenizer "$T" -n 20 --temp 1 --seed 7 2>/dev/null >"$d/s2.txt"
cmp -s "$d/s1.txt" "$d/s2.txt" || fail "sampling with a seed is not reproducible"

# the published perplexity (per-document protocol)
"$lq" eval "$M" --tokenizer "$T" --text "$R/tinystories_val.txt" --protocol docs --chunks 64 \
  --json >"$d/fp.json"
close "$(num ppl "$d/fp.json")" 6.185753730335321 1e-6 || fail "fp32 ppl $(num ppl "$d/fp.json")"
[ "$(num tokens "$d/fp.json")" = 15885 ] || fail "tokens scored"

# every method: a complete model from sequential calibration, then the products on the
# codes (EXACT) against the same model with the dequantized weights in fp32
for spec in "int --bits 3 --group 32" "int --bits 4 --rtn" "nestquant" "gptvq" "gptqt" "bcq" \
            "aqlm --rounds 1 --beam 2 --kmeans-iters 4"; do
  set -- $spec
  meth=$1
  tag=$(echo "$spec" | tr -c 'a-z0-9' '_')
  "$lq" quantize --method $spec --calib-text "$R/tinystories_train_head.txt" --tokenizer "$T" \
    --calib-chunks 2 --quiet --json "$M" "$d/$tag.lqt" >"$d/$tag.q.json" || fail "quantize $spec"
  grep -q '"quantized_layers":35' "$d/$tag.q.json" || fail "$spec: not every layer quantized"
  "$lq" eval "$d/$tag.lqt" --tokenizer "$T" --text "$R/tinystories_val.txt" --chunks 3 \
    --ref "$M" --json >"$d/$tag.e.json" || fail "eval $spec"
  mkdir -p "$d/$tag.hf"
  "$lq" dequantize --config "$d/$tag.lqt" "$d/$tag.hf/model.safetensors" >/dev/null
  "$lq" eval "$d/$tag.hf" --tokenizer "$T" --text "$R/tinystories_val.txt" --chunks 3 \
    --json >"$d/$tag.d.json" || fail "eval of the dequantized $spec"
  a=$(num ppl "$d/$tag.e.json")
  b=$(num ppl "$d/$tag.d.json")
  close "$a" "$b" 1e-4 || fail "$spec: ppl on the codes $a, dequantized $b"
  kl=$(num kl "$d/$tag.e.json")
  awk -v k="$kl" 'BEGIN { exit !(k > 0 && k < 2) }' || fail "$spec: KL $kl"
  # FAST products stay close to EXACT
  "$lq" eval "$d/$tag.lqt" --tokenizer "$T" --text "$R/tinystories_val.txt" --chunks 3 --fast \
    --json >"$d/$tag.f.json"
  close "$(num ppl "$d/$tag.f.json")" "$a" 0.05 || fail "$spec: FAST ppl $(num ppl "$d/$tag.f.json")"
done
# fp-input calibration and exclusions
"$lq" quantize --method int --bits 4 --fp-inputs --exclude down_proj,layers.0. \
  --calib-text "$R/tinystories_train_head.txt" --tokenizer "$T" --calib-chunks 2 --quiet --json \
  "$M" "$d/ex.lqt" >"$d/ex.json"
grep -q '"quantized_layers":24' "$d/ex.json" || fail "exclusions: $(num quantized_layers "$d/ex.json")"
"$lq" generate "$d/ex.lqt" --tokenizer "$T" -n 5 >/dev/null 2>&1 || fail "partly quantized model"
# dequantize: f16 output, norms 1-D
"$lq" dequantize --dtype f16 "$d/ex.lqt" "$d/ex16.safetensors" >/dev/null

# ---- errors: a message and a non-zero exit, never a crash -----------------------------
expect_fail() { # expect_fail WHAT PATTERN cmd...
  what=$1 pat=$2
  shift 2
  rc=0
  "$@" >"$d/err.out" 2>"$d/err.txt" || rc=$?
  [ "$rc" -ne 0 ] || fail "$what: accepted"
  [ "$rc" -lt 128 ] || fail "$what: crashed (exit $rc)"
  grep -qi "$pat" "$d/err.txt" || fail "$what: message '$(cat "$d/err.txt")'"
}
head -c 1000 "$M" >"$d/trunc.bin"
expect_fail "truncated checkpoint" "truncated" "$lq" eval "$d/trunc.bin" --tokenizer "$T" --text "$R/tinystories_val.txt"
head -c 20 "$M" >"$d/short.bin"
expect_fail "short header" "header" "$lq" generate "$d/short.bin" --tokenizer "$T"
head -c 3000 "$T" >"$d/tok_short.bin"
expect_fail "tokenizer of another vocabulary" "vocabulary" "$lq" eval "$M" --tokenizer "$d/tok_short.bin" --text "$R/tinystories_val.txt"
: >"$d/empty.txt"
expect_fail "empty text" "empty" "$lq" eval "$M" --tokenizer "$T" --text "$d/empty.txt"
printf 'Once upon a \377\376 time' >"$d/bad.txt"
expect_fail "non-UTF-8 text" "UTF-8" "$lq" eval "$M" --tokenizer "$T" --text "$d/bad.txt"
expect_fail "non-UTF-8 calibration text" "UTF-8" "$lq" quantize --method int --calib-text "$d/bad.txt" --tokenizer "$T" "$M" "$d/x.lqt"
[ ! -e "$d/x.lqt" ] || fail "output written after an error"
expect_fail "non-UTF-8 prompt" "UTF-8" "$lq" generate "$M" --tokenizer "$T" --prompt "$(printf 'a\377')"
# a tensor-only .lqt is not a model
"$lq" quantize --method int --tensor model.norm.weight "$d/ex16.safetensors" "$d/t.lqt" 2>/dev/null && fail "1-D tensor quantized"
"$lq" quantize --method int --quiet --tensor model.layers.0.mlp.up_proj.weight "$d/ex16.safetensors" "$d/t.lqt" >/dev/null
expect_fail "tensor file as a model" "not a complete model" "$lq" eval "$d/t.lqt" --tokenizer "$T" --text "$R/tinystories_val.txt"
# a corrupted complete model
cp "$d/ex.lqt" "$d/corrupt.lqt"
printf '\001\002\003\004' | dd of="$d/corrupt.lqt" bs=1 seek=5000 conv=notrunc 2>/dev/null
expect_fail "corrupted .lqt" "corrupt" "$lq" eval "$d/corrupt.lqt" --tokenizer "$T" --text "$R/tinystories_val.txt"
# a Hugging Face folder whose config does not match its tensors
mkdir -p "$d/hfbad"
cp "$d/int___bits_4___rtn_.hf/model.safetensors" "$d/hfbad/"
sed 's/"intermediate_size": 192/"intermediate_size": 256/' "$d/int___bits_4___rtn_.hf/config.json" >"$d/hfbad/config.json"
expect_fail "config vs tensors" "wrong shape" "$lq" eval "$d/hfbad" --tokenizer "$T" --text "$R/tinystories_val.txt"
echo '{"hidden_size": 64' >"$d/hfbad/config.json"
expect_fail "malformed config.json" "JSON" "$lq" eval "$d/hfbad" --tokenizer "$T" --text "$R/tinystories_val.txt"
expect_fail "output is the input" "overwrite" "$lq" quantize --method int "$M" "$M"
# GGUF export (the checks of the bytes are in tests/test_gguf.c)
"$lq" quantize --method int --gguf-compatible q4_1 --quiet "$M" "$d/g.lqt" >/dev/null || fail "quantize --gguf-compatible"
"$lq" export --gguf --tokenizer "$T" "$d/g.lqt" "$d/g.gguf" >/dev/null || fail "export --gguf"
[ "$(head -c 4 "$d/g.gguf")" = GGUF ] || fail "export: no GGUF magic"
expect_fail "export of group-128 INT" "cannot be written exactly" "$lq" export --gguf --tokenizer "$T" "$d/ex.lqt" "$d/x.gguf"
expect_fail "export of a corrupted .lqt" "corrupt" "$lq" export --gguf --tokenizer "$T" "$d/corrupt.lqt" "$d/x.gguf"
[ ! -e "$d/x.gguf" ] && [ ! -e "$d/x.gguf.part" ] || fail "GGUF output written after an error"
expect_fail "export without a tokenizer" "tokenizer" "$lq" export --gguf "$d/g.lqt" "$d/x.gguf"
expect_fail "--gguf-compatible against --bits" "gguf-compatible" "$lq" quantize --method int --gguf-compatible q4_0 --bits 3 "$M" "$d/x.lqt"
expect_fail "--gguf-compatible for another method" "gguf-compatible" "$lq" quantize --method bcq --gguf-compatible q4_0 "$M" "$d/x.lqt"
expect_fail "--gguf-compatible unknown type" "q4_0, q4_1" "$lq" quantize --method int --gguf-compatible q2_k "$M" "$d/x.lqt"
# activation / KV-cache quantization (tools/lq/actq.c; properties in tests/test_model_actq.c)
V=$R/tinystories_val.txt
"$lq" eval "$M" --tokenizer "$T" --text "$V" --chunks 1 --json >"$d/a16.json"
"$lq" eval "$M" --tokenizer "$T" --text "$V" --chunks 1 --json --act-bits 16 --kv-bits 16 >"$d/b16.json"
[ "$(num ppl "$d/a16.json")" = "$(num ppl "$d/b16.json")" ] || fail "--act-bits 16 changed the perplexity"
"$lq" eval "$M" --tokenizer "$T" --text "$V" --chunks 1 --json --act-bits 4 --kv-bits 4 >"$d/a4.json"
grep -q '"act_quant":"nestquant"' "$d/a4.json" || fail "A4KV4: no act_quant in the JSON"
awk -v a="$(num ppl "$d/a4.json")" -v b="$(num ppl "$d/a16.json")" 'BEGIN { exit !(a > b && a < 2 * b) }' ||
  fail "A4KV4 ppl $(num ppl "$d/a4.json") against fp32 $(num ppl "$d/a16.json")"
"$lq" generate "$M" --tokenizer "$T" -n 12 --act-bits 4 --kv-bits 4 --act-quant int 2>/dev/null >"$d/gq.txt" ||
  fail "generate with --act-quant int"
[ -s "$d/gq.txt" ] || fail "generate with quantized activations printed nothing"
expect_fail "act-bits 9" "act-bits" "$lq" eval "$M" --tokenizer "$T" --text "$V" --act-bits 9
expect_fail "kv-bits 1" "kv-bits must be 2..8" "$lq" generate "$M" --tokenizer "$T" --kv-bits 1
expect_fail "unknown quantizer" "act-quant is nestquant or int" "$lq" eval "$M" --tokenizer "$T" --text "$V" --act-bits 4 --act-quant fp4
expect_fail "keys without values" "both" "$lq" eval "$M" --tokenizer "$T" --text "$V" --key-bits 4
expect_fail "kv-center without text" "act-calib" "$lq" eval "$M" --tokenizer "$T" --text "$V" --kv-bits 4 --kv-center
expect_fail "act-sites" "act-sites" "$lq" eval "$M" --tokenizer "$T" --text "$V" --act-bits 4 --act-sites ffn
# lq quantize --act-bits: calibration on quantized activations, weights corrected (calib_act.c)
C="--calib-text $R/tinystories_train_head.txt --tokenizer $T --calib-chunks 1 --quiet"
"$lq" quantize --method int --bits 4 --group 32 $C --json --act-bits 4 --kv-bits 4 "$M" "$d/ac.lqt" >"$d/ac.json" ||
  fail "quantize --act-bits 4 --kv-bits 4"
grep -q '"act_objective":[0-9]' "$d/ac.json" || fail "--act-bits: no act_objective in the JSON"
grep -q '"activations":"act 4 bits, kv 4 bits' "$d/ac.json" || fail "--act-bits: no activations in the JSON"
grep -q 'corrected for the activation noise' "$d/ac.json" || fail "--act-bits: not corrected"
"$lq" inspect "$d/ac.lqt" 2>/dev/null | grep -q "libquant.activations" || fail "--act-bits: no libquant.activations in the .lqt"
"$lq" eval "$d/ac.lqt" --tokenizer "$T" --text "$V" --chunks 1 --json --act-bits 4 --kv-bits 4 >"$d/ac.e.json" ||
  fail "eval of the corrected model"
"$lq" quantize --method int --bits 4 --group 32 $C --json --act-bits 16 "$M" "$d/a16.lqt" >/dev/null
"$lq" quantize --method int --bits 4 --group 32 $C --json "$M" "$d/a0.lqt" >/dev/null
cmp -s "$d/a16.lqt" "$d/a0.lqt" || fail "quantize --act-bits 16 changed the .lqt"
expect_fail "quantize act-bits 9" "act-bits must be 2..8" "$lq" quantize --method int $C --act-bits 9 "$M" "$d/x.lqt"
expect_fail "quantize act-quant" "act-quant is nestquant or int" "$lq" quantize --method int $C --act-bits 4 --act-quant fp4 "$M" "$d/x.lqt"
expect_fail "act-correct value" "act-correct is yes or no" "$lq" quantize --method int $C --act-bits 4 --act-correct maybe "$M" "$d/x.lqt"
expect_fail "act-correct without act-bits" "act-correct needs" "$lq" quantize --method int $C --act-correct no "$M" "$d/x.lqt"
expect_fail "act-bits without text" "give --calib-text" "$lq" quantize --method int --act-bits 4 "$M" "$d/x.lqt"
expect_fail "act-bits with fp-inputs" "not with --fp-inputs" "$lq" quantize --method int $C --act-bits 4 --fp-inputs "$M" "$d/x.lqt"
expect_fail "act-bits with fine-tuning" "not with --fp-inputs or --finetune-steps" "$lq" quantize --method int $C --act-bits 4 --finetune-steps 2 "$M" "$d/x.lqt"
expect_fail "act-damp 0" "act-damp must be" "$lq" quantize --method int $C --act-bits 4 --act-damp 0 "$M" "$d/x.lqt"
expect_fail "act-damp nan" "act-damp" "$lq" quantize --method int $C --act-bits 4 --act-damp nan "$M" "$d/x.lqt"
expect_fail "act-damp uncorrected" "correction's damping" "$lq" quantize --method int $C --act-bits 4 --act-correct no --act-damp 0.1 "$M" "$d/x.lqt"
expect_fail "act-damp without act-bits" "correction's damping" "$lq" quantize --method int $C --act-damp 0.1 "$M" "$d/x.lqt"
[ ! -e "$d/x.lqt" ] || fail "an output was written after an option error"
# a larger damping shrinks the correction: a different model, still valid
"$lq" quantize --method int --bits 4 --group 32 $C --json --act-bits 4 --kv-bits 4 --act-damp 10 "$M" "$d/ad.lqt" >"$d/ad.json" ||
  fail "quantize --act-damp 10"
grep -q 'damping 10' "$d/ad.json" || fail "--act-damp not recorded"
! cmp -s "$d/ad.lqt" "$d/ac.lqt" || fail "--act-damp 10 gave the same weights"
echo "model cli: ok"
