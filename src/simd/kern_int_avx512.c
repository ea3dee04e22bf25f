/* INT row kernels for AVX-512 (F, BW, VNNI): one tile of 16 rows in the 16
 * lanes; per sub-unit of 4 columns one vpdpbusd against the broadcast int8
 * activations (FAST) or 4 FMAs against broadcast floats (EXACT). Same
 * operation order per row as the scalar reference (see kern_int.h). */
#include <immintrin.h>
#include <string.h>

#include "simd/kern_int.h"

#define NB_MAX 4

/* Decode one block of a tile into 8 sub-unit vectors (byte 4r+k = code). */
static inline __attribute__((always_inline)) void decode_blk(const uint8_t *cp, unsigned sbits,
                                                             __m512i u[8])
{
    const __m512i m4 = _mm512_set1_epi8(15), m2 = _mm512_set1_epi8(3);
    switch (sbits) {
    case 4:
        for (int i = 0; i < 4; i++) {
            __m512i v = _mm512_loadu_si512((const void *)(cp + 64 * i));
            u[2 * i] = _mm512_and_si512(v, m4);
            u[2 * i + 1] = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
        }
        break;
    case 2:
    case 3:
        for (int i = 0; i < 2; i++) {
            __m512i v = _mm512_loadu_si512((const void *)(cp + 64 * i));
            u[4 * i] = _mm512_and_si512(v, m2);
            u[4 * i + 1] = _mm512_and_si512(_mm512_srli_epi16(v, 2), m2);
            u[4 * i + 2] = _mm512_and_si512(_mm512_srli_epi16(v, 4), m2);
            u[4 * i + 3] = _mm512_and_si512(_mm512_srli_epi16(v, 6), m2);
        }
        if (sbits == 3) {
            const __m512i four = _mm512_set1_epi8(4);
            for (int s = 0; s < 8; s++) {
                uint64_t mk;
                memcpy(&mk, cp + 128 + 8 * s, 8);
                u[s] = _mm512_mask_add_epi8(u[s], (__mmask64)mk, u[s], four);
            }
        }
        break;
    default:
        for (int s = 0; s < 8; s++) u[s] = _mm512_loadu_si512((const void *)(cp + 64 * s));
        break;
    }
}

static inline __attribute__((always_inline)) void store_lanes(float *dst, __m512 v, size_t n)
{
    if (n >= 16)
        _mm512_storeu_ps(dst, v);
    else
        _mm512_mask_storeu_ps(dst, (__mmask16)((1u << n) - 1), v);
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
    __m512 y[NB_MAX];
    for (size_t i = 0; i < nb; i++) y[i] = _mm512_setzero_ps();
    for (size_t g = 0; g < p->ngroups; g++) {
        __m512 ga[NB_MAX];
        for (size_t i = 0; i < nb; i++) ga[i] = _mm512_setzero_ps();
        for (size_t k = p->gblk[g]; k < p->gblk[g + 1]; k++) {
            if (sbits == 4) {
                /* 4 bits: the low nibbles masked, the high nibbles kept in
                 * place (16 * code): sum_hi is a multiple of 16, so the
                 * arithmetic shift back is exact. Two chains per vector. */
                const __m512i m4 = _mm512_set1_epi8(15), mh = _mm512_set1_epi8((char)0xF0);
                __m512i vl[4], vh[4];
                for (int q = 0; q < 4; q++) {
                    __m512i v = _mm512_loadu_si512((const void *)(cp + 64 * q));
                    vl[q] = _mm512_and_si512(v, m4);
                    vh[q] = _mm512_and_si512(v, mh);
                }
                cp += p->blk_bytes;
                for (size_t i = 0; i < nb; i++) {
                    const int8_t *xq = a[i].q + k * LQ_KERN_QBLK;
                    __m512i lo = _mm512_setzero_si512(), hi = _mm512_setzero_si512();
                    for (int q = 0; q < 4; q++) {
                        int32_t x0, x1;
                        memcpy(&x0, xq + 8 * q, 4);
                        memcpy(&x1, xq + 8 * q + 4, 4);
                        lo = _mm512_dpbusd_epi32(lo, vl[q], _mm512_set1_epi32(x0));
                        hi = _mm512_dpbusd_epi32(hi, vh[q], _mm512_set1_epi32(x1));
                    }
                    __m512i isum = _mm512_add_epi32(lo, _mm512_srai_epi32(hi, 4));
                    ga[i] = _mm512_add_ps(
                        ga[i], _mm512_mul_ps(_mm512_set1_ps(a[i].d[k]), _mm512_cvtepi32_ps(isum)));
                }
                continue;
            }
            __m512i u[8];
            decode_blk(cp, sbits, u);
            cp += p->blk_bytes;
            /* independent accumulators hide the vpdpbusd latency; integer
             * sums, so their order does not matter */
            enum { NACC = 4 };
            const int nacc = nb >= 4 ? 1 : nb >= 2 ? 2 : NACC;
            for (size_t i = 0; i < nb; i++) {
                const int8_t *xq = a[i].q + k * LQ_KERN_QBLK;
                __m512i acc[NACC];
                for (int j = 0; j < nacc; j++) acc[j] = _mm512_setzero_si512();
                for (int s = 0; s < 8; s++) {
                    int32_t x4;
                    memcpy(&x4, xq + 4 * s, 4);
                    acc[s % nacc] = _mm512_dpbusd_epi32(acc[s % nacc], u[s], _mm512_set1_epi32(x4));
                }
                for (int j = 1; j < nacc; j++) acc[0] = _mm512_add_epi32(acc[0], acc[j]);
                ga[i] = _mm512_add_ps(
                    ga[i], _mm512_mul_ps(_mm512_set1_ps(a[i].d[k]), _mm512_cvtepi32_ps(acc[0])));
            }
        }
        __m512 s = _mm512_loadu_ps(sm + g * 32), m = _mm512_loadu_ps(sm + g * 32 + 16);
        for (size_t i = 0; i < nb; i++)
            y[i] = _mm512_add_ps(y[i], _mm512_add_ps(_mm512_mul_ps(s, ga[i]),
                                                     _mm512_mul_ps(m, _mm512_set1_ps(a[i].xs[g]))));
    }
    for (size_t i = 0; i < nb; i++)
        store_lanes(Y + (b0 + i) * ldy + tile * LQ_KERN_TILE, y[i], nrows);
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
    const __m512i mff = _mm512_set1_epi32(255);
    __m512 y[NB_MAX];
    for (size_t i = 0; i < nb; i++) y[i] = _mm512_setzero_ps();
    for (size_t g = 0; g < p->ngroups; g++) {
        /* 4 partial sums (one per column of a sub-unit) hide the FMA latency */
        __m512 ga[NB_MAX], gb[NB_MAX], gc[NB_MAX], gd[NB_MAX];
        for (size_t i = 0; i < nb; i++) ga[i] = gb[i] = gc[i] = gd[i] = _mm512_setzero_ps();
        for (size_t k = p->gblk[g]; k < p->gblk[g + 1]; k++) {
            __m512i u[8];
            decode_blk(cp, sbits, u);
            cp += p->blk_bytes;
            for (int s = 0; s < 8; s++) {
                const float *xk = NULL;
                __m512 w0 = _mm512_cvtepi32_ps(_mm512_and_si512(u[s], mff));
                __m512 w1 = _mm512_cvtepi32_ps(_mm512_and_si512(_mm512_srli_epi32(u[s], 8), mff));
                __m512 w2 = _mm512_cvtepi32_ps(_mm512_and_si512(_mm512_srli_epi32(u[s], 16), mff));
                __m512 w3 = _mm512_cvtepi32_ps(_mm512_srli_epi32(u[s], 24));
                for (size_t i = 0; i < nb; i++) {
                    xk = a[i].x + k * LQ_KERN_QBLK + 4 * s;
                    ga[i] = _mm512_fmadd_ps(w0, _mm512_set1_ps(xk[0]), ga[i]);
                    gb[i] = _mm512_fmadd_ps(w1, _mm512_set1_ps(xk[1]), gb[i]);
                    gc[i] = _mm512_fmadd_ps(w2, _mm512_set1_ps(xk[2]), gc[i]);
                    gd[i] = _mm512_fmadd_ps(w3, _mm512_set1_ps(xk[3]), gd[i]);
                }
            }
        }
        for (size_t i = 0; i < nb; i++)
            ga[i] = _mm512_add_ps(_mm512_add_ps(ga[i], gb[i]), _mm512_add_ps(gc[i], gd[i]));
        __m512 s = _mm512_loadu_ps(sm + g * 32), m = _mm512_loadu_ps(sm + g * 32 + 16);
        for (size_t i = 0; i < nb; i++)
            y[i] = _mm512_add_ps(y[i], _mm512_add_ps(_mm512_mul_ps(s, ga[i]),
                                                     _mm512_mul_ps(m, _mm512_set1_ps(a[i].xs[g]))));
    }
    for (size_t i = 0; i < nb; i++)
        store_lanes(Y + (b0 + i) * ldy + tile * LQ_KERN_TILE, y[i], nrows);
}

/* Instantiate the tile kernels with constant widths and batch counts. */
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

ROWS_FN(lq_kern_int_fast_avx512, fast_tile)
ROWS_FN(lq_kern_int_exact_avx512, exact_tile)
