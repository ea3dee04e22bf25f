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

#include "core/half.h"
#include "qtensor/qtensor_internal.h"
#include "vq/vq_internal.h"

typedef struct vq_view {
    size_t d, k, kd, gc, gr, ncg, nrb, ncb, nvec, rank, rowb;
    unsigned bits, cbits;
    const uint8_t *codes;
    const uint8_t *cb;     /* half (LE) or int8 codebooks; Vt with SVD */
    const uint8_t *scales; /* float (LE) */
    const uint8_t *U;      /* half (LE), SVD only */
} vq_view;

static void view_of(const lq_qtensor *t, vq_view *v)
{
    v->d = t->ip[LQ_VQ_IP_D];
    v->bits = t->ip[LQ_VQ_IP_BITS];
    v->k = (size_t)1 << v->bits;
    v->kd = v->k * v->d;
    v->gc = t->ip[LQ_VQ_IP_GC];
    v->gr = t->ip[LQ_VQ_IP_GR];
    v->cbits = t->ip[LQ_VQ_IP_CB];
    v->rank = t->ip[LQ_VQ_IP_RANK];
    v->ncg = (t->cols + v->gc - 1) / v->gc;
    v->nrb = (t->rows + v->gr - 1) / v->gr;
    v->ncb = v->ncg * v->nrb;
    v->nvec = t->cols / v->d;
    v->rowb = lq_vq_row_bytes(v->nvec, v->bits);
    const lq_qsection *s;
    v->codes = (s = lq_qtensor_section(t, LQ_SEC_CODES)) ? s->data : NULL;
    v->cb = (s = lq_qtensor_section(t, LQ_SEC_CODEBOOKS)) ? s->data : NULL;
    v->scales = (s = lq_qtensor_section(t, LQ_SEC_SCALES)) ? s->data : NULL;
    v->U = (s = lq_qtensor_section(t, LQ_SEC_AUX)) ? s->data : NULL;
}

static float half_at(const uint8_t *p, size_t i)
{
    return lq_f16_to_f32((uint16_t)(p[2 * i] | (p[2 * i + 1] << 8)));
}

static float f32_at(const uint8_t *p, size_t i)
{
    uint32_t u = (uint32_t)p[4 * i] | ((uint32_t)p[4 * i + 1] << 8) |
                 ((uint32_t)p[4 * i + 2] << 16) | ((uint32_t)p[4 * i + 3] << 24);
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Value q (= e*d + j) of codebook gi. */
static float cb_value(const vq_view *v, size_t gi, size_t q)
{
    if (v->rank) {
        float s = 0;
        for (size_t i = 0; i < v->rank; i++)
            s += half_at(v->U, gi * v->rank + i) * half_at(v->cb, i * v->kd + q);
        return s;
    }
    if (v->cbits == 8) return (float)(int8_t)v->cb[gi * v->kd + q] * f32_at(v->scales, gi);
    return half_at(v->cb, gi * v->kd + q);
}

static int sec_ok(const lq_qsection *s, size_t nbytes, uint32_t elem)
{
    return s && s->nbytes == nbytes && s->elem_size == elem && (nbytes == 0 || s->data);
}

static lq_status vq_validate(const lq_qtensor *t)
{
    uint32_t d = t->ip[LQ_VQ_IP_D], bits = t->ip[LQ_VQ_IP_BITS], gc = t->ip[LQ_VQ_IP_GC];
    uint32_t gr = t->ip[LQ_VQ_IP_GR], cb = t->ip[LQ_VQ_IP_CB], rank = t->ip[LQ_VQ_IP_RANK];
    if (d != 1 && d != 2 && d != 4 && d != 8) return LQ_ERR_CORRUPT;
    if (bits < 1 || bits > 16 || t->cols % d != 0) return LQ_ERR_CORRUPT;
    if (gc == 0 || gc % d != 0 || gc > t->cols || gr == 0 || gr > t->rows) return LQ_ERR_CORRUPT;
    if (cb != 8 && cb != 16) return LQ_ERR_CORRUPT;
    if (rank > 0 && cb != 16) return LQ_ERR_CORRUPT;
    vq_view v;
    view_of(t, &v);
    size_t n, ncbv;
    if (!lq_mul_ok(t->rows, v.rowb, &n) || !sec_ok(lq_qtensor_section(t, LQ_SEC_CODES), n, 1))
        return LQ_ERR_CORRUPT;
    if (!lq_mul_ok(v.ncb, v.kd, &ncbv)) return LQ_ERR_CORRUPT;
    size_t want;
    if (rank) {
        size_t nv, nu;
        if (rank > v.ncb || rank > v.kd) return LQ_ERR_CORRUPT; /* writers clamp to min */
        if (!lq_mul_ok(rank, v.kd, &nv) || !lq_mul_ok(nv, 2, &nv) ||
            !lq_mul_ok(v.ncb, rank, &nu) || !lq_mul_ok(nu, 2, &nu))
            return LQ_ERR_CORRUPT;
        if (!sec_ok(lq_qtensor_section(t, LQ_SEC_CODEBOOKS), nv, 2) ||
            !sec_ok(lq_qtensor_section(t, LQ_SEC_AUX), nu, 2))
            return LQ_ERR_CORRUPT;
        for (size_t i = 0; i < nv / 2; i++)
            if (!isfinite(half_at(v.cb, i))) return LQ_ERR_CORRUPT;
        for (size_t i = 0; i < nu / 2; i++)
            if (!isfinite(half_at(v.U, i))) return LQ_ERR_CORRUPT;
        want = 3;
    } else if (cb == 8) {
        size_t ns;
        if (!lq_mul_ok(v.ncb, 4, &ns) || !sec_ok(lq_qtensor_section(t, LQ_SEC_CODEBOOKS), ncbv, 1) ||
            !sec_ok(lq_qtensor_section(t, LQ_SEC_SCALES), ns, 4))
            return LQ_ERR_CORRUPT;
        for (size_t i = 0; i < v.ncb; i++) {
            float s = f32_at(v.scales, i);
            if (!isfinite(s) || !(s > 0) || s > FLT_MAX / 127.0f) return LQ_ERR_CORRUPT;
        }
        want = 3;
    } else {
        size_t nb;
        if (!lq_mul_ok(ncbv, 2, &nb) || !sec_ok(lq_qtensor_section(t, LQ_SEC_CODEBOOKS), nb, 2))
            return LQ_ERR_CORRUPT;
        for (size_t i = 0; i < ncbv; i++)
            if (!isfinite(half_at(v.cb, i))) return LQ_ERR_CORRUPT;
        want = 2;
    }
    if (t->nsec != want) return LQ_ERR_CORRUPT;
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
    vq_view v;
    view_of(t, &v);
    size_t d = v.d;
    for (size_t r = r0; r < r1; r++) {
        const uint8_t *cr = v.codes + r * v.rowb;
        float *out = W + (r - r0) * t->cols;
        size_t rb = r / v.gr;
        for (size_t vi = 0; vi < v.nvec; vi++) {
            size_t gi = rb * v.ncg + (vi * d) / v.gc, e = lq_vq_get_code(cr, vi, v.bits);
            for (size_t j = 0; j < d; j++) out[vi * d + j] = cb_value(&v, gi, e * d + j);
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
    vq_view v;
    view_of(t, &v);
    size_t cols = t->cols, rows = t->rows, d = v.d;
    float buf[MM_CHUNK];
    for (size_t r = r0; r < r1; r++) {
        const uint8_t *cr = v.codes + r * v.rowb;
        size_t rb = r / v.gr;
        for (size_t b = 0; b < batch; b++) Y[b * rows + r] = 0.0f;
        for (size_t k0 = 0; k0 < cols; k0 += MM_CHUNK) {
            size_t k1 = k0 + MM_CHUNK < cols ? k0 + MM_CHUNK : cols;
            /* MM_CHUNK is a multiple of every d: chunks hold whole vectors */
            for (size_t vi = k0 / d; vi < k1 / d; vi++) {
                size_t gi = rb * v.ncg + (vi * d) / v.gc, e = lq_vq_get_code(cr, vi, v.bits);
                for (size_t j = 0; j < d; j++) buf[vi * d + j - k0] = cb_value(&v, gi, e * d + j);
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
