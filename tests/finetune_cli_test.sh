#!/bin/sh
# lq quantize --finetune-steps on the real model (tests/data/realmodel):
# block-wise fine-tuning lowers every block's output error and the
# perplexity, leaves the codes of the first block (quantized before any
# tuning) bit-identical while its scales change, and refuses bad options.
set -eu
lq=$1
R=$(cd "$(dirname "$0")" && pwd)/data/realmodel
M=$R/tinystories_d64_l5.bin
T=$R/tok512.bin
C=$R/tinystories_train_head.txt
d=$(mktemp -d /tmp/lq_finetune_test.XXXXXX)
trap 'rm -rf "$d"' EXIT
fail() { echo "finetune cli: $*"; exit 1; }
num() { sed -n "s/.*\"$1\":\([-0-9.e+]*\).*/\1/p" "$2"; }
# a < f * b
below() { awk -v a="$1" -v b="$2" -v f="$3" 'BEGIN { exit !(a < f * b) }'; }
crc() { # crc32c of section $3 of tensor $2 in file $1
  "$lq" inspect --json "$1" | tr '{' '\n' | sed -n "/\"name\":\"$2\"/,/\"valid\"/p" |
    grep "\"tag\":\"$3\"" | sed -n 's/.*"crc32c":"\([0-9a-f]*\)".*/\1/p' | head -n 1
}

q="--method int --bits 2 --group 32 --mse-clip --calib-text $C --tokenizer $T --calib-chunks 4 --threads 2 --quiet --json"
"$lq" quantize $q "$M" "$d/base.lqt" >"$d/base.json" || fail "quantize without tuning"
"$lq" quantize $q --finetune-steps 20 --lr 2e-3 "$M" "$d/ft.lqt" >"$d/ft.json" || fail "quantize with tuning"
grep -q '"finetune":{"steps":20' "$d/ft.json" || fail "no fine-tuning figures"
grep -q '"finetune"' "$d/base.json" && fail "fine-tuning figures without --finetune-steps"
# every block: the relative output error drops (measured: 0.054 -> 0.021,
# 0.0062 -> 0.0036, 0.0074 -> 0.0049, 0.075 -> 0.057, 0.101 -> 0.083, i.e.
# 17-62% per block; required: at least 10% each)
n=0
for b in $(tr '{' '\n' <"$d/ft.json" | grep '"block":' | sed 's/.*"loss_before":\([-0-9.e+]*\),"loss_after":\([-0-9.e+]*\).*/\1:\2/'); do
  before=${b%:*} after=${b#*:}
  below "$after" "$before" 0.9 || fail "block $n: output error $before -> $after"
  n=$((n + 1))
done
[ $n = 5 ] || fail "$n blocks reported"
# perplexity and KL on the codes (measured on these 20 chunks: ppl 28.60 ->
# 19.80, KL 1.263 -> 0.933; required: ppl at least 15% lower, KL 10%)
e="--tokenizer $T --text $R/tinystories_val.txt --ref $M --chunks 20 --threads 2 --json"
"$lq" eval "$d/base.lqt" $e >"$d/base.e.json"
"$lq" eval "$d/ft.lqt" $e >"$d/ft.e.json"
pb=$(num ppl "$d/base.e.json") pf=$(num ppl "$d/ft.e.json")
kb=$(num kl "$d/base.e.json") kf=$(num kl "$d/ft.e.json")
below "$pf" "$pb" 0.85 || fail "perplexity $pb -> $pf"
below "$kf" "$kb" 0.9 || fail "KL $kb -> $kf"
# block 0 is quantized before any tuning: same codes and zeros, new scales
for l in self_attn.q_proj mlp.down_proj; do
  t=model.layers.0.$l.weight
  [ -n "$(crc "$d/base.lqt" $t codes)" ] || fail "$t: no codes section found"
  [ "$(crc "$d/base.lqt" $t codes)" = "$(crc "$d/ft.lqt" $t codes)" ] || fail "$t: codes changed"
  [ "$(crc "$d/base.lqt" $t zeros)" = "$(crc "$d/ft.lqt" $t zeros)" ] || fail "$t: zeros changed"
  [ "$(crc "$d/base.lqt" $t scales)" != "$(crc "$d/ft.lqt" $t scales)" ] || fail "$t: scales unchanged"
done
# the tuned model is an ordinary complete model
"$lq" generate "$d/ft.lqt" --tokenizer "$T" -n 5 >/dev/null 2>&1 || fail "generate on the tuned model"

# refusals
expect_fail() { # message, expected text, command...
  what=$1 want=$2
  shift 2
  if "$@" >"$d/out" 2>&1; then fail "$what: accepted"; fi
  grep -q -- "$want" "$d/out" || fail "$what: $(cat "$d/out")"
}
expect_fail "tuning without text" "calib-text" "$lq" quantize --method int --finetune-steps 5 "$M" "$d/x.lqt"
expect_fail "lr 0" "--lr" "$lq" quantize $q --finetune-steps 5 --lr 0 "$M" "$d/x.lqt"
expect_fail "lr nan" "--lr" "$lq" quantize $q --finetune-steps 5 --lr nan "$M" "$d/x.lqt"
expect_fail "lr huge" "--lr" "$lq" quantize $q --finetune-steps 5 --lr 1e9 "$M" "$d/x.lqt"
expect_fail "lr without steps" "finetune-steps" "$lq" quantize $q --lr 1e-3 "$M" "$d/x.lqt"
expect_fail "too many steps" "at most" "$lq" quantize $q --finetune-steps 1000000 "$M" "$d/x.lqt"
expect_fail "tensor file" "for models" "$lq" quantize --method int --finetune-steps 5 \
  --tensor model.layers.0.mlp.up_proj.weight "$d/base.lqt" "$d/x.lqt"
[ ! -e "$d/x.lqt" ] || fail "a refused run left an output"
echo "finetune cli: ok"
