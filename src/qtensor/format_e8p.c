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
 * Parameters (read and written only through qtensor/format_e8p.h): ip[0] group (columns of W' per
 * scale, multiple of 8), ip[1] hadamard, ip[2] n8, ip[3] seed low 32 bits, ip[4] seed high 32 bits;
 * every other ip and fp zero. Sections: CODES (uint16 little-endian, one per
 * 8-vector, vector v = r * nblk + j), SCALES (float32, rows x ceil(n8 /
 * group), row-major, finite). Entry (r, 8j + i) of W' = scale[r][8j / group]
 * * y_i with y the E8P codeword of code (r, j). Every 16-bit value is a
 * valid code, so the only data check is finite scales.
 */
#include <math.h>
#include <string.h>

#include "lattice/lattice_internal.h"
#include "qtensor/format_e8p.h"

static bool derive(lq_e8p_layout *v, size_t *cbytes, size_t *sbytes)
{
    if (v->hadamard > 1) return false;
    if (v->cols > SIZE_MAX - 7 || v->n8 != (v->cols + 7) / 8 * 8) return false;
    if (v->group == 0 || v->group % 8 != 0 || v->group > v->n8) return false;
    v->nblk = v->n8 / 8;
    v->ngroups = (v->n8 + v->group - 1) / v->group;
    size_t nvec, nsc;
    return lq_mul_ok(v->rows, v->nblk, &nvec) && lq_mul_ok(nvec, 2, cbytes) &&
           lq_mul_ok(v->rows, v->ngroups, &nsc) && lq_mul_ok(nsc, 4, sbytes);
}

lq_status lq_e8p_layout_of(const lq_qtensor *t, lq_e8p_layout *v)
{
    if (!t || !v || t->format != LQ_FORMAT_E8P) return LQ_ERR_INVALID_ARG;
    lq_e8p_layout L;
    memset(&L, 0, sizeof L);
    L.rows = t->rows;
    L.cols = t->cols;
    L.group = t->ip[LQ_E8P_IP_GROUP];
    L.hadamard = t->ip[LQ_E8P_IP_HADAMARD];
    L.n8 = t->ip[LQ_E8P_IP_N8];
    L.seed = (uint64_t)t->ip[LQ_E8P_IP_SEED_LO] | ((uint64_t)t->ip[LQ_E8P_IP_SEED_HI] << 32);
    for (unsigned k = LQ_E8P_NIP; k < LQ_QT_NPARAMS; k++)
        if (t->ip[k]) return LQ_ERR_CORRUPT;
    for (unsigned k = 0; k < LQ_QT_NPARAMS; k++)
        if (t->fp[k] != 0.0f) return LQ_ERR_CORRUPT;
    size_t cbytes, nsc;
    if (!derive(&L, &cbytes, &nsc)) return LQ_ERR_CORRUPT;
    const lq_qsection *sc = lq_qtensor_section(t, LQ_SEC_CODES);
    const lq_qsection *ss = lq_qtensor_section(t, LQ_SEC_SCALES);
    if (!sc || !ss || t->nsec != 2 || sc->nbytes != cbytes || sc->elem_size != 2 ||
        ss->nbytes != nsc || ss->elem_size != 4)
        return LQ_ERR_CORRUPT;
    if ((uintptr_t)sc->data % sizeof(uint16_t) || (uintptr_t)ss->data % sizeof(float))
        return LQ_ERR_CORRUPT;
    L.codes = sc->data;
    L.scales = ss->data;
    *v = L;
    return LQ_OK;
}

lq_status lq_e8p_layout_write(lq_ctx *ctx, size_t rows, size_t cols, size_t group,
                              unsigned hadamard, uint64_t seed, lq_qtensor **out, lq_e8p_layout *v)
{
    if (!out || cols > SIZE_MAX - 7) return LQ_ERR_INVALID_ARG;
    lq_e8p_layout L;
    memset(&L, 0, sizeof L);
    L.rows = rows;
    L.cols = cols;
    L.group = group;
    L.hadamard = hadamard;
    L.n8 = (cols + 7) / 8 * 8;
    L.seed = seed;
    size_t cbytes, nsc;
    if (!derive(&L, &cbytes, &nsc) || L.n8 > UINT32_MAX) return LQ_ERR_INVALID_ARG;
    lq_qtensor *t;
    lq_status st = lq_qtensor_new(ctx, LQ_FORMAT_E8P, rows, cols, &t);
    if (st != LQ_OK) return st;
    t->ip[LQ_E8P_IP_GROUP] = (uint32_t)L.group;
    t->ip[LQ_E8P_IP_HADAMARD] = L.hadamard;
    t->ip[LQ_E8P_IP_N8] = (uint32_t)L.n8;
    t->ip[LQ_E8P_IP_SEED_LO] = (uint32_t)(seed & 0xffffffffu);
    t->ip[LQ_E8P_IP_SEED_HI] = (uint32_t)(seed >> 32);
    uint16_t *codes = lq_qtensor_add_section(t, LQ_SEC_CODES, 2, cbytes);
    float *sc = lq_qtensor_add_section(t, LQ_SEC_SCALES, 4, nsc);
    if (!codes || !sc) {
        lq_qtensor_free(t);
        return LQ_ERR_NO_MEMORY;
    }
    memset(codes, 0, cbytes);
    memset(sc, 0, nsc);
    L.codes = codes;
    L.scales = sc;
    if (v) *v = L;
    *out = t;
    return LQ_OK;
}

static lq_status e8p_validate(const lq_qtensor *t)
{
    lq_e8p_layout v;
    lq_status st = lq_e8p_layout_of(t, &v);
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
    lq_e8p_layout v;
    if (lq_e8p_layout_of(t, &v) == LQ_OK && v.hadamard) b += 64.0; /* Hadamard seed */
    return b;
}

/* Row r of W' (n8 floats): scale * codeword, float product as documented. */
static void decode_row(const lq_e8p_layout *v, size_t r, float *out)
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
    lq_e8p_layout v;
    lq_status st = lq_e8p_layout_of(t, &v);
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
    lq_e8p_layout v;
    lq_status st = lq_e8p_layout_of(t, &v);
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
        lq_rht_pad_forward(k, X + b * t->cols, t->cols, v.n8, (int)v.hadamard, v.seed, xb);
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
