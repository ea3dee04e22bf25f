/* E8P row kernels for AVX-512 (BW, DQ, VNNI) on the tiled layout
 * (kern_e8p.h). Eight rows per register, one 64-bit lane per row holding
 * its eight 4-bit indices n_i (one per byte): pattern bytes by a 64-bit
 * gather from ptab, sign bits as a byte mask (the 8 rows' sign bytes are a
 * __mmask64), shift bits as a lane mask. EXACT: k_i as doubles by vpermt2pd
 * from the 16-entry table, the reference's double operations per lane.
 * FAST: k + 16 bytes by vpshufb, vpdpbusd with the int8 activations, the
 * scalar kernel's float operations per lane. */
#include <immintrin.h>
#include <string.h>

#include "simd/kern_e8p.h"

#define NB_MAX LQ_E8P_NB
/* Software prefetch distance in blocks (the tiles are contiguous, so past
 * a tile's end it fetches the next tile's blocks; a prefetch never faults).
 * Measured at 4096 x 4096 from DRAM, batch 1: FAST 1.75 -> 0.83 ms, EXACT
 * 1.75 -> 1.56 ms (CPU time). */
#define LQ_E8P_PREFETCH 32

/* Indices of rows 8h..8h+7 of a block: byte i of lane r = n_i of row 8h + r.
 * The pattern bytes come by a gather (gather: 1) or by eight scalar loads
 * (gather: 0; faster where the EXACT kernel's permutes load port 5). */
static inline __attribute__((always_inline)) __m512i load_idx(const lq_e8p_pack *p,
                                                              const uint8_t *blk, int h, int gather)
{
    __m512i v;
    if (gather) {
        __m512i pi =
            _mm512_cvtepu8_epi64(_mm_loadl_epi64((const __m128i *)(const void *)(blk + 8 * h)));
        v = _mm512_i64gather_epi64(pi, (const void *)p->ptab, 8);
    } else {
        const uint8_t *pb = blk + 8 * h;
        const uint64_t *t = p->ptab;
        v = _mm512_set_epi64((long long)t[pb[7]], (long long)t[pb[6]], (long long)t[pb[5]],
                             (long long)t[pb[4]], (long long)t[pb[3]], (long long)t[pb[2]],
                             (long long)t[pb[1]], (long long)t[pb[0]]);
    }
    uint64_t sg;
    memcpy(&sg, blk + 16 + 8 * h, 8);
    v = _mm512_or_si512(v, _mm512_maskz_mov_epi8(_cvtu64_mask64(sg), _mm512_set1_epi8(4)));
    __mmask8 sh = (__mmask8)blk[32 + h];
    return _mm512_or_si512(v, _mm512_maskz_mov_epi64(sh, _mm512_set1_epi8(8)));
}

static inline __attribute__((always_inline)) void exact_half(const lq_e8p_pack *p, const void *act,
                                                             size_t b0, size_t nb, size_t tile,
                                                             int h, float *Y, size_t ldy,
                                                             size_t nrows)
{
    if (nrows <= 8 * (size_t)h) return;
    double kt[16];
    for (unsigned n = 0; n < 16; n++) kt[n] = (double)lq_e8p_k(n);
    const __m512d tlo = _mm512_loadu_pd(kt), thi = _mm512_loadu_pd(kt + 8);
    const double *x[NB_MAX];
    for (size_t i = 0; i < nb; i++) x[i] = lq_e8p_act_get(p, act, LQ_KERNEL_EXACT, b0 + i).x;
    const uint8_t *tb = p->blocks + tile * p->nvec * LQ_E8P_BLOCK;
    const float *sc = p->scale + tile * p->ngroups * 16;
    __m512d acc[NB_MAX];
    for (size_t i = 0; i < nb; i++) acc[i] = _mm512_setzero_pd();
    size_t j = 0;
    for (size_t g = 0; g < p->ngroups; g++) {
        size_t j1 = lq_e8p_group_end(p, g);
        __m512d sq = _mm512_mul_pd(_mm512_cvtps_pd(_mm256_loadu_ps(sc + g * 16 + 8 * h)),
                                   _mm512_set1_pd(0.25));
        for (; j < j1; j++) {
            _mm_prefetch((const char *)(tb + (j + LQ_E8P_PREFETCH) * LQ_E8P_BLOCK), _MM_HINT_T0);
            __m512i v = load_idx(p, tb + j * LQ_E8P_BLOCK, h, 0);
            __m512d k[8];
            for (int i = 0; i < 8; i++)
                k[i] = _mm512_permutex2var_pd(tlo, _mm512_srli_epi64(v, 8 * i), thi);
            for (size_t b = 0; b < nb; b++) {
                const double *xb = x[b] + 8 * j;
                /* k x is exact: the fused add rounds as the reference's add */
                __m512d d = _mm512_fmadd_pd(k[0], _mm512_set1_pd(xb[0]), _mm512_setzero_pd());
                for (int i = 1; i < 8; i++) d = _mm512_fmadd_pd(k[i], _mm512_set1_pd(xb[i]), d);
                acc[b] = _mm512_add_pd(acc[b], _mm512_mul_pd(sq, d));
            }
        }
    }
    size_t m = nrows - 8 * (size_t)h > 8 ? 8 : nrows - 8 * (size_t)h;
    for (size_t b = 0; b < nb; b++) {
        float tmp[8];
        _mm256_storeu_ps(tmp, _mm512_cvtpd_ps(acc[b]));
        memcpy(Y + (b0 + b) * ldy + tile * LQ_KERN_TILE + 8 * h, tmp, m * sizeof(float));
    }
}

static inline __attribute__((always_inline)) void exact_tile(const lq_e8p_pack *p, const void *act,
                                                             size_t b0, size_t nb, size_t tile,
                                                             float *Y, size_t ldy, size_t nrows)
{
    exact_half(p, act, b0, nb, tile, 0, Y, ldy, nrows);
    exact_half(p, act, b0, nb, tile, 1, Y, ldy, nrows);
}

static inline __attribute__((always_inline)) void fast_tile(const lq_e8p_pack *p, const void *act,
                                                            size_t b0, size_t nb, size_t tile,
                                                            float *Y, size_t ldy, size_t nrows)
{
    int8_t kt[16];
    uint8_t ut[16];
    lq_e8p_ktab(kt, ut);
    const __m512i utab = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(const void *)ut));
    /* even dwords of A then of B: the row sums after adding the odd ones */
    const __m512i ev = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    lq_e8p_act_view a[NB_MAX];
    for (size_t i = 0; i < nb; i++) a[i] = lq_e8p_act_get(p, act, LQ_KERNEL_FAST, b0 + i);
    const uint8_t *tb = p->blocks + tile * p->nvec * LQ_E8P_BLOCK;
    const float *sc = p->scale + tile * p->ngroups * 16;
    __m512 y[NB_MAX];
    for (size_t i = 0; i < nb; i++) y[i] = _mm512_setzero_ps();
    size_t j = 0;
    for (size_t g = 0; g < p->ngroups; g++) {
        size_t j1 = lq_e8p_group_end(p, g);
        __m512 acc[NB_MAX];
        for (size_t i = 0; i < nb; i++) acc[i] = _mm512_setzero_ps();
        for (; j < j1; j++) {
            const uint8_t *blk = tb + j * LQ_E8P_BLOCK;
            _mm_prefetch((const char *)(blk + LQ_E8P_PREFETCH * LQ_E8P_BLOCK), _MM_HINT_T0);
            __m512i uA = _mm512_shuffle_epi8(utab, load_idx(p, blk, 0, 1));
            __m512i uB = _mm512_shuffle_epi8(utab, load_idx(p, blk, 1, 1));
            for (size_t b = 0; b < nb; b++) {
                int64_t q8;
                memcpy(&q8, a[b].q + 8 * j, 8);
                __m512i xq = _mm512_set1_epi64(q8);
                __m512i pA = _mm512_dpbusd_epi32(_mm512_setzero_si512(), uA, xq);
                __m512i pB = _mm512_dpbusd_epi32(_mm512_setzero_si512(), uB, xq);
                pA = _mm512_add_epi32(pA, _mm512_srli_epi64(pA, 32));
                pB = _mm512_add_epi32(pB, _mm512_srli_epi64(pB, 32));
                __m512i dp = _mm512_permutex2var_epi32(pA, ev, pB);
                __m512i is = _mm512_sub_epi32(dp, _mm512_set1_epi32(a[b].s16[j]));
                __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(is), _mm512_set1_ps(a[b].dx[j]));
                acc[b] = _mm512_add_ps(acc[b], v);
            }
        }
        __m512 s = _mm512_loadu_ps(sc + g * 16);
        for (size_t b = 0; b < nb; b++) y[b] = _mm512_add_ps(y[b], _mm512_mul_ps(s, acc[b]));
    }
    size_t n = nrows < 16 ? nrows : 16;
    for (size_t b = 0; b < nb; b++) {
        float tmp[16];
        _mm512_storeu_ps(tmp, _mm512_mul_ps(_mm512_set1_ps(0.25f), y[b]));
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
                case 4: KERN(p, act, b0, 4, tile, Y, ldy, nr); break;                              \
                case 5: KERN(p, act, b0, 5, tile, Y, ldy, nr); break;                              \
                case 6: KERN(p, act, b0, 6, tile, Y, ldy, nr); break;                              \
                case 7: KERN(p, act, b0, 7, tile, Y, ldy, nr); break;                              \
                default: KERN(p, act, b0, 8, tile, Y, ldy, nr); break;                             \
                }                                                                                  \
            }                                                                                      \
    }

ROWS_FN(lq_kern_e8p_fast_avx512, fast_tile)
ROWS_FN(lq_kern_e8p_exact_avx512, exact_tile)
