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

#include "core/half.h"
#include "mcq/aq_internal.h"
#include "qtensor/qtensor_internal.h"

typedef struct aq_view {
    size_t M, B, K, g, ng, cbytes, codeb;
    const uint8_t *codes, *cb, *scales;
} aq_view;

static void view_of(const lq_qtensor *t, aq_view *v)
{
    v->M = t->ip[LQ_AQ_IP_M];
    v->B = t->ip[LQ_AQ_IP_B];
    v->K = (size_t)1 << (v->B & 31);
    v->g = t->ip[LQ_AQ_IP_G];
    v->ng = v->g ? t->cols / v->g : 0;
    v->cbytes = t->ip[LQ_AQ_IP_CB];
    v->codeb = v->B <= 8 ? 1 : 2;
    const lq_qsection *s;
    v->codes = (s = lq_qtensor_section(t, LQ_SEC_CODES)) ? s->data : NULL;
    v->cb = (s = lq_qtensor_section(t, LQ_SEC_CODEBOOKS)) ? s->data : NULL;
    v->scales = (s = lq_qtensor_section(t, LQ_SEC_SCALES)) ? s->data : NULL;
}

static size_t code_at(const aq_view *v, size_t i)
{
    size_t c = v->codeb == 1 ? v->codes[i] : (size_t)v->codes[2 * i] | ((size_t)v->codes[2 * i + 1] << 8);
    return c & (v->K - 1);
}

static float cb_at(const aq_view *v, size_t i)
{
    if (v->cbytes == 2) return lq_f16_to_f32((uint16_t)(v->cb[2 * i] | (v->cb[2 * i + 1] << 8)));
    uint32_t u = (uint32_t)v->cb[4 * i] | ((uint32_t)v->cb[4 * i + 1] << 8) |
                 ((uint32_t)v->cb[4 * i + 2] << 16) | ((uint32_t)v->cb[4 * i + 3] << 24);
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static float scale_at(const aq_view *v, size_t i)
{
    uint32_t u = (uint32_t)v->scales[4 * i] | ((uint32_t)v->scales[4 * i + 1] << 8) |
                 ((uint32_t)v->scales[4 * i + 2] << 16) | ((uint32_t)v->scales[4 * i + 3] << 24);
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static int sec_ok(const lq_qsection *s, size_t nbytes, uint32_t elem)
{
    return s && s->nbytes == nbytes && s->elem_size == elem && (nbytes == 0 || s->data);
}

static lq_status aq_validate(const lq_qtensor *t)
{
    uint32_t M = t->ip[LQ_AQ_IP_M], B = t->ip[LQ_AQ_IP_B], g = t->ip[LQ_AQ_IP_G];
    uint32_t cbb = t->ip[LQ_AQ_IP_CB];
    if (M < 1 || M > 8 || B < 1 || B > 16 || g < 1 || g > 64 || t->cols % g) return LQ_ERR_CORRUPT;
    if (cbb != 2 && cbb != 4) return LQ_ERR_CORRUPT;
    for (size_t q = 4; q < LQ_QT_NPARAMS; q++)
        if (t->ip[q]) return LQ_ERR_CORRUPT;
    aq_view v;
    view_of(t, &v);
    size_t ncodes, nb, ncb;
    if (!lq_mul_ok(t->rows, v.ng * M, &ncodes) || !lq_mul_ok(ncodes, v.codeb, &nb) ||
        !sec_ok(lq_qtensor_section(t, LQ_SEC_CODES), nb, (uint32_t)v.codeb))
        return LQ_ERR_CORRUPT;
    ncb = (size_t)M * v.K * g;
    if (!sec_ok(lq_qtensor_section(t, LQ_SEC_CODEBOOKS), ncb * cbb, cbb)) return LQ_ERR_CORRUPT;
    if (!lq_mul_ok(t->rows, 4, &nb) || !sec_ok(lq_qtensor_section(t, LQ_SEC_SCALES), nb, 4))
        return LQ_ERR_CORRUPT;
    if (t->nsec != 3) return LQ_ERR_CORRUPT;
    if (v.codeb == 1 && B < 8) {
        for (size_t i = 0; i < ncodes; i++)
            if (v.codes[i] >> B) return LQ_ERR_CORRUPT;
    } else if (v.codeb == 2 && B < 16) {
        for (size_t i = 0; i < ncodes; i++)
            if (((size_t)v.codes[2 * i] | ((size_t)v.codes[2 * i + 1] << 8)) >> B)
                return LQ_ERR_CORRUPT;
    }
    for (size_t i = 0; i < ncb; i++)
        if (!isfinite(cb_at(&v, i))) return LQ_ERR_CORRUPT;
    for (size_t i = 0; i < t->rows; i++)
        if (!isfinite(scale_at(&v, i))) return LQ_ERR_CORRUPT;
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
static void group_vec(const aq_view *a, size_t r, size_t j, float *v)
{
    for (size_t q = 0; q < a->g; q++) v[q] = 0.0f;
    for (size_t m = 0; m < a->M; m++) {
        size_t c = code_at(a, (r * a->ng + j) * a->M + m);
        size_t base = (m * a->K + c) * a->g;
        for (size_t q = 0; q < a->g; q++) v[q] += cb_at(a, base + q);
    }
}

static lq_status aq_dequant_rows(const lq_qtensor *t, size_t r0, size_t r1, float *W,
                                  lq_simd_level level)
{
    aq_view a;
    view_of(t, &a);
    if (!a.codes || !a.cb || !a.scales || a.g < 1 || a.g > 64 || a.M > 8 || a.B > 16)
        return LQ_ERR_CORRUPT;
    for (size_t r = r0; r < r1; r++) {
        float s = scale_at(&a, r), v[64];
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
    aq_view a;
    view_of(t, &a);
    if (!a.codes || !a.cb || !a.scales || a.g < 1 || a.g > 64 || a.M > 8 || a.B > 16)
        return LQ_ERR_CORRUPT;
    size_t ncb = a.M * a.K * a.g;
    float cbf[AQ_STACK_CB];
    int local = ncb <= AQ_STACK_CB;
    if (local)
        for (size_t i = 0; i < ncb; i++) cbf[i] = cb_at(&a, i);
    for (size_t r = r0; r < r1; r++) {
        float s = scale_at(&a, r);
        for (size_t b = 0; b < batch; b++) {
            const float *x = X + b * t->cols;
            double acc = 0.0;
            for (size_t j = 0; j < a.ng; j++) {
                float v[64];
                if (local) {
                    for (size_t q = 0; q < a.g; q++) v[q] = 0.0f;
                    for (size_t m = 0; m < a.M; m++) {
                        const float *c =
                            cbf + (m * a.K + code_at(&a, (r * a.ng + j) * a.M + m)) * a.g;
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

const lq_format_traits lq_format_aq_traits = {LQ_FORMAT_AQ, "aq", aq_validate, aq_bits,
                                              aq_dequant_rows, aq_matmul_rows};
