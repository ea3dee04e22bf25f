#!/usr/bin/python3
"""GPTQ (Frantar et al. 2022, Algorithm 1) in PyTorch on the CPU: the peer of
`lq bench gptq`. Reads W.npy and H.npy (and libquant's What.npy) from a
directory written by `lq bench gptq --export DIR`, runs the paper's
algorithm (float32, as the paper and its reference code do: Cholesky of
H + lambda I, cholesky_inverse, upper Cholesky of H^-1, blocks of 128
columns with lazy batch updates), and prints one JSON line: seconds (median
of --reps), the proxy loss tr((W - Q) H (W - Q)^T) of its result and of
libquant's, both computed here in float64 with the same formula, and the
ratios.

Grid (same definition as libquant's INT quantizer): per row and group of
`group` columns, xmin = min(0, min w), xmax = max(0, max w) ([-1, 1] when
both are 0), scale = (xmax - xmin) / (2^bits - 1) rounded to half precision
(the precision both store it in), zero = clamp(round(-xmin / scale)),
q = clamp(round(w / scale) + zero, 0, maxq), value = (q - zero) * scale.
The group parameters are fitted when a group starts, on the current
(already updated) in-block weights; columns of a group that reach past the
block have not received this block's lazy update yet (as in the reference
code), whereas libquant ends the block early there. With a group size that
divides the block size (the benchmark: 128 / 128) both are the same
algorithm. --u64 computes U in float64 (a measurement aid for the float32
versus float64 question).
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch


def grid_params(x, maxq):
    xmin = torch.clamp(x.min(dim=1).values, max=0)
    xmax = torch.clamp(x.max(dim=1).values, min=0)
    both0 = (xmin == 0) & (xmax == 0)
    xmin = torch.where(both0, torch.full_like(xmin, -1.0), xmin)
    xmax = torch.where(both0, torch.full_like(xmax, 1.0), xmax)
    scale = ((xmax - xmin) / maxq).half().float()
    zero = torch.clamp(torch.round(-xmin / scale), 0, maxq)
    return scale, zero


def quantize(w, scale, zero, maxq):
    q = torch.clamp(torch.round(w / scale) + zero, 0, maxq)
    return scale * (q - zero)


def gptq(W, H, bits, group, blocksize=128, percdamp=0.01, u64=False):
    W = W.clone()
    H = H.clone()
    rows, cols = W.shape
    maxq = float(2**bits - 1)
    dead = torch.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    damp = percdamp * torch.mean(torch.diag(H))
    H += damp * torch.eye(cols, dtype=H.dtype)
    if u64:  # measurement aid: U computed in float64, then rounded
        Hd = H.double()
        U = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(Hd)),
                                  upper=True).float()
    else:
        L = torch.linalg.cholesky(H)
        Hinv = torch.cholesky_inverse(L)
        U = torch.linalg.cholesky(Hinv, upper=True)
    Q = torch.zeros_like(W)
    g = group if group > 0 else cols
    scale = zero = None
    for i1 in range(0, cols, blocksize):
        i2 = min(i1 + blocksize, cols)
        count = i2 - i1
        W1 = W[:, i1:i2].clone()
        Q1 = torch.zeros_like(W1)
        Err1 = torch.zeros_like(W1)
        U1 = U[i1:i2, i1:i2]
        for i in range(count):
            c = i1 + i
            if c % g == 0:
                # the group's columns: current in-block ones, then later ones
                end = min(c + g, cols)
                cur = W1[:, i:min(count, end - i1)]
                if end > i2:
                    cur = torch.cat([cur, W[:, i2:end]], dim=1)
                scale, zero = grid_params(cur, maxq)
            w = W1[:, i]
            d = U1[i, i]
            q = quantize(w, scale, zero, maxq)
            Q1[:, i] = q
            err = (w - q) / d
            W1[:, i:] -= err.unsqueeze(1).matmul(U1[i, i:].unsqueeze(0))
            Err1[:, i] = err
        Q[:, i1:i2] = Q1
        W[:, i2:] -= Err1.matmul(U[i1:i2, i2:])
    return Q


def proxy_loss(W, Q, H):
    E = (W.double() - Q.double())
    return float(torch.sum((E @ H.double()) * E))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--bits", type=int, default=4)
    ap.add_argument("--group", type=int, default=128)
    ap.add_argument("--block", type=int, default=128)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--u64", action="store_true", help="compute U = chol(H^-1) in float64")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    W = torch.from_numpy(np.load(os.path.join(a.dir, "W.npy")))
    H = torch.from_numpy(np.load(os.path.join(a.dir, "H.npy")))
    times, cpu = [], []
    Q = None
    for _ in range(a.reps):
        c0 = time.process_time()
        t0 = time.perf_counter()
        Q = gptq(W, H, a.bits, a.group, a.block, u64=a.u64)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    sec = float(np.median(times))
    loss = proxy_loss(W, Q, H)
    out = {"peer": "pytorch", "torch": torch.__version__, "threads": a.threads,
           "rows": W.shape[0], "cols": W.shape[1], "bits": a.bits, "group": a.group,
           "reps": a.reps, "u64": a.u64, "seconds": sec, "cpu_seconds": float(np.median(cpu)),
           "proxy_loss": loss}
    qpath = os.path.join(a.dir, "What.npy")
    if os.path.exists(qpath):
        Ql = torch.from_numpy(np.load(qpath))
        out["libquant_proxy_loss"] = proxy_loss(W, Ql, H)
        out["loss_ratio_libquant_over_torch"] = out["libquant_proxy_loss"] / loss
        out["max_abs_diff_vs_libquant"] = float(torch.max(torch.abs(Ql - Q)))
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
