/*
 * AVX2 + FMA GEMM micro-kernels: 6 x 16 floats and 6 x 8 doubles, i.e. 6
 * rows of C held as 2 ymm registers each (12 accumulators), A broadcast from
 * the packed panel, B loaded as two vectors per k step.
 */
#include <immintrin.h>

#include "core/gemm_kernels.h"

/* Touch the C tile before the k loop. Kept out of line so the compiler does
 * not keep the row addresses live across the loop (it would spill a B
 * register for them). */
__attribute__((noinline)) static void prefetch_c(const void *c, size_t ld_bytes, size_t rows,
                                                 size_t row_bytes)
{
    const char *p = c;
    for (size_t i = 0; i < rows; i++, p += ld_bytes) {
        for (size_t o = 0; o < row_bytes; o += 64) _mm_prefetch(p + o, _MM_HINT_T0);
        _mm_prefetch(p + row_bytes - 1, _MM_HINT_T0);
    }
}

#define MR 6
#define ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5)

#define S_DECL(i) __m256 s##i##_0 = _mm256_setzero_ps(), s##i##_1 = _mm256_setzero_ps();
#define S_FMA(i)                                                                                   \
    {                                                                                              \
        __m256 ai = _mm256_broadcast_ss(a + (i));                                                  \
        s##i##_0 = _mm256_fmadd_ps(ai, b0, s##i##_0);                                              \
        s##i##_1 = _mm256_fmadd_ps(ai, b1, s##i##_1);                                              \
    }
#define S_STORE0(i)                                                                                \
    _mm256_storeu_ps(c + (i)*ldc, _mm256_mul_ps(va, s##i##_0));                                    \
    _mm256_storeu_ps(c + (i)*ldc + 8, _mm256_mul_ps(va, s##i##_1));
#define S_STORE(i)                                                                                 \
    _mm256_storeu_ps(c + (i)*ldc, _mm256_fmadd_ps(vb, _mm256_loadu_ps(c + (i)*ldc),                \
                                                  _mm256_mul_ps(va, s##i##_0)));                   \
    _mm256_storeu_ps(c + (i)*ldc + 8, _mm256_fmadd_ps(vb, _mm256_loadu_ps(c + (i)*ldc + 8),        \
                                                      _mm256_mul_ps(va, s##i##_1)));

static void sgemm_ukr_avx2(size_t kc, const float *a, const float *b, float *c, size_t ldc,
                           float alpha, float beta)
{
    ROWS(S_DECL)
    prefetch_c(c, ldc * sizeof(float), MR, 16 * sizeof(float));
    for (size_t p = 0; p < kc; p++) {
        __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
        ROWS(S_FMA)
        a += MR;
        b += 16;
    }
    __m256 va = _mm256_set1_ps(alpha);
    if (beta == 0.0f) {
        ROWS(S_STORE0)
    } else {
        __m256 vb = _mm256_set1_ps(beta);
        ROWS(S_STORE)
    }
}

#define D_DECL(i) __m256d s##i##_0 = _mm256_setzero_pd(), s##i##_1 = _mm256_setzero_pd();
#define D_FMA(i)                                                                                   \
    {                                                                                              \
        __m256d ai = _mm256_broadcast_sd(a + (i));                                                 \
        s##i##_0 = _mm256_fmadd_pd(ai, b0, s##i##_0);                                              \
        s##i##_1 = _mm256_fmadd_pd(ai, b1, s##i##_1);                                              \
    }
#define D_STORE0(i)                                                                                \
    _mm256_storeu_pd(c + (i)*ldc, _mm256_mul_pd(va, s##i##_0));                                    \
    _mm256_storeu_pd(c + (i)*ldc + 4, _mm256_mul_pd(va, s##i##_1));
#define D_STORE(i)                                                                                 \
    _mm256_storeu_pd(c + (i)*ldc, _mm256_fmadd_pd(vb, _mm256_loadu_pd(c + (i)*ldc),                \
                                                  _mm256_mul_pd(va, s##i##_0)));                   \
    _mm256_storeu_pd(c + (i)*ldc + 4, _mm256_fmadd_pd(vb, _mm256_loadu_pd(c + (i)*ldc + 4),        \
                                                      _mm256_mul_pd(va, s##i##_1)));

static void dgemm_ukr_avx2(size_t kc, const double *a, const double *b, double *c, size_t ldc,
                           double alpha, double beta)
{
    ROWS(D_DECL)
    prefetch_c(c, ldc * sizeof(double), MR, 8 * sizeof(double));
    for (size_t p = 0; p < kc; p++) {
        __m256d b0 = _mm256_loadu_pd(b), b1 = _mm256_loadu_pd(b + 4);
        ROWS(D_FMA)
        a += MR;
        b += 8;
    }
    __m256d va = _mm256_set1_pd(alpha);
    if (beta == 0.0) {
        ROWS(D_STORE0)
    } else {
        __m256d vb = _mm256_set1_pd(beta);
        ROWS(D_STORE)
    }
}

const lq_sgemm_kernel lq_sgemm_kernel_avx2 = {sgemm_ukr_avx2, MR, 16, 256, 144, 4096};
const lq_dgemm_kernel lq_dgemm_kernel_avx2 = {dgemm_ukr_avx2, MR, 8, 256, 96, 2048};
