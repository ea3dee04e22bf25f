/* BCQ FAST path, portable reference (kern_bcq.h). */
#include "simd/kern_bcq.h"

void lq_kern_bcq_fast_scalar(const void *pack, const void *act, size_t batch, float *Y, size_t ldy,
                             size_t r0, size_t r1)
{
    const lq_lut_pack *p = pack;
    const lq_bcq_fmt *f = p->fmt;
    size_t stride = lq_bcq_fast_stride(f), og = lq_kern_roundup(f->ngroups * sizeof(float), 64);
    size_t nsg = f->k + (f->has_off ? 1 : 0);
    for (size_t r = r0; r < r1; r++) {
        size_t tile = r / LQ_KERN_TILE;
        unsigned lane = (unsigned)(r % LQ_KERN_TILE);
        const float *mult = p->mult + tile * p->nseg * LQ_KERN_TILE;
        for (size_t b = 0; b < batch; b++) {
            const unsigned char *base = (const unsigned char *)act + b * stride;
            const float *d = (const float *)(const void *)base;
            const float *xg = (const float *)(const void *)(base + og);
            const int8_t *tab = (const int8_t *)(base + 2 * og);
            float y = 0.0f;
            for (size_t g = 0; g < f->ngroups; g++) {
                for (unsigned i = 0; i < f->k; i++) {
                    const uint8_t *fc = f->fcodes + ((tile * f->k + i) * f->nkb) * 64;
                    int32_t isum = 0;
                    for (size_t kb = f->kb0[g]; kb < f->kb0[g + 1]; kb++)
                        for (unsigned l = 0; l < 4; l++) {
                            unsigned c = fc[kb * 64 + 16 * l + lane];
                            isum += tab[kb * 128 + 16 * l + (c & 15u)];
                            isum += tab[kb * 128 + 64 + 16 * l + (c >> 4)];
                        }
                    y = y + mult[(g * nsg + i) * LQ_KERN_TILE + lane] * (d[g] * (float)isum);
                }
                if (f->has_off) y = y + mult[(g * nsg + f->k) * LQ_KERN_TILE + lane] * xg[g];
            }
            Y[b * ldy + r] = y;
        }
    }
}
