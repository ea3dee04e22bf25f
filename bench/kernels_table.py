#!/usr/bin/python3
"""Markdown tables from the JSON lines of bench/kernels_bench.sh."""
import json
import sys

rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
stream = {r["threads"]: r["gbs"] for r in rows if r.get("bench") == "stream"}
blas = {(r["rows"], r["cols"], r["batch"], r["threads"]): r for r in rows
        if r.get("bench") == "openblas"}
print("streaming read bandwidth: " +
      ", ".join(f"{t} thread(s) {g:.1f} GB/s" for t, g in sorted(stream.items())))
print()
print("| shape | format | bits | bpw | batch | thr | exact us/tok | fast us/tok | fast GB/s | "
      "fast GFLOP/s | % stream | deq+GEMV us | OpenBLAS us/tok | fast vs BLAS |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for r in rows:
    if r.get("bench") != "matvec":
        continue
    R, C, N, T = r["rows"], r["cols"], r["batch"], r["threads"]
    nbytes = r["bpw"] * R * C / 8
    fast = r.get("codes-fast_us")
    ex = r.get("codes-exact_us")
    gbs = nbytes / (fast * 1e-6) / 1e9 if fast else 0
    gfl = 2.0 * R * C * N / (fast * 1e-6) / 1e9 if fast else 0
    st = stream.get(T, 0)
    b = blas.get((R, C, N, T))
    bt = b["us_per_token"] if b else None
    deq = r.get("deq+gemv_us")
    print(f"| {R}x{C} | {r['format']} | {r['bits']} | {r['bpw']:.2f} | {N} | {T} | "
          f"{ex / N:.1f} | {fast / N:.1f} | {gbs:.1f} | {gfl:.1f} | "
          f"{100 * gbs / st if st else 0:.0f}% | {deq if deq else '-'} | "
          f"{bt if bt else '-'} | {bt / (fast / N) if bt else 0:.1f}x |")
