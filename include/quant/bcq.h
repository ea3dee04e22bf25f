/*
 * Binary-coding quantization (BCQ) and GPTQT's linear-to-binary conversion.
 *
 * A group of n weights is represented as
 *
 *     w_j ~ offset + sum_{i<k} alpha_i * b_ij,    b_ij in {-1, +1},
 *
 * with k "planes" of signs and k alphas (plus an optional offset) shared by
 * the group. A weight's code is one byte whose bit i is set when b_ij = +1,
 * so code c decodes to offset + sum_i (bit_i(c) ? alpha_i : -alpha_i), the
 * sum taken in the order i = 0, 1, ..., k-1 in float (every decoder of the
 * library uses that exact order, so decoded values are bit-identical).
 *
 * Whole layers are quantized through lq_quantize with LQ_METHOD_BCQ
 * (round-to-nearest or through the Hessian engine) or LQ_METHOD_GPTQT
 * (include/quant/qtensor.h); the packed result is LQ_FORMAT_BCQ (k bit
 * planes, 8 weights per byte along the input dimension, alphas and offsets
 * per row and group; see docs/algorithms.md "BCQ and GPTQT").
 *
 * Everything here is pure per-vector math: no context, no allocation,
 * reentrant, deterministic. Inputs are validated (NULL, sizes, options:
 * LQ_ERR_INVALID_ARG; NaN/Inf: LQ_ERR_NOT_FINITE) and outputs are left
 * untouched on error.
 */
#ifndef QUANT_BCQ_H
#define QUANT_BCQ_H

#include "quant/core.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LQ_BCQ_MAX_K 8           /* planes per weight (codes are one byte) */
#define LQ_BCQ_MAX_LINEAR_BITS 8 /* GPTQT: bits of the linear grid */

/* ---- fitting ------------------------------------------------------------ */

typedef struct lq_bcq_fit_opts {
    unsigned k;     /* planes, 1..LQ_BCQ_MAX_K (default 3) */
    int offset;     /* 1: fit an offset too (default 0) */
    unsigned iters; /* cap on alternating iterations; 0 = greedy only (default 15) */
    double tol;     /* stop when an iteration lowers the error by less than
                       tol * error (default 1e-7; 0: run `iters`) */
} lq_bcq_fit_opts;

/* Fill *o with the defaults above (NULL is a no-op). */
LQ_API void lq_bcq_fit_opts_init(lq_bcq_fit_opts *o);

/* Fit k planes (and an offset) to w[0..n) minimising the weighted squared
 * error E = sum_j v_j (w_j - w_hat_j)^2, v = weight (NULL: all ones; values
 * must be finite and >= 0; all zero is treated as all ones).
 *
 * 1. Greedy residual fit: offset = weighted mean of w (when enabled), then
 *    for i = 0..k-1: alpha_i = weighted mean |r|, b_i = sign(r) (+1 at 0),
 *    r -= alpha_i b_i.
 * 2. Alternating refinement (Xu et al. 2018), at most opts->iters times:
 *    (a) codes fixed: alphas (and offset) by weighted least squares
 *        (B^T V B) alpha = B^T V w (a basis that is linearly dependent on
 *        the others gets alpha 0); (b) alphas fixed: each weight takes the
 *        nearest of the 2^k levels (sorted; ties to the upper level). A half
 *        step that would raise E (rounding) is rejected and the refinement
 *        stops, so the recorded errors never increase. It also stops at a
 *        fixed point (no code changed) or when a round gains less than
 *        tol * E.
 * 3. Canonical form: alphas >= 0 (a negative alpha flips its plane) sorted
 *    in decreasing order (reordering the planes changes the float sums of
 *    the decoded values by rounding only).
 *
 * Outputs: alpha[k]; *offset (may be NULL when opts->offset == 0; receives
 * 0 then); codes[n]. trace (optional, at least 1 + 2*opts->iters entries)
 * receives E after the greedy fit, then after each accepted half step
 * (odd: alphas, even: codes); *n_trace (optional) the number written.
 * opts NULL: defaults. */
LQ_API lq_status lq_bcq_fit(const float *w, const float *weight, size_t n,
                            const lq_bcq_fit_opts *opts, float *alpha, float *offset,
                            uint8_t *codes, double *trace, size_t *n_trace);

/* ---- levels, encode, decode ------------------------------------------- */

/* The 2^k levels of (alpha, offset) in ascending order (ties by code):
 * levels[2^k] and their codes[2^k]. Errors: INVALID_ARG, NOT_FINITE. */
LQ_API lq_status lq_bcq_levels(const float *alpha, unsigned k, float offset, float *levels,
                               uint8_t *codes);

/* Nearest-level codes of w[0..n) (ties to the upper level). */
LQ_API lq_status lq_bcq_encode(const float *w, size_t n, const float *alpha, unsigned k,
                               float offset, uint8_t *codes);

/* w[j] = offset + sum_i (bit_i(codes[j]) ? alpha_i : -alpha_i). Bits at and
 * above k are ignored. */
LQ_API lq_status lq_bcq_decode(const uint8_t *codes, size_t n, const float *alpha, unsigned k,
                               float offset, float *w);

/* ---- bit planes (LUT-GEMM layout) --------------------------------------
 * k planes, plane-major: plane i holds bit i of every code, 8 weights per
 * byte along the vector, weight j at byte i * lq_bcq_plane_bytes(n) + j / 8,
 * bit j % 8 (least significant first); padding bits are zero. */

/* Bytes of one plane of n weights: ceil(n / 8). */
LQ_API size_t lq_bcq_plane_bytes(size_t n);

/* Pack codes[n] into planes (k * lq_bcq_plane_bytes(n) bytes).
 * Errors: INVALID_ARG (NULL, n == 0, k outside 1..LQ_BCQ_MAX_K, or
 * k * lq_bcq_plane_bytes(n) not representable in size_t); planes untouched. */
LQ_API lq_status lq_bcq_pack(const uint8_t *codes, size_t n, unsigned k, uint8_t *planes);

/* Inverse of lq_bcq_pack (padding bits are ignored); errors as lq_bcq_pack,
 * codes untouched on error. */
LQ_API lq_status lq_bcq_unpack(const uint8_t *planes, size_t n, unsigned k, uint8_t *codes);

/* ---- GPTQT: linear grid, then conversion to binary coding ---------------
 * Guo, Lang, Ren 2024 ("GPTQT: quantize LLMs twice", arXiv 2407.02891). For
 * each candidate scale s = f_t * s0 (s0 = (max - min) / (2^n - 1), factors
 * f_t around 1, see docs/algorithms.md), the group is quantized to the
 * n-bit grid origin + s * q, q in [0, 2^n); the k binary bases are fitted
 * (lq_bcq_fit with an offset) to the integer levels q, each weighted by the
 * total importance of the weights that use it (count x Hessian weight); the
 * result is merged into pure binary coding (alpha_i' = s alpha_i, offset' =
 * origin + s offset) and scored by the weighted error on w. The candidate
 * with the lowest error wins ("re-exploration of the initial scale"). */

typedef struct lq_gptqt_opts {
    unsigned k;             /* binary planes, 1..LQ_BCQ_MAX_K (default 3) */
    unsigned linear_bits;   /* n, k..LQ_BCQ_MAX_LINEAR_BITS (default 6) */
    unsigned rescale_steps; /* candidate scales, 1..256 (default 16) */
    unsigned iters;         /* alternating iterations of the conversion fit (default 15) */
    int grid_codes;         /* 1: the paper's literal pipeline: a weight's code is the
                               binary level nearest to its grid point, no refinement.
                               0 (default): each candidate's converted coding is
                               refined on the weights by alternating steps (opts->iters)
                               before it is scored, and a weight's code is the level
                               nearest to the weight itself */
} lq_gptqt_opts;

/* Fill *o with the defaults for k = 3 (NULL is a no-op). */
LQ_API void lq_gptqt_opts_init(lq_gptqt_opts *o);

typedef struct lq_gptqt_info {
    double scale;         /* grid step s of the chosen candidate */
    double origin;        /* grid point q = 0 */
    double factor;        /* f_t: s / s0 */
    unsigned candidate;   /* t */
    unsigned levels_used; /* distinct grid levels used by the group */
    double err;           /* weighted squared error of the result */
} lq_gptqt_info;

/* Convert w[0..n) (importance `weight`, NULL = ones, as in lq_bcq_fit) to
 * k binary planes plus an offset through the linear grid. Outputs alpha[k]
 * (>= 0, decreasing), *offset, codes[n], and *info (may be NULL). A
 * constant group gives alphas 0 and offset = the constant.
 * Errors: INVALID_ARG (NULL, n = 0, options out of range), NOT_FINITE. */
LQ_API lq_status lq_gptqt_convert(const float *w, const float *weight, size_t n,
                                  const lq_gptqt_opts *opts, float *alpha, float *offset,
                                  uint8_t *codes, lq_gptqt_info *info);

#ifdef __cplusplus
}
#endif
#endif
