/*
 * Vector quantization: k-means / EM codebook learning, VQ codes (encode and
 * decode of d-dimensional vectors against a codebook of 2^b entries), and
 * codebook compression (int8 with a scale, low-rank SVD of stacked
 * codebooks). GPTVQ itself is reached through lq_quantize with
 * LQ_METHOD_GPTVQ (include/quant/qtensor.h).
 *
 * Conventions: points are rows of a row-major n x d float matrix; codebooks
 * and centroids are k x d row-major. Every function with a context is
 * multi-threaded through it and gives bit-identical results for a given seed
 * whatever the thread count and whatever the SIMD level.
 */
#ifndef QUANT_VQ_H
#define QUANT_VQ_H

#include "quant/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- k-means ------------------------------------------------------------ */

typedef enum lq_kmeans_init {
    LQ_KMEANS_PLUSPLUS = 0, /* k-means++ (D^2 sampling, weighted by the point weights) */
    LQ_KMEANS_RANDOM = 1,   /* k distinct points drawn uniformly (Floyd's sampling) */
    LQ_KMEANS_GIVEN = 2     /* start from the caller's centroids (read from `centroids`);
                               restarts must then be 1 */
} lq_kmeans_init;

/* Per-iteration observer: called after every Lloyd iteration with the
 * inertia of the assignment made in that iteration (the centroids it was
 * measured against are the previous ones), then once more with the final
 * inertia (iter == number of iterations run). Called from the calling
 * thread. */
typedef void (*lq_kmeans_iter_fn)(void *user, unsigned restart, unsigned iter, double inertia);

typedef struct lq_kmeans_opts {
    lq_kmeans_init init; /* default LQ_KMEANS_PLUSPLUS */
    unsigned max_iter;   /* Lloyd iterations per restart, >= 1 (default 25) */
    unsigned restarts;   /* independent runs, the lowest inertia is kept (default 1) */
    double tol;          /* stop when the inertia decreases by less than tol * inertia
                            in one iteration (default 1e-6; 0: run max_iter) */
    /* Optional per-point, per-coordinate importance (n x d, >= 0, finite):
     * the distance of point i to c is sum_j cw[i*d+j] (x_ij - c_j)^2 and the
     * centroid update is the per-coordinate weighted mean. This is the
     * Hessian-aware EM of GPTVQ (cw = 1 / [H^-1]_jj of the point's column,
     * see docs/algorithms.md). NULL: all ones. */
    const float *coord_weights;
    /* Optional record of the inertia after each iteration of the *last*
     * restart: inertia_trace[t] for t < max_iter (unused entries set to -1). */
    double *inertia_trace;
    lq_kmeans_iter_fn on_iter; /* optional observer */
    void *on_iter_user;
    unsigned *iters_run; /* optional out: iterations of the kept restart */
} lq_kmeans_opts;

/* Fill *opts with the defaults above. NULL is a no-op. */
LQ_API void lq_kmeans_opts_init(lq_kmeans_opts *opts);

/* Lloyd / EM k-means of n points x (n x d) into k centroids.
 *   weights   n per-point weights (>= 0, finite, not all 0) or NULL (uniform).
 *   opts      NULL: defaults.
 *   centroids k x d, out (in too with LQ_KMEANS_GIVEN).
 *   assign    n, out, may be NULL: index of each point's nearest centroid
 *             (ties go to the lowest index).
 *   inertia   out, may be NULL: sum_i w_i ||x_i - c(i)||^2 (with coordinate
 *             weights: sum_i w_i sum_j cw_ij (x_ij - c(i)_j)^2), in double,
 *             for the returned centroids and assignment.
 * Each iteration assigns every point to its nearest centroid, then moves each
 * centroid to the weighted mean of its points; the inertia never increases.
 * A centroid left without weight is re-seeded at the point that currently
 * contributes most to the inertia (ties: lowest index; that point's weight
 * is then taken from its old cluster's sums), so that no centroid stays
 * empty while some point is not exactly represented. The run stops after
 * max_iter iterations or when the relative decrease is below tol; the
 * returned assignment is always consistent with the returned centroids.
 * Restart r draws its initial centroids from RNG stream r of the context
 * seed. Deterministic for a seed whatever the thread count and SIMD level.
 * Errors: INVALID_ARG (NULL x or centroids, n, d or k zero, k > n, bad
 * options, negative or all-zero weights), NOT_FINITE (NaN/Inf in x, weights,
 * coordinate weights or given centroids), NO_MEMORY (outputs untouched). */
LQ_API lq_status lq_kmeans(lq_ctx *ctx, const float *x, const float *weights, size_t n, size_t d,
                           size_t k, const lq_kmeans_opts *opts, float *centroids, uint32_t *assign,
                           double *inertia);

/* ---- VQ codes ----------------------------------------------------------- */

/* Encode n vectors of dimension d (d in {1, 2, 4, 8}) against a codebook of
 * 2^bits entries (bits 1..16; codebook is 2^bits x d): codes[i] is the index
 * of the nearest entry (squared Euclidean distance, or with `weights` (n x d,
 * >= 0) the weighted distance sum_j w_ij (x_ij - c_j)^2; ties go to the
 * lowest index). err (may be NULL) receives the total (weighted) squared
 * error in double. Multi-threaded; SIMD nearest-codeword search.
 * Errors: INVALID_ARG, NOT_FINITE (x, codebook or weights), NO_MEMORY. */
LQ_API lq_status lq_vq_encode(lq_ctx *ctx, const float *x, const float *weights, size_t n, size_t d,
                              const float *codebook, unsigned bits, uint16_t *codes, double *err);

/* Decode: y (n x d) = codebook[codes[i]]. Pure, no allocation.
 * Errors: INVALID_ARG (NULL, d not in {1,2,4,8}, bits not in 1..16),
 * CORRUPT (a code >= 2^bits; y is then left partly written). */
LQ_API lq_status lq_vq_decode(const uint16_t *codes, size_t n, size_t d, const float *codebook,
                              unsigned bits, float *y);

/* ---- codebook compression ---------------------------------------------- */

/* Symmetric int8 quantization of n values: scale = max|c| / 127 (1 if all
 * zero), q[i] = round(c[i] / scale) clamped to [-127, 127]. Pure.
 * Errors: INVALID_ARG, NOT_FINITE. */
LQ_API lq_status lq_codebook_int8(const float *c, size_t n, int8_t *q, float *scale);

/* Low-rank compression of a layer's stacked codebooks: the m codebooks of k
 * x d entries form the rows of an m x (k*d) matrix A (row g = codebook g
 * flattened); A is replaced, in place, by its best rank-`rank` approximation
 * U_r S_r V_r^T (one-sided Jacobi SVD in double). If U (m x rank) and Vt
 * (rank x k*d) are non-NULL they receive the factors with S folded into U.
 * rank >= min(m, k*d) leaves A unchanged up to rounding.
 * Errors: INVALID_ARG, NOT_FINITE, NO_MEMORY. */
LQ_API lq_status lq_codebooks_svd(lq_ctx *ctx, float *codebooks, size_t m, size_t k, size_t d,
                                  size_t rank, float *U, float *Vt);

#ifdef __cplusplus
}
#endif
#endif /* QUANT_VQ_H */
