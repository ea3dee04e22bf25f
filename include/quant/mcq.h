/*
 * Additive multi-codebook quantization (AQLM: Egiazarian et al. 2024,
 * arXiv 2401.06118).
 *
 * A weight matrix W (rows x cols, out_features x in_features) is cut into
 * groups of g consecutive input weights of a row. Each group is the sum of one
 * vector from each of M codebooks of K = 2^B vectors of dimension g, times a
 * per-row scale:
 *
 *     W_hat[i, j*g + a] = s_i * sum_{m < M} C_m[code(i, j, m)][a]
 *
 * The objective is the layer proxy loss sum_i (w_i - w_hat_i) H (w_i -
 * w_hat_i)^T, H = X^T X (cols x cols, symmetric positive semi-definite), or
 * the plain squared error when H is NULL (H = I).
 *
 * Layouts (all row-major, contiguous):
 *   codebooks  M x K x g floats   (codebook m, entry k, coordinate a)
 *   codes      rows x (cols/g) x M uint16_t (row i, group j, codebook m)
 *   scales     rows floats; NULL everywhere means "all scales are 1"
 *
 * Every function that takes a context runs multi-threaded through it and
 * gives bit-identical results whatever the thread count. On error the
 * caller's outputs are left untouched.
 */
#ifndef QUANT_MCQ_H
#define QUANT_MCQ_H

#include "quant/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Shape of an additive quantizer. */
typedef struct lq_aq_params {
    unsigned n_codebooks; /* M, 1..8 */
    unsigned code_bits;   /* B, 1..16: codebooks of K = 2^B vectors */
    unsigned group;       /* g, 1..64, must divide cols */
} lq_aq_params;

/* Number of floats of the codebooks (M * 2^B * g), or 0 if p is invalid. */
LQ_API size_t lq_aq_codebooks_len(const lq_aq_params *p);

/* Number of codes for a rows x cols matrix (rows * cols/g * M), or 0 if p
 * is invalid, g does not divide cols, or the size overflows. */
LQ_API size_t lq_aq_codes_len(const lq_aq_params *p, size_t rows, size_t cols);

/* W_hat = decode(codebooks, codes, scales), rows x cols. Pure: no context,
 * no allocation. Errors: INVALID_ARG (NULL, bad params, g not dividing cols,
 * a code >= 2^B). */
LQ_API lq_status lq_aq_decode(const lq_aq_params *p, size_t rows, size_t cols,
                              const float *codebooks, const uint16_t *codes, const float *scales,
                              float *W_hat);

/* Objective sum_i (w_i - w_hat_i) H (w_i - w_hat_i)^T in double (H NULL:
 * squared Frobenius error). row_obj (rows doubles, may be NULL) receives the
 * per-row terms; *objective their sum in row order.
 * Errors: INVALID_ARG, NOT_FINITE (W, H, codebooks or scales), NO_MEMORY. */
LQ_API lq_status lq_aq_objective(lq_ctx *ctx, const float *W, size_t rows, size_t cols,
                                 const float *H, const lq_aq_params *p, const float *codebooks,
                                 const uint16_t *codes, const float *scales, double *row_obj,
                                 double *objective);

/* Beam-search encoding (codes given codebooks and scales).
 *
 * For every row, the code positions (group j, codebook m) are visited in
 * order j = 0.., m = 0..M-1; at each position every hypothesis of the beam
 * tries all K codes and the `beam` best distinct code vectors survive. The
 * change of the objective is computed exactly and incrementally from
 * rho = (w_hat - w) H and the precomputed c^T H_jj c of every code vector
 * under the diagonal H block of its group. With H given, the beam spans the
 * whole row (choices in one group are revised in the light of the next ones
 * through H's cross terms, as in AQLM). With H NULL (plain MSE) the groups
 * are independent and each one gets its own beam, which is exactly the beam
 * search of FAISS's ResidualQuantizer.
 *
 * warm = 0: start from empty codes (a position not yet visited contributes
 * nothing): beam 1 is greedy residual encoding. warm = 1: start from the
 * codes in `codes`; the result is never worse than the start, row by row
 * (the objective is recomputed exactly at the end and a row that would get
 * worse keeps its codes).
 * codes: rows*(cols/g)*M, input when warm, output always. objective (may be
 * NULL): the final objective. Errors: INVALID_ARG (NULL, bad params, beam 0
 * or > 256, warm codes out of range), NOT_FINITE, NO_MEMORY. */
LQ_API lq_status lq_aq_encode(lq_ctx *ctx, const float *W, size_t rows, size_t cols, const float *H,
                              const lq_aq_params *p, const float *codebooks, const float *scales,
                              unsigned beam, int warm, uint16_t *codes, double *objective);

/* Codebook update given codes and scales: minimises the objective over the
 * codebooks, a linear least-squares problem under H (normal equations
 * A c = b with A = sum_i s_i^2 B_i^T H B_i, B_i the 0/1 map from codebook
 * entries to row i). Solved by block-Jacobi preconditioned conjugate
 * gradients started at the current codebooks, `iters` iterations (0 means
 * 16); the result is kept only if the exact objective did not increase.
 * Codebook entries that no code uses are left as they are.
 * codebooks: in/out. objective (may be NULL): objective after the update.
 * Errors: INVALID_ARG, NOT_FINITE, NO_MEMORY. */
LQ_API lq_status lq_aq_update_codebooks(lq_ctx *ctx, const float *W, size_t rows, size_t cols,
                                        const float *H, const lq_aq_params *p,
                                        const uint16_t *codes, const float *scales, unsigned iters,
                                        float *codebooks, double *objective);

/* Per-row scale update given codes and codebooks: s_i = (w_i H u_i^T) /
 * (u_i H u_i^T) with u_i the unscaled decoded row (closed form); a row whose
 * exact objective would not decrease keeps its scale. scales: in/out (not
 * NULL). objective (may be NULL): objective after the update.
 * Errors: INVALID_ARG, NOT_FINITE, NO_MEMORY. */
LQ_API lq_status lq_aq_update_scales(lq_ctx *ctx, const float *W, size_t rows, size_t cols,
                                     const float *H, const lq_aq_params *p, const float *codebooks,
                                     const uint16_t *codes, float *scales, double *objective);

/* Initialisation by residual k-means: scales s_i = RMS of row i (1 for a
 * zero row; or all 1 when scales is NULL), then for m = 0..M-1 k-means with
 * K centroids on the current residual groups (w_i / s_i minus the codebooks
 * already chosen), codes by nearest centroid. Training subsamples at most
 * 256 * K groups (deterministically from the context's seed); every group is
 * then assigned. kmeans_iters: Lloyd iterations (0 means 20).
 * Outputs: codebooks (M*K*g), codes, scales (rows, may be NULL).
 * Errors: INVALID_ARG, NOT_FINITE, NO_MEMORY. */
LQ_API lq_status lq_aq_init(lq_ctx *ctx, const float *W, size_t rows, size_t cols,
                            const lq_aq_params *p, unsigned kmeans_iters, float *codebooks,
                            uint16_t *codes, float *scales);

/* Options of the full fit (lq_aq_fit). Zeros mean the defaults. */
typedef struct lq_aq_fit_opts {
    unsigned beam;         /* beam size (default 8) */
    unsigned rounds;       /* beam search + codebook update rounds (default 4) */
    unsigned kmeans_iters; /* residual k-means iterations (default 20) */
    unsigned cg_iters;     /* conjugate-gradient iterations per update (default 16) */
    int fixed_scales;      /* 1: do not update scales (they stay as initialised) */
} lq_aq_fit_opts;

/* Full fit: lq_aq_init, then `rounds` times: warm beam search, codebook
 * update, scale update (each step keeps its result only if the objective
 * does not increase, so the objective never increases across rounds).
 * history (may be NULL): rounds + 1 doubles, the objective after init and
 * after each round; each is also reported through the context's progress
 * callback (stage "aqlm"). scales may be NULL (all 1, never updated).
 * Errors: INVALID_ARG, NOT_FINITE, NO_MEMORY. */
LQ_API lq_status lq_aq_fit(lq_ctx *ctx, const float *W, size_t rows, size_t cols, const float *H,
                           const lq_aq_params *p, const lq_aq_fit_opts *opts, float *codebooks,
                           uint16_t *codes, float *scales, double *history);

#ifdef __cplusplus
}
#endif
#endif /* QUANT_MCQ_H */
