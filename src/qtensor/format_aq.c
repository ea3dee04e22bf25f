/*
 * LQ_FORMAT_AQ: additive multi-codebook codes (AQLM). Layout and parameters:
 * src/mcq/aq_internal.h ("LQ_FORMAT_AQ"). A row i, group j is
 *   s_i * sum_m C_m[code(i, j, m)].
 *
 * Validation never trusts the tensor: parameters in range, g dividing cols,
 * exactly three sections with exact sizes and element sizes, every code
 * below 2^B, every codebook value and scale finite. Dequantization and the
 * product mask codes to B bits anyway, so an unvalidated tensor cannot make
 * them read out of bounds.
 */
#include <math.h>
#include <string.h>

#include "qtensor/format_aq.h"

static int sec_ok(const lq_qsection *s, size_t nbytes, uint32_t elem)
{
    return s && s->nbytes == nbytes && s->elem_size == elem && (nbytes == 0 || s->data);
}

lq_status lq_aq_layout_read(const lq_qtensor *t, lq_aq_layout *v)
{
    if (!t || !v || t->format != LQ_FORMAT_AQ) return LQ_ERR_INVALID_ARG;
    uint32_t M = t->ip[LQ_AQ_IP_M], B = t->ip[LQ_AQ_IP_B], g = t->ip[LQ_AQ_IP_G];
    uint32_t cbb = t->ip[LQ_AQ_IP_CB];
    if (M < 1 || M > 8 || B < 1 || B > 16 || g < 1 || g > 64 || t->cols % g) return LQ_ERR_CORRUPT;
    if (cbb != 2 && cbb != 4) return LQ_ERR_CORRUPT;
    for (size_t q = 4; q < LQ_QT_NPARAMS; q++)
        if (t->ip[q]) return LQ_ERR_CORRUPT;
    for (size_t q = 0; q < LQ_QT_NPARAMS; q++) /* AQ defines no float word */
        if (t->fp[q] != 0.0f) return LQ_ERR_CORRUPT;
    v->rows = t->rows;
    v->cols = t->cols;
    v->M = M;
    v->B = B;
    v->K = (size_t)1 << B;
    v->g = g;
    v->ng = t->cols / g;
    v->value_bytes = cbb;
    v->code_bytes = B <= 8 ? 1 : 2;
    const lq_qsection *c = lq_qtensor_section(t, LQ_SEC_CODES);
    const lq_qsection *cb = lq_qtensor_section(t, LQ_SEC_CODEBOOKS);
    const lq_qsection *sc = lq_qtensor_section(t, LQ_SEC_SCALES);
    size_t ncodes, nb, ncb = (size_t)M * v->K * g;
    if (!lq_mul_ok(t->rows, v->ng * M, &ncodes) || !lq_mul_ok(ncodes, v->code_bytes, &nb) ||
        !sec_ok(c, nb, v->code_bytes))
        return LQ_ERR_CORRUPT;
    if (!sec_ok(cb, ncb * cbb, cbb)) return LQ_ERR_CORRUPT;
    if (!lq_mul_ok(t->rows, 4, &nb) || !sec_ok(sc, nb, 4)) return LQ_ERR_CORRUPT;
    if (t->nsec != 3) return LQ_ERR_CORRUPT;
    v->codes = c->data;
    v->cb = cb->data;
    v->scales = sc->data;
    return LQ_OK;
}

static lq_status aq_validate(const lq_qtensor *t)
{
    lq_aq_layout v;
    if (lq_aq_layout_read(t, &v) != LQ_OK) return LQ_ERR_CORRUPT;
    size_t ncodes = t->rows * v.ng * v.M, ncb = v.M * v.K * v.g;
    if (v.code_bytes == 1 && v.B < 8) {
        for (size_t i = 0; i < ncodes; i++)
            if (v.codes[i] >> v.B) return LQ_ERR_CORRUPT;
    } else if (v.code_bytes == 2 && v.B < 16) {
        for (size_t i = 0; i < ncodes; i++)
            if (((size_t)v.codes[2 * i] | ((size_t)v.codes[2 * i + 1] << 8)) >> v.B)
                return LQ_ERR_CORRUPT;
    }
    for (size_t i = 0; i < ncb; i++)
        if (!isfinite(lq_aq_layout_value(&v, i))) return LQ_ERR_CORRUPT;
    for (size_t i = 0; i < t->rows; i++)
        if (!isfinite(lq_aq_layout_scale(&v, i))) return LQ_ERR_CORRUPT;
    return LQ_OK;
}

/* Every stored byte: codes (8- or 16-bit containers), codebooks, scales. */
static double aq_bits(const lq_qtensor *t)
{
    double b = 0;
    for (size_t i = 0; i < t->nsec; i++) b += 8.0 * (double)t->sec[i].nbytes;
    return b;
}

/* Decoded (unscaled) group vector of row r, group j into v[g]. */
static void group_vec(const lq_aq_layout *a, size_t r, size_t j, float *v)
{
    for (size_t q = 0; q < a->g; q++) v[q] = 0.0f;
    for (size_t m = 0; m < a->M; m++) {
        size_t c = lq_aq_layout_code(a, (r * a->ng + j) * a->M + m);
        size_t base = (m * a->K + c) * a->g;
        for (size_t q = 0; q < a->g; q++) v[q] += lq_aq_layout_value(a, base + q);
    }
}

static lq_status aq_dequant_rows(const lq_qtensor *t, size_t r0, size_t r1, float *W,
                                 lq_simd_level level)
{
    lq_aq_layout a;
    if (lq_aq_layout_read(t, &a) != LQ_OK) return LQ_ERR_CORRUPT;
    for (size_t r = r0; r < r1; r++) {
        float s = lq_aq_layout_scale(&a, r), v[64];
        float *o = W + (r - r0) * t->cols;
        for (size_t j = 0; j < a.ng; j++) {
            group_vec(&a, r, j, v);
            for (size_t q = 0; q < a.g; q++) o[j * a.g + q] = s * v[q];
        }
    }
    return LQ_OK;
}

/* Scalar reference product on the codes: for each row and group, the sum of
 * the M code vectors (decoded from the stored halves) dotted with the
 * activations' group; the row scale is applied once per row. For small
 * codebooks a float copy of the codebooks lives on the stack. */
#define AQ_STACK_CB 8192
static lq_status aq_matmul_rows(const lq_qtensor *t, const float *X, size_t batch, float *Y,
                                size_t r0, size_t r1, lq_simd_level level)
{
    lq_aq_layout a;
    if (lq_aq_layout_read(t, &a) != LQ_OK) return LQ_ERR_CORRUPT;
    size_t ncb = a.M * a.K * a.g;
    float cbf[AQ_STACK_CB];
    int local = ncb <= AQ_STACK_CB;
    if (local)
        for (size_t i = 0; i < ncb; i++) cbf[i] = lq_aq_layout_value(&a, i);
    for (size_t r = r0; r < r1; r++) {
        float s = lq_aq_layout_scale(&a, r);
        for (size_t b = 0; b < batch; b++) {
            const float *x = X + b * t->cols;
            double acc = 0.0;
            for (size_t j = 0; j < a.ng; j++) {
                float v[64];
                if (local) {
                    for (size_t q = 0; q < a.g; q++) v[q] = 0.0f;
                    for (size_t m = 0; m < a.M; m++) {
                        const float *c =
                            cbf + (m * a.K + lq_aq_layout_code(&a, (r * a.ng + j) * a.M + m)) * a.g;
                        for (size_t q = 0; q < a.g; q++) v[q] += c[q];
                    }
                } else {
                    group_vec(&a, r, j, v);
                }
                float d = 0.0f;
                for (size_t q = 0; q < a.g; q++) d += v[q] * x[j * a.g + q];
                acc += d;
            }
            Y[b * t->rows + r] = s * (float)acc;
        }
    }
    return LQ_OK;
}

const lq_format_traits lq_format_aq_traits = {LQ_FORMAT_AQ,    "aq",          aq_validate, aq_bits,
                                              aq_dequant_rows, aq_matmul_rows};
