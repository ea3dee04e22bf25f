/* INT row kernels, portable reference: the FAST path (int8 activations,
 * exact integer block sums) that every SIMD level reproduces bit for bit. */
#include "simd/kern_int.h"

void lq_kern_int_fast_scalar(const void *pack, const void *act, size_t batch, float *Y, size_t ldy,
                             size_t r0, size_t r1)
{
    const lq_int_pack *p = pack;
    for (size_t r = r0; r < r1; r++) {
        size_t tile = r / LQ_KERN_TILE;
        unsigned lane = (unsigned)(r % LQ_KERN_TILE);
        const uint8_t *tc = p->codes + tile * p->nblk * p->blk_bytes;
        const float *sm = p->sm + tile * p->ngroups * 2 * LQ_KERN_TILE;
        for (size_t b = 0; b < batch; b++) {
            lq_int_act_view a = lq_int_act_get(p, act, LQ_KERNEL_FAST, b);
            float y = 0.0f;
            for (size_t g = 0; g < p->ngroups; g++) {
                float ga = 0.0f;
                for (size_t k = p->gblk[g]; k < p->gblk[g + 1]; k++) {
                    const uint8_t *blk = tc + k * p->blk_bytes;
                    const int8_t *xq = a.q + k * LQ_KERN_QBLK;
                    int32_t isum = 0;
                    for (unsigned c = 0; c < LQ_KERN_QBLK; c++)
                        isum += (int32_t)lq_int_code(blk, p->sbits, lane, c) * xq[c];
                    ga = ga + a.d[k] * (float)isum;
                }
                float s = sm[g * 32 + lane], m = sm[g * 32 + 16 + lane];
                y = y + (s * ga + m * a.xs[g]);
            }
            Y[b * ldy + r] = y;
        }
    }
}
