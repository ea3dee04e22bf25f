/*
 * LQ_FORMAT_E8P: 2-bit E8P codes (quant/lattice.h "E8P", docs/algorithms.md)
 * for NestQuant with codebook LQ_NQ_CODEBOOK_E8P. docs/formats.md 2.6.
 *
 * The stored matrix is W' = [W 0] R^T (rows x n8, n8 = roundup(cols, 8)),
 * as LQ_FORMAT_E8: each row zero-padded to n8 and, when ip[1] = 1, rotated
 * by the randomized Hadamard transform R of length n8 (seed ip[3..4]).
 * Dequantization undoes R and drops the padding; the product rotates x
 * instead (W x = W' (R [x; 0])), so callers pass the original x.
 *
 * Parameters: ip[0] group (columns of W' per scale, multiple of 8), ip[1]
 * hadamard, ip[2] n8, ip[3] seed low 32 bits, ip[4] seed high 32 bits;
 * every other ip and fp zero. Sections: CODES (uint16 little-endian, one per
 * 8-vector, vector v = r * nblk + j), SCALES (float32, rows x ceil(n8 /
 * group), row-major, finite). Entry (r, 8j + i) of W' = scale[r][8j / group]
 * * y_i with y the E8P codeword of code (r, j). Every 16-bit value is a
 * valid code, so the only data check is finite scales.
 */
#include <math.h>
#include <string.h>

#include "lattice/lattice_internal.h"
#include "qtensor/qtensor_internal.h"

typedef struct e8p_view {
    unsigned hadamard;
    size_t group, n8, nblk, ngroups;
    uint64_t seed;
    const uint16_t *codes;
    const float *scales;
} e8p_view;

static lq_status view_of(const lq_qtensor *t, e8p_view *v)
{
    memset(v, 0, sizeof *v);
    v->group = t->ip[0];
    v->hadamard = t->ip[1];
    v->n8 = t->ip[2];
    v->seed = (uint64_t)t->ip[3] | ((uint64_t)t->ip[4] << 32);
    if (v->hadamard > 1) return LQ_ERR_CORRUPT;
    if (t->cols > SIZE_MAX - 7 || v->n8 != (t->cols + 7) / 8 * 8) return LQ_ERR_CORRUPT;
    if (v->group == 0 || v->group % 8 != 0 || v->group > v->n8) return LQ_ERR_CORRUPT;
    for (unsigned k = 5; k < LQ_QT_NPARAMS; k++)
        if (t->ip[k]) return LQ_ERR_CORRUPT;
    for (unsigned k = 0; k < LQ_QT_NPARAMS; k++)
        if (t->fp[k] != 0.0f) return LQ_ERR_CORRUPT;
    v->nblk = v->n8 / 8;
    v->ngroups = (v->n8 + v->group - 1) / v->group;
    size_t nvec, cbytes, nsc;
    if (!lq_mul_ok(t->rows, v->nblk, &nvec) || !lq_mul_ok(nvec, 2, &cbytes) ||
        !lq_mul_ok(t->rows, v->ngroups, &nsc) || !lq_mul_ok(nsc, 4, &nsc))
        return LQ_ERR_CORRUPT;
    const lq_qsection *sc = lq_qtensor_section(t, LQ_SEC_CODES);
    const lq_qsection *ss = lq_qtensor_section(t, LQ_SEC_SCALES);
    if (!sc || !ss || t->nsec != 2 || sc->nbytes != cbytes || sc->elem_size != 2 ||
        ss->nbytes != nsc || ss->elem_size != 4)
        return LQ_ERR_CORRUPT;
    if ((uintptr_t)sc->data % sizeof(uint16_t) || (uintptr_t)ss->data % sizeof(float))
        return LQ_ERR_CORRUPT;
    v->codes = sc->data;
    v->scales = ss->data;
    return LQ_OK;
}

static lq_status e8p_validate(const lq_qtensor *t)
{
    e8p_view v;
    lq_status st = view_of(t, &v);
    if (st != LQ_OK) return st;
    size_t nsc = t->rows * v.ngroups;
    for (size_t i = 0; i < nsc; i++)
        if (!isfinite(v.scales[i])) return LQ_ERR_CORRUPT;
    return LQ_OK;
}

static double e8p_bits(const lq_qtensor *t)
{
    double b = 0;
    for (size_t i = 0; i < t->nsec; i++) b += 8.0 * (double)t->sec[i].nbytes;
    if (t->ip[1]) b += 64.0; /* Hadamard seed */
    return b;
}

/* Row r of W' (n8 floats): scale * codeword, float product as documented. */
static void decode_row(const e8p_view *v, size_t r, float *out)
{
    for (size_t j = 0; j < v->nblk; j++) {
        size_t col = 8 * j;
        float s = v->scales[r * v->ngroups + col / v->group];
        lq_e8p_point(v->codes[r * v->nblk + j], out + col);
        for (int i = 0; i < 8; i++) out[col + i] = s * out[col + i];
    }
}

static lq_status e8p_dequant_rows(const lq_qtensor *t, size_t r0, size_t r1, float *W,
                                  lq_simd_level level)
{
    (void)level; /* scalar reference only */
    e8p_view v;
    lq_status st = view_of(t, &v);
    if (st != LQ_OK) return st;
    const lq_lattice_kernels *k = lq_lattice_kernels_at(LQ_SIMD_AUTO);
    float *buf = lq_alloc_with(&t->alloc, v.n8 * sizeof(float));
    if (!buf) return LQ_ERR_NO_MEMORY;
    for (size_t r = r0; r < r1; r++) {
        decode_row(&v, r, buf);
        if (v.hadamard) lq_rht_apply(k, buf, v.n8, v.seed, 1);
        memcpy(W + (r - r0) * t->cols, buf, t->cols * sizeof(float));
    }
    lq_free_with(&t->alloc, buf);
    return LQ_OK;
}

/* Y[b, r] = sum over blocks of scale / 4 * sum_i (4 y_i) x'_i, with 4y the
 * integer coordinates of the codeword (E8 + 1/4 points are quarter-integers)
 * and x' = R [x; 0], accumulated in double. */
static lq_status e8p_matmul_rows(const lq_qtensor *t, const float *X, size_t batch, float *Y,
                                 size_t r0, size_t r1, lq_simd_level level)
{
    (void)level; /* scalar reference only */
    e8p_view v;
    lq_status st = view_of(t, &v);
    if (st != LQ_OK) return st;
    const lq_lattice_kernels *k = lq_lattice_kernels_at(LQ_SIMD_AUTO);
    size_t nx;
    if (!lq_mul_ok(batch, v.n8, &nx)) return LQ_ERR_INVALID_ARG;
    float *xr = lq_alloc_with(&t->alloc, nx * sizeof(float));
    float *row = lq_alloc_with(&t->alloc, v.n8 * sizeof(float));
    if (!xr || !row) {
        lq_free_with(&t->alloc, xr);
        lq_free_with(&t->alloc, row);
        return LQ_ERR_NO_MEMORY;
    }
    for (size_t b = 0; b < batch; b++) {
        float *xb = xr + b * v.n8;
        memcpy(xb, X + b * t->cols, t->cols * sizeof(float));
        memset(xb + t->cols, 0, (v.n8 - t->cols) * sizeof(float));
        if (v.hadamard) lq_rht_apply(k, xb, v.n8, v.seed, 0);
    }
    for (size_t r = r0; r < r1; r++) {
        for (size_t j = 0; j < v.nblk; j++) lq_e8p_point(v.codes[r * v.nblk + j], row + 8 * j);
        for (size_t b = 0; b < batch; b++) {
            const float *xb = xr + b * v.n8;
            double acc = 0;
            for (size_t j = 0; j < v.nblk; j++) {
                double d = 0;
                for (int i = 0; i < 8; i++)
                    d += (double)(4.0f * row[8 * j + i]) * (double)xb[8 * j + i];
                acc += (double)v.scales[r * v.ngroups + 8 * j / v.group] * 0.25 * d;
            }
            Y[b * t->rows + r] = (float)acc;
        }
    }
    lq_free_with(&t->alloc, xr);
    lq_free_with(&t->alloc, row);
    return LQ_OK;
}

const lq_format_traits lq_format_e8p_traits = {
    LQ_FORMAT_E8P, "e8p", e8p_validate, e8p_bits, e8p_dequant_rows, e8p_matmul_rows,
};
