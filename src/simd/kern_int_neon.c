/* INT row kernels for NEON (baseline AArch64, no dot-product extension
 * assumed): a tile of 16 rows is four registers of 4 row lanes (bytes
 * 16j..16j+15 of a sub-unit are rows 4j..4j+3). Codes widen to 16 bits and
 * multiply int8 activations exactly (|c x| <= 255 * 127 < 2^15); pairwise
 * widening adds give the per-row int32 sums. Same operation order per row
 * as the scalar reference (see kern_int.h). */
#include <arm_neon.h>
#include <string.h>

#include "simd/kern_int.h"

#define NB_MAX 4

/* Sub-unit s of a block as 4 registers (rows 4j..4j+3 in u[j]). */
static inline void decode_sub(const uint8_t *cp, unsigned sbits, int s, uint8x16_t u[4])
{
    for (int j = 0; j < 4; j++) {
        switch (sbits) {
        case 4: {
            uint8x16_t v = vld1q_u8(cp + 64 * (s >> 1) + 16 * j);
            u[j] = (s & 1) ? vshrq_n_u8(v, 4) : vandq_u8(v, vdupq_n_u8(15));
            break;
        }
        case 2:
        case 3: {
            uint8x16_t v = vld1q_u8(cp + 64 * (s >> 2) + 16 * j);
            switch (s & 3) {
            case 0: break;
            case 1: v = vshrq_n_u8(v, 2); break;
            case 2: v = vshrq_n_u8(v, 4); break;
            default: v = vshrq_n_u8(v, 6); break;
            }
            v = vandq_u8(v, vdupq_n_u8(3));
            if (sbits == 3) {
                /* bits 16j..16j+15 of mask s, one per byte */
                uint16_t mk;
                memcpy(&mk, cp + 128 + 8 * s + 2 * j, 2);
                static const uint8_t bitv[16] = {1, 2, 4, 8, 16, 32, 64, 128,
                                                 1, 2, 4, 8, 16, 32, 64, 128};
                uint8x16_t mb =
                    vcombine_u8(vdup_n_u8((uint8_t)(mk & 0xff)), vdup_n_u8((uint8_t)(mk >> 8)));
                uint8x16_t set = vtstq_u8(mb, vld1q_u8(bitv));
                v = vorrq_u8(v, vandq_u8(set, vdupq_n_u8(4)));
            }
            u[j] = v;
            break;
        }
        default: u[j] = vld1q_u8(cp + 64 * s + 16 * j); break;
        }
    }
}

/* int32 lanes (rows) += dot of 4 rows x 4 columns with x4 (int16). */
static inline int32x4_t dot4(int32x4_t acc, uint8x16_t c, int16x8_t x8)
{
    int16x8_t lo = vreinterpretq_s16_u16(vmovl_u8(vget_low_u8(c)));
    int16x8_t hi = vreinterpretq_s16_u16(vmovl_u8(vget_high_u8(c)));
    int32x4_t plo = vpaddlq_s16(vmulq_s16(lo, x8)); /* rows 0,1: pairs */
    int32x4_t phi = vpaddlq_s16(vmulq_s16(hi, x8)); /* rows 2,3 */
    return vaddq_s32(acc, vpaddq_s32(plo, phi));
}

static void fast_tile(const lq_int_pack *p, const void *act, size_t b0, size_t nb, size_t tile,
                      float *Y, size_t ldy, size_t nrows)
{
    lq_int_act_view a[NB_MAX];
    for (size_t i = 0; i < nb; i++) a[i] = lq_int_act_get(p, act, LQ_KERNEL_FAST, b0 + i);
    const uint8_t *cp = p->codes + tile * p->nblk * p->blk_bytes;
    const float *sm = p->sm + tile * p->ngroups * 2 * LQ_KERN_TILE;
    float32x4_t y[NB_MAX][4];
    for (size_t i = 0; i < nb; i++)
        for (int j = 0; j < 4; j++) y[i][j] = vdupq_n_f32(0.0f);
    for (size_t g = 0; g < p->ngroups; g++) {
        float32x4_t ga[NB_MAX][4];
        for (size_t i = 0; i < nb; i++)
            for (int j = 0; j < 4; j++) ga[i][j] = vdupq_n_f32(0.0f);
        for (size_t k = p->gblk[g]; k < p->gblk[g + 1]; k++) {
            int32x4_t acc[NB_MAX][4];
            for (size_t i = 0; i < nb; i++)
                for (int j = 0; j < 4; j++) acc[i][j] = vdupq_n_s32(0);
            for (int s = 0; s < 8; s++) {
                uint8x16_t u[4];
                decode_sub(cp, p->sbits, s, u);
                for (size_t i = 0; i < nb; i++) {
                    int16x4_t x4 =
                        vget_low_s16(vmovl_s8(vld1_s8(a[i].q + k * LQ_KERN_QBLK + 4 * s)));
                    int16x8_t x8 = vcombine_s16(x4, x4);
                    for (int j = 0; j < 4; j++) acc[i][j] = dot4(acc[i][j], u[j], x8);
                }
            }
            cp += p->blk_bytes;
            for (size_t i = 0; i < nb; i++) {
                float32x4_t d = vdupq_n_f32(a[i].d[k]);
                for (int j = 0; j < 4; j++)
                    ga[i][j] = vaddq_f32(ga[i][j], vmulq_f32(d, vcvtq_f32_s32(acc[i][j])));
            }
        }
        for (size_t i = 0; i < nb; i++) {
            float32x4_t xs = vdupq_n_f32(a[i].xs[g]);
            for (int j = 0; j < 4; j++) {
                float32x4_t s = vld1q_f32(sm + g * 32 + 4 * j);
                float32x4_t m = vld1q_f32(sm + g * 32 + 16 + 4 * j);
                y[i][j] = vaddq_f32(y[i][j], vaddq_f32(vmulq_f32(s, ga[i][j]), vmulq_f32(m, xs)));
            }
        }
    }
    for (size_t i = 0; i < nb; i++) {
        float tmp[16];
        for (int j = 0; j < 4; j++) vst1q_f32(tmp + 4 * j, y[i][j]);
        memcpy(Y + (b0 + i) * ldy + tile * LQ_KERN_TILE, tmp,
               (nrows < 16 ? nrows : 16) * sizeof(float));
    }
}

static void exact_tile(const lq_int_pack *p, const void *act, size_t b0, size_t nb, size_t tile,
                       float *Y, size_t ldy, size_t nrows)
{
    lq_int_act_view a[NB_MAX];
    for (size_t i = 0; i < nb; i++) a[i] = lq_int_act_get(p, act, LQ_KERNEL_EXACT, b0 + i);
    const uint8_t *cp = p->codes + tile * p->nblk * p->blk_bytes;
    const float *sm = p->sm + tile * p->ngroups * 2 * LQ_KERN_TILE;
    float32x4_t y[NB_MAX][4];
    for (size_t i = 0; i < nb; i++)
        for (int j = 0; j < 4; j++) y[i][j] = vdupq_n_f32(0.0f);
    for (size_t g = 0; g < p->ngroups; g++) {
        float32x4_t ga[NB_MAX][4];
        for (size_t i = 0; i < nb; i++)
            for (int j = 0; j < 4; j++) ga[i][j] = vdupq_n_f32(0.0f);
        for (size_t k = p->gblk[g]; k < p->gblk[g + 1]; k++) {
            for (int s = 0; s < 8; s++) {
                uint8x16_t u[4];
                decode_sub(cp, p->sbits, s, u);
                for (int j = 0; j < 4; j++) {
                    uint32x4_t w32 = vreinterpretq_u32_u8(u[j]);
                    for (int kk = 0; kk < 4; kk++) {
                        uint32x4_t c = vandq_u32(w32, vdupq_n_u32(255));
                        w32 = vshrq_n_u32(w32, 8);
                        float32x4_t w = vcvtq_f32_u32(c);
                        for (size_t i = 0; i < nb; i++)
                            ga[i][j] =
                                vfmaq_n_f32(ga[i][j], w, a[i].x[k * LQ_KERN_QBLK + 4 * s + kk]);
                    }
                }
            }
            cp += p->blk_bytes;
        }
        for (size_t i = 0; i < nb; i++) {
            float32x4_t xs = vdupq_n_f32(a[i].xs[g]);
            for (int j = 0; j < 4; j++) {
                float32x4_t s = vld1q_f32(sm + g * 32 + 4 * j);
                float32x4_t m = vld1q_f32(sm + g * 32 + 16 + 4 * j);
                y[i][j] = vaddq_f32(y[i][j], vaddq_f32(vmulq_f32(s, ga[i][j]), vmulq_f32(m, xs)));
            }
        }
    }
    for (size_t i = 0; i < nb; i++) {
        float tmp[16];
        for (int j = 0; j < 4; j++) vst1q_f32(tmp + 4 * j, y[i][j]);
        memcpy(Y + (b0 + i) * ldy + tile * LQ_KERN_TILE, tmp,
               (nrows < 16 ? nrows : 16) * sizeof(float));
    }
}

void lq_kern_int_fast_neon(const void *pack, const void *act, size_t batch, float *Y, size_t ldy,
                           size_t r0, size_t r1)
{
    const lq_int_pack *p = pack;
    for (size_t tile = r0 / LQ_KERN_TILE; tile * LQ_KERN_TILE < r1; tile++)
        for (size_t b0 = 0; b0 < batch; b0 += NB_MAX)
            fast_tile(p, act, b0, batch - b0 < NB_MAX ? batch - b0 : NB_MAX, tile, Y, ldy,
                      r1 - tile * LQ_KERN_TILE);
}

void lq_kern_int_exact_neon(const void *pack, const void *act, size_t batch, float *Y, size_t ldy,
                            size_t r0, size_t r1)
{
    const lq_int_pack *p = pack;
    for (size_t tile = r0 / LQ_KERN_TILE; tile * LQ_KERN_TILE < r1; tile++)
        for (size_t b0 = 0; b0 < batch; b0 += NB_MAX)
            exact_tile(p, act, b0, batch - b0 < NB_MAX ? batch - b0 : NB_MAX, tile, Y, ldy,
                       r1 - tile * LQ_KERN_TILE);
}
