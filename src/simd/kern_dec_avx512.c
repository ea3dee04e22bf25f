/* Decode kernels of VQ and AQ for AVX-512 (the float operations of
 * kern_dec.h, in the same order as the scalar reference).
 *
 * VQ: the 16 rows of a tile in the lanes; the codebook coordinates of the
 * tile's column group live in registers (one vpermps per coordinate when
 * K <= 16, vpermt2ps when K <= 32), else a gather from the codebooks (a few
 * KiB, L1/L2-resident). For batches above NB_DIRECT the decoded weights of
 * a block of positions are kept in a buffer and reused by every activation
 * vector of the batch, the partial sums of each vector living on the stack
 * between blocks.
 *
 * AQ: the 256-bit kernel of kern_dec_aq.h with four activation vectors per
 * decode (measured: pairing two chunks in a 512-bit register cost more in
 * inserts than it saved on this machine). */
#include <immintrin.h>
#include <string.h>

#include "simd/kern_dec.h"

#define NB_DIRECT 2
#define VQ_BLOCK_FLOATS 128 /* decoded (position, coordinate) registers per block */
#define MAX_BATCH 64

static inline __attribute__((always_inline)) __m512i vq_codes(const lq_vqd_pack *p,
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

/* The tile's lookup state for one column group: registers or gather bases. */
typedef struct vq_look {
    int mode; /* 0: vpermps, 1: vpermt2ps, 2: gather, 3: vpermt2ps over two codebooks */
    __m512 lo[8], hi[8];
    __m512i base[8];
    __m512i off; /* mode 3: 16 on the lanes of the second row block */
} vq_look;

static inline __attribute__((always_inline)) void vq_look_init(const lq_vqd_pack *p, size_t tile,
                                                               size_t cg, int mode, vq_look *L)
{
    size_t d = p->d;
    L->mode = mode;
    if (mode < 2) {
        const float *c = p->cb + ((size_t)p->lane_cb[tile * LQ_KERN_TILE] + cg) * d * p->stride;
        for (size_t i = 0; i < d; i++) {
            L->lo[i] = _mm512_loadu_ps(c + i * p->stride);
            if (mode == 1) L->hi[i] = _mm512_loadu_ps(c + i * p->stride + 16);
        }
    } else if (mode == 3) {
        /* K <= 16: the first 16 entries of each codebook, the second one's
         * entries at index 16 + e (the same floats a gather would read) */
        unsigned s = p->uniform[tile] - 2u;
        const float *a = p->cb + ((size_t)p->lane_cb[tile * LQ_KERN_TILE] + cg) * d * p->stride;
        const float *b = p->cb + ((size_t)p->lane_cb[tile * LQ_KERN_TILE + s] + cg) * d * p->stride;
        for (size_t i = 0; i < d; i++) {
            L->lo[i] = _mm512_loadu_ps(a + i * p->stride);
            L->hi[i] = _mm512_loadu_ps(b + i * p->stride);
        }
        L->off = _mm512_maskz_set1_epi32((__mmask16)(0xffffu << s), 16);
    } else {
        __m512i g =
            _mm512_add_epi32(_mm512_loadu_si512((const void *)(p->lane_cb + tile * LQ_KERN_TILE)),
                             _mm512_set1_epi32((int)cg));
        g = _mm512_mullo_epi32(g, _mm512_set1_epi32((int)(d * p->stride)));
        for (size_t i = 0; i < d; i++)
            L->base[i] = _mm512_add_epi32(g, _mm512_set1_epi32((int)(i * p->stride)));
    }
}

static inline __attribute__((always_inline)) __m512 vq_lookup(const lq_vqd_pack *p,
                                                              const vq_look *L, size_t i, __m512i c)
{
    if (L->mode == 0) return _mm512_permutexvar_ps(c, L->lo[i]);
    if (L->mode == 1) return _mm512_permutex2var_ps(L->lo[i], c, L->hi[i]);
    if (L->mode == 3) return _mm512_permutex2var_ps(L->lo[i], _mm512_or_si512(c, L->off), L->hi[i]);
    return _mm512_i32gather_ps(_mm512_add_epi32(L->base[i], c), p->cb, 4);
}

static inline __attribute__((always_inline)) void vq_step(__m512 *s, const __m512 *w, size_t d,
                                                          const float *x)
{
    __m512 v = _mm512_mul_ps(w[0], _mm512_set1_ps(x[0]));
    for (size_t i = 1; i < d; i++) v = _mm512_add_ps(v, _mm512_mul_ps(w[i], _mm512_set1_ps(x[i])));
    *s = _mm512_add_ps(*s, v);
}

static inline __attribute__((always_inline)) void vq_store(__m512 *s, float *y, size_t nrows)
{
    __m512 t = _mm512_add_ps(_mm512_add_ps(s[0], s[1]), _mm512_add_ps(s[2], s[3]));
    _mm512_mask_storeu_ps(y, (__mmask16)((1u << nrows) - 1), t);
}

/* Batches up to NB_DIRECT: decode a position, use it at once. */
static inline __attribute__((always_inline)) void vq_direct(const lq_vqd_pack *p, const float *X,
                                                            size_t nb, size_t tile, int mode,
                                                            float *Y, size_t ldy, size_t nrows,
                                                            size_t d)
{
    const uint8_t *tc = p->codes + tile * p->tile_code_bytes;
    __m512 s[NB_DIRECT][4];
    for (size_t b = 0; b < nb; b++) s[b][0] = s[b][1] = s[b][2] = s[b][3] = _mm512_setzero_ps();
    vq_look L;
    for (size_t cg = 0; cg < p->ncg; cg++) {
        size_t j0 = cg * p->gcv, j1 = j0 + p->gcv < p->nvec ? j0 + p->gcv : p->nvec;
        vq_look_init(p, tile, cg, mode, &L);
        size_t j = j0;
        if ((mode == 0 || mode == 3) && p->cw == 4) {
            /* vpermps reads bits 3:0 of the index only: the low nibble needs
             * no mask, and both nibbles of a position pair share one load
             * (vpermt2ps of mode 3 reads bits 4:0: mask, then the lane offset) */
            for (; j < j1; j++) {
                if (!(j & 1) && j + 1 < j1) {
                    __m512i v = _mm512_cvtepu8_epi32(
                        _mm_loadu_si128((const __m128i *)(const void *)(tc + (j >> 1) * 16)));
                    __m512i c1 = _mm512_srli_epi32(v, 4);
                    __m512 w0[8], w1[8];
                    if (mode == 3) {
                        v = _mm512_or_si512(_mm512_and_si512(v, _mm512_set1_epi32(15)), L.off);
                        c1 = _mm512_or_si512(c1, L.off);
                        for (size_t i = 0; i < d; i++) {
                            w0[i] = _mm512_permutex2var_ps(L.lo[i], v, L.hi[i]);
                            w1[i] = _mm512_permutex2var_ps(L.lo[i], c1, L.hi[i]);
                        }
                    } else {
                        for (size_t i = 0; i < d; i++) {
                            w0[i] = _mm512_permutexvar_ps(v, L.lo[i]);
                            w1[i] = _mm512_permutexvar_ps(c1, L.lo[i]);
                        }
                    }
                    for (size_t b = 0; b < nb; b++) {
                        vq_step(&s[b][j & 3], w0, d, X + b * p->cols + j * d);
                        vq_step(&s[b][(j + 1) & 3], w1, d, X + b * p->cols + (j + 1) * d);
                    }
                    j++;
                    continue;
                }
                __m512i c = vq_codes(p, tc, j);
                __m512 w[8];
                for (size_t i = 0; i < d; i++) w[i] = vq_lookup(p, &L, i, c);
                for (size_t b = 0; b < nb; b++)
                    vq_step(&s[b][j & 3], w, d, X + b * p->cols + j * d);
            }
        }
        for (; j < j1; j++) {
            __m512i c = vq_codes(p, tc, j);
            __m512 w[8];
            for (size_t i = 0; i < d; i++) w[i] = vq_lookup(p, &L, i, c);
            for (size_t b = 0; b < nb; b++) vq_step(&s[b][j & 3], w, d, X + b * p->cols + j * d);
        }
    }
    for (size_t b = 0; b < nb; b++) vq_store(s[b], Y + b * ldy + tile * LQ_KERN_TILE, nrows);
}

/* Larger batches: decode a block of positions once, then every vector. */
static void vq_buffered(const lq_vqd_pack *p, const float *X, size_t batch, size_t tile, int mode,
                        float *Y, size_t ldy, size_t nrows)
{
    const uint8_t *tc = p->codes + tile * p->tile_code_bytes;
    size_t d = p->d, pb = VQ_BLOCK_FLOATS / d;
    __m512 acc[MAX_BATCH][4];
    __m512 buf[VQ_BLOCK_FLOATS];
    for (size_t b = 0; b < batch; b++)
        acc[b][0] = acc[b][1] = acc[b][2] = acc[b][3] = _mm512_setzero_ps();
    vq_look L;
    for (size_t cg = 0; cg < p->ncg; cg++) {
        size_t j0 = cg * p->gcv, j1 = j0 + p->gcv < p->nvec ? j0 + p->gcv : p->nvec;
        vq_look_init(p, tile, cg, mode, &L);
        for (size_t jb = j0; jb < j1; jb += pb) {
            size_t je = jb + pb < j1 ? jb + pb : j1;
            for (size_t j = jb; j < je; j++) {
                __m512i c = vq_codes(p, tc, j);
                for (size_t i = 0; i < d; i++) buf[(j - jb) * d + i] = vq_lookup(p, &L, i, c);
            }
            for (size_t b = 0; b < batch; b++) {
                __m512 s[4] = {acc[b][0], acc[b][1], acc[b][2], acc[b][3]};
                const float *x = X + b * p->cols;
                for (size_t j = jb; j < je; j++)
                    vq_step(&s[j & 3], buf + (j - jb) * d, d, x + j * d);
                acc[b][0] = s[0];
                acc[b][1] = s[1];
                acc[b][2] = s[2];
                acc[b][3] = s[3];
            }
        }
    }
    for (size_t b = 0; b < batch; b++) vq_store(acc[b], Y + b * ldy + tile * LQ_KERN_TILE, nrows);
}

void lq_kern_vqd_avx512(const void *pack, const void *act, size_t batch, float *Y, size_t ldy,
                        size_t r0, size_t r1)
{
    const lq_vqd_pack *p = pack;
    const float *X = act;
    for (size_t tile = r0 / LQ_KERN_TILE; tile * LQ_KERN_TILE < r1; tile++) {
        size_t nrows = r1 - tile * LQ_KERN_TILE;
        if (nrows > LQ_KERN_TILE) nrows = LQ_KERN_TILE;
        int u = p->uniform[tile];
        int mode = u == 1 ? (p->K <= 16 ? 0 : p->K <= 32 ? 1 : 2) : u >= 2 && p->K <= 16 ? 3 : 2;
        if (batch > NB_DIRECT) {
            for (size_t b0 = 0; b0 < batch; b0 += MAX_BATCH) {
                size_t nb = batch - b0 < MAX_BATCH ? batch - b0 : MAX_BATCH;
                vq_buffered(p, X + b0 * p->cols, nb, tile, mode, Y + b0 * ldy, ldy, nrows);
            }
            continue;
        }
#define VQ_MODES(NB, D)                                                                            \
    if (mode == 0)                                                                                 \
        vq_direct(p, X, NB, tile, 0, Y, ldy, nrows, D);                                            \
    else if (mode == 3)                                                                            \
        vq_direct(p, X, NB, tile, 3, Y, ldy, nrows, D);                                            \
    else if (mode == 1)                                                                            \
        vq_direct(p, X, NB, tile, 1, Y, ldy, nrows, D);                                            \
    else                                                                                           \
        vq_direct(p, X, NB, tile, 2, Y, ldy, nrows, D);
#define VQ_DIMS(NB)                                                                                \
    switch (p->d) {                                                                                \
    case 1: VQ_MODES(NB, 1) break;                                                                 \
    case 2: VQ_MODES(NB, 2) break;                                                                 \
    case 4: VQ_MODES(NB, 4) break;                                                                 \
    default: VQ_MODES(NB, 8) break;                                                                \
    }
        if (batch == 1) {
            VQ_DIMS(1)
        } else {
            VQ_DIMS(2)
        }
#undef VQ_DIMS
#undef VQ_MODES
    }
}

#define AQ_NB 4
#define AQ_FN lq_kern_aqd_avx512
#include "simd/kern_dec_aq.h"

void lq_kern_vq_avx512(const void *pack, const void *act, size_t batch, float *Y, size_t ldy,
                       size_t r0, size_t r1)
{
    const lq_vq_kpack *k = pack;
    if (k->dec)
        lq_kern_vqd_avx512(k->dec, act, batch, Y, ldy, r0, r1);
    else
        lq_kern_lut_avx512(k->lut, act, batch, Y, ldy, r0, r1);
}

void lq_kern_aq_avx512(const void *pack, const void *act, size_t batch, float *Y, size_t ldy,
                       size_t r0, size_t r1)
{
    const lq_aq_kpack *k = pack;
    if (k->dec)
        lq_kern_aqd_avx512(k->dec, act, batch, Y, ldy, r0, r1);
    else
        lq_kern_lut_avx512(k->lut, act, batch, Y, ldy, r0, r1);
}

/* ---- AQ FAST: int8 tables, 64 rows in the byte lanes -------------------- */
/* A 256-entry byte lookup is two vpermt2b on the table's halves, selected
 * by bit 7 of the code (vpmovb2m + blend). */
/* NT tiles (up to 4 x 64 rows) per pass: each position's table is loaded
 * into registers once for all of them (the tables, 256 KiB per vector at
 * 4096 columns, are read from L2 once per 256 rows instead of per 64). */
#define AQ8_NT 4

static inline __attribute__((always_inline)) void aq8_tiles(const lq_aq8_pack *p, const void *act,
                                                            size_t stride, size_t batch, float *Y,
                                                            size_t ldy, size_t r0, size_t r1,
                                                            size_t tile0, size_t nt)
{
    for (size_t b = 0; b < batch; b++) {
        const int8_t *T = (const int8_t *)act + b * stride;
        const float *sb =
            (const float *)(const void *)((const uint8_t *)act + b * stride + p->npos * 256 + 64);
        __m512 f[AQ8_NT][4];
        for (size_t t = 0; t < nt; t++)
            for (size_t i = 0; i < 4; i++) f[t][i] = _mm512_setzero_ps();
        for (size_t k = 0; k < p->nblk; k++) {
            size_t q0 = k * LQ_AQ8_BLK, q1 = q0 + LQ_AQ8_BLK < p->npos ? q0 + LQ_AQ8_BLK : p->npos;
            __m512i alo[AQ8_NT], ahi[AQ8_NT];
            for (size_t t = 0; t < nt; t++) alo[t] = ahi[t] = _mm512_setzero_si512();
            for (size_t q = q0; q < q1; q++) {
                const int8_t *tq = T + q * 256;
                __m512i t0 = _mm512_loadu_si512((const void *)tq);
                __m512i t1 = _mm512_loadu_si512((const void *)(tq + 64));
                __m512i t2 = _mm512_loadu_si512((const void *)(tq + 128));
                __m512i t3 = _mm512_loadu_si512((const void *)(tq + 192));
                for (size_t t = 0; t < nt; t++) {
                    const uint8_t *tc = p->codes + ((tile0 + t) * p->npos + q) * LQ_AQ8_TILE;
                    __m512i idx = _mm512_loadu_si512((const void *)tc);
                    __m512i lo = _mm512_permutex2var_epi8(t0, idx, t1);
                    __m512i up = _mm512_permutex2var_epi8(t2, idx, t3);
                    __m512i v = _mm512_mask_blend_epi8(_mm512_movepi8_mask(idx), lo, up);
                    alo[t] =
                        _mm512_add_epi16(alo[t], _mm512_cvtepi8_epi16(_mm512_castsi512_si256(v)));
                    ahi[t] = _mm512_add_epi16(
                        ahi[t], _mm512_cvtepi8_epi16(_mm512_extracti64x4_epi64(v, 1)));
                }
            }
            __m512 s = _mm512_set1_ps(sb[k]);
            for (size_t t = 0; t < nt; t++) {
                __m512i w[4] = {_mm512_cvtepi16_epi32(_mm512_castsi512_si256(alo[t])),
                                _mm512_cvtepi16_epi32(_mm512_extracti64x4_epi64(alo[t], 1)),
                                _mm512_cvtepi16_epi32(_mm512_castsi512_si256(ahi[t])),
                                _mm512_cvtepi16_epi32(_mm512_extracti64x4_epi64(ahi[t], 1))};
                for (size_t i = 0; i < 4; i++)
                    f[t][i] = _mm512_add_ps(f[t][i], _mm512_mul_ps(_mm512_cvtepi32_ps(w[i]), s));
            }
        }
        for (size_t t = 0; t < nt; t++)
            for (size_t i = 0; i < 4; i++) {
                size_t rs = (tile0 + t) * LQ_AQ8_TILE + 16 * i;
                if (rs + 16 <= r0 || rs >= r1) continue;
                __m512 y = _mm512_mul_ps(_mm512_loadu_ps(p->scales + rs), f[t][i]);
                unsigned m = 0xffffu;
                if (rs < r0) m &= ~((1u << (r0 - rs)) - 1u);
                if (rs + 16 > r1) m &= (1u << (r1 - rs)) - 1u;
                _mm512_mask_storeu_ps(Y + b * ldy + rs, (__mmask16)m, y);
            }
    }
}

void lq_kern_aq8_avx512(const lq_aq8_pack *p, const void *act, size_t batch, float *Y, size_t ldy,
                        size_t r0, size_t r1)
{
    size_t stride = lq_aq8_act_stride(p);
    size_t t0 = r0 / LQ_AQ8_TILE, t1 = (r1 + LQ_AQ8_TILE - 1) / LQ_AQ8_TILE;
    for (size_t tile = t0; tile < t1; tile += AQ8_NT) {
        size_t nt = t1 - tile < AQ8_NT ? t1 - tile : AQ8_NT;
        switch (nt) {
        case 1: aq8_tiles(p, act, stride, batch, Y, ldy, r0, r1, tile, 1); break;
        case 2: aq8_tiles(p, act, stride, batch, Y, ldy, r0, r1, tile, 2); break;
        case 3: aq8_tiles(p, act, stride, batch, Y, ldy, r0, r1, tile, 3); break;
        default: aq8_tiles(p, act, stride, batch, Y, ldy, r0, r1, tile, 4); break;
        }
    }
}

void lq_kern_aqf_avx512(const void *pack, const void *act, size_t batch, float *Y, size_t ldy,
                        size_t r0, size_t r1)
{
    const lq_aq_kpack *k = pack;
    if (k->q8)
        lq_kern_aq8_avx512(k->q8, act, batch, Y, ldy, r0, r1);
    else
        lq_kern_aq_avx512(pack, act, batch, Y, ldy, r0, r1);
}

void lq_aq8_quant_avx512(const float *y, size_t n, float inv, int8_t *o)
{
    size_t e = 0;
    __m512 vi = _mm512_set1_ps(inv), hi = _mm512_set1_ps(127.0f), lo = _mm512_set1_ps(-127.0f);
    for (; e + 16 <= n; e += 16) {
        __m512 c = _mm512_mul_ps(_mm512_loadu_ps(y + e), vi);
        c = _mm512_max_ps(_mm512_min_ps(c, hi), lo);
        __mmask16 neg = _mm512_cmp_ps_mask(c, _mm512_setzero_ps(), _CMP_LT_OQ);
        __m512 h = _mm512_mask_blend_ps(neg, _mm512_set1_ps(0.5f), _mm512_set1_ps(-0.5f));
        __m128i b = _mm512_cvtepi32_epi8(_mm512_cvttps_epi32(_mm512_add_ps(c, h)));
        _mm_storeu_si128((__m128i *)(void *)(o + e), b);
    }
    if (e < n) lq_aq8_quant_scalar(y + e, n - e, inv, o + e);
}
