/* E8 row kernel for NEON (FAST path): 16 rows as four registers of 4 row
 * lanes; bytes u + 128 widen to 16 bits and multiply the int8 activations
 * exactly (255 * 127 < 2^15). Same operations in the same order as the
 * scalar reference (kern_e8.h). */
#include <arm_neon.h>
#include <string.h>

#include "simd/kern_e8.h"

static inline int32x4_t dot4(int32x4_t acc, uint8x16_t c, int16x8_t x8)
{
    int16x8_t lo = vreinterpretq_s16_u16(vmovl_u8(vget_low_u8(c)));
    int16x8_t hi = vreinterpretq_s16_u16(vmovl_u8(vget_high_u8(c)));
    return vaddq_s32(acc, vpaddq_s32(vpaddlq_s16(vmulq_s16(lo, x8)), vpaddlq_s16(vmulq_s16(hi, x8))));
}

void lq_kern_e8_fast_neon(const void *pack, const void *act, size_t batch, float *Y, size_t ldy,
                          size_t r0, size_t r1)
{
    const lq_e8_pack *p = pack;
    for (size_t tile = r0 / LQ_KERN_TILE; tile * LQ_KERN_TILE < r1; tile++) {
        const uint8_t *tc = p->coords + tile * p->nvec * 128;
        const uint8_t *ti = p->idx + tile * p->nvec * 16;
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
                    int16x4_t x0 = vget_low_s16(vmovl_s8(vld1_s8(a.q + 8 * j)));
                    int16x4_t x1 = vget_high_s16(vmovl_s8(vld1_s8(a.q + 8 * j)));
                    int16x8_t xa = vcombine_s16(x0, x0), xb = vcombine_s16(x1, x1);
                    float32x4_t d = vdupq_n_f32(a.d[j]);
                    for (int q = 0; q < 4; q++) {
                        int32x4_t s = vdupq_n_s32(-a.qs[j]);
                        s = dot4(s, vld1q_u8(tc + j * 128 + 16 * q), xa);
                        s = dot4(s, vld1q_u8(tc + j * 128 + 64 + 16 * q), xb);
                        float hb[4];
                        for (int l = 0; l < 4; l++) hb[l] = p->hb[ti[j * 16 + 4 * q + l]];
                        float32x4_t v = vmulq_f32(vcvtq_f32_s32(s), d);
                        acc[q] = vaddq_f32(acc[q], vmulq_f32(v, vld1q_f32(hb)));
                    }
                }
                for (int q = 0; q < 4; q++)
                    y[q] = vaddq_f32(y[q], vmulq_f32(vld1q_f32(sc + g * 16 + 4 * q), acc[q]));
            }
            float tmp[16];
            for (int q = 0; q < 4; q++) vst1q_f32(tmp + 4 * q, y[q]);
            memcpy(Y + b * ldy + tile * LQ_KERN_TILE, tmp, (nrows < 16 ? nrows : 16) * sizeof(float));
        }
    }
}
