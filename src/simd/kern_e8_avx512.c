/* E8 row kernels for AVX-512 (BW, VNNI) on the packed layout (kern_e8.h):
 * 16 rows in the lanes, each block of 16 rows x 8 columns decoded once and
 * applied to every vector of the batch.
 *
 * FAST: per block the bytes g_i = 2 f_i + s (two vectors: g_0..3 and
 * g_4..7 per row lane; nibbles by one shift and one ternary logic each, bit
 * 4 of f from the hi plane by byte masks) and beta / 2 by vpermps; per
 * vector two vpdpbusd on the negated int8 activations starting from 2q sq,
 * which is the reference's integer isum, then the reference's three float
 * operations. Up to 16 vectors keep their sums in registers per pass and
 * read their activations from the interleaved records (kern_e8.h).
 *
 * EXACT: per chunk of up to 32 blocks of a group the weights
 * w_i = round(hb * u_i) (a table lookup and one fused multiply-add per 16
 * lanes, see decode_w) go to an L1 buffer (16 KiB); every
 * 4 vectors of the batch then run their four partial sums over the chunk
 * (w from the buffer, activations broadcast). Same operations in the same
 * order as the scalar reference. */
#include <immintrin.h>
#include <string.h>

#include "simd/kern_e8.h"

#define FAST_NB 16  /* vectors per pass of the FAST kernel (sums in registers) */
#define EXACT_NB 16 /* vectors per pass of the EXACT kernel (sums in L1) */
#define EXACT_J 32  /* blocks per EXACT chunk */

#define AI static inline __attribute__((always_inline))

/* Software prefetch distance in bytes of the block stream (the blocks of a
 * tile and of consecutive tiles are contiguous). */
#define PF_DIST 2048

/* Meta nibbles (s | beta index << 1) of the 16 row lanes, one per dword. */
AI __m512i load_meta(const lq_e8_pack *p, const uint8_t *blk)
{
    int64_t m8;
    memcpy(&m8, blk + p->block - 8, 8);
    __m512i mv = _mm512_cvtepu8_epi32(_mm_set1_epi64x(m8));
    mv = _mm512_srlv_epi32(mv, _mm512_set_epi32(4, 4, 4, 4, 4, 4, 4, 4, 0, 0, 0, 0, 0, 0, 0, 0));
    return _mm512_and_si512(mv, _mm512_set1_epi32(15));
}

/* Byte masks of the plane pl (16 bytes, one per row): (ka) for bytes
 * f_0..3, (kb) for f_4..7. */
AI void hi_masks(const uint8_t *pl, __mmask64 *ka, __mmask64 *kb)
{
    /* every byte of dword r = hi byte r; byte k tests bit k (a) or k+4 (b) */
    const __m512i rep =
        _mm512_set_epi8(15, 15, 15, 15, 14, 14, 14, 14, 13, 13, 13, 13, 12, 12, 12, 12, 11, 11, 11,
                        11, 10, 10, 10, 10, 9, 9, 9, 9, 8, 8, 8, 8, 7, 7, 7, 7, 6, 6, 6, 6, 5, 5, 5,
                        5, 4, 4, 4, 4, 3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0);
    __m512i h = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(const void *)pl));
    __m512i bb = _mm512_shuffle_epi8(h, rep);
    *ka = _mm512_test_epi8_mask(bb, _mm512_set1_epi32(0x08040201));
    *kb = _mm512_test_epi8_mask(bb, _mm512_set1_epi32((int)0x80402010u));
}

/* The meta nibble's coset bit s in every byte of its dword. */
AI __m512i coset_bytes(__m512i meta)
{
    const __m512i rep0 = _mm512_set4_epi32(0x0c0c0c0c, 0x08080808, 0x04040404, 0x00000000);
    return _mm512_and_si512(_mm512_shuffle_epi8(meta, rep0), _mm512_set1_epi8(1));
}

typedef struct g_regs {
    __m512i ga, gb; /* bytes g_0..g_3 and g_4..g_7 (g = 2 f + s) of each row lane */
    __m512 beta;    /* beta / 2 per lane */
} g_regs;

AI g_regs load_g(const lq_e8_pack *p, const uint8_t *blk, __m512 hb)
{
    g_regs b;
    const __m512i m1e = _mm512_set1_epi8(0x1e);
    __m512i L = _mm512_loadu_si512((const void *)blk);
    __m512i meta = load_meta(p, blk);
    __m512i sb = coset_bytes(meta);
    /* (x & 0x1e) | s: 2 * nibble + s */
    b.ga = _mm512_ternarylogic_epi32(_mm512_slli_epi16(L, 1), m1e, sb, 0xEA);
    b.gb = _mm512_ternarylogic_epi32(_mm512_srli_epi16(L, 3), m1e, sb, 0xEA);
    if (p->hi) {
        __mmask64 ka, kb;
        hi_masks(blk + 64, &ka, &kb);
        const __m512i s32 = _mm512_set1_epi8(32);
        b.ga = _mm512_mask_add_epi8(b.ga, ka, b.ga, s32);
        b.gb = _mm512_mask_add_epi8(b.gb, kb, b.gb, s32);
    }
    if (p->hi2) { /* g <= 127: still an unsigned byte */
        __mmask64 ka, kb;
        hi_masks(blk + 80, &ka, &kb);
        const __m512i s64 = _mm512_set1_epi8(64);
        b.ga = _mm512_mask_add_epi8(b.ga, ka, b.ga, s64);
        b.gb = _mm512_mask_add_epi8(b.gb, kb, b.gb, s64);
    }
    b.beta = _mm512_permutexvar_ps(_mm512_srli_epi32(meta, 1), hb);
    return b;
}

AI void fast_tile(const lq_e8_pack *p, const void *act, size_t batch, size_t b0, size_t nb,
                  size_t tile, float *Y, size_t ldy, size_t nrows)
{
    const unsigned char *rec = lq_e8_act_irec(p, act, batch) + b0 * LQ_E8_IREC;
    const size_t rstep = batch * LQ_E8_IREC; /* next 8-vector */
    const uint8_t *tb = p->blocks + tile * p->nvec * p->block;
    const float *sc = p->scale + tile * p->ngroups * 16;
    const __m512 hb = _mm512_loadu_ps(p->hb);
    __m512 y[FAST_NB];
    for (size_t i = 0; i < nb; i++) y[i] = _mm512_setzero_ps();
    size_t j = 0;
    for (size_t g = 0; g < p->ngroups; g++) {
        size_t j1 = (g + 1) * p->group / 8;
        if (j1 > p->nvec) j1 = p->nvec;
        __m512 acc[FAST_NB];
        for (size_t i = 0; i < nb; i++) acc[i] = _mm512_setzero_ps();
        for (; j < j1; j++) {
            _mm_prefetch((const char *)(tb + j * p->block + PF_DIST), _MM_HINT_T0);
            g_regs bk = load_g(p, tb + j * p->block, hb);
            const unsigned char *r = rec + j * rstep;
#pragma GCC unroll 16
            for (size_t i = 0; i < nb; i++) {
                int32_t x0, x1, a2q;
                float d;
                memcpy(&x0, r + LQ_E8_IREC * i, 4);
                memcpy(&x1, r + LQ_E8_IREC * i + 4, 4);
                memcpy(&a2q, r + LQ_E8_IREC * i + 8, 4);
                memcpy(&d, r + LQ_E8_IREC * i + 12, 4);
                /* 2q sq - sum g q8 = 2q sq - s sq - 2 sum f q8, exactly */
                __m512i s =
                    _mm512_dpbusd_epi32(_mm512_set1_epi32(a2q), bk.ga, _mm512_set1_epi32(x0));
                s = _mm512_dpbusd_epi32(s, bk.gb, _mm512_set1_epi32(x1));
                __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(s), _mm512_set1_ps(d));
                acc[i] = _mm512_add_ps(acc[i], _mm512_mul_ps(v, bk.beta));
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

/* Weights w_0..w_7 (16 lanes each) of one block into w[0..7]: the float
 * t = 2q - 2f from a 32-entry table by vpermt2ps on the byte f (only the
 * low 5 bits of a dword index count, so byte 0 of a dword is enough), then
 * w = fma(t, hb, -s hb) = round(hb (2q - s - 2f)) = round(hb u), one
 * rounding (-s hb is exact), the scalar reference's value. */
AI void decode_w(const lq_e8_pack *p, const uint8_t *blk, __m512 hb, __m512 t0, __m512 t1,
                 __m512 *w)
{
    const __m512i m4 = _mm512_set1_epi8(15);
    __m512i L = _mm512_loadu_si512((const void *)blk);
    __m512i fa = _mm512_and_si512(L, m4);
    __m512i fb = _mm512_and_si512(_mm512_srli_epi16(L, 4), m4);
    if (p->hi) {
        __mmask64 ka, kb;
        hi_masks(blk + 64, &ka, &kb);
        const __m512i s16 = _mm512_set1_epi8(16);
        fa = _mm512_mask_add_epi8(fa, ka, fa, s16);
        fb = _mm512_mask_add_epi8(fb, kb, fb, s16);
    }
    __m512i meta = load_meta(p, blk);
    __m512 beta = _mm512_permutexvar_ps(_mm512_srli_epi32(meta, 1), hb);
    if (p->hi2) {
        /* f in [0, 64): beyond the 32-entry table. u = (2q - s) - 2 f in
         * signed bytes (|u| <= 2q <= 64), sign-extended per coordinate and
         * converted: the same value round(hb u) */
        __mmask64 ka, kb;
        hi_masks(blk + 80, &ka, &kb);
        const __m512i s32 = _mm512_set1_epi8(32);
        fa = _mm512_mask_add_epi8(fa, ka, fa, s32);
        fb = _mm512_mask_add_epi8(fb, kb, fb, s32);
        __m512i cb = _mm512_sub_epi8(_mm512_set1_epi8((char)(2 * p->q)), coset_bytes(meta));
        __m512i u[2] = {_mm512_sub_epi8(cb, _mm512_add_epi8(fa, fa)),
                        _mm512_sub_epi8(cb, _mm512_add_epi8(fb, fb))};
        for (int h = 0; h < 2; h++) {
            w[4 * h + 0] = _mm512_mul_ps(
                _mm512_cvtepi32_ps(_mm512_srai_epi32(_mm512_slli_epi32(u[h], 24), 24)), beta);
            w[4 * h + 1] = _mm512_mul_ps(
                _mm512_cvtepi32_ps(_mm512_srai_epi32(_mm512_slli_epi32(u[h], 16), 24)), beta);
            w[4 * h + 2] = _mm512_mul_ps(
                _mm512_cvtepi32_ps(_mm512_srai_epi32(_mm512_slli_epi32(u[h], 8), 24)), beta);
            w[4 * h + 3] = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_srai_epi32(u[h], 24)), beta);
        }
        return;
    }
    __mmask16 sm = _mm512_test_epi32_mask(meta, _mm512_set1_epi32(1));
    __m512 nsb = _mm512_maskz_sub_ps(sm, _mm512_setzero_ps(), beta);
    /* byte k of each dword to byte 0: k = 1 by a byte shuffle, 2 and 3 by
     * dword shifts (spreads the work over the shuffle and shift ports) */
    const __m512i sh1 = _mm512_set4_epi32(0x0d0d0d0d, 0x09090909, 0x05050505, 0x01010101);
    __m512i ia[4] = {fa, _mm512_shuffle_epi8(fa, sh1), _mm512_srli_epi32(fa, 16),
                     _mm512_srli_epi32(fa, 24)};
    __m512i ib[4] = {fb, _mm512_shuffle_epi8(fb, sh1), _mm512_srli_epi32(fb, 16),
                     _mm512_srli_epi32(fb, 24)};
    for (int k = 0; k < 4; k++) {
        w[k] = _mm512_fmadd_ps(_mm512_permutex2var_ps(t0, ia[k], t1), beta, nsb);
        w[4 + k] = _mm512_fmadd_ps(_mm512_permutex2var_ps(t0, ib[k], t1), beta, nsb);
    }
}

/* nb (1..4) vectors over nj decoded blocks: a[i][m] += w_m x_m, w_{m+4} x_{m+4}. */
AI void exact_run(const __m512 *wb, size_t nj, const float *const *x, size_t nb, __m512 (*a)[4])
{
    __m512 r[4][4];
    for (size_t i = 0; i < nb; i++)
        for (int m = 0; m < 4; m++) r[i][m] = a[i][m];
    for (size_t jj = 0; jj < nj; jj++) {
        const __m512 *w = wb + 8 * jj;
        for (int m = 0; m < 4; m++) {
            __m512 w0 = w[m], w1 = w[m + 4];
            /* keep w in registers: each is used by nb fused multiply-adds,
             * whose memory operand is then the broadcast activation */
            __asm__("" : "+v"(w0), "+v"(w1));
            for (size_t i = 0; i < nb; i++) {
                r[i][m] = _mm512_fmadd_ps(w0, _mm512_set1_ps(x[i][8 * jj + m]), r[i][m]);
                r[i][m] = _mm512_fmadd_ps(w1, _mm512_set1_ps(x[i][8 * jj + m + 4]), r[i][m]);
            }
        }
    }
    for (size_t i = 0; i < nb; i++)
        for (int m = 0; m < 4; m++) a[i][m] = r[i][m];
}

static void exact_tile(const lq_e8_pack *p, const void *act, size_t b0, size_t nb, size_t tile,
                       float *Y, size_t ldy, size_t nrows)
{
    const uint8_t *tb = p->blocks + tile * p->nvec * p->block;
    const float *sc = p->scale + tile * p->ngroups * 16;
    const __m512 hb = _mm512_loadu_ps(p->hb);
    float tt[32]; /* t[f] = 2q - 2f */
    for (int f = 0; f < 32; f++) tt[f] = (float)(2 * (int)p->q - 2 * f);
    const __m512 t0 = _mm512_loadu_ps(tt), t1 = _mm512_loadu_ps(tt + 16);
    __m512 wb[EXACT_J * 8];
    __m512 acc[EXACT_NB][4], y[EXACT_NB];
    const float *xb[EXACT_NB];
    for (size_t i = 0; i < nb; i++) {
        xb[i] = lq_e8_act_get(p, act, LQ_KERNEL_EXACT, b0 + i).x;
        y[i] = _mm512_setzero_ps();
    }
    size_t j = 0;
    for (size_t g = 0; g < p->ngroups; g++) {
        size_t j1 = (g + 1) * p->group / 8;
        if (j1 > p->nvec) j1 = p->nvec;
        for (size_t i = 0; i < nb; i++)
            for (int m = 0; m < 4; m++) acc[i][m] = _mm512_setzero_ps();
        for (; j < j1;) {
            size_t nj = j1 - j < EXACT_J ? j1 - j : EXACT_J;
            for (size_t jj = 0; jj < nj; jj++) {
                _mm_prefetch((const char *)(tb + (j + jj) * p->block + PF_DIST), _MM_HINT_T0);
                decode_w(p, tb + (j + jj) * p->block, hb, t0, t1, wb + 8 * jj);
            }
            for (size_t i = 0; i < nb; i += 4) {
                const float *x[4];
                size_t m = nb - i < 4 ? nb - i : 4;
                for (size_t k = 0; k < m; k++) x[k] = xb[i + k] + 8 * j;
                switch (m) {
                case 1: exact_run(wb, nj, x, 1, acc + i); break;
                case 2: exact_run(wb, nj, x, 2, acc + i); break;
                case 3: exact_run(wb, nj, x, 3, acc + i); break;
                default: exact_run(wb, nj, x, 4, acc + i); break;
                }
            }
            j += nj;
        }
        __m512 s = _mm512_loadu_ps(sc + g * 16);
        for (size_t i = 0; i < nb; i++) {
            __m512 t = _mm512_add_ps(_mm512_add_ps(acc[i][0], acc[i][1]),
                                     _mm512_add_ps(acc[i][2], acc[i][3]));
            y[i] = _mm512_fmadd_ps(t, s, y[i]);
        }
    }
    size_t n = nrows < 16 ? nrows : 16;
    for (size_t i = 0; i < nb; i++)
        _mm512_mask_storeu_ps(Y + (b0 + i) * ldy + tile * LQ_KERN_TILE, (__mmask16)((1u << n) - 1),
                              y[i]);
}

#define FAST_CASE(n)                                                                               \
    case n: fast_tile(p, act, batch, b0, n, tile, Y, ldy, nr); break;

void lq_kern_e8_fast_avx512(const void *pack, const void *act, size_t batch, float *Y, size_t ldy,
                            size_t r0, size_t r1)
{
    const lq_e8_pack *p = pack;
    for (size_t tile = r0 / LQ_KERN_TILE; tile * LQ_KERN_TILE < r1; tile++)
        for (size_t b0 = 0; b0 < batch; b0 += FAST_NB) {
            size_t nb = batch - b0 < FAST_NB ? batch - b0 : FAST_NB;
            size_t nr = r1 - tile * LQ_KERN_TILE;
            switch (nb) {
                FAST_CASE(1)
                FAST_CASE(2)
                FAST_CASE(3)
                FAST_CASE(4)
                FAST_CASE(5)
                FAST_CASE(6)
                FAST_CASE(7)
                FAST_CASE(8)
                FAST_CASE(9)
                FAST_CASE(10)
                FAST_CASE(11)
                FAST_CASE(12)
                FAST_CASE(13)
                FAST_CASE(14)
                FAST_CASE(15)
            default: fast_tile(p, act, batch, b0, FAST_NB, tile, Y, ldy, nr); break;
            }
        }
}

void lq_kern_e8_exact_avx512(const void *pack, const void *act, size_t batch, float *Y, size_t ldy,
                             size_t r0, size_t r1)
{
    const lq_e8_pack *p = pack;
    for (size_t tile = r0 / LQ_KERN_TILE; tile * LQ_KERN_TILE < r1; tile++)
        for (size_t b0 = 0; b0 < batch; b0 += EXACT_NB) {
            size_t nb = batch - b0 < EXACT_NB ? batch - b0 : EXACT_NB;
            exact_tile(p, act, b0, nb, tile, Y, ldy, r1 - tile * LQ_KERN_TILE);
        }
}
