/* INT row kernels for AVX2: a tile of 16 rows is two registers of 8 row
 * lanes (bytes 0..31 of a sub-unit are rows 0..7). Integer dot products by
 * vpmaddubsw + vpmaddwd; for codes of at most 4 bits the 16-bit pair sums of
 * a whole block are added before widening (|sum| <= 8*2*15*127 < 2^15, so
 * exact); 8-bit codes are split as (c & 127) + 128 * (c >> 7) so that
 * vpmaddubsw cannot saturate. Same operation order per row as the scalar
 * reference (see kern_int.h). */
#include <immintrin.h>
#include <string.h>

#include "simd/kern_int.h"

#define NB_MAX 4

/* Expand 32 bits to 32 bytes: byte j = 4 if bit j is set, else 0. */
static inline __attribute__((always_inline)) __m256i bits_to_fours(uint32_t m)
{
    const __m256i shuf = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2,
                                          2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)m), shuf);
    v = _mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit);
    return _mm256_and_si256(v, _mm256_set1_epi8(4));
}

/* Decode one block: u[2s + h] = sub-unit s, rows 8h..8h+7. */
static inline __attribute__((always_inline)) void decode_blk(const uint8_t *cp, unsigned sbits,
                                                             __m256i u[16])
{
    const __m256i m4 = _mm256_set1_epi8(15), m2 = _mm256_set1_epi8(3);
    switch (sbits) {
    case 4:
        for (int i = 0; i < 4; i++)
            for (int h = 0; h < 2; h++) {
                __m256i v =
                    _mm256_loadu_si256((const __m256i *)(const void *)(cp + 64 * i + 32 * h));
                u[2 * (2 * i) + h] = _mm256_and_si256(v, m4);
                u[2 * (2 * i + 1) + h] = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
            }
        break;
    case 2:
    case 3:
        for (int i = 0; i < 2; i++)
            for (int h = 0; h < 2; h++) {
                __m256i v =
                    _mm256_loadu_si256((const __m256i *)(const void *)(cp + 64 * i + 32 * h));
                u[2 * (4 * i) + h] = _mm256_and_si256(v, m2);
                u[2 * (4 * i + 1) + h] = _mm256_and_si256(_mm256_srli_epi16(v, 2), m2);
                u[2 * (4 * i + 2) + h] = _mm256_and_si256(_mm256_srli_epi16(v, 4), m2);
                u[2 * (4 * i + 3) + h] = _mm256_and_si256(_mm256_srli_epi16(v, 6), m2);
            }
        if (sbits == 3)
            for (int s = 0; s < 8; s++)
                for (int h = 0; h < 2; h++) {
                    uint32_t mk;
                    memcpy(&mk, cp + 128 + 8 * s + 4 * h, 4);
                    u[2 * s + h] = _mm256_or_si256(u[2 * s + h], bits_to_fours(mk));
                }
        break;
    default:
        for (int s = 0; s < 8; s++)
            for (int h = 0; h < 2; h++)
                u[2 * s + h] =
                    _mm256_loadu_si256((const __m256i *)(const void *)(cp + 64 * s + 32 * h));
        break;
    }
}

static inline __attribute__((always_inline)) void store_lanes(float *dst, __m256 lo, __m256 hi,
                                                              size_t n)
{
    if (n >= 16) {
        _mm256_storeu_ps(dst, lo);
        _mm256_storeu_ps(dst + 8, hi);
        return;
    }
    float tmp[16];
    _mm256_storeu_ps(tmp, lo);
    _mm256_storeu_ps(tmp + 8, hi);
    memcpy(dst, tmp, n * sizeof(float));
}

/* Exact int32 dot products of a decoded block with 32 int8 activations,
 * per row lane: out[h] for rows 8h..8h+7. */
static inline __attribute__((always_inline)) void blk_dot(const __m256i u[16], const int8_t *xq,
                                                          unsigned sbits, __m256i out[2])
{
    const __m256i ones = _mm256_set1_epi16(1);
    if (sbits <= 4) {
        __m256i s16[2] = {_mm256_setzero_si256(), _mm256_setzero_si256()};
        for (int s = 0; s < 8; s++) {
            int32_t x4;
            memcpy(&x4, xq + 4 * s, 4);
            __m256i xb = _mm256_set1_epi32(x4);
            for (int h = 0; h < 2; h++)
                s16[h] = _mm256_add_epi16(s16[h], _mm256_maddubs_epi16(u[2 * s + h], xb));
        }
        for (int h = 0; h < 2; h++) out[h] = _mm256_madd_epi16(s16[h], ones);
    } else {
        const __m256i m7 = _mm256_set1_epi8(127), one8 = _mm256_set1_epi8(1);
        __m256i lo[2] = {_mm256_setzero_si256(), _mm256_setzero_si256()};
        __m256i hi[2] = {_mm256_setzero_si256(), _mm256_setzero_si256()};
        for (int s = 0; s < 8; s++) {
            int32_t x4;
            memcpy(&x4, xq + 4 * s, 4);
            __m256i xb = _mm256_set1_epi32(x4);
            for (int h = 0; h < 2; h++) {
                __m256i c = u[2 * s + h];
                __m256i cl = _mm256_and_si256(c, m7);
                __m256i ch = _mm256_and_si256(_mm256_srli_epi16(c, 7), one8);
                lo[h] =
                    _mm256_add_epi32(lo[h], _mm256_madd_epi16(_mm256_maddubs_epi16(cl, xb), ones));
                hi[h] =
                    _mm256_add_epi32(hi[h], _mm256_madd_epi16(_mm256_maddubs_epi16(ch, xb), ones));
            }
        }
        for (int h = 0; h < 2; h++) out[h] = _mm256_add_epi32(lo[h], _mm256_slli_epi32(hi[h], 7));
    }
}

static inline __attribute__((always_inline)) void fast_tile(const lq_int_pack *p, const void *act,
                                                            size_t b0, size_t nb, unsigned sbits,
                                                            size_t tile, float *Y, size_t ldy,
                                                            size_t nrows)
{
    lq_int_act_view a[NB_MAX];
    for (size_t i = 0; i < nb; i++) a[i] = lq_int_act_get(p, act, LQ_KERNEL_FAST, b0 + i);
    const uint8_t *cp = p->codes + tile * p->nblk * p->blk_bytes;
    const float *sm = p->sm + tile * p->ngroups * 2 * LQ_KERN_TILE;
    __m256 y[NB_MAX][2];
    for (size_t i = 0; i < nb; i++) y[i][0] = y[i][1] = _mm256_setzero_ps();
    for (size_t g = 0; g < p->ngroups; g++) {
        __m256 ga[NB_MAX][2];
        for (size_t i = 0; i < nb; i++) ga[i][0] = ga[i][1] = _mm256_setzero_ps();
        for (size_t k = p->gblk[g]; k < p->gblk[g + 1]; k++) {
            __m256i u[16];
            decode_blk(cp, sbits, u);
            cp += p->blk_bytes;
            for (size_t i = 0; i < nb; i++) {
                __m256i is[2];
                blk_dot(u, a[i].q + k * LQ_KERN_QBLK, sbits, is);
                __m256 d = _mm256_set1_ps(a[i].d[k]);
                for (int h = 0; h < 2; h++)
                    ga[i][h] = _mm256_add_ps(ga[i][h], _mm256_mul_ps(d, _mm256_cvtepi32_ps(is[h])));
            }
        }
        for (int h = 0; h < 2; h++) {
            __m256 s = _mm256_loadu_ps(sm + g * 32 + 8 * h);
            __m256 m = _mm256_loadu_ps(sm + g * 32 + 16 + 8 * h);
            for (size_t i = 0; i < nb; i++)
                y[i][h] = _mm256_add_ps(
                    y[i][h], _mm256_add_ps(_mm256_mul_ps(s, ga[i][h]),
                                           _mm256_mul_ps(m, _mm256_set1_ps(a[i].xs[g]))));
        }
    }
    for (size_t i = 0; i < nb; i++)
        store_lanes(Y + (b0 + i) * ldy + tile * LQ_KERN_TILE, y[i][0], y[i][1], nrows);
}

static inline __attribute__((always_inline)) void exact_tile(const lq_int_pack *p, const void *act,
                                                             size_t b0, size_t nb, unsigned sbits,
                                                             size_t tile, float *Y, size_t ldy,
                                                             size_t nrows)
{
    lq_int_act_view a[NB_MAX];
    for (size_t i = 0; i < nb; i++) a[i] = lq_int_act_get(p, act, LQ_KERNEL_EXACT, b0 + i);
    const uint8_t *cp = p->codes + tile * p->nblk * p->blk_bytes;
    const float *sm = p->sm + tile * p->ngroups * 2 * LQ_KERN_TILE;
    const __m256i mff = _mm256_set1_epi32(255);
    __m256 y[NB_MAX][2];
    for (size_t i = 0; i < nb; i++) y[i][0] = y[i][1] = _mm256_setzero_ps();
    for (size_t g = 0; g < p->ngroups; g++) {
        __m256 ga[NB_MAX][2];
        for (size_t i = 0; i < nb; i++) ga[i][0] = ga[i][1] = _mm256_setzero_ps();
        for (size_t k = p->gblk[g]; k < p->gblk[g + 1]; k++) {
            __m256i u[16];
            decode_blk(cp, sbits, u);
            cp += p->blk_bytes;
            for (int s = 0; s < 8; s++)
                for (int kk = 0; kk < 4; kk++)
                    for (int h = 0; h < 2; h++) {
                        __m256 w = _mm256_cvtepi32_ps(
                            _mm256_and_si256(_mm256_srli_epi32(u[2 * s + h], 8 * kk), mff));
                        for (size_t i = 0; i < nb; i++)
                            ga[i][h] = _mm256_fmadd_ps(
                                w, _mm256_set1_ps(a[i].x[k * LQ_KERN_QBLK + 4 * s + kk]), ga[i][h]);
                    }
        }
        for (int h = 0; h < 2; h++) {
            __m256 s = _mm256_loadu_ps(sm + g * 32 + 8 * h);
            __m256 m = _mm256_loadu_ps(sm + g * 32 + 16 + 8 * h);
            for (size_t i = 0; i < nb; i++)
                y[i][h] = _mm256_add_ps(
                    y[i][h], _mm256_add_ps(_mm256_mul_ps(s, ga[i][h]),
                                           _mm256_mul_ps(m, _mm256_set1_ps(a[i].xs[g]))));
        }
    }
    for (size_t i = 0; i < nb; i++)
        store_lanes(Y + (b0 + i) * ldy + tile * LQ_KERN_TILE, y[i][0], y[i][1], nrows);
}

#define DISPATCH(KERN, sb)                                                                         \
    switch (nb) {                                                                                  \
    case 1: KERN(p, act, b0, 1, sb, tile, Y, ldy, nrows); break;                                   \
    case 2: KERN(p, act, b0, 2, sb, tile, Y, ldy, nrows); break;                                   \
    case 3: KERN(p, act, b0, 3, sb, tile, Y, ldy, nrows); break;                                   \
    default: KERN(p, act, b0, 4, sb, tile, Y, ldy, nrows); break;                                  \
    }

#define ROWS_FN(name, KERN)                                                                        \
    void name(const void *pack, const void *act, size_t batch, float *Y, size_t ldy, size_t r0,    \
              size_t r1)                                                                           \
    {                                                                                              \
        const lq_int_pack *p = pack;                                                               \
        for (size_t tile = r0 / LQ_KERN_TILE; tile * LQ_KERN_TILE < r1; tile++) {                  \
            size_t nrows = r1 - tile * LQ_KERN_TILE;                                               \
            for (size_t b0 = 0; b0 < batch; b0 += NB_MAX) {                                        \
                size_t nb = batch - b0 < NB_MAX ? batch - b0 : NB_MAX;                             \
                switch (p->sbits) {                                                                \
                case 2: DISPATCH(KERN, 2) break;                                                   \
                case 3: DISPATCH(KERN, 3) break;                                                   \
                case 4: DISPATCH(KERN, 4) break;                                                   \
                default: DISPATCH(KERN, 8) break;                                                  \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    }

ROWS_FN(lq_kern_int_fast_avx2, fast_tile)
ROWS_FN(lq_kern_int_exact_avx2, exact_tile)
