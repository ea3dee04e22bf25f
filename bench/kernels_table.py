#!/usr/bin/python3
"""Markdown table from the JSON lines of bench/kernels_bench.sh (any number
of files: lq bench matvec / stream lines and OpenBLAS peer lines)."""
import json
import sys

rows = []
for path in sys.argv[1:]:
    rows += [json.loads(l) for l in open(path) if l.startswith("{")]
stream = {r["threads"]: r["gbs"] for r in rows if r.get("bench") == "stream"}
# OpenBLAS lines keyed by shape, batch, threads and hot (one copy) or not
blas = {(r["rows"], r["cols"], r["batch"], r["threads"], r["copies"] == 1): r for r in rows
        if r.get("bench") == "openblas"}
print("streaming read bandwidth: " +
      ", ".join(f"{t} thread(s) {g:.1f} GB/s" for t, g in sorted(stream.items())))
print()
print("| shape | format | bits | bpw | batch | thr | weights | exact us/tok | fast us/tok | "
      "fast GB/s | fast GFLOP/s | % stream | fast err | OpenBLAS us/tok | vs BLAS |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for r in rows:
    if r.get("bench") != "matvec":
        continue
    R, C, N, T = r["rows"], r["cols"], r["batch"], r["threads"]
    hot = r["copies"] == 1
    nbytes = r["bpw"] * R * C / 8
    fast = r.get("codes-fast_us")
    ex = r.get("codes-exact_us")
    gbs = nbytes / (fast * 1e-6) / 1e9 if fast else 0
    gfl = 2.0 * R * C * N / (fast * 1e-6) / 1e9 if fast else 0
    st = r.get("stream_ref", stream.get(T, 0)) if not hot else 0
    b = blas.get((R, C, N, T, hot))
    bt = b["us_per_token"] if b else None
    err = r.get("fast_rel_err")
    print(f"| {R}x{C} | {r['format']} | {r['bits']} | {r['bpw']:.2f} | {N} | {T} | "
          f"{'cache' if hot else 'DRAM x' + str(r['copies'])} | "
          f"{ex / N:.1f} | {fast / N:.1f} | {gbs:.1f} | {gfl:.1f} | "
          f"{(f'{100 * gbs / st:.0f}%') if st else '-'} | {err if err is not None else '-'} | "
          f"{(f'{bt:.0f}') if bt else '-'} | {(f'{bt / (fast / N):.1f}x') if bt else '-'} |")
