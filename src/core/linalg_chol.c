/*
 * Cholesky factorisation, triangular inverse and triangular solves (lower
 * triangular, row-major). First version: unblocked, accumulation in double.
 */
#include <math.h>

#include "core/linalg.h"

lq_status lq_dpotrf_lower(lq_ctx *ctx, double *A, size_t n, size_t lda)
{
    (void)ctx;
    for (size_t j = 0; j < n; j++) {
        double *aj = A + j * lda;
        double d = aj[j];
        for (size_t p = 0; p < j; p++) d -= aj[p] * aj[p];
        if (!(d > 0.0) || !isfinite(d)) return LQ_ERR_NOT_POSITIVE_DEFINITE;
        double ljj = sqrt(d);
        aj[j] = ljj;
        double inv = 1.0 / ljj;
        for (size_t i = j + 1; i < n; i++) {
            double *ai = A + i * lda;
            double s = ai[j];
            for (size_t p = 0; p < j; p++) s -= ai[p] * aj[p];
            ai[j] = s * inv;
        }
    }
    return LQ_OK;
}

lq_status lq_spotrf_lower(lq_ctx *ctx, float *A, size_t n, size_t lda)
{
    (void)ctx;
    for (size_t j = 0; j < n; j++) {
        float *aj = A + j * lda;
        double d = aj[j];
        for (size_t p = 0; p < j; p++) d -= (double)aj[p] * aj[p];
        if (!(d > 0.0) || !isfinite(d)) return LQ_ERR_NOT_POSITIVE_DEFINITE;
        double ljj = sqrt(d);
        aj[j] = (float)ljj;
        for (size_t i = j + 1; i < n; i++) {
            float *ai = A + i * lda;
            double s = ai[j];
            for (size_t p = 0; p < j; p++) s -= (double)ai[p] * aj[p];
            ai[j] = (float)(s / (double)aj[j]);
        }
    }
    return LQ_OK;
}

lq_status lq_dtrtri_lower(lq_ctx *ctx, double *L, size_t n, size_t lda)
{
    (void)ctx;
    for (size_t i = 0; i < n; i++)
        if (L[i * lda + i] == 0.0 || !isfinite(L[i * lda + i])) return LQ_ERR_INVALID_ARG;
    /* Row i of X = L^-1 from rows < i (already inverted) and row i of L:
     * X[i][j] = -(sum_{p=j}^{i-1} L[i][p] X[p][j]) / L[i][i]; ascending j
     * only overwrites L[i][j] once it is no longer needed. */
    for (size_t i = 0; i < n; i++) {
        double *li = L + i * lda;
        double dinv = 1.0 / li[i];
        for (size_t j = 0; j < i; j++) {
            double s = 0.0;
            for (size_t p = j; p < i; p++) s += li[p] * L[p * lda + j];
            li[j] = -s * dinv;
        }
        li[i] = dinv;
    }
    return LQ_OK;
}

lq_status lq_dtrsm_left_lower(lq_ctx *ctx, lq_trans trans, size_t n, size_t nrhs,
                              const double *L, size_t ldl, double *B, size_t ldb)
{
    (void)ctx;
    if (trans == LQ_NO_TRANS) {
        for (size_t i = 0; i < n; i++) {
            double *bi = B + i * ldb;
            for (size_t p = 0; p < i; p++) {
                double l = L[i * ldl + p];
                const double *bp = B + p * ldb;
                for (size_t x = 0; x < nrhs; x++) bi[x] -= l * bp[x];
            }
            double inv = 1.0 / L[i * ldl + i];
            for (size_t x = 0; x < nrhs; x++) bi[x] *= inv;
        }
    } else {
        for (size_t i = n; i-- > 0;) {
            double *bi = B + i * ldb;
            for (size_t p = i + 1; p < n; p++) {
                double l = L[p * ldl + i];
                const double *bp = B + p * ldb;
                for (size_t x = 0; x < nrhs; x++) bi[x] -= l * bp[x];
            }
            double inv = 1.0 / L[i * ldl + i];
            for (size_t x = 0; x < nrhs; x++) bi[x] *= inv;
        }
    }
    return LQ_OK;
}

lq_status lq_dtrsm_right_lower(lq_ctx *ctx, lq_trans trans, size_t m, size_t n,
                               const double *L, size_t ldl, double *B, size_t ldb)
{
    (void)ctx;
    for (size_t r = 0; r < m; r++) {
        double *b = B + r * ldb;
        if (trans == LQ_NO_TRANS) {
            /* x L = b: b_j = sum_{p>=j} x_p L[p][j], solved from the last j */
            for (size_t j = n; j-- > 0;) {
                double s = b[j];
                for (size_t p = j + 1; p < n; p++) s -= b[p] * L[p * ldl + j];
                b[j] = s / L[j * ldl + j];
            }
        } else {
            /* x L^T = b: b_j = sum_{p<=j} x_p L[j][p], solved from the first j */
            for (size_t j = 0; j < n; j++) {
                double s = b[j];
                const double *lj = L + j * ldl;
                for (size_t p = 0; p < j; p++) s -= b[p] * lj[p];
                b[j] = s / lj[j];
            }
        }
    }
    return LQ_OK;
}
