/* VQ on the table kernels.
 *
 * Stored layout: src/vq/vq_internal.h ("LQ_FORMAT_VQ layout"): per row a
 * bit stream of b-bit codes of d-vectors; one codebook of 2^b entries per
 * (row block, column block), stored as halves, int8 with a scale, or a
 * rank-r factorisation. At load the codebooks are decoded to float with
 * the format's formulas. Position j = the j-th d-vector of a row; the table
 * of position j in set rb holds T[e] = codebook(rb, j)[e] . x_j (a dot
 * product of d terms in order). One segment, weight 1. Tables are per
 * activation and row block: nrb * (cols / d) * max(2^b, 16) floats. */
#include <string.h>

#include "core/half.h"
#include "products/lut.h"
#include "vq/vq_internal.h"

typedef struct vq_fmt {
    size_t d, K, gc, ncg, nrb, nvec;
    float *cb; /* ncb codebooks, each transposed: d x max(K, 16), zero padded */
} vq_fmt;

static void vq_fmt_free(const lq_allocator *a, void *fp)
{
    vq_fmt *f = fp;
    if (!f) return;
    lq_free_with(a, f->cb);
    lq_free_with(a, f);
}

static void vq_build(const lq_lut_pack *p, const float *x, float *T, lq_simd_level level)
{
    const vq_fmt *f = p->fmt;
    size_t stride = f->K < 16 ? 16 : f->K;
    lq_lut_dot_fn dot = lq_lut_dot_for(level);
    for (size_t rb = 0; rb < f->nrb; rb++)
        for (size_t j = 0; j < f->nvec; j++) {
            const float *cbT = f->cb + (rb * f->ncg + j * f->d / f->gc) * stride * f->d;
            dot(cbT, stride, f->d, x + j * f->d, T + rb * p->tabset + j * stride);
        }
}

static float rd_half(const uint8_t *p, size_t i)
{
    return lq_f16_to_f32((uint16_t)(p[2 * i] | (p[2 * i + 1] << 8)));
}

static float rd_f32(const uint8_t *p, size_t i)
{
    float f;
    memcpy(&f, p + 4 * i, 4);
    return f;
}

static lq_status vq_prepare(const lq_qtensor *t, const lq_allocator *a, void **out)
{
    size_t d = t->ip[LQ_VQ_IP_D], bits = t->ip[LQ_VQ_IP_BITS], gc = t->ip[LQ_VQ_IP_GC];
    size_t gr = t->ip[LQ_VQ_IP_GR], cbits = t->ip[LQ_VQ_IP_CB], rank = t->ip[LQ_VQ_IP_RANK];
    size_t K = (size_t)1 << bits, kd = K * d, nvec = t->cols / d;
    size_t ncg = (t->cols + gc - 1) / gc, nrb = (t->rows + gr - 1) / gr, ncb = ncg * nrb;
    size_t stride = K < 16 ? 16 : K, tabset;
    size_t tables;
    /* tables pay only when smaller than the weights (many small row
     * blocks or huge codebooks: the reference path serves the tensor); this
     * also keeps 32-bit gather indices in range */
    size_t limit = t->rows * t->cols > ((size_t)1 << 20) ? t->rows * t->cols : (size_t)1 << 20;
    if (!lq_mul_ok(nvec, stride, &tabset) || !lq_mul_ok(tabset, nrb, &tables) || tables > limit ||
        tables > ((size_t)1 << 30))
        return LQ_ERR_UNSUPPORTED;
    lq_lut_pack geo;
    memset(&geo, 0, sizeof geo);
    geo.rows = t->rows;
    geo.cols = t->cols;
    geo.npos = nvec;
    geo.K = (unsigned)K;
    geo.cw = bits <= 4 ? 4 : bits <= 8 ? 8 : 16;
    geo.nseg = 1;
    geo.tabset = tabset;
    geo.nsets = nrb;
    lq_lut_pack *p;
    lq_status st = lq_lut_pack_alloc(&geo, a, &p);
    if (st != LQ_OK) return st;
    vq_fmt *f = lq_alloc_with(a, sizeof *f);
    size_t ncbv;
    float *cb = lq_mul_ok(ncb, stride * d, &ncbv) && ncbv < SIZE_MAX / 4
                    ? lq_alloc_with(a, ncbv * sizeof(float)) : NULL;
    if (!f || !cb) {
        lq_free_with(a, f);
        lq_free_with(a, cb);
        lq_lut_pack_free(a, p);
        return LQ_ERR_NO_MEMORY;
    }
    *f = (vq_fmt){d, K, gc, ncg, nrb, nvec, cb};
    p->fmt = f;
    p->fmt_free = vq_fmt_free;
    p->build = vq_build;
    memset(cb, 0, ncbv * sizeof(float));
    const uint8_t *cbs = lq_qtensor_section(t, LQ_SEC_CODEBOOKS)->data;
    const lq_qsection *ss = lq_qtensor_section(t, LQ_SEC_SCALES);
    const lq_qsection *su = lq_qtensor_section(t, LQ_SEC_AUX);
    for (size_t g = 0; g < ncb; g++)
        for (size_t q = 0; q < kd; q++) {
            float v;
            if (rank) {
                v = 0;
                for (size_t i = 0; i < rank; i++)
                    v += rd_half(su->data, g * rank + i) * rd_half(cbs, i * kd + q);
            } else if (cbits == 8) {
                v = (float)(int8_t)cbs[g * kd + q] * rd_f32(ss->data, g);
            } else {
                v = rd_half(cbs, g * kd + q);
            }
            cb[(g * d + q % d) * stride + q / d] = v; /* entry q / d, coordinate q % d */
        }
    p->seg[0] = 0;
    p->seg[1] = (uint32_t)nvec;
    for (size_t j = 0; j < nvec; j++) p->tabofs[j] = (uint32_t)(j * stride);
    const uint8_t *codes = lq_qtensor_section(t, LQ_SEC_CODES)->data;
    size_t rowb = lq_vq_row_bytes(nvec, (unsigned)bits);
    for (size_t r = 0; r < t->rows; r++) {
        for (size_t j = 0; j < nvec; j++)
            lq_lut_put_code(p, r, j, lq_vq_get_code(codes + r * rowb, j, (unsigned)bits));
        p->lane_set[r] = (uint32_t)(r / gr);
        p->mult[(r / LQ_KERN_TILE) * LQ_KERN_TILE + r % LQ_KERN_TILE] = 1.0f;
    }
    for (size_t tile = 0; tile < p->ntiles; tile++) {
        size_t r0 = tile * LQ_KERN_TILE, r1 = r0 + LQ_KERN_TILE < t->rows ? r0 + LQ_KERN_TILE : t->rows;
        p->uniform[tile] = (uint8_t)(r0 / gr == (r1 - 1) / gr);
        /* padding lanes read set 0: valid memory, results discarded */
    }
    *out = p;
    return LQ_OK;
}

const lq_kern_format lq_kern_vq = {
    .format = LQ_FORMAT_VQ,
    .prepare = vq_prepare,
    .pack_free = lq_lut_pack_free,
    .max_batch = lq_lut_max_batch,
    .act_bytes = lq_lut_act_bytes,
    .act_build = lq_lut_act_build,
    .rows = LQ_LUT_ROWS,
    .grain = LQ_LUT_GRAIN,
    .pack_bytes = lq_lut_pack_bytes,
};
