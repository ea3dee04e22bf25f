/*
 * E8 / D8 nearest point and FWHT, AVX-512 (16 points per step).
 * Points are loaded as 8 zmm registers of 2 points each and transposed
 * (two independent 8x8 transposes, one per 256-bit half) into one register
 * per coordinate; lanes hold points 0,2,...,14,1,3,...,15. The same
 * transpose network maps back. Operations mirror src/lattice/nearest.c
 * exactly (rint half-even, strict > argmax, sum in coordinate order, mul then
 * add), so results are bit-identical to the scalar reference.
 */
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "simd/e8_simd.h"

#define RNE (_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)

static inline void transpose(__m512 r[8])
{
    const __m512i lo = _mm512_setr_epi32(0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27);
    const __m512i hi =
        _mm512_setr_epi32(4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31);
    __m512 t0 = _mm512_unpacklo_ps(r[0], r[1]), t1 = _mm512_unpackhi_ps(r[0], r[1]);
    __m512 t2 = _mm512_unpacklo_ps(r[2], r[3]), t3 = _mm512_unpackhi_ps(r[2], r[3]);
    __m512 t4 = _mm512_unpacklo_ps(r[4], r[5]), t5 = _mm512_unpackhi_ps(r[4], r[5]);
    __m512 t6 = _mm512_unpacklo_ps(r[6], r[7]), t7 = _mm512_unpackhi_ps(r[6], r[7]);
    __m512 u0 = _mm512_shuffle_ps(t0, t2, 0x44), u1 = _mm512_shuffle_ps(t0, t2, 0xEE);
    __m512 u2 = _mm512_shuffle_ps(t1, t3, 0x44), u3 = _mm512_shuffle_ps(t1, t3, 0xEE);
    __m512 u4 = _mm512_shuffle_ps(t4, t6, 0x44), u5 = _mm512_shuffle_ps(t4, t6, 0xEE);
    __m512 u6 = _mm512_shuffle_ps(t5, t7, 0x44), u7 = _mm512_shuffle_ps(t5, t7, 0xEE);
    r[0] = _mm512_permutex2var_ps(u0, lo, u4);
    r[1] = _mm512_permutex2var_ps(u1, lo, u5);
    r[2] = _mm512_permutex2var_ps(u2, lo, u6);
    r[3] = _mm512_permutex2var_ps(u3, lo, u7);
    r[4] = _mm512_permutex2var_ps(u0, hi, u4);
    r[5] = _mm512_permutex2var_ps(u1, hi, u5);
    r[6] = _mm512_permutex2var_ps(u2, hi, u6);
    r[7] = _mm512_permutex2var_ps(u3, hi, u7);
}

static inline __m512 absps(__m512 v)
{
    return _mm512_castsi512_ps(
        _mm512_and_si512(_mm512_castps_si512(v), _mm512_set1_epi32(0x7fffffff)));
}

/* f = nearest D8 point of x (SoA, 16 points); returns the squared distance
 * computed as in the scalar d8_core. */
static inline __m512 d8_soa(const __m512 x[8], __m512 f[8])
{
    const __m512 zero = _mm512_setzero_ps(), one = _mm512_set1_ps(1.0f);
    const __m512 half = _mm512_set1_ps(0.5f);
    const __m512i sgn = _mm512_set1_epi32((int)0x80000000u);
    f[0] = _mm512_roundscale_ps(x[0], RNE);
    __m512 eb = _mm512_sub_ps(x[0], f[0]); /* e at the running argmax */
    __m512 best = absps(eb);
    __m512i idx = _mm512_setzero_si512();
    __m512 s = f[0];
    __m512 d = _mm512_mul_ps(eb, eb);
#pragma GCC unroll 8
    for (int k = 1; k < 8; k++) {
        f[k] = _mm512_roundscale_ps(x[k], RNE);
        __m512 e = _mm512_sub_ps(x[k], f[k]);
        __m512 a = absps(e);
        __mmask16 gt = _mm512_cmp_ps_mask(a, best, _CMP_GT_OQ);
        best = _mm512_mask_mov_ps(best, gt, a);
        eb = _mm512_mask_mov_ps(eb, gt, e);
        idx = _mm512_mask_mov_epi32(idx, gt, _mm512_set1_epi32(k));
        s = _mm512_add_ps(s, f[k]);
        d = _mm512_add_ps(d, _mm512_mul_ps(e, e));
    }
    __m512 h = _mm512_roundscale_ps(_mm512_mul_ps(s, half), RNE);
    __m512 r = _mm512_sub_ps(s, _mm512_add_ps(h, h));
    __mmask16 odd = _mm512_cmp_ps_mask(r, zero, _CMP_NEQ_UQ);
    /* copysign(1, e): (e & sign) | 1.0 in one ternary-logic op */
    __m512 step = _mm512_castsi512_ps(
        _mm512_ternarylogic_epi32(_mm512_castps_si512(eb), sgn, _mm512_castps_si512(one), 0xEA));
#pragma GCC unroll 8
    for (int k = 0; k < 8; k++) {
        __mmask16 m = _mm512_mask_cmpeq_epi32_mask(odd, idx, _mm512_set1_epi32(k));
        f[k] = _mm512_mask_add_ps(f[k], m, f[k], step);
    }
    return _mm512_mask_add_ps(d, odd, d, _mm512_sub_ps(one, _mm512_add_ps(best, best)));
}

static inline void e8_soa(const __m512 x[8], __m512 y[8])
{
    const __m512 half = _mm512_set1_ps(0.5f);
    __m512 y1[8], xs[8];
    __m512 d0 = d8_soa(x, y);
#pragma GCC unroll 8
    for (int k = 0; k < 8; k++) xs[k] = _mm512_sub_ps(x[k], half);
    __m512 d1 = d8_soa(xs, y1);
    __mmask16 m = _mm512_cmp_ps_mask(d1, d0, _CMP_LT_OQ);
#pragma GCC unroll 8
    for (int k = 0; k < 8; k++) y[k] = _mm512_mask_add_ps(y[k], m, y1[k], half);
}

static inline __attribute__((always_inline)) void block16(const float *x, float *y, int e8)
{
    __m512 r[8], o[8];
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) r[i] = _mm512_loadu_ps(x + 16 * i);
    transpose(r);
    if (e8)
        e8_soa(r, o);
    else
        (void)d8_soa(r, o);
    transpose(o);
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) _mm512_storeu_ps(y + 16 * i, o[i]);
}

static inline __attribute__((always_inline)) void run(const float *x, size_t n, float *y, int e8)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16) block16(x + 8 * i, y + 8 * i, e8);
    if (i < n) {
        float buf[128];
        memset(buf, 0, sizeof buf);
        memcpy(buf, x + 8 * i, (n - i) * 8 * sizeof(float));
        block16(buf, buf, e8);
        memcpy(y + 8 * i, buf, (n - i) * 8 * sizeof(float));
    }
}

void lq_e8_batch_avx512(const float *x, size_t n, float *y) { run(x, n, y, 1); }

void lq_d8_batch_avx512(const float *x, size_t n, float *y) { run(x, n, y, 0); }

bool lq_finite_avx512(const float *x, size_t n)
{
    const __m512i em = _mm512_set1_epi32(0x7f800000);
    __mmask16 bad = 0;
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512i v = _mm512_and_si512(_mm512_loadu_si512((const void *)(x + i)), em);
        bad |= _mm512_cmpeq_epi32_mask(v, em);
    }
    if (i < n) {
        __mmask16 lm = (__mmask16)((1u << (n - i)) - 1u);
        __m512i v = _mm512_and_si512(_mm512_maskz_loadu_epi32(lm, x + i), em);
        bad |= _mm512_mask_cmpeq_epi32_mask(lm, v, em);
    }
    return bad == 0;
}

/* FWHT: stages with butterfly span h >= 16 work on whole registers; the
 * spans 1..8 inside a register use permutes: for span h, s = v + p and
 * d = p - v with p the register with lanes i and i^h swapped; the lower lane
 * of each pair takes s (= x_i + x_{i+h}), the upper takes d (= x_i - x_{i+h}),
 * exactly the scalar butterfly values. */
static inline __m512 inreg(__m512 v)
{
    const __m512i p1 = _mm512_setr_epi32(1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14);
    const __m512i p2 = _mm512_setr_epi32(2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13);
    const __m512i p4 = _mm512_setr_epi32(4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11);
    const __m512i p8 = _mm512_setr_epi32(8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7);
    __m512 p = _mm512_permutexvar_ps(p1, v);
    v = _mm512_mask_blend_ps((__mmask16)0xAAAA, _mm512_add_ps(v, p), _mm512_sub_ps(p, v));
    p = _mm512_permutexvar_ps(p2, v);
    v = _mm512_mask_blend_ps((__mmask16)0xCCCC, _mm512_add_ps(v, p), _mm512_sub_ps(p, v));
    p = _mm512_permutexvar_ps(p4, v);
    v = _mm512_mask_blend_ps((__mmask16)0xF0F0, _mm512_add_ps(v, p), _mm512_sub_ps(p, v));
    p = _mm512_permutexvar_ps(p8, v);
    v = _mm512_mask_blend_ps((__mmask16)0xFF00, _mm512_add_ps(v, p), _mm512_sub_ps(p, v));
    return v;
}

void lq_fwht_avx512(float *x, size_t n)
{
    if (n < 16) {
        /* scalar butterflies, same order as the reference */
        for (size_t h = 1; h < n; h <<= 1)
            for (size_t i = 0; i < n; i += 2 * h)
                for (size_t j = i; j < i + h; j++) {
                    float a = x[j], b = x[j + h];
                    x[j] = a + b;
                    x[j + h] = a - b;
                }
        return;
    }
    for (size_t i = 0; i < n; i += 16) _mm512_storeu_ps(x + i, inreg(_mm512_loadu_ps(x + i)));
    for (size_t h = 16; h < n; h <<= 1)
        for (size_t i = 0; i < n; i += 2 * h)
            for (size_t j = i; j < i + h; j += 16) {
                __m512 a = _mm512_loadu_ps(x + j), b = _mm512_loadu_ps(x + j + h);
                _mm512_storeu_ps(x + j, _mm512_add_ps(a, b));
                _mm512_storeu_ps(x + j + h, _mm512_sub_ps(a, b));
            }
}
