/* E8 row kernels for AVX-512 (BW, VNNI) on the packed layout (kern_e8.h):
 * 16 rows in the lanes; per 8-vector the nibbles split into two byte
 * vectors of f_0..3 and f_4..7, bit 4 added from the hi plane by byte
 * masks, two vpdpbusd; beta by vpermps from the 16-entry table. Same
 * operations in the same order as the scalar reference. */
#include <immintrin.h>
#include <string.h>

#include "simd/kern_e8.h"

#define NB_MAX 4

typedef struct blk_regs {
    __m512i fa, fb; /* bytes f_0..f_3 and f_4..f_7 of each row lane */
    __m512i meta;   /* s | beta << 1 per lane */
    __mmask16 s;    /* coset bit */
} blk_regs;

static inline __attribute__((always_inline)) blk_regs load_block(const lq_e8_pack *p,
                                                                 const uint8_t *blk)
{
    const __m512i m4 = _mm512_set1_epi8(15);
    blk_regs b;
    __m512i L = _mm512_loadu_si512((const void *)blk);
    b.fa = _mm512_and_si512(L, m4);
    b.fb = _mm512_and_si512(_mm512_srli_epi16(L, 4), m4);
    if (p->hi) {
        /* every byte of dword r = hi byte r; byte k tests bit k (fa) or k+4 (fb) */
        const __m512i rep =
            _mm512_set_epi8(15, 15, 15, 15, 14, 14, 14, 14, 13, 13, 13, 13, 12, 12, 12, 12, 11, 11,
                            11, 11, 10, 10, 10, 10, 9, 9, 9, 9, 8, 8, 8, 8, 7, 7, 7, 7, 6, 6, 6, 6,
                            5, 5, 5, 5, 4, 4, 4, 4, 3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0);
        __m512i h =
            _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(const void *)(blk + 64)));
        __m512i bb = _mm512_shuffle_epi8(h, rep);
        __mmask64 ka = _mm512_test_epi8_mask(bb, _mm512_set1_epi32(0x08040201));
        __mmask64 kb = _mm512_test_epi8_mask(bb, _mm512_set1_epi32((int)0x80402010u));
        const __m512i s16 = _mm512_set1_epi8(16);
        b.fa = _mm512_mask_add_epi8(b.fa, ka, b.fa, s16);
        b.fb = _mm512_mask_add_epi8(b.fb, kb, b.fb, s16);
    }
    int64_t m8;
    memcpy(&m8, blk + p->block - 8, 8);
    __m512i mv = _mm512_cvtepu8_epi32(_mm_set1_epi64x(m8));
    mv = _mm512_srlv_epi32(mv, _mm512_set_epi32(4, 4, 4, 4, 4, 4, 4, 4, 0, 0, 0, 0, 0, 0, 0, 0));
    b.meta = _mm512_and_si512(mv, _mm512_set1_epi32(15));
    b.s = _mm512_test_epi32_mask(b.meta, _mm512_set1_epi32(1));
    return b;
}

static inline __attribute__((always_inline)) void fast_tile(const lq_e8_pack *p, const void *act,
                                                            size_t b0, size_t nb, size_t tile,
                                                            float *Y, size_t ldy, size_t nrows)
{
    lq_e8_act_view a[NB_MAX];
    for (size_t i = 0; i < nb; i++) a[i] = lq_e8_act_get(p, act, LQ_KERNEL_FAST, b0 + i);
    const uint8_t *tb = p->blocks + tile * p->nvec * p->block;
    const float *sc = p->scale + tile * p->ngroups * 16;
    const __m512 hb = _mm512_loadu_ps(p->hb);
    __m512 y[NB_MAX];
    for (size_t i = 0; i < nb; i++) y[i] = _mm512_setzero_ps();
    size_t j = 0;
    for (size_t g = 0; g < p->ngroups; g++) {
        size_t j1 = (g + 1) * p->group / 8;
        if (j1 > p->nvec) j1 = p->nvec;
        __m512 acc[NB_MAX];
        for (size_t i = 0; i < nb; i++) acc[i] = _mm512_setzero_ps();
        for (; j < j1; j++) {
            blk_regs bk = load_block(p, tb + j * p->block);
            __m512 beta = _mm512_permutexvar_ps(_mm512_srli_epi32(bk.meta, 1), hb);
            for (size_t i = 0; i < nb; i++) {
                int32_t x0, x1;
                memcpy(&x0, a[i].q + 8 * j, 4);
                memcpy(&x1, a[i].q + 8 * j + 4, 4);
                __m512i fd =
                    _mm512_dpbusd_epi32(_mm512_setzero_si512(), bk.fa, _mm512_set1_epi32(x0));
                fd = _mm512_dpbusd_epi32(fd, bk.fb, _mm512_set1_epi32(x1));
                __m512i A = _mm512_set1_epi32(a[i].a2q[j]);
                A = _mm512_mask_sub_epi32(A, bk.s, A, _mm512_set1_epi32(a[i].sq[j]));
                __m512i s = _mm512_sub_epi32(A, _mm512_add_epi32(fd, fd));
                __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(s), _mm512_set1_ps(a[i].d[j]));
                acc[i] = _mm512_add_ps(acc[i], _mm512_mul_ps(v, beta));
            }
        }
        __m512 s = _mm512_loadu_ps(sc + g * 16);
        for (size_t i = 0; i < nb; i++) y[i] = _mm512_add_ps(y[i], _mm512_mul_ps(s, acc[i]));
    }
    size_t n = nrows < 16 ? nrows : 16;
    for (size_t i = 0; i < nb; i++)
        _mm512_mask_storeu_ps(Y + (b0 + i) * ldy + tile * LQ_KERN_TILE, (__mmask16)((1u << n) - 1),
                              y[i]);
}

static inline __attribute__((always_inline)) void exact_tile(const lq_e8_pack *p, const void *act,
                                                             size_t b0, size_t nb, size_t tile,
                                                             float *Y, size_t ldy, size_t nrows)
{
    lq_e8_act_view a[NB_MAX];
    for (size_t i = 0; i < nb; i++) a[i] = lq_e8_act_get(p, act, LQ_KERNEL_EXACT, b0 + i);
    const uint8_t *tb = p->blocks + tile * p->nvec * p->block;
    const float *sc = p->scale + tile * p->ngroups * 16;
    const __m512 hb = _mm512_loadu_ps(p->hb);
    const __m512i mff = _mm512_set1_epi32(255), twoq = _mm512_set1_epi32(2 * (int)p->q);
    __m512 y[NB_MAX];
    for (size_t i = 0; i < nb; i++) y[i] = _mm512_setzero_ps();
    size_t j = 0;
    for (size_t g = 0; g < p->ngroups; g++) {
        size_t j1 = (g + 1) * p->group / 8;
        if (j1 > p->nvec) j1 = p->nvec;
        __m512 acc[NB_MAX];
        for (size_t i = 0; i < nb; i++) acc[i] = _mm512_setzero_ps();
        for (; j < j1; j++) {
            blk_regs bk = load_block(p, tb + j * p->block);
            __m512 beta = _mm512_permutexvar_ps(_mm512_srli_epi32(bk.meta, 1), hb);
            __m512i cf = _mm512_sub_epi32(twoq, _mm512_and_si512(bk.meta, _mm512_set1_epi32(1)));
            __m512 w[8];
            /* u = cf - 2 f, exact in float (small integers) */
            const __m512 cff = _mm512_cvtepi32_ps(cf), m2 = _mm512_set1_ps(-2.0f);
            for (int kk = 0; kk < 4; kk++) {
                __m512i fa = _mm512_and_si512(_mm512_srli_epi32(bk.fa, 8 * kk), mff);
                __m512i fb = _mm512_and_si512(_mm512_srli_epi32(bk.fb, 8 * kk), mff);
                w[kk] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(fa), m2, cff);
                w[4 + kk] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(fb), m2, cff);
            }
            for (size_t i = 0; i < nb; i++) {
                const float *x = a[i].x + 8 * j;
                __m512 d0 = _mm512_mul_ps(w[0], _mm512_set1_ps(x[0]));
                __m512 d1 = _mm512_mul_ps(w[1], _mm512_set1_ps(x[1]));
                d0 = _mm512_fmadd_ps(w[2], _mm512_set1_ps(x[2]), d0);
                d1 = _mm512_fmadd_ps(w[3], _mm512_set1_ps(x[3]), d1);
                d0 = _mm512_fmadd_ps(w[4], _mm512_set1_ps(x[4]), d0);
                d1 = _mm512_fmadd_ps(w[5], _mm512_set1_ps(x[5]), d1);
                d0 = _mm512_fmadd_ps(w[6], _mm512_set1_ps(x[6]), d0);
                d1 = _mm512_fmadd_ps(w[7], _mm512_set1_ps(x[7]), d1);
                acc[i] = _mm512_fmadd_ps(beta, _mm512_add_ps(d0, d1), acc[i]);
            }
        }
        __m512 s = _mm512_loadu_ps(sc + g * 16);
        for (size_t i = 0; i < nb; i++) y[i] = _mm512_fmadd_ps(s, acc[i], y[i]);
    }
    size_t n = nrows < 16 ? nrows : 16;
    for (size_t i = 0; i < nb; i++)
        _mm512_mask_storeu_ps(Y + (b0 + i) * ldy + tile * LQ_KERN_TILE, (__mmask16)((1u << n) - 1),
                              y[i]);
}

#define ROWS_FN(name, KERN)                                                                        \
    void name(const void *pack, const void *act, size_t batch, float *Y, size_t ldy, size_t r0,    \
              size_t r1)                                                                           \
    {                                                                                              \
        const lq_e8_pack *p = pack;                                                                \
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

ROWS_FN(lq_kern_e8_fast_avx512, fast_tile)
ROWS_FN(lq_kern_e8_exact_avx512, exact_tile)
