/* E8P row kernels for NEON on the tiled layout (kern_e8p.h): per row the
 * eight 4-bit indices n_i from ptab / stab / the shift bit (lq_e8p_lane),
 * k_i bytes by vqtbl1. FAST: four rows per int32x4 of k * q8 (vmull_s8,
 * exact in 16 bits), the scalar kernel's float operations per lane. EXACT:
 * two rows per float64x2, the reference's double operations per lane (k x
 * exact, so the fused vfma rounds as the reference's add). */
#include <arm_neon.h>
#include <string.h>

#include "simd/kern_e8p.h"

/* k bytes of rows 4c..4c+3 of a block. */
static inline void load_k(const lq_e8p_pack *p, const uint8_t *blk, int c, int8x16_t ktab,
                          int8x8_t k[4])
{
    for (int r = 0; r < 4; r++) {
        uint8x8_t v = vcreate_u8(lq_e8p_lane(p, blk, (unsigned)(4 * c + r)));
        k[r] = vqtbl1_s8(ktab, v);
    }
}

void lq_kern_e8p_fast_neon(const void *pack, const void *act, size_t batch, float *Y, size_t ldy,
                           size_t r0, size_t r1)
{
    const lq_e8p_pack *p = pack;
    int8_t kt[16];
    uint8_t ut[16];
    lq_e8p_ktab(kt, ut);
    const int8x16_t ktab = vld1q_s8(kt);
    for (size_t tile = r0 / LQ_KERN_TILE; tile * LQ_KERN_TILE < r1; tile++) {
        const uint8_t *tb = p->blocks + tile * p->nvec * LQ_E8P_BLOCK;
        const float *sc = p->scale + tile * p->ngroups * 16;
        size_t nrows = r1 - tile * LQ_KERN_TILE;
        for (size_t b = 0; b < batch; b++) {
            lq_e8p_act_view a = lq_e8p_act_get(p, act, LQ_KERNEL_FAST, b);
            float32x4_t y[4];
            for (int c = 0; c < 4; c++) y[c] = vdupq_n_f32(0.0f);
            size_t j = 0;
            for (size_t g = 0; g < p->ngroups; g++) {
                size_t j1 = lq_e8p_group_end(p, g);
                float32x4_t acc[4];
                for (int c = 0; c < 4; c++) acc[c] = vdupq_n_f32(0.0f);
                for (; j < j1; j++) {
                    const uint8_t *blk = tb + j * LQ_E8P_BLOCK;
                    __builtin_prefetch(blk + 32 * LQ_E8P_BLOCK);
                    int8x8_t xq = vld1_s8(a.q + 8 * j);
                    float32x4_t dx = vdupq_n_f32(a.dx[j]);
                    for (int c = 0; c < 4; c++) {
                        int8x8_t k[4];
                        load_k(p, blk, c, ktab, k);
                        int32x4_t s0 = vpaddlq_s16(vmull_s8(k[0], xq));
                        int32x4_t s1 = vpaddlq_s16(vmull_s8(k[1], xq));
                        int32x4_t s2 = vpaddlq_s16(vmull_s8(k[2], xq));
                        int32x4_t s3 = vpaddlq_s16(vmull_s8(k[3], xq));
                        int32x4_t is = vpaddq_s32(vpaddq_s32(s0, s1), vpaddq_s32(s2, s3));
                        float32x4_t v = vmulq_f32(vcvtq_f32_s32(is), dx);
                        acc[c] = vaddq_f32(acc[c], v);
                    }
                }
                for (int c = 0; c < 4; c++)
                    y[c] = vaddq_f32(y[c], vmulq_f32(vld1q_f32(sc + g * 16 + 4 * c), acc[c]));
            }
            float tmp[16];
            for (int c = 0; c < 4; c++) vst1q_f32(tmp + 4 * c, vmulq_n_f32(y[c], 0.25f));
            memcpy(Y + b * ldy + tile * LQ_KERN_TILE, tmp,
                   (nrows < 16 ? nrows : 16) * sizeof(float));
        }
    }
}

void lq_kern_e8p_exact_neon(const void *pack, const void *act, size_t batch, float *Y, size_t ldy,
                            size_t r0, size_t r1)
{
    const lq_e8p_pack *p = pack;
    int8_t kt[16];
    uint8_t ut[16];
    lq_e8p_ktab(kt, ut);
    const int8x16_t ktab = vld1q_s8(kt);
    for (size_t tile = r0 / LQ_KERN_TILE; tile * LQ_KERN_TILE < r1; tile++) {
        const uint8_t *tb = p->blocks + tile * p->nvec * LQ_E8P_BLOCK;
        const float *sc = p->scale + tile * p->ngroups * 16;
        size_t nrows = r1 - tile * LQ_KERN_TILE;
        if (nrows > 16) nrows = 16;
        for (size_t pr = 0; 2 * pr < nrows; pr++) { /* rows 2pr, 2pr + 1 of the tile */
            for (size_t b = 0; b < batch; b++) {
                const double *x = lq_e8p_act_get(p, act, LQ_KERNEL_EXACT, b).x;
                float64x2_t acc = vdupq_n_f64(0.0);
                size_t j = 0;
                for (size_t g = 0; g < p->ngroups; g++) {
                    size_t j1 = lq_e8p_group_end(p, g);
                    float64x2_t sq =
                        vmulq_n_f64(vcvt_f64_f32(vld1_f32(sc + g * 16 + 2 * pr)), 0.25);
                    for (; j < j1; j++) {
                        const uint8_t *blk = tb + j * LQ_E8P_BLOCK;
                        int8x8_t k0 =
                            vqtbl1_s8(ktab, vcreate_u8(lq_e8p_lane(p, blk, (unsigned)(2 * pr))));
                        int8x8_t k1 = vqtbl1_s8(
                            ktab, vcreate_u8(lq_e8p_lane(p, blk, (unsigned)(2 * pr + 1))));
                        /* lane pairs (k0_i, k1_i) as int16 then int32 */
                        int16x8_t z = vmovl_s8(vzip1_s8(k0, k1));
                        int16x8_t z2 = vmovl_s8(vzip2_s8(k0, k1));
                        int32x4_t w[4] = {vmovl_s16(vget_low_s16(z)), vmovl_s16(vget_high_s16(z)),
                                          vmovl_s16(vget_low_s16(z2)),
                                          vmovl_s16(vget_high_s16(z2))};
                        const double *xb = x + 8 * j;
                        float64x2_t d = vdupq_n_f64(0.0);
                        for (int i = 0; i < 8; i++) {
                            int32x4_t wi = w[i / 2];
                            int32x2_t pair = (i & 1) ? vget_high_s32(wi) : vget_low_s32(wi);
                            float64x2_t kd = vcvtq_f64_s64(vmovl_s32(pair));
                            d = vfmaq_f64(d, kd, vdupq_n_f64(xb[i]));
                        }
                        acc = vaddq_f64(acc, vmulq_f64(sq, d));
                    }
                }
                float32x2_t yv = vcvt_f32_f64(acc);
                float tmp[2];
                vst1_f32(tmp, yv);
                size_t m = nrows - 2 * pr > 1 ? 2 : 1;
                memcpy(Y + b * ldy + tile * LQ_KERN_TILE + 2 * pr, tmp, m * sizeof(float));
            }
        }
    }
}
