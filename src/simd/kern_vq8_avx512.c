/* VQ FAST int8 path for AVX-512 (F, BW, VNNI, VBMI): the 16 rows of a tile
 * in the 16 int32 lanes. Per 4-column chunk: the code bytes are routed to
 * their lanes (vpermb), the nibbles moved into place (vpmultishiftqb),
 * masked and offset by coordinate and row block (vpternlogd), looked up in
 * the tile's 64 bytes of codebook values (vpermb, values + 128 as unsigned
 * bytes) and multiplied against the broadcast 4 activations (vpdpbusd, the
 * accumulator starting at -128 * sum(q8) of the block). The decoded chunk
 * serves up to NB_MAX activation vectors. Integer sums are exact, the float
 * operations those of the scalar reference in its order (kern_vq8.h). */
#include <immintrin.h>

#include "simd/kern_vq8.h"

#define NB_MAX 8

static inline __attribute__((always_inline)) void vq8_tile(const lq_vq8_pack *p, const void *act,
                                                           size_t b0, size_t nb, size_t tile,
                                                           float *Y, size_t ldy, size_t nrows,
                                                           size_t D)
{
    const lq_vqd_pack *dp = p->dec;
    const uint8_t *tc = dp->codes + tile * dp->tile_code_bytes;
    const size_t upb = 4 / D; /* 64-byte code units per block of 32 columns */
    const __m512i offs = _mm512_loadu_si512((const void *)(p->offs + tile * 64));
    const __m512i lsel = _mm512_cvtepu8_epi32(
        _mm_loadu_si128((const __m128i *)(const void *)(p->lblk + tile * LQ_KERN_TILE)));
    const __m512i m0f = _mm512_set1_epi8(0x0f), x80 = _mm512_set1_epi8((char)0x80);
    const size_t rb0 = p->rb0[tile];
    lq_vq8_act_view a[NB_MAX];
    __m512 y[NB_MAX];
    for (size_t i = 0; i < nb; i++) {
        a[i] = lq_vq8_act_get(p, act, b0 + i);
        y[i] = _mm512_setzero_ps();
    }
    for (size_t g = 0; g < p->ncg; g++) {
        const __m512i T = _mm512_xor_si512(
            _mm512_loadu_si512((const void *)(p->tbl + (g * p->nrb + rb0) * p->kd)), x80);
        const __m512 sc = _mm512_permutexvar_ps(lsel, _mm512_loadu_ps(p->scl + g * p->nrb + rb0));
        __m512 f[NB_MAX];
        for (size_t i = 0; i < nb; i++) f[i] = _mm512_setzero_ps();
        for (size_t k = g * p->gcb; k < lq_vq8_group_end(p, g); k++) {
            __m512i acc0[NB_MAX], acc1[NB_MAX];
            for (size_t i = 0; i < nb; i++) {
                acc0[i] = _mm512_set1_epi32(a[i].nb128[k]);
                acc1[i] = _mm512_setzero_si512();
            }
            for (size_t ch = 0; ch < 8; ch++) {
                size_t col = 32 * k + 4 * ch, c = ch % (2 * D);
                const __m512i src =
                    _mm512_loadu_si512((const void *)(tc + (k * upb + ch / (2 * D)) * 64));
                __m512i rt =
                    _mm512_permutexvar_epi8(_mm512_loadu_si512((const void *)p->route[c]), src);
                __m512i ms =
                    _mm512_multishift_epi64_epi8(_mm512_loadu_si512((const void *)p->msh[c]), rt);
                __m512i ix = _mm512_ternarylogic_epi32(ms, m0f, offs, 0xEA); /* (a & b) | c */
                __m512i w = _mm512_permutexvar_epi8(ix, T);
                for (size_t i = 0; i < nb; i++) {
                    int32_t x4;
                    __builtin_memcpy(&x4, a[i].q + col, 4);
                    if (nb == 1 && (ch & 1))
                        acc1[i] = _mm512_dpbusd_epi32(acc1[i], w, _mm512_set1_epi32(x4));
                    else
                        acc0[i] = _mm512_dpbusd_epi32(acc0[i], w, _mm512_set1_epi32(x4));
                }
            }
            for (size_t i = 0; i < nb; i++) {
                __m512i s = nb == 1 ? _mm512_add_epi32(acc0[i], acc1[i]) : acc0[i];
                f[i] = _mm512_add_ps(
                    f[i], _mm512_mul_ps(_mm512_cvtepi32_ps(s), _mm512_set1_ps(a[i].d[k])));
            }
        }
        for (size_t i = 0; i < nb; i++) y[i] = _mm512_add_ps(y[i], _mm512_mul_ps(f[i], sc));
    }
    size_t n = nrows < 16 ? nrows : 16;
    for (size_t i = 0; i < nb; i++)
        _mm512_mask_storeu_ps(Y + (b0 + i) * ldy + tile * LQ_KERN_TILE, (__mmask16)((1u << n) - 1),
                              y[i]);
}

void lq_kern_vq8_avx512(const lq_vq8_pack *p, const void *act, size_t batch, float *Y, size_t ldy,
                        size_t r0, size_t r1)
{
    for (size_t tile = r0 / LQ_KERN_TILE; tile * LQ_KERN_TILE < r1; tile++) {
        size_t nrows = r1 - tile * LQ_KERN_TILE;
        for (size_t b0 = 0; b0 < batch; b0 += NB_MAX) {
            size_t nb = batch - b0 < NB_MAX ? batch - b0 : NB_MAX;
#define VQ8_NB(D)                                                                                  \
    switch (nb) {                                                                                  \
    case 1: vq8_tile(p, act, b0, 1, tile, Y, ldy, nrows, D); break;                                \
    case 2: vq8_tile(p, act, b0, 2, tile, Y, ldy, nrows, D); break;                                \
    case 3: vq8_tile(p, act, b0, 3, tile, Y, ldy, nrows, D); break;                                \
    case 4: vq8_tile(p, act, b0, 4, tile, Y, ldy, nrows, D); break;                                \
    case 5: vq8_tile(p, act, b0, 5, tile, Y, ldy, nrows, D); break;                                \
    case 6: vq8_tile(p, act, b0, 6, tile, Y, ldy, nrows, D); break;                                \
    case 7: vq8_tile(p, act, b0, 7, tile, Y, ldy, nrows, D); break;                                \
    default: vq8_tile(p, act, b0, 8, tile, Y, ldy, nrows, D); break;                               \
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

void lq_kern_vqf_avx512(const void *pack, const void *act, size_t batch, float *Y, size_t ldy,
                        size_t r0, size_t r1)
{
    const lq_vq_kpack *k = pack;
    if (k->q8)
        lq_kern_vq8_avx512(k->q8, act, batch, Y, ldy, r0, r1);
    else
        lq_kern_vq_avx512(pack, act, batch, Y, ldy, r0, r1);
}
