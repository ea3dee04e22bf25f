/*
 * The Hessian engine (GPTQ, Frantar et al. 2022): calibration Hessian
 * accumulation and the blocked, lazy column-update loop that every
 * column-wise quantizer (INT, NestQuant, GPTVQ, BCQ) plugs into through the
 * lq_colquant vtable.
 */
#ifndef QUANT_HESSIAN_H
#define QUANT_HESSIAN_H

#include "quant/core.h"
#include "quant/qtensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Hessian accumulation ------------------------------------------------
 * H = (2/N) sum_n x_n x_n^T over every calibration sample fed so far, as a
 * running mean (GPTQ's update), accumulated in double. */
typedef struct lq_hessian lq_hessian;

/* New accumulator for inputs of dimension cols (H is cols x cols); free it
 * with lq_hessian_free. Errors: INVALID_ARG, NO_MEMORY. Not thread-safe
 * per accumulator (one writer at a time). */
LQ_API lq_status lq_hessian_create(lq_ctx *ctx, size_t cols, lq_hessian **out);
/* Add a batch X (nsamples x cols, leading dimension ldx >= cols). NaN/Inf
 * give LQ_ERR_NOT_FINITE and leave the accumulator unchanged (so does
 * NO_MEMORY: it needs a cols x cols double scratch). */
LQ_API lq_status lq_hessian_add(lq_ctx *ctx, lq_hessian *h, const float *X, size_t nsamples,
                                size_t ldx);
/* Copy H out (cols x cols, float). Errors: INVALID_ARG if no sample yet,
 * NOT_FINITE if an entry exceeds the float range. */
LQ_API lq_status lq_hessian_get(const lq_hessian *h, float *H);
/* Samples accumulated so far. */
LQ_API size_t lq_hessian_count(const lq_hessian *h);
LQ_API void lq_hessian_free(lq_hessian *h);

/* ---- column quantizer vtable ---------------------------------------------
 * A method supplies this; the engine drives it. Column indices are in the
 * engine's processing order (identical to the original order unless
 * act-order is on; then perm[k] is the original column at position k).
 *
 * fit_group: a new group of `ncols` columns starts at processing position
 *   col0; W is the current, already updated weight (processing order, row
 *   stride ldw; W + col0 is the group's first column). hinv_diag[j] (j <
 *   ncols) is U_jj^2 for the group's columns (U = chol(H^-1) upper): the
 *   error variance GPTQ attaches to each column (1 everywhere without H).
 *   With static_groups, fit_group is instead called once per group, before
 *   any update, on the original-order W with col0 in original order.
 * quantize: quantize `width` columns at processing position col (w = W +
 *   col, row stride ldw); write the dequantized values to q (rows x width,
 *   stride ldq) and record the codes internally. u_block is the width x
 *   width upper-triangular diagonal block of U at (col, col), row-major
 *   (ld = width): vector quantizers weigh errors with it.
 * quantize_rows (optional, may be NULL): the same as quantize for rows
 *   [r0, r1) only (w and q still point at row 0 of column col). A quantizer
 *   that sets it promises that calls on disjoint row ranges of one column
 *   may run at the same time on different threads and that the result of a
 *   row does not depend on how the rows were split; the engine then runs
 *   each sub-block of columns (quantize and in-block update) row chunk by
 *   row chunk in parallel. Results are the same as through quantize. */
typedef struct lq_colquant {
    size_t width; /* columns quantized together (>= 1) */
    size_t group; /* columns sharing parameters (multiple of width), 0 = all */
    lq_status (*fit_group)(void *self, const float *W, size_t ldw, size_t rows, size_t col0,
                           size_t ncols, const float *hinv_diag);
    lq_status (*quantize)(void *self, const float *w, size_t ldw, size_t rows, size_t col,
                          const float *u_block, float *q, size_t ldq);
    void *self;
    /* Set by the engine for the duration of lq_gptq_run (NULL again after
     * it): perm[k] = original column at processing position k, NULL without
     * act-order; static_groups as requested. The callbacks receive only
     * `self`, so a quantizer that needs them keeps a pointer to its
     * lq_colquant in self (the struct must stay at its address meanwhile). */
    const size_t *perm;
    int static_groups;
    lq_status (*quantize_rows)(void *self, const float *w, size_t ldw, size_t r0, size_t r1,
                               size_t col, const float *u_block, float *q, size_t ldq);
} lq_colquant;

typedef struct lq_gptq_result {
    double damping;      /* absolute damping added to diag(H) (after escalation;
                          * 0 for round to nearest) */
    double loss;         /* GPTQ's accumulated sum (w - q)^2 / U_jj^2 / 2; for
                          * width d, 1/2 ||(w_S - q_S) U_SS^-1||^2 per step;
                          * 1/2 ||W - W_hat||^2 for round to nearest */
    size_t dead_columns; /* columns with H_jj == 0 (their weights are zeroed) */
} lq_gptq_result;

/* Run the engine: quantize W (rows x cols) through `q` under H (cols x
 * cols; NULL or opts->rtn: round to nearest, no updates, H ignored). opts
 * NULL: defaults (percdamp 0.01, block 128, no act-order); block_size 0 =
 * 128, rounded up to a multiple of width. Damping lambda = percdamp *
 * mean(diag H), x10 on each Cholesky failure (from 0: first retry 1e-3
 * mean(diag H)). Group fits see fully updated weights (blocks end early at
 * a group start whose group reaches past the block). W_hat (rows x cols,
 * original column order) receives the dequantized weight, only on success;
 * may be NULL. res may be NULL. W and H are not modified. Multi-threaded
 * through ctx; the callbacks are called from the calling thread; results do
 * not depend on the thread count. Progress: lq_progress(ctx, f, "gptq")
 * after each block.
 * Errors: INVALID_ARG (sizes, width/group mismatch: group % width != 0 or
 * cols % width != 0, act_order with width > 1), NOT_FINITE,
 * NOT_POSITIVE_DEFINITE (still failing after damping x10 up to 6 times),
 * NO_MEMORY, and any error the quantizer returns. */
LQ_API lq_status lq_gptq_run(lq_ctx *ctx, const float *W, size_t rows, size_t cols, const float *H,
                             const lq_engine_opts *opts, lq_colquant *q, float *W_hat,
                             lq_gptq_result *res);

#ifdef __cplusplus
}
#endif
#endif
