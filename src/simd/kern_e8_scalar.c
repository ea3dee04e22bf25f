/* E8 row kernels, portable reference of the packed layout (kern_e8.h). */
#include <math.h>

#include "simd/kern_e8.h"

void lq_kern_e8_fast_scalar(const void *pack, const void *act, size_t batch, float *Y, size_t ldy,
                            size_t r0, size_t r1)
{
    const lq_e8_pack *p = pack;
    for (size_t r = r0; r < r1; r++) {
        size_t tile = r / LQ_KERN_TILE;
        unsigned lane = (unsigned)(r % LQ_KERN_TILE);
        const uint8_t *tb = p->blocks + tile * p->nvec * p->block;
        const float *sc = p->scale + tile * p->ngroups * 16;
        for (size_t b = 0; b < batch; b++) {
            lq_e8_act_view a = lq_e8_act_get(p, act, LQ_KERNEL_FAST, b);
            float y = 0.0f;
            size_t j = 0;
            for (size_t g = 0; g < p->ngroups; g++) {
                size_t j1 = (g + 1) * p->group / 8;
                if (j1 > p->nvec) j1 = p->nvec;
                float acc = 0.0f;
                for (; j < j1; j++) {
                    const uint8_t *blk = tb + j * p->block;
                    unsigned meta = lq_e8_meta(blk + p->block - 8, lane);
                    int32_t fdot = 0;
                    for (unsigned i = 0; i < 8; i++)
                        fdot += (int32_t)lq_e8_field(p, blk, lane, i) * a.q[8 * j + i];
                    int32_t isum = a.a2q[j] - (meta & 1u ? a.sq[j] : 0) - 2 * fdot;
                    float v = (float)isum * a.d[j];
                    v = v * p->hb[meta >> 1];
                    acc = acc + v;
                }
                y = y + sc[g * 16 + lane] * acc;
            }
            Y[b * ldy + r] = y;
        }
    }
}

/* EXACT path on the pack (float activations), portable: per vector the
 * weights w_i = hb * u_i (u_i = 2q - s - 2 f_i, one rounding), four partial
 * sums a_{i mod 4} by fused multiply-adds in order, and per group
 * y = fma((a0 + a1) + (a2 + a3), s_g, y) (kern_e8.h: every level does this). */
void lq_kern_e8_exact_scalar(const void *pack, const void *act, size_t batch, float *Y, size_t ldy,
                             size_t r0, size_t r1)
{
    const lq_e8_pack *p = pack;
    for (size_t r = r0; r < r1; r++) {
        size_t tile = r / LQ_KERN_TILE;
        unsigned lane = (unsigned)(r % LQ_KERN_TILE);
        const uint8_t *tb = p->blocks + tile * p->nvec * p->block;
        const float *sc = p->scale + tile * p->ngroups * 16;
        for (size_t b = 0; b < batch; b++) {
            lq_e8_act_view a = lq_e8_act_get(p, act, LQ_KERNEL_EXACT, b);
            float y = 0.0f;
            size_t j = 0;
            for (size_t g = 0; g < p->ngroups; g++) {
                size_t j1 = (g + 1) * p->group / 8;
                if (j1 > p->nvec) j1 = p->nvec;
                float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
                for (; j < j1; j++) {
                    const uint8_t *blk = tb + j * p->block;
                    unsigned meta = lq_e8_meta(blk + p->block - 8, lane);
                    int c = 2 * (int)p->q - (int)(meta & 1u);
                    float hb = p->hb[meta >> 1];
                    for (unsigned i = 0; i < 8; i++) {
                        float w = hb * (float)(c - 2 * (int)lq_e8_field(p, blk, lane, i));
                        acc[i % 4] = fmaf(w, a.x[8 * j + i], acc[i % 4]);
                    }
                }
                y = fmaf((acc[0] + acc[1]) + (acc[2] + acc[3]), sc[g * 16 + lane], y);
            }
            Y[b * ldy + r] = y;
        }
    }
}
