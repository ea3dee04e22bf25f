/*
 * GEMM drivers (row-major). First version: straightforward row-blocked loops
 * parallelised over fixed chunks of rows of C (results do not depend on the
 * thread count: every element is computed by one task in a fixed k order).
 */
#include <string.h>

#include "core/linalg.h"

#define GEMM_ROWS_PER_TASK 16

#define DEFINE_SIMPLE_GEMM(NAME, T)                                                            \
    typedef struct NAME##_job {                                                                \
        lq_trans ta, tb;                                                                       \
        size_t m, n, k, lda, ldb, ldc;                                                         \
        T alpha, beta;                                                                         \
        const T *A, *B;                                                                        \
        T *C;                                                                                  \
    } NAME##_job;                                                                              \
    static void NAME##_task(void *arg, size_t t)                                               \
    {                                                                                          \
        const NAME##_job *j = arg;                                                             \
        size_t i0 = t * GEMM_ROWS_PER_TASK;                                                    \
        size_t i1 = i0 + GEMM_ROWS_PER_TASK < j->m ? i0 + GEMM_ROWS_PER_TASK : j->m;           \
        for (size_t i = i0; i < i1; i++) {                                                     \
            T *c = j->C + i * j->ldc;                                                          \
            if (j->beta == (T)0) {                                                             \
                for (size_t x = 0; x < j->n; x++) c[x] = 0;                                    \
            } else if (j->beta != (T)1) {                                                      \
                for (size_t x = 0; x < j->n; x++) c[x] *= j->beta;                             \
            }                                                                                  \
            for (size_t p = 0; p < j->k; p++) {                                                \
                T a = j->alpha *                                                               \
                      (j->ta ? j->A[p * j->lda + i] : j->A[i * j->lda + p]);                   \
                if (j->tb) {                                                                   \
                    for (size_t x = 0; x < j->n; x++) c[x] += a * j->B[x * j->ldb + p];        \
                } else {                                                                       \
                    const T *b = j->B + p * j->ldb;                                            \
                    for (size_t x = 0; x < j->n; x++) c[x] += a * b[x];                        \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
    }

DEFINE_SIMPLE_GEMM(sgemm_simple, float)
DEFINE_SIMPLE_GEMM(dgemm_simple, double)

lq_status lq_sgemm(lq_ctx *ctx, lq_trans ta, lq_trans tb, size_t m, size_t n, size_t k,
                   float alpha, const float *A, size_t lda, const float *B, size_t ldb,
                   float beta, float *C, size_t ldc)
{
    if (m == 0 || n == 0) return LQ_OK;
    sgemm_simple_job j = {ta, tb, m, n, k, lda, ldb, ldc, alpha, beta, A, B, C};
    lq_parallel_for(ctx, lq_chunks(m, GEMM_ROWS_PER_TASK), sgemm_simple_task, &j);
    return LQ_OK;
}

lq_status lq_dgemm(lq_ctx *ctx, lq_trans ta, lq_trans tb, size_t m, size_t n, size_t k,
                   double alpha, const double *A, size_t lda, const double *B, size_t ldb,
                   double beta, double *C, size_t ldc)
{
    if (m == 0 || n == 0) return LQ_OK;
    dgemm_simple_job j = {ta, tb, m, n, k, lda, ldb, ldc, alpha, beta, A, B, C};
    lq_parallel_for(ctx, lq_chunks(m, GEMM_ROWS_PER_TASK), dgemm_simple_task, &j);
    return LQ_OK;
}
