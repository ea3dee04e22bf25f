/* VQ FAST int8 path for AVX2: a tile is two halves of 8 row lanes. Per
 * 4-column chunk the four nibbles of each lane are extracted from the code
 * bytes of their pairs and packed into the lane's 4 index bytes (plus the
 * coordinate and row-block offsets), looked up in the tile's 64 bytes of
 * codebook values (four vpshufb and three byte blends) and multiplied
 * against the broadcast 4 activations with vpmaddubsw on |w| and sign(x, w)
 * (|w|, |x| <= 127: the pair sums cannot saturate), then vpmaddwd to int32.
 * Integer sums are exact, the float operations those of the scalar
 * reference in its order (kern_vq8.h). */
#include <immintrin.h>

#include "simd/kern_vq8.h"

#define NB_MAX 4

static inline __attribute__((always_inline)) __m256i look64(const __m256i T[4], __m256i ix)
{
    __m256i s4 = _mm256_slli_epi16(ix, 3), s5 = _mm256_slli_epi16(ix, 2);
    __m256i l01 =
        _mm256_blendv_epi8(_mm256_shuffle_epi8(T[0], ix), _mm256_shuffle_epi8(T[1], ix), s4);
    __m256i l23 =
        _mm256_blendv_epi8(_mm256_shuffle_epi8(T[2], ix), _mm256_shuffle_epi8(T[3], ix), s4);
    return _mm256_blendv_epi8(l01, l23, s5);
}

static inline __attribute__((always_inline)) void vq8_half(const lq_vq8_pack *p, const void *act,
                                                           size_t b0, size_t nb, size_t tile,
                                                           size_t h, float *Y, size_t ldy,
                                                           size_t nrows, size_t d)
{
    const lq_vqd_pack *dp = p->dec;
    const uint8_t *tc = dp->codes + tile * dp->tile_code_bytes;
    const __m256i offs = _mm256_loadu_si256((const void *)(p->offs + tile * 64 + 32 * h));
    const __m256i lsel = _mm256_cvtepu8_epi32(
        _mm_loadl_epi64((const __m128i *)(const void *)(p->lblk + tile * LQ_KERN_TILE + 8 * h)));
    const __m256i m15 = _mm256_set1_epi32(15), ones = _mm256_set1_epi16(1);
    const size_t rb0 = p->rb0[tile];
    lq_vq8_act_view a[NB_MAX];
    __m256 y[NB_MAX];
    for (size_t i = 0; i < nb; i++) {
        a[i] = lq_vq8_act_get(p, act, b0 + i);
        y[i] = _mm256_setzero_ps();
    }
    for (size_t g = 0; g < p->ncg; g++) {
        const int8_t *tb = p->tbl + (g * p->nrb + rb0) * p->kd;
        __m256i T[4];
        for (int q = 0; q < 4; q++)
            T[q] = _mm256_broadcastsi128_si256(
                _mm_loadu_si128((const __m128i *)(const void *)(tb + 16 * q)));
        const __m256 sc = _mm256_i32gather_ps(p->scl + g * p->nrb + rb0, lsel, 4);
        __m256 f[NB_MAX];
        for (size_t i = 0; i < nb; i++) f[i] = _mm256_setzero_ps();
        for (size_t k = g * p->gcb; k < lq_vq8_group_end(p, g); k++) {
            __m256i acc[NB_MAX];
            for (size_t i = 0; i < nb; i++) acc[i] = _mm256_setzero_si256();
            for (size_t col = 32 * k; col < 32 * k + 32; col += 4) {
                __m256i ix = offs;
                for (size_t kk = 0; kk < 4; kk++) {
                    size_t vec = (col + kk) / d;
                    __m256i b = _mm256_cvtepu8_epi32(_mm_loadl_epi64(
                        (const __m128i *)(const void *)(tc + (vec >> 1) * 16 + 8 * h)));
                    __m256i n = _mm256_and_si256(_mm256_srli_epi32(b, (int)(4 * (vec & 1))), m15);
                    ix = _mm256_or_si256(ix, _mm256_slli_epi32(n, (int)(8 * kk)));
                }
                __m256i w = look64(T, ix), aw = _mm256_sign_epi8(w, w);
                for (size_t i = 0; i < nb; i++) {
                    int32_t x4;
                    __builtin_memcpy(&x4, a[i].q + col, 4);
                    __m256i sx = _mm256_sign_epi8(_mm256_set1_epi32(x4), w);
                    acc[i] = _mm256_add_epi32(
                        acc[i], _mm256_madd_epi16(_mm256_maddubs_epi16(aw, sx), ones));
                }
            }
            for (size_t i = 0; i < nb; i++)
                f[i] = _mm256_add_ps(
                    f[i], _mm256_mul_ps(_mm256_cvtepi32_ps(acc[i]), _mm256_set1_ps(a[i].d[k])));
        }
        for (size_t i = 0; i < nb; i++) y[i] = _mm256_add_ps(y[i], _mm256_mul_ps(f[i], sc));
    }
    for (size_t i = 0; i < nb; i++) {
        float o[8];
        _mm256_storeu_ps(o, y[i]);
        float *dst = Y + (b0 + i) * ldy + tile * LQ_KERN_TILE + 8 * h;
        for (size_t l = 0; l < 8 && 8 * h + l < nrows; l++) dst[l] = o[l];
    }
}

void lq_kern_vq8_avx2(const lq_vq8_pack *p, const void *act, size_t batch, float *Y, size_t ldy,
                      size_t r0, size_t r1)
{
    for (size_t tile = r0 / LQ_KERN_TILE; tile * LQ_KERN_TILE < r1; tile++) {
        size_t nrows = r1 - tile * LQ_KERN_TILE;
        for (size_t h = 0; h < 2 && 8 * h < nrows; h++)
            for (size_t b0 = 0; b0 < batch; b0 += NB_MAX) {
                size_t nb = batch - b0 < NB_MAX ? batch - b0 : NB_MAX;
#define VQ8_NB(D)                                                                                  \
    switch (nb) {                                                                                  \
    case 1: vq8_half(p, act, b0, 1, tile, h, Y, ldy, nrows, D); break;                             \
    case 2: vq8_half(p, act, b0, 2, tile, h, Y, ldy, nrows, D); break;                             \
    case 3: vq8_half(p, act, b0, 3, tile, h, Y, ldy, nrows, D); break;                             \
    default: vq8_half(p, act, b0, 4, tile, h, Y, ldy, nrows, D); break;                            \
    }
                if (p->d == 1) {
                    VQ8_NB(1)
                } else if (p->d == 2) {
                    VQ8_NB(2)
                } else {
                    VQ8_NB(4)
                }
#undef VQ8_NB
            }
    }
}

void lq_kern_vqf_avx2(const void *pack, const void *act, size_t batch, float *Y, size_t ldy,
                      size_t r0, size_t r1)
{
    const lq_vq_kpack *k = pack;
    if (k->q8)
        lq_kern_vq8_avx2(k->q8, act, batch, Y, ldy, r0, r1);
    else
        lq_kern_vq_avx2(pack, act, batch, Y, ldy, r0, r1);
}
