#!/bin/sh
# The lq program on hostile command lines and output paths (issue 14):
# numeric options out of range are refused, untrusted names are echoed
# shortened, and an output path that is a FIFO, a device, a symlink or an
# input is never replaced.
set -eu
lq=$1
d=$(mktemp -d /tmp/lq_cli_robust.XXXXXX)
trap 'rm -rf "$d"' EXIT
fail() { echo "cli_robust: $*"; exit 1; }

# A 4 x 32 F32 safetensors file, written byte by byte (no other tool needed).
st() { # st NAME FILE: one tensor NAME of 4 x 32 floats, w[i] = +-0.5, +-1
  hdr="{\"$1\":{\"dtype\":\"F32\",\"shape\":[4,32],\"data_offsets\":[0,512]}}"
  while [ $(( ${#hdr} % 8 )) -ne 0 ]; do hdr="$hdr "; done
  n=${#hdr}
  {
    printf "$(printf '\\%03o' $((n % 256)) $((n / 256 % 256)) $((n / 65536 % 256)))\\000\\000\\000\\000\\000"
    printf '%s' "$hdr"
    i=0
    while [ $i -lt 32 ]; do
      printf '\000\000\000\077\000\000\200\077\000\000\000\277\000\000\200\277'
      i=$((i + 1))
    done
  } >"$2"
}
st w "$d/in.safetensors"
"$lq" quantize --method int --bits 4 --group 32 --quiet "$d/in.safetensors" "$d/ok.lqt" ||
  fail "the well-formed input was refused"
"$lq" inspect "$d/ok.lqt" >/dev/null || fail "inspect"

# ---- numeric options ---------------------------------------------------------
for v in 18446744073709551615 99999999999999999999 -1 ' 4' +4 4x ''; do
  if "$lq" quantize --method int --bits "$v" --quiet "$d/in.safetensors" "$d/x.lqt" 2>"$d/err"; then
    fail "--bits '$v' accepted"
  fi
  grep -q "bad value" "$d/err" || fail "--bits '$v': no clear message: $(cat "$d/err")"
done
for v in nan NaN inf -inf 1e999; do
  if "$lq" quantize --method int --percdamp "$v" --quiet "$d/in.safetensors" "$d/x.lqt" 2>/dev/null; then
    fail "--percdamp $v accepted"
  fi
done
# 4294967300 does not fit the 32-bit field: refused by the method, not truncated to 4
if "$lq" quantize --method int --bits 4294967300 --quiet "$d/in.safetensors" "$d/x.lqt" 2>/dev/null; then
  fail "--bits 4294967300 accepted"
fi
[ ! -e "$d/x.lqt" ] || fail "an output was written after a refused option"

# ---- long untrusted names are echoed shortened --------------------------------
# from the command line (100 KB: argv strings are limited to 128 KB) ...
long=$(head -c 100000 /dev/zero | tr '\0' 'a')
if "$lq" quantize --method int --tensor "$long" --quiet "$d/in.safetensors" "$d/x.lqt" 2>"$d/err"; then
  fail "a missing tensor was found"
fi
[ "$(wc -c <"$d/err")" -lt 400 ] || fail "a 100 KB name was echoed whole ($(wc -c <"$d/err") bytes)"
grep -q '\.\.\.' "$d/err" || fail "the cut is not marked"
# ... and from a file: a tensor named with 200 KB, progress and summary lines
st "$(head -c 200000 /dev/zero | tr '\0' 'b')" "$d/longname.safetensors"
# (.lqt names are limited to LQ_LQT_MAX_NAME = 4096 bytes: refused, briefly)
if "$lq" quantize --method int "$d/longname.safetensors" "$d/long.lqt" >"$d/out" 2>"$d/err"; then
  fail "a 200 KB tensor name was written to an .lqt"
fi
[ "$(wc -c <"$d/err")" -lt 1000 ] || fail "stderr echoed a 200 KB name ($(wc -c <"$d/err") bytes)"

# ---- output paths ---------------------------------------------------------------
# a FIFO stays a FIFO (no reader: a blocking open would hang, so this also checks
# that lq never opens it)
mkfifo "$d/fifo"
if "$lq" quantize --method int --quiet "$d/in.safetensors" "$d/fifo" 2>/dev/null; then
  fail "output to a FIFO accepted"
fi
[ -p "$d/fifo" ] || fail "the FIFO was replaced"
# a symlink stays a symlink, its target untouched
echo keep >"$d/target"
ln -s "$d/target" "$d/link"
if "$lq" quantize --method int --quiet "$d/in.safetensors" "$d/link" 2>/dev/null; then
  fail "output to a symlink accepted"
fi
[ -L "$d/link" ] || fail "the symlink was replaced"
[ "$(cat "$d/target")" = keep ] || fail "the symlink's target was written"
# a symlinked .part is not followed
ln -s "$d/target" "$d/p.lqt.part"
if "$lq" quantize --method int --quiet "$d/in.safetensors" "$d/p.lqt" 2>/dev/null; then
  fail "a symlinked .part was followed"
fi
[ "$(cat "$d/target")" = keep ] || fail "the .part symlink's target was written"
# a directory
mkdir "$d/dir"
if "$lq" quantize --method int --quiet "$d/in.safetensors" "$d/dir" 2>/dev/null; then
  fail "output to a directory accepted"
fi
[ -d "$d/dir" ] || fail "the directory was replaced"
# a device node: /dev/null must stay a character device
if "$lq" quantize --method int --quiet "$d/in.safetensors" /dev/null 2>/dev/null; then
  fail "output to /dev/null accepted"
fi
[ -c /dev/null ] || fail "/dev/null was replaced"
# the input itself, directly, through a symlink and through a hard link
cp "$d/in.safetensors" "$d/in2.safetensors"
sum=$(cksum <"$d/in2.safetensors")
if "$lq" quantize --method int --quiet "$d/in2.safetensors" "$d/in2.safetensors" 2>"$d/err"; then
  fail "output over the input accepted"
fi
grep -q "also an input" "$d/err" || fail "no clear message for output == input"
ln "$d/in2.safetensors" "$d/hard.lqt"
if "$lq" quantize --method int --quiet "$d/in2.safetensors" "$d/hard.lqt" 2>/dev/null; then
  fail "output over a hard link of the input accepted"
fi
[ "$(cksum <"$d/in2.safetensors")" = "$sum" ] || fail "the input was modified"
# a regular file is replaced, as documented
echo old >"$d/old.lqt"
"$lq" quantize --method int --quiet "$d/in.safetensors" "$d/old.lqt" || fail "regular output refused"
"$lq" inspect "$d/old.lqt" >/dev/null || fail "replaced output invalid"
echo "cli_robust: ok"
