/* E8P row kernels for AVX2 on the tiled layout (kern_e8p.h). Four rows per
 * register, one 64-bit lane per row holding its eight 4-bit indices n_i:
 * pattern and sign bytes by 64-bit gathers from ptab and stab, shift bits
 * by a lane compare. EXACT: k_i bytes by vpshufb, transposed to four rows
 * per coordinate and widened to doubles; the reference's double operations
 * per lane. FAST: k + 16 bytes by vpshufb, vpmaddubsw (no saturation: 2 *
 * 27 * 127 < 2^15) and vpmaddwd; the scalar kernel's float operations per
 * lane. */
#include <immintrin.h>
#include <string.h>

#include "simd/kern_e8p.h"

#define NB_MAX 4
/* Software prefetch distance in blocks (kern_e8p_avx512.c: measured 2x on
 * FAST batch 1 from DRAM there). */
#define LQ_E8P_PREFETCH 32

/* Indices of rows 4c..4c+3 of a block (lane r = row 4c + r). */
static inline __attribute__((always_inline)) __m256i load_idx(const lq_e8p_pack *p,
                                                              const uint8_t *blk, int c)
{
    int32_t pi, si;
    memcpy(&pi, blk + 4 * c, 4);
    memcpy(&si, blk + 16 + 4 * c, 4);
    __m128i pv = _mm_cvtepu8_epi32(_mm_cvtsi32_si128(pi));
    __m128i sv = _mm_cvtepu8_epi32(_mm_cvtsi32_si128(si));
    __m256i v =
        _mm256_or_si256(_mm256_i32gather_epi64((const long long *)(const void *)p->ptab, pv, 8),
                        _mm256_i32gather_epi64((const long long *)(const void *)p->stab, sv, 8));
    unsigned sh = ((unsigned)blk[32] | (unsigned)blk[33] << 8) >> (4 * c) & 15u;
    const __m256i bits = _mm256_set_epi64x(8, 4, 2, 1);
    __m256i m = _mm256_cmpeq_epi64(_mm256_and_si256(_mm256_set1_epi64x(sh), bits), bits);
    return _mm256_or_si256(v, _mm256_and_si256(m, _mm256_set1_epi8(8)));
}

static inline __attribute__((always_inline)) void exact_quarter(const lq_e8p_pack *p,
                                                                const void *act, size_t b0,
                                                                size_t nb, size_t tile, int c,
                                                                float *Y, size_t ldy, size_t nrows)
{
    if (nrows <= 4 * (size_t)c) return;
    int8_t kt[16];
    uint8_t ut[16];
    lq_e8p_ktab(kt, ut);
    const __m256i ktab =
        _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(const void *)kt));
    /* per 128-bit lane (two rows): byte 2i + s = byte i of row s */
    const __m256i tr = _mm256_set_epi8(15, 7, 14, 6, 13, 5, 12, 4, 11, 3, 10, 2, 9, 1, 8, 0, 15, 7,
                                       14, 6, 13, 5, 12, 4, 11, 3, 10, 2, 9, 1, 8, 0);
    const double *x[NB_MAX];
    for (size_t i = 0; i < nb; i++) x[i] = lq_e8p_act_get(p, act, LQ_KERNEL_EXACT, b0 + i).x;
    const uint8_t *tb = p->blocks + tile * p->nvec * LQ_E8P_BLOCK;
    const float *sc = p->scale + tile * p->ngroups * 16;
    __m256d acc[NB_MAX];
    for (size_t i = 0; i < nb; i++) acc[i] = _mm256_setzero_pd();
    size_t j = 0;
    for (size_t g = 0; g < p->ngroups; g++) {
        size_t j1 = lq_e8p_group_end(p, g);
        __m256d sq =
            _mm256_mul_pd(_mm256_cvtps_pd(_mm_loadu_ps(sc + g * 16 + 4 * c)), _mm256_set1_pd(0.25));
        for (; j < j1; j++) {
            _mm_prefetch((const char *)(tb + (j + LQ_E8P_PREFETCH) * LQ_E8P_BLOCK), _MM_HINT_T0);
            __m256i kb = _mm256_shuffle_epi8(ktab, load_idx(p, tb + j * LQ_E8P_BLOCK, c));
            kb = _mm256_shuffle_epi8(kb, tr);
            __m128i lo = _mm256_castsi256_si128(kb), hi = _mm256_extracti128_si256(kb, 1);
            /* byte 4i + r: k_i of row r (coordinates 0-3, then 4-7) */
            __m128i t0 = _mm_unpacklo_epi16(lo, hi), t1 = _mm_unpackhi_epi16(lo, hi);
            __m256d k[8];
            k[0] = _mm256_cvtepi32_pd(_mm_cvtepi8_epi32(t0));
            k[1] = _mm256_cvtepi32_pd(_mm_cvtepi8_epi32(_mm_srli_si128(t0, 4)));
            k[2] = _mm256_cvtepi32_pd(_mm_cvtepi8_epi32(_mm_srli_si128(t0, 8)));
            k[3] = _mm256_cvtepi32_pd(_mm_cvtepi8_epi32(_mm_srli_si128(t0, 12)));
            k[4] = _mm256_cvtepi32_pd(_mm_cvtepi8_epi32(t1));
            k[5] = _mm256_cvtepi32_pd(_mm_cvtepi8_epi32(_mm_srli_si128(t1, 4)));
            k[6] = _mm256_cvtepi32_pd(_mm_cvtepi8_epi32(_mm_srli_si128(t1, 8)));
            k[7] = _mm256_cvtepi32_pd(_mm_cvtepi8_epi32(_mm_srli_si128(t1, 12)));
            for (size_t b = 0; b < nb; b++) {
                const double *xb = x[b] + 8 * j;
                /* k x is exact: the fused add rounds as the reference's add */
                __m256d d = _mm256_fmadd_pd(k[0], _mm256_set1_pd(xb[0]), _mm256_setzero_pd());
                for (int i = 1; i < 8; i++) d = _mm256_fmadd_pd(k[i], _mm256_set1_pd(xb[i]), d);
                acc[b] = _mm256_add_pd(acc[b], _mm256_mul_pd(sq, d));
            }
        }
    }
    size_t m = nrows - 4 * (size_t)c > 4 ? 4 : nrows - 4 * (size_t)c;
    for (size_t b = 0; b < nb; b++) {
        float tmp[4];
        _mm_storeu_ps(tmp, _mm256_cvtpd_ps(acc[b]));
        memcpy(Y + (b0 + b) * ldy + tile * LQ_KERN_TILE + 4 * c, tmp, m * sizeof(float));
    }
}

static inline __attribute__((always_inline)) void exact_tile(const lq_e8p_pack *p, const void *act,
                                                             size_t b0, size_t nb, size_t tile,
                                                             float *Y, size_t ldy, size_t nrows)
{
    for (int c = 0; c < 4; c++) exact_quarter(p, act, b0, nb, tile, c, Y, ldy, nrows);
}

/* Sum per row of u * q over the 8 bytes of the rows of u0 (rows 0-3) and
 * u1 (rows 4-7): lane r = row r. */
static inline __attribute__((always_inline)) __m256i dot8(__m256i u0, __m256i u1, __m256i xq)
{
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i d0 = _mm256_madd_epi16(_mm256_maddubs_epi16(u0, xq), ones);
    __m256i d1 = _mm256_madd_epi16(_mm256_maddubs_epi16(u1, xq), ones);
    /* hadd: rows (0, 1, 4, 5 | 2, 3, 6, 7) */
    return _mm256_permutevar8x32_epi32(_mm256_hadd_epi32(d0, d1),
                                       _mm256_set_epi32(7, 6, 3, 2, 5, 4, 1, 0));
}

static inline __attribute__((always_inline)) void fast_tile(const lq_e8p_pack *p, const void *act,
                                                            size_t b0, size_t nb, size_t tile,
                                                            float *Y, size_t ldy, size_t nrows)
{
    int8_t kt[16];
    uint8_t ut[16];
    lq_e8p_ktab(kt, ut);
    const __m256i utab =
        _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(const void *)ut));
    lq_e8p_act_view a[NB_MAX];
    for (size_t i = 0; i < nb; i++) a[i] = lq_e8p_act_get(p, act, LQ_KERNEL_FAST, b0 + i);
    const uint8_t *tb = p->blocks + tile * p->nvec * LQ_E8P_BLOCK;
    const float *sc = p->scale + tile * p->ngroups * 16;
    __m256 y[NB_MAX][2];
    for (size_t i = 0; i < nb; i++) y[i][0] = y[i][1] = _mm256_setzero_ps();
    size_t j = 0;
    for (size_t g = 0; g < p->ngroups; g++) {
        size_t j1 = lq_e8p_group_end(p, g);
        __m256 acc[NB_MAX][2];
        for (size_t i = 0; i < nb; i++) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
        for (; j < j1; j++) {
            const uint8_t *blk = tb + j * LQ_E8P_BLOCK;
            _mm_prefetch((const char *)(blk + LQ_E8P_PREFETCH * LQ_E8P_BLOCK), _MM_HINT_T0);
            __m256i u[4];
            for (int c = 0; c < 4; c++) u[c] = _mm256_shuffle_epi8(utab, load_idx(p, blk, c));
            for (size_t b = 0; b < nb; b++) {
                int64_t q8;
                memcpy(&q8, a[b].q + 8 * j, 8);
                __m256i xq = _mm256_set1_epi64x(q8);
                __m256i s16 = _mm256_set1_epi32(a[b].s16[j]);
                __m256 dx = _mm256_set1_ps(a[b].dx[j]);
                for (int h = 0; h < 2; h++) {
                    __m256i is = _mm256_sub_epi32(dot8(u[2 * h], u[2 * h + 1], xq), s16);
                    __m256 v = _mm256_mul_ps(_mm256_cvtepi32_ps(is), dx);
                    acc[b][h] = _mm256_add_ps(acc[b][h], v);
                }
            }
        }
        for (int h = 0; h < 2; h++) {
            __m256 s = _mm256_loadu_ps(sc + g * 16 + 8 * h);
            for (size_t b = 0; b < nb; b++)
                y[b][h] = _mm256_add_ps(y[b][h], _mm256_mul_ps(s, acc[b][h]));
        }
    }
    size_t n = nrows < 16 ? nrows : 16;
    const __m256 qt = _mm256_set1_ps(0.25f);
    for (size_t b = 0; b < nb; b++) {
        float tmp[16];
        _mm256_storeu_ps(tmp, _mm256_mul_ps(qt, y[b][0]));
        _mm256_storeu_ps(tmp + 8, _mm256_mul_ps(qt, y[b][1]));
        memcpy(Y + (b0 + b) * ldy + tile * LQ_KERN_TILE, tmp, n * sizeof(float));
    }
}

#define ROWS_FN(name, KERN)                                                                        \
    void name(const void *pack, const void *act, size_t batch, float *Y, size_t ldy, size_t r0,    \
              size_t r1)                                                                           \
    {                                                                                              \
        const lq_e8p_pack *p = pack;                                                               \
        for (size_t tile = r0 / LQ_KERN_TILE; tile * LQ_KERN_TILE < r1; tile++)                    \
            for (size_t b0 = 0; b0 < batch; b0 += NB_MAX) {                                        \
                size_t nb = batch - b0 < NB_MAX ? batch - b0 : NB_MAX;                             \
                size_t nr = r1 - tile * LQ_KERN_TILE;                                              \
                switch (nb) {                                                                      \
                case 1: KERN(p, act, b0, 1, tile, Y, ldy, nr); break;                              \
                case 2: KERN(p, act, b0, 2, tile, Y, ldy, nr); break;                              \
                case 3: KERN(p, act, b0, 3, tile, Y, ldy, nr); break;                              \
                default: KERN(p, act, b0, 4, tile, Y, ldy, nr); break;                             \
                }                                                                                  \
            }                                                                                      \
    }

ROWS_FN(lq_kern_e8p_fast_avx2, fast_tile)
ROWS_FN(lq_kern_e8p_exact_avx2, exact_tile)
