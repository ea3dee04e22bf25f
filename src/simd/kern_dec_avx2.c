/* Decode kernels of VQ and AQ for AVX2 (the float operations of kern_dec.h,
 * in the same order as the scalar reference). VQ: a tile is two halves of 8
 * row lanes; the lookup is vpermps (K <= 8) or two vpermps and a blend
 * (K <= 16) when the tile's rows share their codebooks, else a gather. AQ:
 * one row at a time, the four partial sums P_0..P_3 in registers, chunks
 * decoded with 128-bit (half) or 256-bit (float) loads and reused by two
 * activation vectors at a time. */
#include <immintrin.h>

#include "simd/kern_dec.h"

#define NB2 2

static inline __attribute__((always_inline)) __m256i
vq_codes8(const lq_vqd_pack *p, const uint8_t *tc, size_t pos, size_t h)
{
    switch (p->cw) {
    case 4: {
        __m256i v = _mm256_cvtepu8_epi32(
            _mm_loadl_epi64((const __m128i *)(const void *)(tc + (pos >> 1) * 16 + 8 * h)));
        if (pos & 1) v = _mm256_srli_epi32(v, 4);
        return _mm256_and_si256(v, _mm256_set1_epi32(15));
    }
    case 8:
        return _mm256_cvtepu8_epi32(
            _mm_loadl_epi64((const __m128i *)(const void *)(tc + pos * 16 + 8 * h)));
    default:
        return _mm256_cvtepu16_epi32(
            _mm_loadu_si128((const __m128i *)(const void *)(tc + pos * 32 + 16 * h)));
    }
}

static inline __attribute__((always_inline)) void vq_half(const lq_vqd_pack *p, const float *X,
                                                          size_t nb, size_t tile, size_t h,
                                                          int mode, float *Y, size_t ldy,
                                                          size_t nrows, size_t d)
{
    const uint8_t *tc = p->codes + tile * p->tile_code_bytes;
    __m256 s[NB2][4];
    for (size_t b = 0; b < nb; b++) s[b][0] = s[b][1] = s[b][2] = s[b][3] = _mm256_setzero_ps();
    const uint32_t *lcb = p->lane_cb + tile * LQ_KERN_TILE + 8 * h;
    for (size_t cg = 0; cg < p->ncg; cg++) {
        size_t j0 = cg * p->gcv, j1 = j0 + p->gcv < p->nvec ? j0 + p->gcv : p->nvec;
        __m256 lo[8], hi[8];
        __m256i base[8];
        if (mode < 2) {
            const float *c = p->cb + ((size_t)p->lane_cb[tile * LQ_KERN_TILE] + cg) * d * p->stride;
            for (size_t i = 0; i < d; i++) {
                lo[i] = _mm256_loadu_ps(c + i * p->stride);
                hi[i] = _mm256_loadu_ps(c + i * p->stride + 8);
            }
        } else {
            __m256i g = _mm256_add_epi32(_mm256_loadu_si256((const __m256i *)(const void *)lcb),
                                         _mm256_set1_epi32((int)cg));
            g = _mm256_mullo_epi32(g, _mm256_set1_epi32((int)(d * p->stride)));
            for (size_t i = 0; i < d; i++)
                base[i] = _mm256_add_epi32(g, _mm256_set1_epi32((int)(i * p->stride)));
        }
        for (size_t j = j0; j < j1; j++) {
            __m256i c = vq_codes8(p, tc, j, h);
            __m256 w[8];
            if (mode == 0) {
                for (size_t i = 0; i < d; i++) w[i] = _mm256_permutevar8x32_ps(lo[i], c);
            } else if (mode == 1) {
                __m256 sel = _mm256_castsi256_ps(_mm256_cmpgt_epi32(c, _mm256_set1_epi32(7)));
                for (size_t i = 0; i < d; i++)
                    w[i] = _mm256_blendv_ps(_mm256_permutevar8x32_ps(lo[i], c),
                                            _mm256_permutevar8x32_ps(hi[i], c), sel);
            } else {
                for (size_t i = 0; i < d; i++)
                    w[i] = _mm256_i32gather_ps(p->cb, _mm256_add_epi32(base[i], c), 4);
            }
            for (size_t b = 0; b < nb; b++) {
                const float *x = X + b * p->cols + j * d;
                __m256 v = _mm256_mul_ps(w[0], _mm256_set1_ps(x[0]));
                for (size_t i = 1; i < d; i++)
                    v = _mm256_add_ps(v, _mm256_mul_ps(w[i], _mm256_set1_ps(x[i])));
                s[b][j & 3] = _mm256_add_ps(s[b][j & 3], v);
            }
        }
    }
    for (size_t b = 0; b < nb; b++) {
        __m256 t = _mm256_add_ps(_mm256_add_ps(s[b][0], s[b][1]), _mm256_add_ps(s[b][2], s[b][3]));
        float o[8];
        _mm256_storeu_ps(o, t);
        for (size_t k = 0; k < 8 && 8 * h + k < nrows; k++)
            Y[b * ldy + tile * LQ_KERN_TILE + 8 * h + k] = o[k];
    }
}

void lq_kern_vqd_avx2(const void *pack, const void *act, size_t batch, float *Y, size_t ldy,
                      size_t r0, size_t r1)
{
    const lq_vqd_pack *p = pack;
    const float *X = act;
    for (size_t tile = r0 / LQ_KERN_TILE; tile * LQ_KERN_TILE < r1; tile++) {
        size_t nrows = r1 - tile * LQ_KERN_TILE;
        if (nrows > LQ_KERN_TILE) nrows = LQ_KERN_TILE;
        int mode = p->uniform[tile] != 1 ? 2 : p->K <= 8 ? 0 : p->K <= 16 ? 1 : 2;
        for (size_t h = 0; h < 2 && 8 * h < nrows; h++)
            for (size_t b0 = 0; b0 < batch; b0 += NB2) {
                size_t nb = batch - b0 < NB2 ? batch - b0 : NB2;
                const float *x = X + b0 * p->cols;
                float *y = Y + b0 * ldy;
#define VQ_MODES(NB, D)                                                                            \
    if (mode == 0)                                                                                 \
        vq_half(p, x, NB, tile, h, 0, y, ldy, nrows, D);                                           \
    else if (mode == 1)                                                                            \
        vq_half(p, x, NB, tile, h, 1, y, ldy, nrows, D);                                           \
    else                                                                                           \
        vq_half(p, x, NB, tile, h, 2, y, ldy, nrows, D);
#define VQ_DIMS(NB)                                                                                \
    switch (p->d) {                                                                                \
    case 1: VQ_MODES(NB, 1) break;                                                                 \
    case 2: VQ_MODES(NB, 2) break;                                                                 \
    case 4: VQ_MODES(NB, 4) break;                                                                 \
    default: VQ_MODES(NB, 8) break;                                                                \
    }
                if (nb == 1) {
                    VQ_DIMS(1)
                } else {
                    VQ_DIMS(2)
                }
#undef VQ_DIMS
#undef VQ_MODES
            }
    }
}

#define AQ_NB 2
#define AQ_FN lq_kern_aqd_avx2
#include "simd/kern_dec_aq.h"

void lq_kern_vq_avx2(const void *pack, const void *act, size_t batch, float *Y, size_t ldy,
                     size_t r0, size_t r1)
{
    const lq_vq_kpack *k = pack;
    if (k->dec)
        lq_kern_vqd_avx2(k->dec, act, batch, Y, ldy, r0, r1);
    else
        lq_kern_lut_avx2(k->lut, act, batch, Y, ldy, r0, r1);
}

void lq_kern_aq_avx2(const void *pack, const void *act, size_t batch, float *Y, size_t ldy,
                     size_t r0, size_t r1)
{
    const lq_aq_kpack *k = pack;
    if (k->dec)
        lq_kern_aqd_avx2(k->dec, act, batch, Y, ldy, r0, r1);
    else
        lq_kern_lut_avx2(k->lut, act, batch, Y, ldy, r0, r1);
}

/* ---- AQ FAST: int8 tables; 8 rows per register, 32-bit gathers of the
 * table bytes (the 64 bytes of padding after the tables keep them in
 * bounds), integer sums per block as the scalar reference. */
void lq_kern_aq8_avx2(const lq_aq8_pack *p, const void *act, size_t batch, float *Y, size_t ldy,
                      size_t r0, size_t r1)
{
    size_t stride = lq_aq8_act_stride(p);
    for (size_t r8 = r0; r8 < r1; r8 += 8) {
        size_t tile = r8 / LQ_AQ8_TILE, lane = r8 % LQ_AQ8_TILE;
        const uint8_t *tc = p->codes + tile * p->npos * LQ_AQ8_TILE + lane;
        for (size_t b = 0; b < batch; b++) {
            const int8_t *T = (const int8_t *)act + b * stride;
            const float *sb = (const float *)(const void *)((const uint8_t *)act + b * stride +
                                                            p->npos * 256 + 64);
            __m256 f = _mm256_setzero_ps();
            for (size_t k = 0; k < p->nblk; k++) {
                size_t q0 = k * LQ_AQ8_BLK,
                       q1 = q0 + LQ_AQ8_BLK < p->npos ? q0 + LQ_AQ8_BLK : p->npos;
                __m256i acc = _mm256_setzero_si256();
                for (size_t q = q0; q < q1; q++) {
                    __m256i idx = _mm256_cvtepu8_epi32(
                        _mm_loadl_epi64((const __m128i *)(const void *)(tc + q * LQ_AQ8_TILE)));
                    __m256i v =
                        _mm256_i32gather_epi32((const int *)(const void *)(T + q * 256), idx, 1);
                    acc = _mm256_add_epi32(acc, _mm256_srai_epi32(_mm256_slli_epi32(v, 24), 24));
                }
                f = _mm256_add_ps(f, _mm256_mul_ps(_mm256_cvtepi32_ps(acc), _mm256_set1_ps(sb[k])));
            }
            float o[8];
            _mm256_storeu_ps(o, _mm256_mul_ps(_mm256_loadu_ps(p->scales + r8), f));
            for (size_t i = 0; i < 8 && r8 + i < r1; i++) Y[b * ldy + r8 + i] = o[i];
        }
    }
}

void lq_kern_aqf_avx2(const void *pack, const void *act, size_t batch, float *Y, size_t ldy,
                      size_t r0, size_t r1)
{
    const lq_aq_kpack *k = pack;
    if (k->q8)
        lq_kern_aq8_avx2(k->q8, act, batch, Y, ldy, r0, r1);
    else
        lq_kern_aq_avx2(pack, act, batch, Y, ldy, r0, r1);
}

void lq_aq8_quant_avx2(const float *y, size_t n, float inv, int8_t *o)
{
    size_t e = 0;
    __m256 vi = _mm256_set1_ps(inv), hi = _mm256_set1_ps(127.0f), lo = _mm256_set1_ps(-127.0f);
    for (; e + 8 <= n; e += 8) {
        __m256 c = _mm256_mul_ps(_mm256_loadu_ps(y + e), vi);
        c = _mm256_max_ps(_mm256_min_ps(c, hi), lo);
        __m256 neg = _mm256_cmp_ps(c, _mm256_setzero_ps(), _CMP_LT_OQ);
        __m256 h = _mm256_blendv_ps(_mm256_set1_ps(0.5f), _mm256_set1_ps(-0.5f), neg);
        __m256i iv = _mm256_cvttps_epi32(_mm256_add_ps(c, h));
        int32_t t[8];
        _mm256_storeu_si256((__m256i *)(void *)t, iv);
        for (size_t k = 0; k < 8; k++) o[e + k] = (int8_t)t[k];
    }
    if (e < n) lq_aq8_quant_scalar(y + e, n - e, inv, o + e);
}
