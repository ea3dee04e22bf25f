/* E8 row kernel, portable reference of the FAST path (kern_e8.h). */
#include "simd/kern_e8.h"

void lq_kern_e8_fast_scalar(const void *pack, const void *act, size_t batch, float *Y,
                            size_t ldy, size_t r0, size_t r1)
{
    const lq_e8_pack *p = pack;
    for (size_t r = r0; r < r1; r++) {
        size_t tile = r / LQ_KERN_TILE;
        unsigned lane = (unsigned)(r % LQ_KERN_TILE);
        const uint8_t *tc = p->coords + tile * p->nvec * 128;
        const uint8_t *ti = p->idx + tile * p->nvec * 16;
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
                    int32_t s = 0;
                    for (unsigned i = 0; i < 8; i++)
                        s += (int32_t)tc[j * 128 + 64 * (i / 4) + 4 * lane + i % 4] *
                             a.q[8 * j + i];
                    s -= a.qs[j];
                    float v = (float)s * a.d[j];
                    v = v * p->hb[ti[j * 16 + lane]];
                    acc = acc + v;
                }
                y = y + sc[g * 16 + lane] * acc;
            }
            Y[b * ldy + r] = y;
        }
    }
}

/* EXACT path on the pack (float activations), portable: per vector the dot
 * product of the 8 coordinates in order, then a = a + hb * dot. */
void lq_kern_e8_exact_scalar(const void *pack, const void *act, size_t batch, float *Y,
                             size_t ldy, size_t r0, size_t r1)
{
    const lq_e8_pack *p = pack;
    for (size_t r = r0; r < r1; r++) {
        size_t tile = r / LQ_KERN_TILE;
        unsigned lane = (unsigned)(r % LQ_KERN_TILE);
        const uint8_t *tc = p->coords + tile * p->nvec * 128;
        const uint8_t *ti = p->idx + tile * p->nvec * 16;
        const float *sc = p->scale + tile * p->ngroups * 16;
        for (size_t b = 0; b < batch; b++) {
            lq_e8_act_view a = lq_e8_act_get(p, act, LQ_KERNEL_EXACT, b);
            float y = 0.0f;
            size_t j = 0;
            for (size_t g = 0; g < p->ngroups; g++) {
                size_t j1 = (g + 1) * p->group / 8;
                if (j1 > p->nvec) j1 = p->nvec;
                float acc = 0.0f;
                for (; j < j1; j++) {
                    float d = 0.0f;
                    for (unsigned i = 0; i < 8; i++)
                        d += (float)((int)tc[j * 128 + 64 * (i / 4) + 4 * lane + i % 4] - 128) *
                             a.x[8 * j + i];
                    acc = acc + p->hb[ti[j * 16 + lane]] * d;
                }
                y = y + sc[g * 16 + lane] * acc;
            }
            Y[b * ldy + r] = y;
        }
    }
}
