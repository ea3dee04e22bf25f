/* Table kernels for AVX-512: the 16 rows of a tile in the lanes; a lookup
 * is one vpermps when the tile's rows share their tables and K <= 16
 * (the table is one register), otherwise one vgatherdps. Same additions in
 * the same order as the scalar reference (kern_lut.h). */
#include <immintrin.h>

#include "simd/kern_lut.h"

#define NB_MAX 4

static inline __attribute__((always_inline)) __m512i load_codes(const lq_lut_pack *p,
                                                                const uint8_t *tc, size_t pos)
{
    switch (p->cw) {
    case 4: {
        __m512i v = _mm512_cvtepu8_epi32(
            _mm_loadu_si128((const __m128i *)(const void *)(tc + (pos >> 1) * 16)));
        if (pos & 1) v = _mm512_srli_epi32(v, 4);
        return _mm512_and_si512(v, _mm512_set1_epi32(15));
    }
    case 8:
        return _mm512_cvtepu8_epi32(
            _mm_loadu_si128((const __m128i *)(const void *)(tc + pos * 16)));
    default:
        return _mm512_cvtepu16_epi32(
            _mm256_loadu_si256((const __m256i *)(const void *)(tc + pos * 32)));
    }
}

static inline __attribute__((always_inline)) void lut_tile(const lq_lut_pack *p, const float *act,
                                                           size_t stride, size_t b0, size_t nb,
                                                           int perm, size_t tile, float *Y,
                                                           size_t ldy, size_t nrows)
{
    const uint8_t *tc = p->codes + tile * p->tile_code_bytes;
    const float *mult = p->mult + tile * p->nseg * LQ_KERN_TILE;
    __m512i base =
        _mm512_mullo_epi32(_mm512_loadu_si512((const void *)(p->lane_set + tile * LQ_KERN_TILE)),
                           _mm512_set1_epi32((int)p->tabset));
    size_t set0 = (size_t)p->lane_set[tile * LQ_KERN_TILE] * p->tabset;
    __m512 y[NB_MAX];
    for (size_t i = 0; i < nb; i++) y[i] = _mm512_setzero_ps();
    for (size_t s = 0; s < p->nseg; s++) {
        __m512 a0[NB_MAX], a1[NB_MAX];
        for (size_t i = 0; i < nb; i++) a0[i] = a1[i] = _mm512_setzero_ps();
        size_t q0 = p->seg[s], q1 = p->seg[s + 1], q = q0;
        for (; q + 2 <= q1; q += 2) {
            __m512i c0 = load_codes(p, tc, q), c1 = load_codes(p, tc, q + 1);
            for (size_t i = 0; i < nb; i++) {
                const float *T = act + (b0 + i) * stride;
                __m512 v0, v1;
                if (perm) {
                    v0 = _mm512_permutexvar_ps(c0, _mm512_loadu_ps(T + set0 + p->tabofs[q]));
                    v1 = _mm512_permutexvar_ps(c1, _mm512_loadu_ps(T + set0 + p->tabofs[q + 1]));
                } else {
                    __m512i i0 = _mm512_add_epi32(_mm512_add_epi32(base, c0),
                                                  _mm512_set1_epi32((int)p->tabofs[q]));
                    __m512i i1 = _mm512_add_epi32(_mm512_add_epi32(base, c1),
                                                  _mm512_set1_epi32((int)p->tabofs[q + 1]));
                    v0 = _mm512_i32gather_ps(i0, T, 4);
                    v1 = _mm512_i32gather_ps(i1, T, 4);
                }
                a0[i] = _mm512_add_ps(a0[i], v0);
                a1[i] = _mm512_add_ps(a1[i], v1);
            }
        }
        if (q < q1) {
            __m512i c0 = load_codes(p, tc, q);
            for (size_t i = 0; i < nb; i++) {
                const float *T = act + (b0 + i) * stride;
                __m512 v0;
                if (perm) {
                    v0 = _mm512_permutexvar_ps(c0, _mm512_loadu_ps(T + set0 + p->tabofs[q]));
                } else {
                    __m512i i0 = _mm512_add_epi32(_mm512_add_epi32(base, c0),
                                                  _mm512_set1_epi32((int)p->tabofs[q]));
                    v0 = _mm512_i32gather_ps(i0, T, 4);
                }
                a0[i] = _mm512_add_ps(a0[i], v0);
            }
        }
        __m512 m = _mm512_loadu_ps(mult + s * LQ_KERN_TILE);
        for (size_t i = 0; i < nb; i++)
            y[i] = _mm512_add_ps(y[i], _mm512_mul_ps(m, _mm512_add_ps(a0[i], a1[i])));
    }
    size_t n = nrows < 16 ? nrows : 16;
    for (size_t i = 0; i < nb; i++)
        _mm512_mask_storeu_ps(Y + (b0 + i) * ldy + tile * LQ_KERN_TILE, (__mmask16)((1u << n) - 1),
                              y[i]);
}

/* One segment, tables larger than L2: positions in blocks of PB (tables of
 * a block about 256 KiB), tiles of the task inside; per (tile, batch) the
 * two partial sums live in a stack buffer between blocks. Gather path only
 * (large tables mean K > 16 or per-row sets). */
#define MAX_TASK_TILES (LQ_LUT_GRAIN / LQ_KERN_TILE)

static void lut_blocked(const lq_lut_pack *p, const float *A, size_t stride, size_t batch, float *Y,
                        size_t ldy, size_t r0, size_t r1)
{
    size_t t0 = r0 / LQ_KERN_TILE, t1 = (r1 + LQ_KERN_TILE - 1) / LQ_KERN_TILE;
    size_t kstride = p->K < 16 ? 16 : p->K;
    size_t PB = (256u << 10) / (kstride * sizeof(float));
    if (PB < 2) PB = 2;
    PB &= ~(size_t)1; /* keep the even/odd parity of positions */
    __m512 acc[MAX_TASK_TILES][NB_MAX][2];
    for (size_t b0 = 0; b0 < batch; b0 += NB_MAX) {
        size_t nb = batch - b0 < NB_MAX ? batch - b0 : NB_MAX;
        for (size_t t = t0; t < t1; t++)
            for (size_t i = 0; i < nb; i++)
                acc[t - t0][i][0] = acc[t - t0][i][1] = _mm512_setzero_ps();
        for (size_t q0 = 0; q0 < p->npos; q0 += PB) {
            size_t q1 = q0 + PB < p->npos ? q0 + PB : p->npos;
            for (size_t t = t0; t < t1; t++) {
                const uint8_t *tc = p->codes + t * p->tile_code_bytes;
                __m512i base = _mm512_mullo_epi32(
                    _mm512_loadu_si512((const void *)(p->lane_set + t * LQ_KERN_TILE)),
                    _mm512_set1_epi32((int)p->tabset));
                for (size_t q = q0; q < q1; q++) {
                    __m512i c = load_codes(p, tc, q);
                    __m512i ix = _mm512_add_epi32(_mm512_add_epi32(base, c),
                                                  _mm512_set1_epi32((int)p->tabofs[q]));
                    int par = (int)(q & 1);
                    for (size_t i = 0; i < nb; i++)
                        acc[t - t0][i][par] = _mm512_add_ps(
                            acc[t - t0][i][par], _mm512_i32gather_ps(ix, A + (b0 + i) * stride, 4));
                }
            }
        }
        for (size_t t = t0; t < t1; t++) {
            __m512 m = _mm512_loadu_ps(p->mult + t * p->nseg * LQ_KERN_TILE);
            size_t n = r1 - t * LQ_KERN_TILE < 16 ? r1 - t * LQ_KERN_TILE : 16;
            for (size_t i = 0; i < nb; i++) {
                __m512 y = _mm512_add_ps(
                    _mm512_setzero_ps(),
                    _mm512_mul_ps(m, _mm512_add_ps(acc[t - t0][i][0], acc[t - t0][i][1])));
                _mm512_mask_storeu_ps(Y + (b0 + i) * ldy + t * LQ_KERN_TILE,
                                      (__mmask16)((1u << n) - 1), y);
            }
        }
    }
}

void lq_kern_lut_avx512(const void *pack, const void *act, size_t batch, float *Y, size_t ldy,
                        size_t r0, size_t r1)
{
    const lq_lut_pack *p = pack;
    size_t stride = lq_lut_act_stride(p) / sizeof(float);
    const float *A = act;
    if (p->nseg == 1 && p->seg[0] == 0 && p->K > 16 && p->tabset * sizeof(float) > (512u << 10) &&
        r1 - r0 <= LQ_LUT_GRAIN) {
        lut_blocked(p, A, stride, batch, Y, ldy, r0, r1);
        return;
    }
    for (size_t tile = r0 / LQ_KERN_TILE; tile * LQ_KERN_TILE < r1; tile++) {
        int perm = p->K <= 16 && p->uniform[tile];
        size_t nrows = r1 - tile * LQ_KERN_TILE;
        for (size_t b0 = 0; b0 < batch; b0 += NB_MAX) {
            size_t nb = batch - b0 < NB_MAX ? batch - b0 : NB_MAX;
#define LUT_CASE(NB)                                                                               \
    if (perm)                                                                                      \
        lut_tile(p, A, stride, b0, NB, 1, tile, Y, ldy, nrows);                                    \
    else                                                                                           \
        lut_tile(p, A, stride, b0, NB, 0, tile, Y, ldy, nrows);
            switch (nb) {
            case 1: LUT_CASE(1) break;
            case 2: LUT_CASE(2) break;
            case 3: LUT_CASE(3) break;
            default: LUT_CASE(4) break;
            }
#undef LUT_CASE
        }
    }
}

void lq_lut_dot_avx512(const float *cbT, size_t K, size_t d, const float *x, float *t)
{
    for (size_t e = 0; e < K; e += 16) {
        __m512 acc = _mm512_setzero_ps();
        for (size_t i = 0; i < d; i++)
            acc = _mm512_add_ps(
                acc, _mm512_mul_ps(_mm512_loadu_ps(cbT + i * K + e), _mm512_set1_ps(x[i])));
        _mm512_storeu_ps(t + e, acc);
    }
}
