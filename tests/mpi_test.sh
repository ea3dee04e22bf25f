#!/bin/sh
# lq quantize across MPI ranks (LQ_WITH_MPI), 2 and 3 ranks on this machine:
#  - the .lqt is byte-identical to the single-process file (GPTQ with and
#    without act-order, GPTVQ whose k-means draws random numbers), and the
#    JSON summary gathered at rank 0 equals the single-process one apart
#    from timings and the rank of each tensor;
#  - the tensors go to ranks by the documented rule (largest first to the
#    least loaded rank), checked on sizes chosen so the rule gives one answer;
#  - a rank with no tensor (more ranks than tensors) is fine;
#  - a rank that fails (a NaN in a tensor it owns, on rank 0 and on rank 1)
#    makes the run exit nonzero with no output file, no .part, no shard;
#  - model mode refuses to run under a launcher.
#   mpi_test.sh LQ MPIRUN PYTHON3
set -eu
lq=$1; mpirun=$2; py=$3
d=$(mktemp -d /tmp/lq_mpi_test.XXXXXX)
trap 'rm -rf "$d"' EXIT
fail() { echo "mpi: $*"; exit 1; }
# Open MPI refuses root without --allow-run-as-root (CI containers run as root).
run() { np=$1; shift; "$mpirun" --oversubscribe --allow-run-as-root -n "$np" "$@"; }

# Weights: six F32 tensors of different sizes, plus two files with a NaN in
# the largest tensor (rank 0's under the rule) or the second largest (rank
# 1's). Hessians 2/N X^T X + 0.01 I, one per weight name. Pseudo-random,
# fixed seed, Python standard library only.
"$py" - "$d" <<'EOF'
import json, math, random, struct, sys
d = sys.argv[1]
rng = random.Random(1234)
shapes = [("a.weight", 64, 128), ("b.weight", 32, 128), ("c.weight", 48, 64),
          ("d.weight", 16, 64), ("e.weight", 96, 64), ("f.weight", 24, 128)]
def write(path, tensors):
    header, blobs, off = {}, [], 0
    for name, rows, cols, vals in tensors:
        b = struct.pack("<%df" % len(vals), *vals)
        header[name] = {"dtype": "F32", "shape": [rows, cols], "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
weights = [(n, r, c, [rng.gauss(0, 0.02) for _ in range(r * c)]) for n, r, c in shapes]
write(d + "/W.safetensors", weights)
for tag, bad in (("nan0", "a.weight"), ("nan1", "e.weight")):
    t = [(n, r, c, list(v)) for n, r, c, v in weights]
    for e in t:
        if e[0] == bad:
            e[3][5] = math.nan
    write(d + "/W_%s.safetensors" % tag, t)
hs = {}
for cols in (64, 128):
    n = 2 * cols
    X = [[rng.gauss(0, 1) * (3.0 if j % 7 == 0 else 1.0) for j in range(cols)] for _ in range(n)]
    H = [0.0] * (cols * cols)
    for x in X:
        for i in range(cols):
            xi = 2.0 * x[i] / n
            row = i * cols
            for j in range(cols):
                H[row + j] += xi * x[j]
    for i in range(cols):
        H[i * cols + i] += 0.01
    hs[cols] = H
write(d + "/H.safetensors", [(n, c, c, hs[c]) for n, r, c in shapes])
EOF

strip_json() { # timings, ranks and the output name differ between runs; the rest must not
  sed -e 's/"seconds":[0-9.]*//g' -e 's/,"rank":[0-9]*//g' -e 's/"output":"[^"]*"//' "$1"
}

check_same() { # check_same NAME NP ARGS...: single vs NP ranks, byte for byte
  name=$1; np=$2; shift 2
  "$lq" quantize "$@" --quiet --json --threads 1 --hessian "$d/H.safetensors" \
    "$d/W.safetensors" "$d/$name.1.lqt" >"$d/$name.1.json" || fail "$name: single process"
  run "$np" "$lq" quantize "$@" --quiet --json --threads 1 --hessian "$d/H.safetensors" \
    "$d/W.safetensors" "$d/$name.n.lqt" >"$d/$name.n.json" || fail "$name: $np ranks"
  cmp "$d/$name.1.lqt" "$d/$name.n.lqt" || fail "$name: $np ranks differ from one process"
  [ "$(strip_json "$d/$name.1.json")" = "$(strip_json "$d/$name.n.json")" ] ||
    fail "$name: summaries differ: $(cat "$d/$name.1.json") vs $(cat "$d/$name.n.json")"
  [ "$(grep -c . "$d/$name.n.json")" -eq 1 ] || fail "$name: more than one rank reported"
  ls "$d" | grep -q 'mpi-shard' && fail "$name: shard left behind"
  return 0
}

echo "== byte-identical to one process"
check_same int 2 --method int --bits 4 --group 64
check_same int_act 3 --method int --bits 3 --group 32 --act-order
check_same gptvq 2 --method gptvq --dim 2 --index-bits 4 --group-cols 64 --group-rows 16 \
  --em-iters 3
"$lq" inspect "$d/int.n.lqt" | grep -q "tensors:    6" || fail "inspect: 6 tensors"

echo "== assignment: largest first to the least loaded rank"
# sizes a 8192, b 4096, c 3072, d 1024, e 6144, f 3072. In decreasing size
# (ties by position): a->0 (0,0), e->1 (8192,0), b->1 (8192,6144),
# c->0 (8192,10240), f->1 (11264,10240), d->0 (11264,13312): loads 12288
# and 13312 (a single process would carry 25600).
for t in a:0 b:1 c:0 d:0 e:1 f:1; do
  grep -q "\"name\":\"${t%:*}.weight\",[^}]*\"rank\":${t#*:}}" "$d/int.n.json" ||
    fail "tensor ${t%:*} not on rank ${t#*:}: $(cat "$d/int.n.json")"
done

echo "== more ranks than tensors"
"$lq" quantize --method int --quiet --tensor c.weight --hessian "$d/H.safetensors" \
  "$d/W.safetensors" "$d/one.1.lqt" >/dev/null || fail "single --tensor"
run 3 "$lq" quantize --method int --quiet --tensor c.weight --hessian "$d/H.safetensors" \
  "$d/W.safetensors" "$d/one.n.lqt" >/dev/null || fail "3 ranks, one tensor"
cmp "$d/one.1.lqt" "$d/one.n.lqt" || fail "3 ranks, one tensor: differs"

echo "== a failing rank fails the run, with no output left"
for tag in nan0 nan1; do
  if run 2 "$lq" quantize --method int --quiet --threads 1 --hessian "$d/H.safetensors" \
       "$d/W_$tag.safetensors" "$d/$tag.lqt" >"$d/$tag.out" 2>"$d/$tag.err"; then
    fail "$tag: a NaN weight on one rank gave exit status 0"
  fi
  grep -q "1 of 2 MPI ranks failed" "$d/$tag.err" || fail "$tag: $(cat "$d/$tag.err")"
  grep -q "NaN\|finite" "$d/$tag.err" || fail "$tag: the cause is not named: $(cat "$d/$tag.err")"
  for f in "$d/$tag.lqt" "$d/$tag.lqt.part"; do [ ! -e "$f" ] || fail "$tag: $f exists"; done
  ls "$d" | grep -q 'mpi-shard' && fail "$tag: shard left behind: $(ls "$d")"
done

echo "== model mode is one process"
mkdir "$d/model" # a folder is a Hugging Face model to lq quantize
if run 1 "$lq" quantize --method int --rtn "$d/model" "$d/m.lqt" 2>"$d/model.err"; then
  fail "model mode ran under mpirun"; fi
grep -q "one process" "$d/model.err" || fail "model: $(cat "$d/model.err")"
echo "mpi: ok"
