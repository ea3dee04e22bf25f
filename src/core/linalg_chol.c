/*
 * Cholesky factorisation, triangular inverse and triangular solves (lower
 * triangular, row-major): recursive / blocked algorithms whose flops run in
 * the packed GEMM (linalg_tri_tmpl.h, instantiated for float and double).
 */
#include <math.h>
#include <stdint.h>

#include "core/linalg.h"

#define TRI_BASE 16  /* triangle size below which substitution loops run */
#define TRI_GRAIN 64 /* independent rows/columns per task in those loops */
#define POTRF_NB 128 /* Cholesky panel width */

/* float instantiates only what spotrf needs */
#if defined(__GNUC__)
#define TRI_UNUSED __attribute__((unused))
#else
#define TRI_UNUSED
#endif

#define GT float
#define GP(x) s##x
#define GGEMM lq_sgemm_ex
#include "core/linalg_tri_tmpl.h"
#undef GT
#undef GP
#undef GGEMM

#define GT double
#define GP(x) d##x
#define GGEMM lq_dgemm_ex
#include "core/linalg_tri_tmpl.h"
#undef GT
#undef GP
#undef GGEMM

/* GEMM workspace covering every call on an n-sized triangle with up to
 * `other` right-hand sides and inner dimension up to k. */
#define DEFINE_TRI_WORK(P, T)                                                                      \
    static lq_status P##tri_begin(lq_ctx *ctx, size_t n, size_t other, size_t k, P##tri_ctx *tc)   \
    {                                                                                              \
        size_t big = n > other ? n : other;                                                        \
        size_t ws = lq_##P##gemm_work_size(ctx, big, big, k);                                      \
        tc->ctx = ctx;                                                                             \
        tc->work = NULL;                                                                           \
        if (ws == SIZE_MAX) return LQ_ERR_NO_MEMORY;                                               \
        if (ws == 0) return LQ_OK;                                                                 \
        tc->work = lq_alloc_array(ctx, ws, sizeof(T));                                             \
        return tc->work ? LQ_OK : LQ_ERR_NO_MEMORY;                                                \
    }

DEFINE_TRI_WORK(s, float)
DEFINE_TRI_WORK(d, double)

lq_status lq_dpotrf_lower(lq_ctx *ctx, double *A, size_t n, size_t lda)
{
    if (n == 0) return LQ_OK;
    if (n <= POTRF_NB) return dpotrf_unblocked(A, n, lda);
    dtri_ctx tc;
    lq_status st = dtri_begin(ctx, n, n, POTRF_NB, &tc);
    if (st != LQ_OK) return st;
    st = dpotrf_blocked(&tc, A, n, lda);
    lq_free(ctx, tc.work);
    return st;
}

lq_status lq_spotrf_lower(lq_ctx *ctx, float *A, size_t n, size_t lda)
{
    if (n == 0) return LQ_OK;
    if (n <= POTRF_NB) return spotrf_unblocked(A, n, lda);
    stri_ctx tc;
    lq_status st = stri_begin(ctx, n, n, POTRF_NB, &tc);
    if (st != LQ_OK) return st;
    st = spotrf_blocked(&tc, A, n, lda);
    lq_free(ctx, tc.work);
    return st;
}

lq_status lq_dtrtri_lower(lq_ctx *ctx, double *L, size_t n, size_t lda)
{
    if (n == 0) return LQ_OK;
    for (size_t i = 0; i < n; i++)
        if (L[i * lda + i] == 0.0 || !isfinite(L[i * lda + i])) return LQ_ERR_INVALID_ARG;
    dtri_ctx tc;
    lq_status st = dtri_begin(ctx, n, n, n, &tc);
    if (st != LQ_OK) return st;
    dtrtri(&tc, n, L, lda);
    lq_free(ctx, tc.work);
    return LQ_OK;
}

lq_status lq_dtrsm_left_lower(lq_ctx *ctx, lq_trans trans, size_t n, size_t nrhs, const double *L,
                              size_t ldl, double *B, size_t ldb)
{
    if (n == 0 || nrhs == 0) return LQ_OK;
    dtri_ctx tc;
    lq_status st = dtri_begin(ctx, n, nrhs, n, &tc);
    if (st != LQ_OK) return st;
    dtrsm_left(&tc, trans == LQ_TRANS, n, nrhs, L, ldl, B, ldb);
    lq_free(ctx, tc.work);
    return LQ_OK;
}

lq_status lq_dtrsm_right_lower(lq_ctx *ctx, lq_trans trans, size_t m, size_t n, const double *L,
                               size_t ldl, double *B, size_t ldb)
{
    if (n == 0 || m == 0) return LQ_OK;
    dtri_ctx tc;
    lq_status st = dtri_begin(ctx, n, m, n, &tc);
    if (st != LQ_OK) return st;
    dtrsm_right(&tc, trans == LQ_TRANS, m, n, L, ldl, B, ldb);
    lq_free(ctx, tc.work);
    return LQ_OK;
}
