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
 * AQ: one row at a time, four 8-column chunks per step as two registers
 * (chunks u, u+1 and u+2, u+3 = the partial sums P_0|P_1 and P_2|P_3); the
 * chunks are decoded with 256-bit loads of the codebook entries (vcvtph2ps
 * for halves) and reused by up to NB_AQ activation vectors. */
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
        __m512i v = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(const void *)(tc + (pos >> 1) * 16)));
        if (pos & 1) v = _mm512_srli_epi32(v, 4);
        return _mm512_and_si512(v, _mm512_set1_epi32(15));
    }
    case 8:
        return _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(const void *)(tc + pos * 16)));
    default:
        return _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(const void *)(tc + pos * 32)));
    }
}

/* The tile's lookup state for one column group: registers or gather bases. */
typedef struct vq_look {
    int mode; /* 0: vpermps, 1: vpermt2ps, 2: gather */
    __m512 lo[8], hi[8];
    __m512i base[8];
} vq_look;

static inline __attribute__((always_inline)) void
vq_look_init(const lq_vqd_pack *p, size_t tile, size_t cg, int mode, vq_look *L)
{
    size_t d = p->d;
    L->mode = mode;
    if (mode < 2) {
        const float *c = p->cb + ((size_t)p->lane_cb[tile * LQ_KERN_TILE] + cg) * d * p->stride;
        for (size_t i = 0; i < d; i++) {
            L->lo[i] = _mm512_loadu_ps(c + i * p->stride);
            if (mode == 1) L->hi[i] = _mm512_loadu_ps(c + i * p->stride + 16);
        }
    } else {
        __m512i g = _mm512_add_epi32(
            _mm512_loadu_si512((const void *)(p->lane_cb + tile * LQ_KERN_TILE)),
            _mm512_set1_epi32((int)cg));
        g = _mm512_mullo_epi32(g, _mm512_set1_epi32((int)(d * p->stride)));
        for (size_t i = 0; i < d; i++)
            L->base[i] = _mm512_add_epi32(g, _mm512_set1_epi32((int)(i * p->stride)));
    }
}

static inline __attribute__((always_inline)) __m512 vq_lookup(const lq_vqd_pack *p,
                                                              const vq_look *L, size_t i,
                                                              __m512i c)
{
    if (L->mode == 0) return _mm512_permutexvar_ps(c, L->lo[i]);
    if (L->mode == 1) return _mm512_permutex2var_ps(L->lo[i], c, L->hi[i]);
    return _mm512_i32gather_ps(_mm512_add_epi32(L->base[i], c), p->cb, 4);
}

static inline __attribute__((always_inline)) void
vq_step(__m512 *s, const __m512 *w, size_t d, const float *x)
{
    __m512 v = _mm512_mul_ps(w[0], _mm512_set1_ps(x[0]));
    for (size_t i = 1; i < d; i++) v = _mm512_add_ps(v, _mm512_mul_ps(w[i], _mm512_set1_ps(x[i])));
    *s = _mm512_add_ps(*s, v);
}

static inline __attribute__((always_inline)) void
vq_store(__m512 *s, float *y, size_t nrows)
{
    __m512 t = _mm512_add_ps(_mm512_add_ps(s[0], s[1]), _mm512_add_ps(s[2], s[3]));
    _mm512_mask_storeu_ps(y, (__mmask16)((1u << nrows) - 1), t);
}

/* Batches up to NB_DIRECT: decode a position, use it at once. */
static inline __attribute__((always_inline)) void
vq_direct(const lq_vqd_pack *p, const float *X, size_t nb, size_t tile, int mode, float *Y,
          size_t ldy, size_t nrows, size_t d)
{
    const uint8_t *tc = p->codes + tile * p->tile_code_bytes;
    __m512 s[NB_DIRECT][4];
    for (size_t b = 0; b < nb; b++) s[b][0] = s[b][1] = s[b][2] = s[b][3] = _mm512_setzero_ps();
    vq_look L;
    for (size_t cg = 0; cg < p->ncg; cg++) {
        size_t j0 = cg * p->gcv, j1 = j0 + p->gcv < p->nvec ? j0 + p->gcv : p->nvec;
        vq_look_init(p, tile, cg, mode, &L);
        for (size_t j = j0; j < j1; j++) {
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
                for (size_t j = jb; j < je; j++) vq_step(&s[j & 3], buf + (j - jb) * d, d, x + j * d);
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
        int mode = !p->uniform[tile] ? 2 : p->K <= 16 ? 0 : p->K <= 32 ? 1 : 2;
        if (batch > NB_DIRECT) {
            for (size_t b0 = 0; b0 < batch; b0 += MAX_BATCH) {
                size_t nb = batch - b0 < MAX_BATCH ? batch - b0 : MAX_BATCH;
                vq_buffered(p, X + b0 * p->cols, nb, tile, mode, Y + b0 * ldy, ldy, nrows);
            }
            continue;
        }
#define VQ_MODES(NB, D)                                                                       \
    if (mode == 0) vq_direct(p, X, NB, tile, 0, Y, ldy, nrows, D);                            \
    else if (mode == 1) vq_direct(p, X, NB, tile, 1, Y, ldy, nrows, D);                       \
    else vq_direct(p, X, NB, tile, 2, Y, ldy, nrows, D);
#define VQ_DIMS(NB)                                                                           \
    switch (p->d) {                                                                           \
    case 1: VQ_MODES(NB, 1) break;                                                            \
    case 2: VQ_MODES(NB, 2) break;                                                            \
    case 4: VQ_MODES(NB, 4) break;                                                            \
    default: VQ_MODES(NB, 8) break;                                                           \
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

/* ---- AQ ------------------------------------------------------------------ */
#define NB_AQ 8

/* The 8 values at element offset `at` of the codebooks, widened. */
static inline __attribute__((always_inline)) __m256i aq_h8(const lq_aqd_pack *p, size_t at)
{
    return _mm256_castsi128_si256(
        _mm_loadu_si128((const __m128i *)(const void *)((const uint8_t *)p->cb + 2 * at)));
}

static inline __attribute__((always_inline)) size_t aq_code(const lq_aqd_pack *p,
                                                            const uint8_t *c, size_t i)
{
    size_t v = p->codeb == 1 ? c[i] : (size_t)c[2 * i] | ((size_t)c[2 * i + 1] << 8);
    return v & (p->K - 1);
}

/* Decoded chunks u and u + 1 (u + 1 < nchunk unless `one`) as one register. */
static inline __attribute__((always_inline)) __m512 aq_pair(const lq_aqd_pack *p,
                                                            const uint8_t *rc, size_t u, int one,
                                                            size_t cpg)
{
    size_t j0 = u / cpg, o0 = (u % cpg) * 8, j1 = (u + 1) / cpg, o1 = ((u + 1) % cpg) * 8;
    __m512 w = _mm512_setzero_ps();
    for (size_t m = 0; m < p->M; m++) {
        size_t a0 = (m * p->K + aq_code(p, rc, j0 * p->M + m)) * p->g + o0;
        size_t a1 = one ? a0 : (m * p->K + aq_code(p, rc, j1 * p->M + m)) * p->g + o1;
        __m512 c;
        if (p->half) {
            __m256i h = _mm256_inserti128_si256(aq_h8(p, a0), _mm256_castsi256_si128(aq_h8(p, a1)), 1);
            c = _mm512_cvtph_ps(h);
        } else {
            const float *f = p->cb;
            c = _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_loadu_ps(f + a0)),
                                   _mm256_loadu_ps(f + a1), 1);
        }
        w = m ? _mm512_add_ps(w, c) : c;
    }
    return w;
}

static inline __attribute__((always_inline)) void
aq_rows_nb(const lq_aqd_pack *p, const float *X, size_t nb, float *Y, size_t ldy, size_t r,
           size_t cpg)
{
    size_t nchunk = p->cols / 8;
    const uint8_t *rc = p->codes + r * p->ng * p->M * p->codeb;
    __m512 A[NB_AQ], B[NB_AQ];
    for (size_t b = 0; b < nb; b++) A[b] = B[b] = _mm512_setzero_ps();
    size_t u = 0;
    for (; u + 4 <= nchunk; u += 4) {
        __m512 wa = aq_pair(p, rc, u, 0, cpg), wb = aq_pair(p, rc, u + 2, 0, cpg);
        for (size_t b = 0; b < nb; b++) {
            const float *x = X + b * p->cols + 8 * u;
            A[b] = _mm512_add_ps(A[b], _mm512_mul_ps(wa, _mm512_loadu_ps(x)));
            B[b] = _mm512_add_ps(B[b], _mm512_mul_ps(wb, _mm512_loadu_ps(x + 16)));
        }
    }
    size_t rem = nchunk - u;
    if (rem) {
        /* 1 to 3 chunks left: P_0 (|P_1) in A, P_2 in B */
        __m512 wa = aq_pair(p, rc, u, rem < 2, cpg);
        __m512 wb = rem == 3 ? aq_pair(p, rc, u + 2, 1, cpg) : _mm512_setzero_ps();
        __mmask16 ma = rem >= 2 ? 0xffff : 0x00ff;
        for (size_t b = 0; b < nb; b++) {
            const float *x = X + b * p->cols + 8 * u;
            __m512 xa = _mm512_maskz_loadu_ps(ma, x);
            A[b] = _mm512_mask_add_ps(A[b], ma, A[b], _mm512_mul_ps(wa, xa));
            if (rem == 3)
                B[b] = _mm512_mask_add_ps(B[b], 0x00ff, B[b],
                                          _mm512_mul_ps(wb, _mm512_maskz_loadu_ps(0x00ff, x + 16)));
        }
    }
    for (size_t b = 0; b < nb; b++) {
        __m256 p01 = _mm256_add_ps(_mm512_castps512_ps256(A[b]), _mm512_extractf32x8_ps(A[b], 1));
        __m256 p23 = _mm256_add_ps(_mm512_castps512_ps256(B[b]), _mm512_extractf32x8_ps(B[b], 1));
        float z[8];
        _mm256_storeu_ps(z, _mm256_add_ps(p01, p23));
        float y = ((z[0] + z[1]) + (z[2] + z[3])) + ((z[4] + z[5]) + (z[6] + z[7]));
        Y[b * ldy + r] = p->scales[r] * y;
    }
}

/* nb and the chunks per group as constants (shifts instead of divisions). */
static inline __attribute__((always_inline)) void
aq_rows_cpg(const lq_aqd_pack *p, const float *x, size_t nb, float *y, size_t ldy, size_t r,
            size_t cpg)
{
    switch (nb) {
    case 1: aq_rows_nb(p, x, 1, y, ldy, r, cpg); break;
    case 2: aq_rows_nb(p, x, 2, y, ldy, r, cpg); break;
    case 4: aq_rows_nb(p, x, 4, y, ldy, r, cpg); break;
    case 8: aq_rows_nb(p, x, 8, y, ldy, r, cpg); break;
    default: aq_rows_nb(p, x, nb, y, ldy, r, cpg); break;
    }
}

void lq_kern_aqd_avx512(const void *pack, const void *act, size_t batch, float *Y, size_t ldy,
                        size_t r0, size_t r1)
{
    const lq_aqd_pack *p = pack;
    const float *X = act;
    size_t cpg = p->g / 8;
    for (size_t r = r0; r < r1; r++)
        for (size_t b0 = 0; b0 < batch; b0 += NB_AQ) {
            size_t nb = batch - b0 < NB_AQ ? batch - b0 : NB_AQ;
            const float *x = X + b0 * p->cols;
            float *y = Y + b0 * ldy;
            switch (cpg) {
            case 1: aq_rows_cpg(p, x, nb, y, ldy, r, 1); break;
            case 2: aq_rows_cpg(p, x, nb, y, ldy, r, 2); break;
            default: aq_rows_cpg(p, x, nb, y, ldy, r, cpg); break;
            }
        }
}

void lq_kern_vq_avx512(const void *pack, const void *act, size_t batch, float *Y, size_t ldy,
                       size_t r0, size_t r1)
{
    const lq_vq_kpack *k = pack;
    if (k->dec) lq_kern_vqd_avx512(k->dec, act, batch, Y, ldy, r0, r1);
    else lq_kern_lut_avx512(k->lut, act, batch, Y, ldy, r0, r1);
}

void lq_kern_aq_avx512(const void *pack, const void *act, size_t batch, float *Y, size_t ldy,
                       size_t r0, size_t r1)
{
    const lq_aq_kpack *k = pack;
    if (k->dec) lq_kern_aqd_avx512(k->dec, act, batch, Y, ldy, r0, r1);
    else lq_kern_lut_avx512(k->lut, act, batch, Y, ldy, r0, r1);
}
