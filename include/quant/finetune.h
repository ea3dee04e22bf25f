/*
 * Fine-tuning the continuous parameters of a packed tensor, codes fixed.
 *
 * Every format's dequantized weight W_hat is a function of discrete codes
 * and of a few continuous parameters. With the codes held fixed, W_hat is
 * linear in each parameter family, so the gradient of any loss L with
 * respect to those parameters follows from the caller's dL/dW_hat (rows x
 * cols, the same layout as lq_dequantize's output). The tuned parameters,
 * in the order of the parameter vector:
 *
 *   LQ_FORMAT_INT  the (row, group) scales, row-major (zeros are integers:
 *                  fixed)
 *   LQ_FORMAT_E8   the (row, group) scales of W' (NestQuant; the beta table
 *                  stays fixed)
 *   LQ_FORMAT_E8P  the (row, group) scales of W'
 *   LQ_FORMAT_VQ   fp16 codebooks: every codebook value, codebook-major;
 *                  int8 codebooks: the fp32 scale of each codebook (the int8
 *                  entries are codes); the SVD-compressed layout: UNSUPPORTED
 *   LQ_FORMAT_BCQ  the alphas (rows x groups x k), then the offsets (rows x
 *                  groups) when stored
 *   LQ_FORMAT_AQ   the M codebooks (M x 2^B x g values), then the row scales
 *
 * Parameters stored as halves are rounded to the nearest half on every
 * write; the gradient is always taken at the stored values (the W_hat that
 * lq_dequantize and the products see). An lq_finetune object keeps an fp32
 * master copy of the parameters and the Adam moments, so steps smaller
 * than a half's resolution still accumulate.
 *
 * Thread safety: the functions that write a tensor (lq_finetune_set_params,
 * lq_finetune_step) need exclusive use of it (no product or other call on
 * it at the same time); they drop its cached kernel layout, rebuilt on the
 * next product. Everything here is deterministic and independent of the
 * thread count.
 */
#ifndef QUANT_FINETUNE_H
#define QUANT_FINETUNE_H

#include "quant/qtensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Number of continuous parameters of t (see the table above).
 * Errors: INVALID_ARG (NULL), UNSUPPORTED (VQ with SVD codebooks), CORRUPT
 * (t fails validation). *n untouched on error. */
LQ_API lq_status lq_finetune_param_count(const lq_qtensor *t, size_t *n);

/* Copy the n = lq_finetune_param_count(t) parameters of t (as floats) into
 * p. Errors: as lq_finetune_param_count, INVALID_ARG (n wrong). */
LQ_API lq_status lq_finetune_get_params(const lq_qtensor *t, float *p, size_t n);

/* Write n parameters into t (rounded to the storage type). Errors:
 * INVALID_ARG (NULL, n wrong), NOT_FINITE (NaN/Inf in p), OUT_OF_RANGE (|p|
 * > LQ_MAX_ABS_WEIGHT, a half-stored value beyond 65504, or a VQ int8
 * codebook scale <= 0), UNSUPPORTED (t borrows a read-only mapping, or as
 * lq_finetune_param_count), CORRUPT. t untouched on error. */
LQ_API lq_status lq_finetune_set_params(lq_qtensor *t, const float *p, size_t n);

/* grad[i] = dL/dp_i given dW = dL/dW_hat (rows x cols, the shape of t),
 * at the parameters stored in t, with the codes fixed (sums in double).
 * Errors: INVALID_ARG (NULL, rows/cols not t's shape, n wrong),
 * NOT_FINITE (NaN/Inf in dW), OUT_OF_RANGE (a gradient beyond FLT_MAX),
 * UNSUPPORTED, CORRUPT, NO_MEMORY. grad untouched on error. */
LQ_API lq_status lq_finetune_grad(lq_ctx *ctx, const lq_qtensor *t, const float *dW, size_t rows,
                                  size_t cols, float *grad, size_t n);

/* Adam (Kingma and Ba, with bias correction). */
typedef struct lq_adam_opts {
    double lr;    /* step size, finite, in (0, 1e6]; default 1e-4 */
    double beta1; /* first moment decay, [0, 1); default 0.9 */
    double beta2; /* second moment decay, [0, 1); default 0.999 */
    double eps;   /* denominator floor, finite, > 0; default 1e-8 */
} lq_adam_opts;

/* Fill *o with the defaults. Errors: INVALID_ARG (NULL). */
LQ_API lq_status lq_adam_opts_init(lq_adam_opts *o);

typedef struct lq_finetune lq_finetune;

/* Adam state for the parameters of t (a master copy of them and zero
 * moments). o NULL: the defaults. The state is bound to t's format, shape
 * and parameter count, not to its address. Errors: INVALID_ARG (NULL out,
 * bad options), UNSUPPORTED, CORRUPT, NO_MEMORY. *out untouched on error. */
LQ_API lq_status lq_finetune_create(lq_ctx *ctx, const lq_qtensor *t, const lq_adam_opts *o,
                                    lq_finetune **out);

/* One Adam step: g = lq_finetune_grad(t, dW), then, per parameter,
 * m = b1 m + (1 - b1) g, v = b2 v + (1 - b2) g^2, p -= lr mhat / (sqrt(vhat)
 * + eps) on the master copy, and the master copy is written into t (rounded
 * to storage; VQ int8 codebook scales are kept >= the smallest normal
 * float). Codes are never modified. Errors: those of lq_finetune_grad and
 * lq_finetune_set_params, INVALID_ARG (f does not match t). On any error t
 * and f are untouched. */
LQ_API lq_status lq_finetune_step(lq_ctx *ctx, lq_finetune *f, lq_qtensor *t, const float *dW,
                                  size_t rows, size_t cols);

/* Re-encode the codes of t for its current continuous parameters, the
 * discrete half of AQLM's alternation (run it between rounds of steps).
 * With codebooks and scales fixed, the codes of each row r are chosen to
 * lower f_r = (w_hat_r - w_r) H (w_hat_r - w_r)^T (H NULL: ||w_hat_r -
 * w_r||^2), w_r row r of the target W:
 *   LQ_FORMAT_AQ  beam search of width `beam` (lq_aq_encode, quant/mcq.h)
 *                 started from the stored codes
 *   LQ_FORMAT_VQ  one pass of exact coordinate descent over the vectors
 *                 (each takes the entry of its codebook that lowers f_r
 *                 most given the others; without H the nearest entry, the
 *                 exact minimiser); `beam` ignored
 * A row whose new codes would not lower f_r keeps its codes, so no row's
 * objective increases. The kernel layout is dropped (as by a step).
 * W: rows x cols (t's shape). H: cols x cols, symmetric with a non-negative
 * diagonal, or NULL. objective / changed (may be NULL): sum of f_r after,
 * and how many codes changed. Deterministic whatever the thread count.
 * Errors: INVALID_ARG (NULL, shape, AQ beam not in 1..256), NOT_FINITE,
 * OUT_OF_RANGE (W or H beyond the quantizers' range), NOT_POSITIVE_DEFINITE
 * (a negative diagonal of H), UNSUPPORTED (another format, VQ with SVD
 * codebooks, t borrows a read-only mapping), CORRUPT, NO_MEMORY. t and the
 * outputs untouched on error. */
LQ_API lq_status lq_finetune_reencode(lq_ctx *ctx, lq_qtensor *t, const float *W, size_t rows,
                                      size_t cols, const float *H, unsigned beam, double *objective,
                                      size_t *changed);

/* Steps taken so far (0 on NULL). */
LQ_API size_t lq_finetune_steps(const lq_finetune *f);

/* Free the state (NULL is a no-op). */
LQ_API void lq_finetune_destroy(lq_finetune *f);

#ifdef __cplusplus
}
#endif
#endif
