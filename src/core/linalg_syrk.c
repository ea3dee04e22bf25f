/*
 * syrk for X^T X: C (n x n) = alpha A^T A + beta C with A k x n (k samples of
 * n features). The upper triangle is computed (rows of C in fixed chunks,
 * one task per chunk, k in order) and mirrored, so C is exactly symmetric
 * and independent of the thread count.
 */
#include "core/linalg.h"

#define SYRK_ROWS_PER_TASK 8

#define DEFINE_SIMPLE_SYRK(NAME, TA, TC)                                                       \
    typedef struct NAME##_job {                                                                \
        size_t n, k, lda, ldc;                                                                 \
        TC alpha, beta;                                                                        \
        const TA *A;                                                                           \
        TC *C;                                                                                 \
    } NAME##_job;                                                                              \
    static void NAME##_task(void *arg, size_t t)                                               \
    {                                                                                          \
        const NAME##_job *j = arg;                                                             \
        size_t i0 = t * SYRK_ROWS_PER_TASK;                                                    \
        size_t i1 = i0 + SYRK_ROWS_PER_TASK < j->n ? i0 + SYRK_ROWS_PER_TASK : j->n;           \
        for (size_t i = i0; i < i1; i++) {                                                     \
            TC *c = j->C + i * j->ldc;                                                         \
            for (size_t x = i; x < j->n; x++) c[x] = j->beta == (TC)0 ? (TC)0 : j->beta * c[x]; \
        }                                                                                      \
        for (size_t p = 0; p < j->k; p++) {                                                    \
            const TA *a = j->A + p * j->lda;                                                   \
            for (size_t i = i0; i < i1; i++) {                                                 \
                TC ai = j->alpha * (TC)a[i];                                                   \
                TC *c = j->C + i * j->ldc;                                                     \
                for (size_t x = i; x < j->n; x++) c[x] += ai * (TC)a[x];                       \
            }                                                                                  \
        }                                                                                      \
    }                                                                                          \
    static void NAME##_run(lq_ctx *ctx, NAME##_job *j)                                         \
    {                                                                                          \
        lq_parallel_for(ctx, lq_chunks(j->n, SYRK_ROWS_PER_TASK), NAME##_task, j);             \
        for (size_t i = 1; i < j->n; i++)                                                      \
            for (size_t x = 0; x < i; x++) j->C[i * j->ldc + x] = j->C[x * j->ldc + i];        \
    }

DEFINE_SIMPLE_SYRK(ssyrk_simple, float, float)
DEFINE_SIMPLE_SYRK(dsyrk_simple, float, double)

lq_status lq_ssyrk_tn(lq_ctx *ctx, size_t n, size_t k, float alpha, const float *A, size_t lda,
                      float beta, float *C, size_t ldc)
{
    if (n == 0) return LQ_OK;
    ssyrk_simple_job j = {n, k, lda, ldc, alpha, beta, A, C};
    ssyrk_simple_run(ctx, &j);
    return LQ_OK;
}

lq_status lq_dsyrk_tn_f32(lq_ctx *ctx, size_t n, size_t k, double alpha, const float *A,
                          size_t lda, double beta, double *C, size_t ldc)
{
    if (n == 0) return LQ_OK;
    dsyrk_simple_job j = {n, k, lda, ldc, alpha, beta, A, C};
    dsyrk_simple_run(ctx, &j);
    return LQ_OK;
}
