"""Shared helpers of the binding's tests: small layers and per-method options
that keep every quantizer fast."""
import numpy as np

import libquant as lq

ROWS, COLS = 32, 128

# Small, fast settings per method (every method at its documented defaults
# would be slower: AQLM's 256-entry codebooks, GPTVQ's EM).
FAST_OPTIONS = {
    "int": dict(bits=4, group=64),
    "nestquant": dict(q=16, n_betas=4),
    "gptvq": dict(dim=2, index_bits=4, group_cols=64, em_iters=4),
    "gptqt": dict(k=3, group=64, rescale_steps=4, iters=4),
    "bcq": dict(k=3, group=64, iters=4),
    "aqlm": dict(n_codebooks=2, code_bits=6, group=8, beam=2, rounds=1, kmeans_iters=5),
}

# Packed format each method produces.
FORMAT_OF = {"int": "int", "nestquant": "e8", "gptvq": "vq", "gptqt": "bcq", "bcq": "bcq",
             "aqlm": "aq"}


def layer(rows=ROWS, cols=COLS, seed=0, samples=256):
    """(W, X, H): heavy-ish weights, correlated activations, H = 2/N X^T X."""
    rng = np.random.default_rng(seed)
    W = (rng.standard_normal((rows, cols)) * 0.05).astype(np.float32)
    X = rng.standard_normal((samples, cols))
    X[:, 1:] = 0.6 * X[:, :-1] + 0.4 * X[:, 1:]
    X = X.astype(np.float32)
    X64 = X.astype(np.float64)
    H = (2.0 / samples * X64.T @ X64).astype(np.float32)
    return W, X, H


def quantize(W, H, method, ctx=None, **extra):
    opts = dict(FAST_OPTIONS[method])
    opts.update(extra)
    return lq.quantize(W, H, method, ctx=ctx, **opts)


def product_bound(W_hat, x, rel):
    """rel * (|W_hat| |x|) per output, with a float32 floor."""
    return rel * (np.abs(W_hat.astype(np.float64)) @ np.abs(x.astype(np.float64))) + 1e-30
