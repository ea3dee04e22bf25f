/* AVX2 + FMA kernels of the additive quantizer (twins of src/mcq/aq_kernels.c). */
#include <immintrin.h>
#include <math.h>

#include "simd/aq_simd.h"

/* 4 rows x 16 columns of C in registers; every element accumulates its
 * products in order p = 0..k-1 (one accumulator), as the scalar twin. */
static void gemm_acc_avx2(size_t m, size_t n, size_t k, const float *A, size_t lda, const float *B,
                          size_t ldb, float *C, size_t ldc)
{
    size_t j = 0;
    for (; j + 16 <= n; j += 16) {
        size_t i = 0;
        for (; i + 4 <= m; i += 4) {
            __m256 c00 = _mm256_loadu_ps(C + (i + 0) * ldc + j);
            __m256 c01 = _mm256_loadu_ps(C + (i + 0) * ldc + j + 8);
            __m256 c10 = _mm256_loadu_ps(C + (i + 1) * ldc + j);
            __m256 c11 = _mm256_loadu_ps(C + (i + 1) * ldc + j + 8);
            __m256 c20 = _mm256_loadu_ps(C + (i + 2) * ldc + j);
            __m256 c21 = _mm256_loadu_ps(C + (i + 2) * ldc + j + 8);
            __m256 c30 = _mm256_loadu_ps(C + (i + 3) * ldc + j);
            __m256 c31 = _mm256_loadu_ps(C + (i + 3) * ldc + j + 8);
            for (size_t p = 0; p < k; p++) {
                __m256 b0 = _mm256_loadu_ps(B + p * ldb + j);
                __m256 b1 = _mm256_loadu_ps(B + p * ldb + j + 8);
                __m256 a0 = _mm256_broadcast_ss(A + (i + 0) * lda + p);
                __m256 a1 = _mm256_broadcast_ss(A + (i + 1) * lda + p);
                __m256 a2 = _mm256_broadcast_ss(A + (i + 2) * lda + p);
                __m256 a3 = _mm256_broadcast_ss(A + (i + 3) * lda + p);
                c00 = _mm256_fmadd_ps(a0, b0, c00);
                c01 = _mm256_fmadd_ps(a0, b1, c01);
                c10 = _mm256_fmadd_ps(a1, b0, c10);
                c11 = _mm256_fmadd_ps(a1, b1, c11);
                c20 = _mm256_fmadd_ps(a2, b0, c20);
                c21 = _mm256_fmadd_ps(a2, b1, c21);
                c30 = _mm256_fmadd_ps(a3, b0, c30);
                c31 = _mm256_fmadd_ps(a3, b1, c31);
            }
            _mm256_storeu_ps(C + (i + 0) * ldc + j, c00);
            _mm256_storeu_ps(C + (i + 0) * ldc + j + 8, c01);
            _mm256_storeu_ps(C + (i + 1) * ldc + j, c10);
            _mm256_storeu_ps(C + (i + 1) * ldc + j + 8, c11);
            _mm256_storeu_ps(C + (i + 2) * ldc + j, c20);
            _mm256_storeu_ps(C + (i + 2) * ldc + j + 8, c21);
            _mm256_storeu_ps(C + (i + 3) * ldc + j, c30);
            _mm256_storeu_ps(C + (i + 3) * ldc + j + 8, c31);
        }
        for (; i < m; i++) {
            __m256 c0 = _mm256_loadu_ps(C + i * ldc + j);
            __m256 c1 = _mm256_loadu_ps(C + i * ldc + j + 8);
            for (size_t p = 0; p < k; p++) {
                __m256 a = _mm256_broadcast_ss(A + i * lda + p);
                c0 = _mm256_fmadd_ps(a, _mm256_loadu_ps(B + p * ldb + j), c0);
                c1 = _mm256_fmadd_ps(a, _mm256_loadu_ps(B + p * ldb + j + 8), c1);
            }
            _mm256_storeu_ps(C + i * ldc + j, c0);
            _mm256_storeu_ps(C + i * ldc + j + 8, c1);
        }
    }
    for (; j + 8 <= n; j += 8)
        for (size_t i = 0; i < m; i++) {
            __m256 c0 = _mm256_loadu_ps(C + i * ldc + j);
            for (size_t p = 0; p < k; p++)
                c0 = _mm256_fmadd_ps(_mm256_set1_ps(A[i * lda + p]),
                                     _mm256_loadu_ps(B + p * ldb + j), c0);
            _mm256_storeu_ps(C + i * ldc + j, c0);
        }
    for (; j < n; j++)
        for (size_t i = 0; i < m; i++) {
            float c = C[i * ldc + j];
            for (size_t p = 0; p < k; p++) c = fmaf(A[i * lda + p], B[p * ldb + j], c);
            C[i * ldc + j] = c;
        }
}

static void scores_avx2(const float *Ct, size_t K, size_t g, const float *u, const float *nrm,
                        float s, float *out)
{
    size_t k = 0;
    __m256 vs = _mm256_set1_ps(s), two = _mm256_set1_ps(2.0f);
    for (; k + 8 <= K; k += 8) {
        __m256 acc = _mm256_setzero_ps();
        for (size_t a = 0; a < g; a++)
            acc = _mm256_fmadd_ps(_mm256_loadu_ps(Ct + a * K + k), _mm256_set1_ps(u[a]), acc);
        __m256 t = _mm256_fmadd_ps(two, acc, _mm256_mul_ps(vs, _mm256_loadu_ps(nrm + k)));
        _mm256_storeu_ps(out + k, _mm256_mul_ps(vs, t));
    }
    for (; k < K; k++) {
        float acc = 0.0f;
        for (size_t a = 0; a < g; a++) acc = fmaf(Ct[a * K + k], u[a], acc);
        out[k] = s * fmaf(2.0f, acc, s * nrm[k]);
    }
}

static size_t below_avx2(const float *sc, size_t K, float lim, uint32_t *idx)
{
    size_t n = 0, k = 0;
    __m256 vl = _mm256_set1_ps(lim);
    for (; k + 8 <= K; k += 8) {
        unsigned mask =
            (unsigned)_mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(sc + k), vl, _CMP_LT_OQ));
        while (mask) {
            idx[n++] = (uint32_t)(k + (size_t)__builtin_ctz(mask));
            mask &= mask - 1;
        }
    }
    for (; k < K; k++)
        if (sc[k] < lim) idx[n++] = (uint32_t)k;
    return n;
}

const aq_kernels aq_kernels_avx2 = {gemm_acc_avx2, scores_avx2, below_avx2};
