/* E8P row kernels, portable reference of the tiled layout (kern_e8p.h). */
#include "simd/kern_e8p.h"

/* k_0..k_7 of lane r of a block. */
static void lane_k(const lq_e8p_pack *p, const uint8_t *blk, unsigned r, int k[8])
{
    uint64_t v = lq_e8p_lane(p, blk, r);
    for (unsigned i = 0; i < 8; i++) k[i] = lq_e8p_k((unsigned)(v >> (8 * i)) & 15u);
}

void lq_kern_e8p_fast_scalar(const void *pack, const void *act, size_t batch, float *Y, size_t ldy,
                             size_t r0, size_t r1)
{
    const lq_e8p_pack *p = pack;
    for (size_t r = r0; r < r1; r++) {
        size_t tile = r / LQ_KERN_TILE;
        unsigned lane = (unsigned)(r % LQ_KERN_TILE);
        const uint8_t *tb = p->blocks + tile * p->nvec * LQ_E8P_BLOCK;
        const float *sc = p->scale + tile * p->ngroups * 16;
        for (size_t b = 0; b < batch; b++) {
            lq_e8p_act_view a = lq_e8p_act_get(p, act, LQ_KERNEL_FAST, b);
            float y = 0.0f;
            size_t j = 0;
            for (size_t g = 0; g < p->ngroups; g++) {
                size_t j1 = lq_e8p_group_end(p, g);
                float acc = 0.0f;
                for (; j < j1; j++) {
                    int k[8];
                    lane_k(p, tb + j * LQ_E8P_BLOCK, lane, k);
                    int32_t isum = 0;
                    for (unsigned i = 0; i < 8; i++) isum += k[i] * a.q[8 * j + i];
                    float v = (float)isum * a.dx[j]; /* rounded apart from the add */
                    acc = acc + v;
                }
                float t = sc[g * 16 + lane] * acc;
                y = y + t;
            }
            Y[b * ldy + r] = 0.25f * y;
        }
    }
}

void lq_kern_e8p_exact_scalar(const void *pack, const void *act, size_t batch, float *Y, size_t ldy,
                              size_t r0, size_t r1)
{
    const lq_e8p_pack *p = pack;
    for (size_t r = r0; r < r1; r++) {
        size_t tile = r / LQ_KERN_TILE;
        unsigned lane = (unsigned)(r % LQ_KERN_TILE);
        const uint8_t *tb = p->blocks + tile * p->nvec * LQ_E8P_BLOCK;
        const float *sc = p->scale + tile * p->ngroups * 16;
        for (size_t b = 0; b < batch; b++) {
            lq_e8p_act_view a = lq_e8p_act_get(p, act, LQ_KERNEL_EXACT, b);
            double acc = 0.0;
            size_t j = 0;
            for (size_t g = 0; g < p->ngroups; g++) {
                size_t j1 = lq_e8p_group_end(p, g);
                double sq = (double)sc[g * 16 + lane] * 0.25;
                for (; j < j1; j++) {
                    int k[8];
                    lane_k(p, tb + j * LQ_E8P_BLOCK, lane, k);
                    double d = 0.0;
                    for (unsigned i = 0; i < 8; i++) {
                        double t = (double)k[i] * a.x[8 * j + i]; /* exact */
                        d = d + t;
                    }
                    double t = sq * d; /* rounded apart from the add */
                    acc = acc + t;
                }
            }
            Y[b * ldy + r] = (float)acc;
        }
    }
}
