#!/bin/sh
# GPTQ: libquant (`lq bench gptq`) beside a PyTorch CPU implementation of the
# paper's algorithm (bench/peers/gptq_torch.py) on the very same W and H.
#
# usage: bench/peers/run_gptq_peer.sh [path/to/lq] [rows] [cols] [bits] [group] [threads] [reps]
#   defaults: build/lq 4096 4096 4 128 2 3
#
# lq writes W.npy, H.npy and its result What.npy into a temporary directory;
# the peer loads them, runs GPTQ in float32 with torch's own threads, and
# computes both proxy losses tr((W - Q) H (W - Q)^T) in float64 with one
# formula. The script prints both JSON lines and the time and loss ratios.
# PyTorch is optional (Debian's python3-torch, run with /usr/bin/python3).
set -eu
LQ=${1:-build/lq}
ROWS=${2:-4096}
COLS=${3:-4096}
BITS=${4:-4}
GROUP=${5:-128}
THREADS=${6:-2}
REPS=${7:-3}
HERE=$(cd "$(dirname "$0")" && pwd)
TMP=${TMPDIR:-/tmp}/lq_gptq_peer.$$
mkdir -p "$TMP"
trap 'rm -rf "$TMP"' EXIT

"$LQ" bench gptq --rows "$ROWS" --cols "$COLS" --bits "$BITS" --group "$GROUP" \
  --threads "$THREADS" --reps "$REPS" --export "$TMP" | tee "$TMP/lq.out"
LQJ=$(grep '^{' "$TMP/lq.out" | tail -n 1)
if ! /usr/bin/python3 -c 'import torch, numpy' 2>/dev/null; then
  echo "note: PyTorch (python3-torch) not available; libquant figures only"
  exit 0
fi
PYJ=$(/usr/bin/python3 "$HERE/gptq_torch.py" --dir "$TMP" --bits "$BITS" --group "$GROUP" \
  --threads "$THREADS" --reps "$REPS")
echo "$PYJ"
/usr/bin/python3 - "$LQJ" "$PYJ" <<'PY'
import json, sys
lq, py = json.loads(sys.argv[1]), json.loads(sys.argv[2])
ratio = py["seconds"] / lq["seconds"]
cratio = py["cpu_seconds"] / lq["cpu_seconds"]
print(f"libquant {lq['seconds']:.3f} s, pytorch {py['seconds']:.3f} s: libquant {ratio:.2f}x faster (wall)")
print(f"libquant {lq['cpu_seconds']:.3f} cpu s, pytorch {py['cpu_seconds']:.3f} cpu s: {cratio:.2f}x (CPU time)")
print(f"proxy loss libquant {py['libquant_proxy_loss']:.6g} vs pytorch {py['proxy_loss']:.6g}: "
      f"ratio {py['loss_ratio_libquant_over_torch']:.5f}")
print(json.dumps({"bench": "gptq_peer", "rows": lq["rows"], "cols": lq["cols"], "bits": lq["bits"],
                  "group": lq["group"], "threads": lq["threads"], "lq_seconds": lq["seconds"],
                  "torch_seconds": py["seconds"], "speedup": ratio,
                  "lq_cpu_seconds": lq["cpu_seconds"], "torch_cpu_seconds": py["cpu_seconds"],
                  "cpu_speedup": cratio,
                  "loss_ratio": py["loss_ratio_libquant_over_torch"]}))
PY
