/*
 * AVX-512 GEMM micro-kernels: 12 x 32 floats and 12 x 16 doubles, i.e. 12
 * rows of C held as 2 zmm registers each (24 accumulators), A broadcast from
 * the packed panel (folded into the FMA's memory operand), B loaded as two
 * vectors per k step: 24 FMAs per 14 loads, FMA-bound on two 512-bit ports.
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

#define MR 12

#define ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)

#define S_DECL(i) __m512 s##i##_0 = _mm512_setzero_ps(), s##i##_1 = _mm512_setzero_ps();
#define S_FMA(i)                                                                                   \
    {                                                                                              \
        __m512 ai = _mm512_set1_ps(a[i]);                                                          \
        s##i##_0 = _mm512_fmadd_ps(ai, b0, s##i##_0);                                              \
        s##i##_1 = _mm512_fmadd_ps(ai, b1, s##i##_1);                                              \
    }
#define S_STORE0(i)                                                                                \
    _mm512_storeu_ps(c + (i)*ldc, _mm512_mul_ps(va, s##i##_0));                                    \
    _mm512_storeu_ps(c + (i)*ldc + 16, _mm512_mul_ps(va, s##i##_1));
#define S_STORE(i)                                                                                 \
    _mm512_storeu_ps(c + (i)*ldc, _mm512_fmadd_ps(vb, _mm512_loadu_ps(c + (i)*ldc),                \
                                                  _mm512_mul_ps(va, s##i##_0)));                   \
    _mm512_storeu_ps(c + (i)*ldc + 16, _mm512_fmadd_ps(vb, _mm512_loadu_ps(c + (i)*ldc + 16),      \
                                                       _mm512_mul_ps(va, s##i##_1)));

static void sgemm_ukr_avx512(size_t kc, const float *a, const float *b, float *c, size_t ldc,
                             float alpha, float beta)
{
    ROWS(S_DECL)
    prefetch_c(c, ldc * sizeof(float), MR, 32 * sizeof(float));
    for (size_t p = 0; p < kc; p++) {
        __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);
        /* the A micro-panel streams from L2: fetch 16 k-steps ahead (+2-3%) */
        _mm_prefetch((const char *)(a + 16 * MR), _MM_HINT_T0);
        ROWS(S_FMA)
        a += MR;
        b += 32;
    }
    __m512 va = _mm512_set1_ps(alpha);
    if (beta == 0.0f) {
        ROWS(S_STORE0)
    } else {
        __m512 vb = _mm512_set1_ps(beta);
        ROWS(S_STORE)
    }
}

#define D_DECL(i) __m512d s##i##_0 = _mm512_setzero_pd(), s##i##_1 = _mm512_setzero_pd();
#define D_FMA(i)                                                                                   \
    {                                                                                              \
        __m512d ai = _mm512_set1_pd(a[i]);                                                         \
        s##i##_0 = _mm512_fmadd_pd(ai, b0, s##i##_0);                                              \
        s##i##_1 = _mm512_fmadd_pd(ai, b1, s##i##_1);                                              \
    }
#define D_STORE0(i)                                                                                \
    _mm512_storeu_pd(c + (i)*ldc, _mm512_mul_pd(va, s##i##_0));                                    \
    _mm512_storeu_pd(c + (i)*ldc + 8, _mm512_mul_pd(va, s##i##_1));
#define D_STORE(i)                                                                                 \
    _mm512_storeu_pd(c + (i)*ldc, _mm512_fmadd_pd(vb, _mm512_loadu_pd(c + (i)*ldc),                \
                                                  _mm512_mul_pd(va, s##i##_0)));                   \
    _mm512_storeu_pd(c + (i)*ldc + 8, _mm512_fmadd_pd(vb, _mm512_loadu_pd(c + (i)*ldc + 8),        \
                                                      _mm512_mul_pd(va, s##i##_1)));

static void dgemm_ukr_avx512(size_t kc, const double *a, const double *b, double *c, size_t ldc,
                             double alpha, double beta)
{
    ROWS(D_DECL)
    prefetch_c(c, ldc * sizeof(double), MR, 16 * sizeof(double));
    for (size_t p = 0; p < kc; p++) {
        __m512d b0 = _mm512_loadu_pd(b), b1 = _mm512_loadu_pd(b + 8);
        ROWS(D_FMA)
        a += MR;
        b += 16;
    }
    __m512d va = _mm512_set1_pd(alpha);
    if (beta == 0.0) {
        ROWS(D_STORE0)
    } else {
        __m512d vb = _mm512_set1_pd(beta);
        ROWS(D_STORE)
    }
}

/* Block sizes (overridable at build time for tuning experiments): a KC x 32
 * micro-panel of B (48 KB) is reused from L1/L2 across the MC / 12 row
 * micro-panels of an MC x KC block of A (216 KB, L2). KC = 384 measured ~5%
 * faster than 256 at n = 2048 (docs/benchmarks.md). */
#ifndef LQ_SGEMM_AVX512_KC
#define LQ_SGEMM_AVX512_KC 384
#endif
#ifndef LQ_SGEMM_AVX512_MC
#define LQ_SGEMM_AVX512_MC 144
#endif
#ifndef LQ_SGEMM_AVX512_NC
#define LQ_SGEMM_AVX512_NC 4096
#endif
const lq_sgemm_kernel lq_sgemm_kernel_avx512 = {
    sgemm_ukr_avx512, MR, 32, LQ_SGEMM_AVX512_KC, LQ_SGEMM_AVX512_MC, LQ_SGEMM_AVX512_NC};
const lq_dgemm_kernel lq_dgemm_kernel_avx512 = {dgemm_ukr_avx512, MR, 16, 256, 96, 2048};
