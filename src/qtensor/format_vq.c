/*
 * LQ_FORMAT_VQ: d-dimensional vector codes with one codebook of 2^b entries
 * per (row block, column block), codebooks stored as halves, as int8 with a
 * float scale per codebook, or as the halves of a rank-r factorisation of
 * the stacked codebooks. Layout: src/vq/vq_internal.h ("LQ_FORMAT_VQ
 * layout"); docs/algorithms.md for the bits accounting.
 *
 * Validation never trusts the tensor: parameters in range, group sizes
 * consistent with the shape, every section present with the exact size and
 * element size, every stored codebook value (and SVD factor) finite and
 * every int8 scale finite and positive. Codes need no check: a b-bit field
 * cannot exceed the 2^b entries.
 */
#include <float.h>
#include <math.h>
#include <string.h>

#include "qtensor/format_vq.h"

static int sec_ok(const lq_qsection *s, size_t nbytes, uint32_t elem)
{
    return s && s->nbytes == nbytes && s->elem_size == elem && (nbytes == 0 || s->data);
}

static const uint8_t *sec_data(const lq_qtensor *t, uint32_t tag)
{
    const lq_qsection *s = lq_qtensor_section(t, tag);
    return s ? s->data : NULL;
}

lq_status lq_vq_layout_read(const lq_qtensor *t, lq_vq_layout *v)
{
    if (!t || !v || t->format != LQ_FORMAT_VQ) return LQ_ERR_INVALID_ARG;
    uint32_t d = t->ip[LQ_VQ_IP_D], bits = t->ip[LQ_VQ_IP_BITS], gc = t->ip[LQ_VQ_IP_GC];
    uint32_t gr = t->ip[LQ_VQ_IP_GR], cb = t->ip[LQ_VQ_IP_CB], rank = t->ip[LQ_VQ_IP_RANK];
    for (unsigned k = LQ_VQ_IP_RANK + 1; k < LQ_QT_NPARAMS; k++) /* words VQ does not define */
        if (t->ip[k]) return LQ_ERR_CORRUPT;
    for (unsigned k = 0; k < LQ_QT_NPARAMS; k++)
        if (t->fp[k] != 0.0f) return LQ_ERR_CORRUPT;
    if (d != 1 && d != 2 && d != 4 && d != 8) return LQ_ERR_CORRUPT;
    if (bits < 1 || bits > 16 || t->cols % d != 0) return LQ_ERR_CORRUPT;
    if (gc == 0 || gc % d != 0 || gc > t->cols || gr == 0 || gr > t->rows) return LQ_ERR_CORRUPT;
    if (cb != 8 && cb != 16) return LQ_ERR_CORRUPT;
    if (rank > 0 && cb != 16) return LQ_ERR_CORRUPT;
    v->rows = t->rows;
    v->cols = t->cols;
    v->d = d;
    v->bits = bits;
    v->K = (size_t)1 << bits;
    v->gc = gc;
    v->gr = gr;
    v->cbits = cb;
    v->rank = rank;
    v->ncg = (t->cols + gc - 1) / gc;
    v->nrb = (t->rows + gr - 1) / gr;
    v->ncb = v->ncg * v->nrb;
    v->nvec = t->cols / d;
    v->row_bytes = lq_vq_row_bytes(v->nvec, bits);
    v->codes = sec_data(t, LQ_SEC_CODES);
    v->cb = sec_data(t, LQ_SEC_CODEBOOKS);
    v->scales = sec_data(t, LQ_SEC_SCALES);
    v->U = sec_data(t, LQ_SEC_AUX);
    size_t kd = v->K * d, n, ncbv;
    if (!lq_mul_ok(t->rows, v->row_bytes, &n) || !sec_ok(lq_qtensor_section(t, LQ_SEC_CODES), n, 1))
        return LQ_ERR_CORRUPT;
    if (!lq_mul_ok(v->ncb, kd, &ncbv)) return LQ_ERR_CORRUPT;
    size_t want;
    if (rank) {
        size_t nv, nu;
        if (rank > v->ncb || rank > kd) return LQ_ERR_CORRUPT; /* writers clamp to min */
        if (!lq_mul_ok(rank, kd, &nv) || !lq_mul_ok(nv, 2, &nv) || !lq_mul_ok(v->ncb, rank, &nu) ||
            !lq_mul_ok(nu, 2, &nu))
            return LQ_ERR_CORRUPT;
        if (!sec_ok(lq_qtensor_section(t, LQ_SEC_CODEBOOKS), nv, 2) ||
            !sec_ok(lq_qtensor_section(t, LQ_SEC_AUX), nu, 2))
            return LQ_ERR_CORRUPT;
        v->scales = NULL;
        want = 3;
    } else if (cb == 8) {
        size_t ns;
        if (!lq_mul_ok(v->ncb, 4, &ns) ||
            !sec_ok(lq_qtensor_section(t, LQ_SEC_CODEBOOKS), ncbv, 1) ||
            !sec_ok(lq_qtensor_section(t, LQ_SEC_SCALES), ns, 4))
            return LQ_ERR_CORRUPT;
        v->U = NULL;
        want = 3;
    } else {
        size_t nb;
        if (!lq_mul_ok(ncbv, 2, &nb) || !sec_ok(lq_qtensor_section(t, LQ_SEC_CODEBOOKS), nb, 2))
            return LQ_ERR_CORRUPT;
        v->scales = v->U = NULL;
        want = 2;
    }
    if (t->nsec != want) return LQ_ERR_CORRUPT;
    return LQ_OK;
}

static lq_status vq_validate(const lq_qtensor *t)
{
    lq_vq_layout v;
    lq_status st = lq_vq_layout_read(t, &v);
    if (st != LQ_OK) return LQ_ERR_CORRUPT;
    size_t kd = v.K * v.d;
    if (v.rank) {
        for (size_t i = 0; i < v.rank * kd; i++)
            if (!isfinite(lq_vq_half_at(v.cb, i))) return LQ_ERR_CORRUPT;
        for (size_t i = 0; i < v.ncb * v.rank; i++)
            if (!isfinite(lq_vq_half_at(v.U, i))) return LQ_ERR_CORRUPT;
    } else if (v.cbits == 8) {
        for (size_t i = 0; i < v.ncb; i++) {
            float s = lq_vq_f32_at(v.scales, i);
            if (!isfinite(s) || !(s > 0) || s > FLT_MAX / 127.0f) return LQ_ERR_CORRUPT;
        }
    } else {
        for (size_t i = 0; i < v.ncb * kd; i++)
            if (!isfinite(lq_vq_half_at(v.cb, i))) return LQ_ERR_CORRUPT;
    }
    return LQ_OK;
}

/* Every byte stored: index bit streams (with their per-row padding), the
 * codebooks, and the scales or SVD factors. */
static double vq_bits(const lq_qtensor *t)
{
    double b = 0;
    for (size_t i = 0; i < t->nsec; i++) b += 8.0 * (double)t->sec[i].nbytes;
    return b;
}

static lq_status vq_dequant_rows(const lq_qtensor *t, size_t r0, size_t r1, float *W,
                                 lq_simd_level level)
{
    lq_vq_layout v;
    if (lq_vq_layout_read(t, &v) != LQ_OK) return LQ_ERR_CORRUPT;
    size_t d = v.d;
    for (size_t r = r0; r < r1; r++) {
        float *out = W + (r - r0) * t->cols;
        size_t rb = r / v.gr;
        for (size_t vi = 0; vi < v.nvec; vi++) {
            size_t gi = lq_vq_layout_book(&v, rb, (vi * d) / v.gc),
                   e = lq_vq_layout_code(&v, r, vi);
            for (size_t j = 0; j < d; j++) out[vi * d + j] = lq_vq_layout_value(&v, gi, e * d + j);
        }
    }
    return LQ_OK;
}

/* Reference product on the codes: per row, chunks of 256 columns decoded
 * then dotted in double, chunk sums added to Y in order (as format_int). */
#define MM_CHUNK 256

static lq_status vq_matmul_rows(const lq_qtensor *t, const float *X, size_t batch, float *Y,
                                size_t r0, size_t r1, lq_simd_level level)
{
    lq_vq_layout v;
    if (lq_vq_layout_read(t, &v) != LQ_OK) return LQ_ERR_CORRUPT;
    size_t cols = t->cols, rows = t->rows, d = v.d;
    float buf[MM_CHUNK];
    for (size_t r = r0; r < r1; r++) {
        size_t rb = r / v.gr;
        for (size_t b = 0; b < batch; b++) Y[b * rows + r] = 0.0f;
        for (size_t k0 = 0; k0 < cols; k0 += MM_CHUNK) {
            size_t k1 = k0 + MM_CHUNK < cols ? k0 + MM_CHUNK : cols;
            /* MM_CHUNK is a multiple of every d: chunks hold whole vectors */
            for (size_t vi = k0 / d; vi < k1 / d; vi++) {
                size_t gi = lq_vq_layout_book(&v, rb, (vi * d) / v.gc);
                size_t e = lq_vq_layout_code(&v, r, vi);
                for (size_t j = 0; j < d; j++)
                    buf[vi * d + j - k0] = lq_vq_layout_value(&v, gi, e * d + j);
            }
            for (size_t b = 0; b < batch; b++) {
                const float *x = X + b * cols;
                double acc = 0;
                for (size_t k = k0; k < k1; k++) acc += (double)buf[k - k0] * (double)x[k];
                Y[b * rows + r] += (float)acc;
            }
        }
    }
    return LQ_OK;
}

const lq_format_traits lq_format_vq_traits = {
    LQ_FORMAT_VQ, "vq", vq_validate, vq_bits, vq_dequant_rows, vq_matmul_rows,
};
