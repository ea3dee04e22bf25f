/*
 * E8 / D8 nearest point and FWHT, AVX2 (8 points per step). Points are
 * transposed 8x8 into one ymm register per coordinate; masks are float
 * compare results used with blendv. Operations mirror src/lattice/nearest.c
 * exactly (see e8_avx512.c), so results are bit-identical to the scalar
 * reference.
 */
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "simd/e8_simd.h"

#define RNE (_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)

static inline void transpose(__m256 r[8])
{
    __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    r[0] = _mm256_permute2f128_ps(u0, u4, 0x20);
    r[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
    r[2] = _mm256_permute2f128_ps(u2, u6, 0x20);
    r[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
    r[4] = _mm256_permute2f128_ps(u0, u4, 0x31);
    r[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
    r[6] = _mm256_permute2f128_ps(u2, u6, 0x31);
    r[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}

/* f = nearest D8 point of x (SoA, 8 points); returns the squared distance
 * computed as in the scalar d8_core. */
static inline __m256 d8_soa(const __m256 x[8], __m256 f[8])
{
    const __m256 zero = _mm256_setzero_ps(), one = _mm256_set1_ps(1.0f);
    const __m256 half = _mm256_set1_ps(0.5f);
    const __m256 absm = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    const __m256 sgn = _mm256_castsi256_ps(_mm256_set1_epi32((int)0x80000000u));
    f[0] = _mm256_round_ps(x[0], RNE);
    __m256 eb = _mm256_sub_ps(x[0], f[0]); /* e at the running argmax */
    __m256 best = _mm256_and_ps(eb, absm);
    __m256 idx = zero; /* index as float 0..7 */
    __m256 s = f[0];
    __m256 d = _mm256_mul_ps(eb, eb);
#pragma GCC unroll 8
    for (int k = 1; k < 8; k++) {
        f[k] = _mm256_round_ps(x[k], RNE);
        __m256 e = _mm256_sub_ps(x[k], f[k]);
        __m256 a = _mm256_and_ps(e, absm);
        __m256 gt = _mm256_cmp_ps(a, best, _CMP_GT_OQ);
        best = _mm256_blendv_ps(best, a, gt);
        eb = _mm256_blendv_ps(eb, e, gt);
        idx = _mm256_blendv_ps(idx, _mm256_set1_ps((float)k), gt);
        s = _mm256_add_ps(s, f[k]);
        d = _mm256_add_ps(d, _mm256_mul_ps(e, e));
    }
    __m256 h = _mm256_round_ps(_mm256_mul_ps(s, half), RNE);
    __m256 r = _mm256_sub_ps(s, _mm256_add_ps(h, h));
    __m256 odd = _mm256_cmp_ps(r, zero, _CMP_NEQ_UQ);
    __m256 step = _mm256_or_ps(_mm256_and_ps(eb, sgn), one); /* copysign(1, e) */
#pragma GCC unroll 8
    for (int k = 0; k < 8; k++) {
        __m256 m = _mm256_and_ps(odd, _mm256_cmp_ps(idx, _mm256_set1_ps((float)k), _CMP_EQ_OQ));
        f[k] = _mm256_blendv_ps(f[k], _mm256_add_ps(f[k], step), m);
    }
    __m256 corr = _mm256_sub_ps(one, _mm256_add_ps(best, best));
    return _mm256_blendv_ps(d, _mm256_add_ps(d, corr), odd);
}

static inline void e8_soa(const __m256 x[8], __m256 y[8])
{
    const __m256 half = _mm256_set1_ps(0.5f);
    __m256 y1[8], xs[8];
    __m256 d0 = d8_soa(x, y);
#pragma GCC unroll 8
    for (int k = 0; k < 8; k++) xs[k] = _mm256_sub_ps(x[k], half);
    __m256 d1 = d8_soa(xs, y1);
    __m256 m = _mm256_cmp_ps(d1, d0, _CMP_LT_OQ);
#pragma GCC unroll 8
    for (int k = 0; k < 8; k++) y[k] = _mm256_blendv_ps(y[k], _mm256_add_ps(y1[k], half), m);
}

static inline __attribute__((always_inline)) void block8(const float *x, float *y, int e8)
{
    __m256 r[8], o[8];
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_ps(x + 8 * i);
    transpose(r);
    if (e8)
        e8_soa(r, o);
    else
        (void)d8_soa(r, o);
    transpose(o);
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) _mm256_storeu_ps(y + 8 * i, o[i]);
}

static inline __attribute__((always_inline)) void run(const float *x, size_t n, float *y, int e8)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) block8(x + 8 * i, y + 8 * i, e8);
    if (i < n) {
        float buf[64];
        memset(buf, 0, sizeof buf);
        memcpy(buf, x + 8 * i, (n - i) * 8 * sizeof(float));
        block8(buf, buf, e8);
        memcpy(y + 8 * i, buf, (n - i) * 8 * sizeof(float));
    }
}

void lq_e8_batch_avx2(const float *x, size_t n, float *y) { run(x, n, y, 1); }

void lq_d8_batch_avx2(const float *x, size_t n, float *y) { run(x, n, y, 0); }

bool lq_finite_avx2(const float *x, size_t n)
{
    const __m256i em = _mm256_set1_epi32(0x7f800000);
    __m256i bad = _mm256_setzero_si256();
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i v =
            _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(const void *)(x + i)), em);
        bad = _mm256_or_si256(bad, _mm256_cmpeq_epi32(v, em));
    }
    int ok = _mm256_testz_si256(bad, bad);
    for (; i < n; i++) {
        uint32_t b;
        memcpy(&b, x + i, sizeof b);
        if ((b & 0x7f800000u) == 0x7f800000u) ok = 0;
    }
    return ok != 0;
}

/* FWHT: spans 1, 2, 4 inside a register (permute, then the lower lane of
 * each pair takes v + p = x_i + x_{i+h}, the upper p - v = x_i - x_{i+h}),
 * spans >= 8 on whole registers; same values as the scalar butterflies. */
static inline __m256 inreg(__m256 v)
{
    __m256 p = _mm256_permute_ps(v, 0xB1); /* 1,0,3,2 */
    v = _mm256_blend_ps(_mm256_add_ps(v, p), _mm256_sub_ps(p, v), 0xAA);
    p = _mm256_permute_ps(v, 0x4E); /* 2,3,0,1 */
    v = _mm256_blend_ps(_mm256_add_ps(v, p), _mm256_sub_ps(p, v), 0xCC);
    p = _mm256_permute2f128_ps(v, v, 0x01);
    v = _mm256_blend_ps(_mm256_add_ps(v, p), _mm256_sub_ps(p, v), 0xF0);
    return v;
}

void lq_fwht_avx2(float *x, size_t n)
{
    if (n < 8) {
        for (size_t h = 1; h < n; h <<= 1)
            for (size_t i = 0; i < n; i += 2 * h)
                for (size_t j = i; j < i + h; j++) {
                    float a = x[j], b = x[j + h];
                    x[j] = a + b;
                    x[j + h] = a - b;
                }
        return;
    }
    for (size_t i = 0; i < n; i += 8) _mm256_storeu_ps(x + i, inreg(_mm256_loadu_ps(x + i)));
    for (size_t h = 8; h < n; h <<= 1)
        for (size_t i = 0; i < n; i += 2 * h)
            for (size_t j = i; j < i + h; j += 8) {
                __m256 a = _mm256_loadu_ps(x + j), b = _mm256_loadu_ps(x + j + h);
                _mm256_storeu_ps(x + j, _mm256_add_ps(a, b));
                _mm256_storeu_ps(x + j + h, _mm256_sub_ps(a, b));
            }
}

/* ---- Voronoi glue: the integer steps of src/lattice/voronoi.c, one vector
 * per register, same values (all steps are exact integer or float
 * operations on small numbers). */
void lq_voronoi_coords_avx2(unsigned q, const float *t, size_t m, uint8_t *c, uint8_t *far)
{
    const __m256 absm = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    const __m256 lim = _mm256_set1_ps(4.0f * (float)q + 4.0f), two = _mm256_set1_ps(2.0f);
    const __m256i i7 = _mm256_set1_epi32(7);
    const __m256i sh1 = _mm256_setr_epi32(1, 2, 3, 4, 5, 6, 7, 7);
    const __m256i sh2 = _mm256_setr_epi32(2, 3, 4, 5, 6, 7, 7, 7);
    const __m256i sh4 = _mm256_setr_epi32(4, 5, 6, 7, 7, 7, 7, 7);
    const __m256i off = _mm256_set1_epi32(1024 * (int)q), qv = _mm256_set1_epi32((int)q);
    const __m256i M = _mm256_set1_epi32((int)(uint32_t)(((uint64_t)1 << 32) / q + 1));
    for (size_t i = 0; i < m; i++) {
        __m256 tv = _mm256_loadu_ps(t + 8 * i);
        if (_mm256_movemask_ps(_mm256_cmp_ps(_mm256_and_ps(tv, absm), lim, _CMP_LE_OQ)) != 0xFF) {
            far[i] = 1;
            memset(c + 8 * i, 0, 8);
            continue;
        }
        far[i] = 0;
        __m256i u = _mm256_cvttps_epi32(_mm256_mul_ps(two, tv));
        __m256i u7 = _mm256_permutevar8x32_epi32(u, i7);
        __m256i d = _mm256_srai_epi32(_mm256_sub_epi32(u, u7), 1); /* lane 7: 0 */
        /* suffix sums S_j = sum_{i >= j} d_i (lane 7 is the zero fill) */
        __m256i S = _mm256_add_epi32(d, _mm256_permutevar8x32_epi32(d, sh1));
        S = _mm256_add_epi32(S, _mm256_permutevar8x32_epi32(S, sh2));
        S = _mm256_add_epi32(S, _mm256_permutevar8x32_epi32(S, sh4));
        __m256i cc = _mm256_blend_epi32(S, _mm256_srai_epi32(S, 1), 0x01); /* c0 = S_0 / 2 */
        cc = _mm256_blend_epi32(cc, u, 0x80);                              /* c7 = u7 */
        /* mod q by multiply-high, as lq_voronoi_coords */
        __m256i n = _mm256_add_epi32(cc, off);
        __m256i pe = _mm256_srli_epi64(_mm256_mul_epu32(n, M), 32);
        __m256i po = _mm256_mul_epu32(_mm256_srli_epi64(n, 32), M);
        __m256i quo = _mm256_blend_epi32(pe, po, 0xAA);
        __m256i r = _mm256_sub_epi32(n, _mm256_mullo_epi32(quo, qv));
        __m128i p16 = _mm_packus_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1));
        _mm_storel_epi64((__m128i *)(void *)(c + 8 * i), _mm_packus_epi16(p16, p16));
    }
}

void lq_voronoi_lift_avx2(const uint8_t *c, size_t m, float iq, float *z, float *w)
{
    const __m256 half = _mm256_set1_ps(0.5f), iqv = _mm256_set1_ps(iq);
    const __m256 wts = _mm256_setr_ps(2.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 0.0f);
    const __m256i i7 = _mm256_set1_epi32(7), sh1 = _mm256_setr_epi32(1, 2, 3, 4, 5, 6, 7, 7);
    for (size_t i = 0; i < m; i++) {
        __m128i b = _mm_loadl_epi64((const __m128i *)(const void *)(c + 8 * i));
        __m256 cf = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(b));
        __m256 h = _mm256_mul_ps(half, _mm256_permutevar8x32_ps(cf, i7));
        __m256 nx = _mm256_blend_ps(_mm256_permutevar8x32_ps(cf, sh1), _mm256_setzero_ps(), 0xC0);
        __m256 zv = _mm256_add_ps(_mm256_sub_ps(_mm256_mul_ps(cf, wts), nx), h);
        _mm256_storeu_ps(z + 8 * i, zv);
        _mm256_storeu_ps(w + 8 * i, _mm256_mul_ps(zv, iqv));
    }
}

void lq_nq_gather_scale_avx2(const float *x, const size_t *idx, size_t m, float ib, float gamma,
                             float *t)
{
    const __m256 ibv = _mm256_set1_ps(ib), gv = _mm256_set1_ps(gamma);
    const int g1 = gamma == 1.0f;
    for (size_t i = 0; i < m; i++) {
        __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x + 8 * idx[i]), ibv);
        _mm256_storeu_ps(t + 8 * i, g1 ? v : _mm256_mul_ps(v, gv));
    }
}

void lq_nq_accept_avx2(const float *y, float *t, const uint8_t *far, size_t m, uint8_t *ok)
{
    for (size_t i = 0; i < m; i++) {
        __m256 yv = _mm256_loadu_ps(y + 8 * i);
        int eq = _mm256_movemask_ps(_mm256_cmp_ps(yv, _mm256_loadu_ps(t + 8 * i), _CMP_EQ_OQ));
        int good = !far[i] && eq == 0xFF;
        ok[i] = (uint8_t)good;
        if (good) _mm256_storeu_ps(t + 8 * i, yv);
    }
}
