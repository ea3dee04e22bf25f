/*
 * GPTQ's damping schedule as a stand-alone check, for the methods that use
 * the Hessian without the column-update engine (AQLM): the same schedule
 * and the same refusal as lq_gptq_run, so every method treats an indefinite
 * Hessian alike.
 */
#ifndef LQ_HESSIAN_DAMPING_H
#define LQ_HESSIAN_DAMPING_H

#include "core/internal.h"

/* Smallest lambda of the engine's schedule (percdamp * mean diag(H), x10 up
 * to 6 times; dead columns count as 1, negative diagonals as 0) for which
 * H + lambda I (with zero diagonals replaced by 1) has a Cholesky factor.
 * H: n x n, finite, symmetric (lower triangle read). *lambda written only
 * on success. Errors: NOT_POSITIVE_DEFINITE, NO_MEMORY. */
lq_status lq_hessian_damping(lq_ctx *ctx, const float *H, size_t n, double percdamp,
                             double *lambda);

#endif
