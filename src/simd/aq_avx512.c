/* AVX-512 kernels of the additive quantizer (twins of src/mcq/aq_kernels.c). */
#include <immintrin.h>
#include <math.h>

#include "simd/aq_simd.h"

/* 4 rows x 32 columns of C in registers; every element accumulates its
 * products in order p = 0..k-1 (one accumulator), as the scalar twin. */
static void gemm_acc_avx512(size_t m, size_t n, size_t k, const float *A, size_t lda,
                            const float *B, size_t ldb, float *C, size_t ldc)
{
    size_t j = 0;
    for (; j + 32 <= n; j += 32) {
        size_t i = 0;
        for (; i + 4 <= m; i += 4) {
            __m512 c00 = _mm512_loadu_ps(C + (i + 0) * ldc + j);
            __m512 c01 = _mm512_loadu_ps(C + (i + 0) * ldc + j + 16);
            __m512 c10 = _mm512_loadu_ps(C + (i + 1) * ldc + j);
            __m512 c11 = _mm512_loadu_ps(C + (i + 1) * ldc + j + 16);
            __m512 c20 = _mm512_loadu_ps(C + (i + 2) * ldc + j);
            __m512 c21 = _mm512_loadu_ps(C + (i + 2) * ldc + j + 16);
            __m512 c30 = _mm512_loadu_ps(C + (i + 3) * ldc + j);
            __m512 c31 = _mm512_loadu_ps(C + (i + 3) * ldc + j + 16);
            for (size_t p = 0; p < k; p++) {
                __m512 b0 = _mm512_loadu_ps(B + p * ldb + j);
                __m512 b1 = _mm512_loadu_ps(B + p * ldb + j + 16);
                __m512 a0 = _mm512_set1_ps(A[(i + 0) * lda + p]);
                __m512 a1 = _mm512_set1_ps(A[(i + 1) * lda + p]);
                __m512 a2 = _mm512_set1_ps(A[(i + 2) * lda + p]);
                __m512 a3 = _mm512_set1_ps(A[(i + 3) * lda + p]);
                c00 = _mm512_fmadd_ps(a0, b0, c00);
                c01 = _mm512_fmadd_ps(a0, b1, c01);
                c10 = _mm512_fmadd_ps(a1, b0, c10);
                c11 = _mm512_fmadd_ps(a1, b1, c11);
                c20 = _mm512_fmadd_ps(a2, b0, c20);
                c21 = _mm512_fmadd_ps(a2, b1, c21);
                c30 = _mm512_fmadd_ps(a3, b0, c30);
                c31 = _mm512_fmadd_ps(a3, b1, c31);
            }
            _mm512_storeu_ps(C + (i + 0) * ldc + j, c00);
            _mm512_storeu_ps(C + (i + 0) * ldc + j + 16, c01);
            _mm512_storeu_ps(C + (i + 1) * ldc + j, c10);
            _mm512_storeu_ps(C + (i + 1) * ldc + j + 16, c11);
            _mm512_storeu_ps(C + (i + 2) * ldc + j, c20);
            _mm512_storeu_ps(C + (i + 2) * ldc + j + 16, c21);
            _mm512_storeu_ps(C + (i + 3) * ldc + j, c30);
            _mm512_storeu_ps(C + (i + 3) * ldc + j + 16, c31);
        }
        for (; i < m; i++) {
            __m512 c0 = _mm512_loadu_ps(C + i * ldc + j);
            __m512 c1 = _mm512_loadu_ps(C + i * ldc + j + 16);
            for (size_t p = 0; p < k; p++) {
                __m512 a = _mm512_set1_ps(A[i * lda + p]);
                c0 = _mm512_fmadd_ps(a, _mm512_loadu_ps(B + p * ldb + j), c0);
                c1 = _mm512_fmadd_ps(a, _mm512_loadu_ps(B + p * ldb + j + 16), c1);
            }
            _mm512_storeu_ps(C + i * ldc + j, c0);
            _mm512_storeu_ps(C + i * ldc + j + 16, c1);
        }
    }
    for (; j + 16 <= n; j += 16)
        for (size_t i = 0; i < m; i++) {
            __m512 c0 = _mm512_loadu_ps(C + i * ldc + j);
            for (size_t p = 0; p < k; p++)
                c0 = _mm512_fmadd_ps(_mm512_set1_ps(A[i * lda + p]),
                                     _mm512_loadu_ps(B + p * ldb + j), c0);
            _mm512_storeu_ps(C + i * ldc + j, c0);
        }
    for (; j < n; j++)
        for (size_t i = 0; i < m; i++) {
            float c = C[i * ldc + j];
            for (size_t p = 0; p < k; p++) c = fmaf(A[i * lda + p], B[p * ldb + j], c);
            C[i * ldc + j] = c;
        }
}

static void scores_avx512(const float *Ct, size_t K, size_t g, const float *u, const float *nrm,
                          float s, float *out)
{
    size_t k = 0;
    __m512 vs = _mm512_set1_ps(s), two = _mm512_set1_ps(2.0f);
    for (; k + 16 <= K; k += 16) {
        __m512 acc = _mm512_setzero_ps();
        for (size_t a = 0; a < g; a++)
            acc = _mm512_fmadd_ps(_mm512_loadu_ps(Ct + a * K + k), _mm512_set1_ps(u[a]), acc);
        __m512 t = _mm512_fmadd_ps(two, acc, _mm512_mul_ps(vs, _mm512_loadu_ps(nrm + k)));
        _mm512_storeu_ps(out + k, _mm512_mul_ps(vs, t));
    }
    for (; k < K; k++) {
        float acc = 0.0f;
        for (size_t a = 0; a < g; a++) acc = fmaf(Ct[a * K + k], u[a], acc);
        out[k] = s * fmaf(2.0f, acc, s * nrm[k]);
    }
}

static size_t below_avx512(const float *sc, size_t K, float lim, uint32_t *idx)
{
    size_t n = 0, k = 0;
    __m512 vl = _mm512_set1_ps(lim);
    __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    for (; k + 16 <= K; k += 16) {
        __mmask16 mk = _mm512_cmp_ps_mask(_mm512_loadu_ps(sc + k), vl, _CMP_LT_OQ);
        if (!mk) continue;
        __m512i ix = _mm512_add_epi32(iota, _mm512_set1_epi32((int)k));
        _mm512_mask_compressstoreu_epi32(idx + n, mk, ix);
        n += (size_t)__builtin_popcount((unsigned)mk);
    }
    for (; k < K; k++)
        if (sc[k] < lim) idx[n++] = (uint32_t)k;
    return n;
}

const aq_kernels aq_kernels_avx512 = {gemm_acc_avx512, scores_avx512, below_avx512};
