/* VQ FAST int8 path, portable reference (kern_vq8.h: the operations and
 * their order, which every level reproduces). */
#include "simd/kern_vq8.h"

void lq_kern_vq8_scalar(const lq_vq8_pack *p, const void *act, size_t batch, float *Y, size_t ldy,
                        size_t r0, size_t r1)
{
    const lq_vqd_pack *dp = p->dec;
    size_t d = p->d, kd = p->kd;
    for (size_t r = r0; r < r1; r++) {
        size_t tile = r / LQ_KERN_TILE;
        unsigned lane = (unsigned)(r % LQ_KERN_TILE);
        size_t rb = p->rb0[tile] + p->lblk[tile * LQ_KERN_TILE + lane];
        for (size_t b = 0; b < batch; b++) {
            lq_vq8_act_view a = lq_vq8_act_get(p, act, b);
            float y = 0.0f;
            for (size_t g = 0; g < p->ncg; g++) {
                const int8_t *cb = p->tbl + (g * p->nrb + rb) * kd;
                float f = 0.0f;
                for (size_t k = g * p->gcb; k < lq_vq8_group_end(p, g); k++) {
                    int32_t isum = 0;
                    for (size_t c = 32 * k; c < 32 * k + 32; c++) {
                        unsigned code = lq_vqd_code(dp, tile, lane, c / d);
                        isum += (int32_t)cb[(c % d) * p->K + code] * (int32_t)a.q[c];
                    }
                    f = f + (float)isum * a.d[k];
                }
                y = y + f * p->scl[g * p->nrb + rb];
            }
            Y[b * ldy + r] = y;
        }
    }
}

void lq_kern_vqf_scalar(const void *pack, const void *act, size_t batch, float *Y, size_t ldy,
                        size_t r0, size_t r1)
{
    const lq_vq_kpack *k = pack;
    if (k->q8)
        lq_kern_vq8_scalar(k->q8, act, batch, Y, ldy, r0, r1);
    else
        lq_kern_vq_scalar(pack, act, batch, Y, ldy, r0, r1);
}
