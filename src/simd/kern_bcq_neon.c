/* BCQ FAST path for NEON: per 16-byte lane of a block (kern_bcq.h), two
 * vqtbl1q_s8 lookups (low nibbles against T(2L), high against T(2L+1)),
 * added in int8 (7-bit tables), widened into int16 accumulators per row
 * (flushed to int32 every 64 blocks). Same integer sums and float
 * operations per row as the scalar reference. */
#include <arm_neon.h>
#include <string.h>

#include "simd/kern_bcq.h"

void lq_kern_bcq_fast_neon(const void *pack, const void *act, size_t batch, float *Y, size_t ldy,
                           size_t r0, size_t r1)
{
    const lq_lut_pack *p = pack;
    const lq_bcq_fmt *f = p->fmt;
    size_t stride = lq_bcq_fast_stride(f), og = lq_kern_roundup(f->ngroups * sizeof(float), 64);
    size_t nsg = f->k + (f->has_off ? 1 : 0);
    const uint8x16_t m4 = vdupq_n_u8(15);
    for (size_t tile = r0 / LQ_KERN_TILE; tile * LQ_KERN_TILE < r1; tile++) {
        const float *mult = p->mult + tile * p->nseg * LQ_KERN_TILE;
        size_t nrows = r1 - tile * LQ_KERN_TILE;
        for (size_t b = 0; b < batch; b++) {
            const unsigned char *base = (const unsigned char *)act + b * stride;
            const float *d = (const float *)(const void *)base;
            const float *xg = (const float *)(const void *)(base + og);
            const int8_t *tab = (const int8_t *)(base + 2 * og);
            float32x4_t y[4];
            for (int q = 0; q < 4; q++) y[q] = vdupq_n_f32(0.0f);
            for (size_t g = 0; g < f->ngroups; g++) {
                for (unsigned pl = 0; pl < f->k; pl++) {
                    const uint8_t *fc = f->fcodes + ((tile * f->k + pl) * f->nkb) * 64;
                    int32x4_t a32[4];
                    for (int q = 0; q < 4; q++) a32[q] = vdupq_n_s32(0);
                    for (size_t kb0 = f->kb0[g]; kb0 < f->kb0[g + 1]; kb0 += 64) {
                        size_t kb1 = kb0 + 64 < f->kb0[g + 1] ? kb0 + 64 : f->kb0[g + 1];
                        int16x8_t lo16 = vdupq_n_s16(0), hi16 = vdupq_n_s16(0);
                        for (size_t kb = kb0; kb < kb1; kb++)
                            for (int l = 0; l < 4; l++) {
                                uint8x16_t v = vld1q_u8(fc + kb * 64 + 16 * l);
                                int8x16_t tl = vld1q_s8(tab + kb * 128 + 16 * l);
                                int8x16_t th = vld1q_s8(tab + kb * 128 + 64 + 16 * l);
                                int8x16_t s = vaddq_s8(vqtbl1q_s8(tl, vandq_u8(v, m4)),
                                                       vqtbl1q_s8(th, vshrq_n_u8(v, 4)));
                                lo16 = vaddw_s8(lo16, vget_low_s8(s));
                                hi16 = vaddw_s8(hi16, vget_high_s8(s));
                            }
                        a32[0] = vaddw_s16(a32[0], vget_low_s16(lo16));
                        a32[1] = vaddw_s16(a32[1], vget_high_s16(lo16));
                        a32[2] = vaddw_s16(a32[2], vget_low_s16(hi16));
                        a32[3] = vaddw_s16(a32[3], vget_high_s16(hi16));
                    }
                    float32x4_t dg = vdupq_n_f32(d[g]);
                    for (int q = 0; q < 4; q++) {
                        float32x4_t m = vld1q_f32(mult + (g * nsg + pl) * LQ_KERN_TILE + 4 * q);
                        y[q] = vaddq_f32(y[q], vmulq_f32(m, vmulq_f32(dg, vcvtq_f32_s32(a32[q]))));
                    }
                }
                if (f->has_off) {
                    float32x4_t x = vdupq_n_f32(xg[g]);
                    for (int q = 0; q < 4; q++) {
                        float32x4_t m = vld1q_f32(mult + (g * nsg + f->k) * LQ_KERN_TILE + 4 * q);
                        y[q] = vaddq_f32(y[q], vmulq_f32(m, x));
                    }
                }
            }
            float tmp[16];
            for (int q = 0; q < 4; q++) vst1q_f32(tmp + 4 * q, y[q]);
            memcpy(Y + b * ldy + tile * LQ_KERN_TILE, tmp,
                   (nrows < 16 ? nrows : 16) * sizeof(float));
        }
    }
}
