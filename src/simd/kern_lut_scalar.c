/* Table kernels, portable reference (see kern_lut.h for the order of the
 * float additions that every level reproduces). */
#include "simd/kern_lut.h"

void lq_kern_lut_scalar(const void *pack, const void *act, size_t batch, float *Y, size_t ldy,
                        size_t r0, size_t r1)
{
    const lq_lut_pack *p = pack;
    size_t stride = lq_lut_act_stride(p) / sizeof(float);
    for (size_t r = r0; r < r1; r++) {
        size_t tile = r / LQ_KERN_TILE;
        unsigned lane = (unsigned)(r % LQ_KERN_TILE);
        size_t base = (size_t)p->lane_set[r] * p->tabset;
        const float *mult = p->mult + tile * p->nseg * LQ_KERN_TILE;
        for (size_t b = 0; b < batch; b++) {
            const float *T = (const float *)act + b * stride + base;
            float y = 0.0f;
            for (size_t s = 0; s < p->nseg; s++) {
                float a0 = 0.0f, a1 = 0.0f;
                for (size_t q = p->seg[s]; q < p->seg[s + 1]; q++) {
                    float v = T[p->tabofs[q] + lq_lut_code(p, tile, lane, q)];
                    if ((q - p->seg[s]) & 1)
                        a1 = a1 + v;
                    else
                        a0 = a0 + v;
                }
                y = y + mult[s * LQ_KERN_TILE + lane] * (a0 + a1);
            }
            Y[b * ldy + r] = y;
        }
    }
}

void lq_lut_dot_scalar(const float *cbT, size_t K, size_t d, const float *x, float *t)
{
    for (size_t e = 0; e < K; e++) t[e] = 0.0f;
    for (size_t i = 0; i < d; i++)
        for (size_t e = 0; e < K; e++) {
            float prod = cbT[i * K + e] * x[i];
            t[e] = t[e] + prod;
        }
}
