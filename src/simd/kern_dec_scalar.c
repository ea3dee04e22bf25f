/* Decode kernels of VQ and AQ, portable reference (kern_dec.h fixes the
 * float operations every level reproduces). */
#include <string.h>

#include "core/half.h"
#include "simd/kern_dec.h"

void lq_kern_vqd_scalar(const void *pack, const void *act, size_t batch, float *Y, size_t ldy,
                        size_t r0, size_t r1)
{
    const lq_vqd_pack *p = pack;
    const float *X = act;
    size_t d = p->d;
    for (size_t r = r0; r < r1; r++) {
        size_t tile = r / LQ_KERN_TILE;
        unsigned lane = (unsigned)(r % LQ_KERN_TILE);
        for (size_t b = 0; b < batch; b++) {
            const float *x = X + b * p->cols;
            float s[4] = {0.0f, 0.0f, 0.0f, 0.0f};
            for (size_t j = 0; j < p->nvec; j++) {
                size_t g = p->lane_cb[r] + j / p->gcv;
                const float *c = p->cb + g * d * p->stride + lq_vqd_code(p, tile, lane, j);
                float v = c[0] * x[j * d];
                for (size_t i = 1; i < d; i++) {
                    float prod = c[i * p->stride] * x[j * d + i];
                    v = v + prod;
                }
                s[j & 3] = s[j & 3] + v;
            }
            Y[b * ldy + r] = (s[0] + s[1]) + (s[2] + s[3]);
        }
    }
}

static float aq_val(const lq_aqd_pack *p, size_t i)
{
    if (p->cbf) return p->cbf[i];
    if (p->half) {
        const uint8_t *h = (const uint8_t *)p->cb + 2 * i;
        return lq_f16_to_f32((uint16_t)(h[0] | (h[1] << 8)));
    }
    float f;
    memcpy(&f, (const uint8_t *)p->cb + 4 * i, 4);
    return f;
}

static size_t aq_code(const lq_aqd_pack *p, const uint8_t *c, size_t i)
{
    size_t v = p->codeb == 1 ? c[i] : (size_t)c[2 * i] | ((size_t)c[2 * i + 1] << 8);
    return v & (p->K - 1);
}

void lq_kern_aqd_scalar(const void *pack, const void *act, size_t batch, float *Y, size_t ldy,
                        size_t r0, size_t r1)
{
    const lq_aqd_pack *p = pack;
    const float *X = act;
    size_t cpg = p->g / 8, nchunk = p->cols / 8;
    for (size_t r = r0; r < r1; r++) {
        const uint8_t *rc = p->codes + r * p->ng * p->M * p->codeb;
        for (size_t b = 0; b < batch; b++) {
            const float *x = X + b * p->cols;
            float P[4][8];
            memset(P, 0, sizeof P);
            for (size_t u = 0; u < nchunk; u++) {
                size_t j = u / cpg, off = (u % cpg) * 8;
                float w[8] = {0};
                for (size_t m = 0; m < p->M; m++) {
                    size_t base = (m * p->K + aq_code(p, rc, j * p->M + m)) * p->g + off;
                    for (size_t k = 0; k < 8; k++) {
                        float c = aq_val(p, base + k);
                        w[k] = m ? w[k] + c : c;
                    }
                }
                for (size_t k = 0; k < 8; k++) {
                    float prod = w[k] * x[8 * u + k];
                    P[u & 3][k] = P[u & 3][k] + prod;
                }
            }
            float z[8];
            for (size_t k = 0; k < 8; k++) z[k] = (P[0][k] + P[1][k]) + (P[2][k] + P[3][k]);
            float y = ((z[0] + z[1]) + (z[2] + z[3])) + ((z[4] + z[5]) + (z[6] + z[7]));
            Y[b * ldy + r] = p->scales[r] * y;
        }
    }
}

void lq_kern_vq_scalar(const void *pack, const void *act, size_t batch, float *Y, size_t ldy,
                       size_t r0, size_t r1)
{
    const lq_vq_kpack *k = pack;
    if (k->dec)
        lq_kern_vqd_scalar(k->dec, act, batch, Y, ldy, r0, r1);
    else
        lq_kern_lut_scalar(k->lut, act, batch, Y, ldy, r0, r1);
}

void lq_kern_aq_scalar(const void *pack, const void *act, size_t batch, float *Y, size_t ldy,
                       size_t r0, size_t r1)
{
    const lq_aq_kpack *k = pack;
    if (k->dec)
        lq_kern_aqd_scalar(k->dec, act, batch, Y, ldy, r0, r1);
    else
        lq_kern_lut_scalar(k->lut, act, batch, Y, ldy, r0, r1);
}

void lq_kern_aq8_scalar(const lq_aq8_pack *p, const void *act, size_t batch, float *Y, size_t ldy,
                        size_t r0, size_t r1)
{
    size_t stride = lq_aq8_act_stride(p);
    for (size_t r = r0; r < r1; r++) {
        size_t tile = r / LQ_AQ8_TILE, lane = r % LQ_AQ8_TILE;
        const uint8_t *tc = p->codes + tile * p->npos * LQ_AQ8_TILE + lane;
        for (size_t b = 0; b < batch; b++) {
            const int8_t *T = (const int8_t *)act + b * stride;
            const float *sb = (const float *)(const void *)((const uint8_t *)act + b * stride +
                                                            p->npos * 256 + 64);
            float f = 0.0f;
            for (size_t k = 0; k < p->nblk; k++) {
                size_t q0 = k * LQ_AQ8_BLK,
                       q1 = q0 + LQ_AQ8_BLK < p->npos ? q0 + LQ_AQ8_BLK : p->npos;
                int32_t isum = 0;
                for (size_t q = q0; q < q1; q++) isum += T[q * 256 + tc[q * LQ_AQ8_TILE]];
                float prod = (float)isum * sb[k];
                f = f + prod;
            }
            Y[b * ldy + r] = p->scales[tile * LQ_AQ8_TILE + lane] * f;
        }
    }
}

void lq_kern_aqf_scalar(const void *pack, const void *act, size_t batch, float *Y, size_t ldy,
                        size_t r0, size_t r1)
{
    const lq_aq_kpack *k = pack;
    if (k->q8)
        lq_kern_aq8_scalar(k->q8, act, batch, Y, ldy, r0, r1);
    else
        lq_kern_aq_scalar(pack, act, batch, Y, ldy, r0, r1);
}

void lq_aq8_quant_scalar(const float *y, size_t n, float inv, int8_t *o)
{
    for (size_t e = 0; e < n; e++) {
        float c = y[e] * inv;
        c = c > 127.0f ? 127.0f : c;
        c = c < -127.0f ? -127.0f : c;
        o[e] = (int8_t)(int32_t)(c + (c < 0 ? -0.5f : 0.5f));
    }
}
