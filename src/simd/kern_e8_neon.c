/* E8 row kernel for NEON (FAST path) on the packed layout (kern_e8.h): 16
 * rows as four registers of 4 row lanes; per register the nibbles split
 * into bytes f_0..3 and f_4..7 (bit 4 added from the hi plane by vtst),
 * products with the int8 activations exact in 16 bits (4 * 31 * 127 <
 * 2^15). Same operations in the same order as the scalar reference. q > 16
 * (the hi2 plane) runs the scalar kernel. */
#include <arm_neon.h>
#include <string.h>

#include "simd/kern_e8.h"

/* sum over each row lane (4 bytes) of fa * x0 + fb * x1 */
static inline int32x4_t fdot4(uint8x16_t fa, uint8x16_t fb, int8x16_t x0, int8x16_t x1)
{
    int8x16_t a = vreinterpretq_s8_u8(fa), b = vreinterpretq_s8_u8(fb);
    int16x8_t lo = vaddq_s16(vmull_s8(vget_low_s8(a), vget_low_s8(x0)),
                             vmull_s8(vget_low_s8(b), vget_low_s8(x1)));
    int16x8_t hi = vaddq_s16(vmull_s8(vget_high_s8(a), vget_high_s8(x0)),
                             vmull_s8(vget_high_s8(b), vget_high_s8(x1)));
    return vpaddq_s32(vpaddlq_s16(lo), vpaddlq_s16(hi));
}

void lq_kern_e8_fast_neon(const void *pack, const void *act, size_t batch, float *Y, size_t ldy,
                          size_t r0, size_t r1)
{
    const lq_e8_pack *p = pack;
    if (p->hi2) { /* q > 16: the portable kernel (same operations) */
        lq_kern_e8_fast_scalar(pack, act, batch, Y, ldy, r0, r1);
        return;
    }
    const uint8x16_t m4 = vdupq_n_u8(15), s16 = vdupq_n_u8(16);
    static const uint8_t pat_a[16] = {1, 2, 4, 8, 1, 2, 4, 8, 1, 2, 4, 8, 1, 2, 4, 8};
    static const uint8_t pat_b[16] = {16, 32, 64, 128, 16, 32, 64, 128,
                                      16, 32, 64, 128, 16, 32, 64, 128};
    const uint8x16_t pa = vld1q_u8(pat_a), pb = vld1q_u8(pat_b);
    for (size_t tile = r0 / LQ_KERN_TILE; tile * LQ_KERN_TILE < r1; tile++) {
        const uint8_t *tb = p->blocks + tile * p->nvec * p->block;
        const float *sc = p->scale + tile * p->ngroups * 16;
        size_t nrows = r1 - tile * LQ_KERN_TILE;
        for (size_t b = 0; b < batch; b++) {
            lq_e8_act_view a = lq_e8_act_get(p, act, LQ_KERNEL_FAST, b);
            float32x4_t y[4];
            for (int q = 0; q < 4; q++) y[q] = vdupq_n_f32(0.0f);
            size_t j = 0;
            for (size_t g = 0; g < p->ngroups; g++) {
                size_t j1 = (g + 1) * p->group / 8;
                if (j1 > p->nvec) j1 = p->nvec;
                float32x4_t acc[4];
                for (int q = 0; q < 4; q++) acc[q] = vdupq_n_f32(0.0f);
                for (; j < j1; j++) {
                    const uint8_t *blk = tb + j * p->block;
                    int32_t x0s, x1s;
                    memcpy(&x0s, a.q + 8 * j, 4);
                    memcpy(&x1s, a.q + 8 * j + 4, 4);
                    int8x16_t x0 = vreinterpretq_s8_s32(vdupq_n_s32(x0s));
                    int8x16_t x1 = vreinterpretq_s8_s32(vdupq_n_s32(x1s));
                    uint8x8_t mv = vld1_u8(blk + p->block - 8);
                    uint8x16_t meta = vcombine_u8(vand_u8(mv, vdup_n_u8(15)), vshr_n_u8(mv, 4));
                    uint8_t mt[16];
                    vst1q_u8(mt, meta);
                    uint8x16_t hv = p->hi ? vld1q_u8(blk + 64) : vdupq_n_u8(0);
                    float32x4_t d = vdupq_n_f32(a.d[j]);
                    int32x4_t A = vdupq_n_s32(a.a2q[j]), SQ = vdupq_n_s32(a.sq[j]);
                    for (int q = 0; q < 4; q++) {
                        uint8x16_t L = vld1q_u8(blk + 16 * q);
                        uint8x16_t fa = vandq_u8(L, m4), fb = vshrq_n_u8(L, 4);
                        if (p->hi) {
                            uint8_t ix[16];
                            for (int e = 0; e < 16; e++) ix[e] = (uint8_t)(4 * q + e / 4);
                            uint8x16_t bb = vqtbl1q_u8(hv, vld1q_u8(ix));
                            fa = vaddq_u8(fa, vandq_u8(vtstq_u8(bb, pa), s16));
                            fb = vaddq_u8(fb, vandq_u8(vtstq_u8(bb, pb), s16));
                        }
                        int32x4_t fd = fdot4(fa, fb, x0, x1);
                        uint32_t sm[4];
                        float hb[4];
                        for (int l = 0; l < 4; l++) {
                            sm[l] = (mt[4 * q + l] & 1u) ? 0xffffffffu : 0u;
                            hb[l] = p->hb[mt[4 * q + l] >> 1];
                        }
                        int32x4_t s =
                            vsubq_s32(A, vandq_s32(SQ, vreinterpretq_s32_u32(vld1q_u32(sm))));
                        s = vsubq_s32(s, vaddq_s32(fd, fd));
                        float32x4_t v = vmulq_f32(vcvtq_f32_s32(s), d);
                        acc[q] = vaddq_f32(acc[q], vmulq_f32(v, vld1q_f32(hb)));
                    }
                }
                for (int q = 0; q < 4; q++)
                    y[q] = vaddq_f32(y[q], vmulq_f32(vld1q_f32(sc + g * 16 + 4 * q), acc[q]));
            }
            float tmp[16];
            for (int q = 0; q < 4; q++) vst1q_f32(tmp + 4 * q, y[q]);
            memcpy(Y + b * ldy + tile * LQ_KERN_TILE, tmp,
                   (nrows < 16 ? nrows : 16) * sizeof(float));
        }
    }
}
