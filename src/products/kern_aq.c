/* AQ (AQLM) on the table kernels.
 *
 * Stored layout: src/mcq/aq_internal.h ("LQ_FORMAT_AQ"): codes per (row,
 * g-vector, codebook), M codebooks of 2^B g-vectors (half or float), fp32
 * row scales. Position p = j * M + m (vector j, codebook m); its table holds
 * T[e] = C_m[e] . x_j (g terms in order), built once per activation as in
 * AQLM's CPU kernels; one segment weighted by the row scale. Tables take
 * (cols / g) * M * max(2^B, 16) floats per activation. */
#include <string.h>

#include "core/half.h"
#include "mcq/aq_internal.h"
#include "products/lut.h"

typedef struct aq_fmt {
    size_t M, K, g, ng;
    float *cb; /* M codebooks, each transposed: g x max(K, 16), zero padded */
} aq_fmt;

static void aq_fmt_free(const lq_allocator *a, void *fp)
{
    aq_fmt *f = fp;
    if (!f) return;
    lq_free_with(a, f->cb);
    lq_free_with(a, f);
}

static void aq_build(const lq_lut_pack *p, const float *x, float *T, lq_simd_level level)
{
    const aq_fmt *f = p->fmt;
    size_t stride = f->K < 16 ? 16 : f->K;
    lq_lut_dot_fn dot = lq_lut_dot_for(level);
    for (size_t j = 0; j < f->ng; j++)
        for (size_t m = 0; m < f->M; m++)
            dot(f->cb + m * f->g * stride, stride, f->g, x + j * f->g,
                T + (j * f->M + m) * stride);
}

static lq_status aq_prepare(const lq_qtensor *t, const lq_allocator *a, void **out)
{
    size_t M = t->ip[LQ_AQ_IP_M], B = t->ip[LQ_AQ_IP_B], g = t->ip[LQ_AQ_IP_G];
    size_t cbytes = t->ip[LQ_AQ_IP_CB], K = (size_t)1 << B, ng = t->cols / g;
    size_t stride = K < 16 ? 16 : K, npos = ng * M, tabset;
    /* tables pay only when smaller than the weights (e.g. AQLM 1x16 on
     * 4096 columns would need 2^25 floats per activation: the reference
     * path serves such tensors); also keeps 32-bit gather indices */
    size_t limit = t->rows * t->cols > ((size_t)1 << 20) ? t->rows * t->cols : (size_t)1 << 20;
    if (!lq_mul_ok(npos, stride, &tabset) || tabset > limit || tabset > ((size_t)1 << 30))
        return LQ_ERR_UNSUPPORTED;
    lq_lut_pack geo;
    memset(&geo, 0, sizeof geo);
    geo.rows = t->rows;
    geo.cols = t->cols;
    geo.npos = npos;
    geo.K = (unsigned)K;
    geo.cw = B <= 4 ? 4 : B <= 8 ? 8 : 16;
    geo.nseg = 1;
    geo.tabset = tabset;
    geo.nsets = 1;
    lq_lut_pack *p;
    lq_status st = lq_lut_pack_alloc(&geo, a, &p);
    if (st != LQ_OK) return st;
    aq_fmt *f = lq_alloc_with(a, sizeof *f);
    float *cb = lq_alloc_with(a, M * stride * g * sizeof(float));
    if (!f || !cb) {
        lq_free_with(a, f);
        lq_free_with(a, cb);
        lq_lut_pack_free(a, p);
        return LQ_ERR_NO_MEMORY;
    }
    *f = (aq_fmt){M, K, g, ng, cb};
    p->fmt = f;
    p->fmt_free = aq_fmt_free;
    p->build = aq_build;
    const uint8_t *cbs = lq_qtensor_section(t, LQ_SEC_CODEBOOKS)->data;
    memset(cb, 0, M * stride * g * sizeof(float));
    for (size_t i = 0; i < M * K * g; i++) {
        float v;
        if (cbytes == 2) {
            v = lq_f16_to_f32((uint16_t)(cbs[2 * i] | (cbs[2 * i + 1] << 8)));
        } else {
            memcpy(&v, cbs + 4 * i, 4);
        }
        size_t m = i / (K * g), e = (i / g) % K, q = i % g;
        cb[(m * g + q) * stride + e] = v;
    }
    p->seg[0] = 0;
    p->seg[1] = (uint32_t)npos;
    for (size_t q = 0; q < npos; q++) p->tabofs[q] = (uint32_t)(q * stride);
    for (size_t i = 0; i < p->ntiles; i++) p->uniform[i] = 1;
    const uint8_t *codes = lq_qtensor_section(t, LQ_SEC_CODES)->data;
    const uint8_t *scales = lq_qtensor_section(t, LQ_SEC_SCALES)->data;
    for (size_t r = 0; r < t->rows; r++) {
        for (size_t q = 0; q < npos; q++) {
            size_t i = r * npos + q;
            size_t c = B <= 8 ? codes[i] : (size_t)codes[2 * i] | ((size_t)codes[2 * i + 1] << 8);
            lq_lut_put_code(p, r, q, (unsigned)(c & (K - 1)));
        }
        float s;
        memcpy(&s, scales + 4 * r, 4);
        p->mult[(r / LQ_KERN_TILE) * LQ_KERN_TILE + r % LQ_KERN_TILE] = s;
    }
    *out = p;
    return LQ_OK;
}

const lq_kern_format lq_kern_aq = {
    .format = LQ_FORMAT_AQ,
    .prepare = aq_prepare,
    .pack_free = lq_lut_pack_free,
    .max_batch = lq_lut_max_batch,
    .act_bytes = lq_lut_act_bytes,
    .act_build = lq_lut_act_build,
    .rows = LQ_LUT_ROWS,
    .grain = LQ_LUT_GRAIN,
    .pack_bytes = lq_lut_pack_bytes,
};
