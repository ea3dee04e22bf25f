/*
 * syrk for X^T X: C (n x n) = alpha A^T A + beta C with A k x n (k samples of
 * n features, the Hessian's X^T X). The upper triangle is computed by the
 * packed GEMM restricted to tiles on or above the diagonal (about half the
 * flops of a full product) and mirrored, so C is exactly symmetric; like the
 * GEMM the result does not depend on the thread count.
 *
 * The double variant converts A to double in slabs of SYRK_SLAB samples and
 * runs the double GEMM on each slab: products of two floats are exact in
 * double and every sum is accumulated in double (see docs/algorithms.md,
 * "Dense linear algebra", for why the Hessian is accumulated in double).
 */
#include <string.h>

#include "core/linalg.h"

#define SYRK_SLAB 512
/* Below this many multiply-adds plain loops beat packing. */
#define SYRK_SMALL_FMAS 32768u

static void mirror_upper_f(float *C, size_t n, size_t ldc)
{
    for (size_t i = 1; i < n; i++)
        for (size_t x = 0; x < i; x++) C[i * ldc + x] = C[x * ldc + i];
}

static void mirror_upper_d(double *C, size_t n, size_t ldc)
{
    for (size_t i = 1; i < n; i++)
        for (size_t x = 0; x < i; x++) C[i * ldc + x] = C[x * ldc + i];
}

static int syrk_is_small(size_t n, size_t k)
{
    size_t nn;
    return lq_mul_ok(n, n, &nn) && nn <= SYRK_SMALL_FMAS && k <= SYRK_SMALL_FMAS / nn;
}

lq_status lq_ssyrk_tn(lq_ctx *ctx, size_t n, size_t k, float alpha, const float *A, size_t lda,
                      float beta, float *C, size_t ldc)
{
    if (n == 0) return LQ_OK;
    lq_status st = lq_sgemm_ex(ctx, LQ_UPPER, LQ_TRANS, LQ_NO_TRANS, n, n, k, alpha, A, lda, A, lda,
                               beta, C, ldc, NULL);
    if (st != LQ_OK) return st;
    mirror_upper_f(C, n, ldc);
    return LQ_OK;
}

lq_status lq_dsyrk_tn_f32(lq_ctx *ctx, size_t n, size_t k, double alpha, const float *A, size_t lda,
                          double beta, double *C, size_t ldc)
{
    if (n == 0) return LQ_OK;
    if (k == 0 || alpha == 0.0 || syrk_is_small(n, k)) {
        /* plain loops in double, upper triangle, samples in order */
        for (size_t i = 0; i < n; i++) {
            double *c = C + i * ldc;
            for (size_t x = i; x < n; x++) {
                double s = 0.0;
                for (size_t p = 0; p < k; p++) s += (double)A[p * lda + i] * (double)A[p * lda + x];
                c[x] = beta == 0.0 ? alpha * s : alpha * s + beta * c[x];
            }
        }
        mirror_upper_d(C, n, ldc);
        return LQ_OK;
    }
    size_t slab = k < SYRK_SLAB ? k : SYRK_SLAB;
    size_t nslab, wsize = lq_dgemm_work_size(ctx, n, n, slab), total;
    if (wsize == SIZE_MAX || !lq_mul_ok(slab, n, &nslab) || !lq_add_ok(nslab, wsize, &total))
        return LQ_ERR_NO_MEMORY;
    double *S = lq_alloc_array(ctx, total, sizeof *S);
    if (!S) return LQ_ERR_NO_MEMORY;
    double *work = wsize ? S + nslab : NULL;
    for (size_t p0 = 0; p0 < k; p0 += slab) {
        size_t ks = k - p0 < slab ? k - p0 : slab;
        for (size_t p = 0; p < ks; p++) {
            const float *a = A + (p0 + p) * lda;
            double *s = S + p * n;
            for (size_t x = 0; x < n; x++) s[x] = a[x];
        }
        /* with the workspace sized for the largest slab this cannot fail */
        lq_status st = lq_dgemm_ex(ctx, LQ_UPPER, LQ_TRANS, LQ_NO_TRANS, n, n, ks, alpha, S, n, S,
                                   n, p0 == 0 ? beta : 1.0, C, ldc, work);
        if (st != LQ_OK) {
            lq_free(ctx, S);
            return st;
        }
    }
    lq_free(ctx, S);
    mirror_upper_d(C, n, ldc);
    return LQ_OK;
}
