/* Statistics of quantized activations for the sequential calibration
 * (calib_act.c; calib.h uses them): the weight correction for activation
 * noise. Kept apart from calib.h so that calib_act.c can use the library's
 * internal linear algebra (core/internal.h clashes with eval.h's names). */
#ifndef LQ_CALIB_ACT_H
#define LQ_CALIB_ACT_H

#include "actq.h"
#include "model.h"

/* ---- statistics of quantized activations (calib_act.c) -------------------
 * For one layer group: the running means (2/N) sum x x^T, x~ x~^T and
 * x x~^T (lq_hessian_add's update, in double) over pairs of float inputs x
 * and their quantized form x~. */
typedef struct lq_act_stats lq_act_stats;

/* New accumulator for inputs of width cols; as the hook it takes the inputs
 * of group g and quantizes them with aq (NULL: x~ = x). Errors:
 * INVALID_ARG, NO_MEMORY. */
lq_status lq_act_stats_create(lq_ctx *ctx, lq_actq *aq, lq_lin_group g, size_t cols,
                              lq_act_stats **out);
void lq_act_stats_free(lq_act_stats *a);
/* Add n pairs: X and Xt (n x cols each; Xt NULL or == X: unquantized, every
 * batch alike). Errors: INVALID_ARG (a mix of both kinds, after
 * lq_act_stats_target), NOT_FINITE, NO_MEMORY (the accumulator is then
 * unusable). */
lq_status lq_act_stats_add(lq_act_stats *a, const float *X, const float *Xt, size_t n);
/* lq_llama_hook: adds the inputs of group g, quantized by lq_actq_input. */
void lq_act_stats_hook(void *user, size_t layer, lq_lin_group g, const float *X, size_t n,
                       size_t cols);
/* LQ_OK once a batch is in and the hook saw no error, else that error. */
lq_status lq_act_stats_status(const lq_act_stats *a);
/* 1 when the inputs were quantized (x~ != x). */
int lq_act_stats_coded(const lq_act_stats *a);
/* H (cols x cols float): the quantized inputs' Hessian (of_coded, when
 * coded) or the float inputs'. */
lq_status lq_act_stats_hessian(const lq_act_stats *a, int of_coded, float *H);
/* The corrected target Wt = W + W (C - H~)(H~ + lambda I)^-1 of W (rows x
 * cols), lambda the engine's damping of H~ for percdamp
 * (lq_hessian_damping); Wt = W when not coded. *lambda (may be NULL) gets
 * the damping used. The solve is done once and kept (then every later call
 * must give the same percdamp). Errors: INVALID_ARG, NOT_POSITIVE_DEFINITE,
 * NOT_FINITE, NO_MEMORY. */
lq_status lq_act_stats_target(lq_act_stats *a, double percdamp, const float *W, size_t rows,
                              float *Wt, double *lambda);
/* *rel = sum ||W x - What x~||^2 / sum ||W x||^2 over the accumulated pairs. */
lq_status lq_act_stats_objective(const lq_act_stats *a, const float *W, const float *What,
                                 size_t rows, double *rel);

#endif
