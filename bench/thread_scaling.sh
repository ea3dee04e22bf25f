#!/bin/sh
# Thread scaling of the products on the codes and of the GPTQ engine:
# every configuration at 1 and at 2 (or --threads N) threads, alternating in
# one run, R rounds; prints one JSON line per measurement and a median table.
# Run on a quiet machine (other load halves the 2-thread figure).
#   sh bench/thread_scaling.sh [--lq build/lq] [--rounds 3] [--threads 2]
#                              [--rows 14336] [--cols 4096] [--batch 1]
set -eu
lq=${LQ:-build/lq} rounds=3 nt=2 rows=14336 cols=4096 batch=1 engine=1
while [ $# -gt 0 ]; do
  case $1 in
    --lq) lq=$2; shift ;;
    --rounds) rounds=$2; shift ;;
    --threads) nt=$2; shift ;;
    --rows) rows=$2; shift ;;
    --cols) cols=$2; shift ;;
    --batch) batch=$2; shift ;;
    --no-engine) engine=0 ;;
    *) echo "thread_scaling.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
out=$(mktemp)
trap 'rm -f "$out"' EXIT
configs="int|--method int --bits 4 --group 128 --rtn
nestquant|--method nestquant --rtn
e8p|--method nestquant --codebook e8p --rtn
gptvq|--method gptvq
gptqt|--method gptqt
bcq|--method bcq
aqlm|--method aqlm --fit-rows 256"
echo "== $("$lq" info | sed -n 's/^cpu: *//p'); $(uptime | sed 's/.*load/load/')"
r=1
while [ "$r" -le "$rounds" ]; do
  echo "$configs" | while IFS='|' read -r label opts; do
    for t in 1 "$nt"; do
      # shellcheck disable=SC2086
      line=$("$lq" bench matvec $opts --rows "$rows" --cols "$cols" --batch "$batch" \
        --threads "$t" --mode both --no-deq --no-stream | tail -n 1)
      echo "round $r $label t=$t $line" | tee -a "$out"
    done
  done
  if [ "$engine" = 1 ]; then
    for t in 1 "$nt"; do
      line=$("$lq" bench gptq --rows 4096 --cols 4096 --bits 4 --group 128 --threads "$t" --reps 1 | tail -n 1)
      echo "round $r engine t=$t $line" | tee -a "$out"
    done
  fi
  r=$((r + 1))
done
echo "== $(uptime | sed 's/.*load/load/')"
/usr/bin/python3 - "$out" "$nt" <<'PY'
import json, statistics, sys
rows = {}
for ln in open(sys.argv[1]):
    p = ln.split(" ", 4)
    label, t, js = p[2], p[3], p[4]
    try:
        d = json.loads(js)
    except ValueError:
        continue
    rows.setdefault(label, {}).setdefault(t, []).append(d)
nt = "t=" + sys.argv[2]
print("| config | path | 1 thread us (cpu us) | %s us (cpu us) | wall speed-up | n |" % nt)
print("|---|---|---|---|---|---|")
for label, by in rows.items():
    if label == "engine":
        key = [k for k in by["t=1"][0] if k.endswith("seconds") or k == "gptq_s" or k == "seconds"]
        for k in key:
            a = statistics.median(d[k] for d in by["t=1"])
            b = statistics.median(d[k] for d in by[nt])
            print(f"| engine 4096x4096 INT4 g128 | {k} | {a:.3f} s | {b:.3f} s | {a / b:.2f}x | {len(by['t=1'])} |")
        continue
    for path in ("codes-exact", "codes-fast", "f32 gemv"):
        k = path + "_us"
        if k not in by["t=1"][0]:
            continue
        a = statistics.median(d[k] for d in by["t=1"])
        b = statistics.median(d[k] for d in by[nt])
        ac = statistics.median(d[path + "_cpu_us"] for d in by["t=1"])
        bc = statistics.median(d[path + "_cpu_us"] for d in by[nt])
        print(f"| {label} | {path} | {a:.0f} ({ac:.0f}) | {b:.0f} ({bc:.0f}) | {a / b:.2f}x | {len(by['t=1'])} |")
PY
