/*
 * LQ_FORMAT_BCQ: binary-coded weights (BCQ, GPTQT), LUT-GEMM layout.
 *
 * Parameters (enum lq_bcq_ip in format_bcq.h): ip[K] = k (planes, 1..8);
 *              ip[GROUP] = columns per alpha set (1..cols; 0 = whole row);
 *              ip[HAS_OFFSET] = 1 if offsets are stored; ip[SIDE_BYTES] =
 *              bytes per side value (2: IEEE fp16, 4: fp32). Every other
 *              ip[] and every fp[] must be 0.
 * Sections:    LQ_SEC_CODES (elem 1): k bit planes, plane-major: plane i is
 *              a rows x bpr bit matrix, bpr = ceil(cols / 8); weight (r, c)
 *              is bit c % 8 (LSB first) of byte (i * rows + r) * bpr + c / 8;
 *              a set bit is b = +1, a clear bit b = -1. Padding bits are
 *              ignored on read.
 *              LQ_SEC_ALPHAS (elem 2 or 4): rows x ngroups x k alphas,
 *              ngroups = ceil(cols / group).
 *              LQ_SEC_OFFSETS (elem 2 or 4; only when ip[HAS_OFFSET] = 1): rows x
 *              ngroups offsets.
 * Value:       W[r, c] = offset[r, g] + sum_{i<k} (bit ? +1 : -1) alpha[r, g, i]
 *              with g = c / group, summed in float in plane order (the
 *              decoded value is bit-identical to the quantizer's W_hat).
 * Bits:        every stored byte of the three sections, times 8.
 */
#include <math.h>
#include <string.h>

#include "core/half.h"
#include "bcq/bcq_internal.h"
#include "qtensor/format_bcq.h"
#include "qtensor/qtensor_internal.h"

/* Structural reader: declared and documented in format_bcq.h. */
lq_status lq_bcq_layout_of(const lq_qtensor *t, lq_bcq_layout *v)
{
    if (!t || !v || t->format != LQ_FORMAT_BCQ) return LQ_ERR_INVALID_ARG;
    unsigned k = t->ip[LQ_BCQ_IP_K], side = t->ip[LQ_BCQ_IP_SIDE_BYTES];
    if (k < 1 || k > LQ_BCQ_MAX_K || t->ip[LQ_BCQ_IP_HAS_OFFSET] > 1 || (side != 2 && side != 4))
        return LQ_ERR_CORRUPT;
    for (size_t i = LQ_BCQ_NIP; i < LQ_QT_NPARAMS; i++)
        if (t->ip[i] != 0) return LQ_ERR_CORRUPT;
    for (size_t i = 0; i < LQ_QT_NPARAMS; i++)
        if (t->fp[i] != 0.0f) return LQ_ERR_CORRUPT;
    size_t group = t->ip[LQ_BCQ_IP_GROUP] == 0 ? t->cols : t->ip[LQ_BCQ_IP_GROUP];
    if (group > t->cols) return LQ_ERR_CORRUPT;
    v->k = k;
    v->side = side;
    v->rows = t->rows;
    v->cols = t->cols;
    v->has_off = (int)t->ip[LQ_BCQ_IP_HAS_OFFSET];
    v->group = group;
    v->ngroups = lq_chunks(t->cols, group);
    v->bpr = lq_bcq_plane_bytes(t->cols);
    size_t n_codes, n_rg, n_alpha, n_off;
    if (!lq_mul_ok(t->rows, v->bpr, &n_codes) || !lq_mul_ok(n_codes, k, &n_codes) ||
        !lq_mul_ok(t->rows, v->ngroups, &n_rg) || !lq_mul_ok(n_rg, (size_t)k * side, &n_alpha) ||
        !lq_mul_ok(n_rg, side, &n_off))
        return LQ_ERR_CORRUPT;
    const lq_qsection *sc = lq_qtensor_section(t, LQ_SEC_CODES);
    const lq_qsection *sa = lq_qtensor_section(t, LQ_SEC_ALPHAS);
    const lq_qsection *so = lq_qtensor_section(t, LQ_SEC_OFFSETS);
    if (!sc || !sa || sc->elem_size != 1 || sc->nbytes != n_codes || !sc->data ||
        sa->elem_size != side || sa->nbytes != n_alpha || !sa->data)
        return LQ_ERR_CORRUPT;
    if (v->has_off) {
        if (!so || so->elem_size != side || so->nbytes != n_off || !so->data) return LQ_ERR_CORRUPT;
    } else if (so) {
        return LQ_ERR_CORRUPT;
    }
    if (t->nsec != 2u + (unsigned)v->has_off) return LQ_ERR_CORRUPT;
    v->planes = sc->data;
    v->alpha = sa->data;
    v->off = v->has_off ? so->data : NULL;
    return LQ_OK;
}

static lq_status bcq_validate(const lq_qtensor *t)
{
    lq_bcq_layout v;
    lq_status st = lq_bcq_layout_of(t, &v);
    if (st != LQ_OK) return st;
    size_t n_rg = t->rows * v.ngroups;
    for (size_t i = 0; i < n_rg * v.k; i++)
        if (!isfinite(lq_bcq_side_at(v.alpha, i, v.side))) return LQ_ERR_CORRUPT;
    if (v.off)
        for (size_t i = 0; i < n_rg; i++)
            if (!isfinite(lq_bcq_side_at(v.off, i, v.side))) return LQ_ERR_CORRUPT;
    return LQ_OK;
}

static double bcq_bits(const lq_qtensor *t)
{
    double b = 0;
    for (size_t i = 0; i < t->nsec; i++) b += 8.0 * (double)t->sec[i].nbytes;
    return b;
}

/* alphas and offset of (r, g) decoded to float */
static void group_params(const lq_bcq_layout *v, size_t r, size_t g, float *a, float *off)
{
    size_t rg = r * v->ngroups + g;
    for (unsigned i = 0; i < v->k; i++) a[i] = lq_bcq_side_at(v->alpha, rg * v->k + i, v->side);
    *off = v->off ? lq_bcq_side_at(v->off, rg, v->side) : 0.0f;
}

static lq_status bcq_dequant_rows(const lq_qtensor *t, size_t r0, size_t r1, float *W,
                                  lq_simd_level level)
{
    lq_bcq_layout v;
    if (lq_bcq_layout_of(t, &v) != LQ_OK || r1 > t->rows || r0 > r1) return LQ_ERR_CORRUPT;
    const size_t ps = t->rows * v.bpr;
    for (size_t r = r0; r < r1; r++) {
        float *out = W + (r - r0) * t->cols;
        for (size_t g = 0; g < v.ngroups; g++) {
            float a[LQ_BCQ_MAX_K], off;
            group_params(&v, r, g, a, &off);
            size_t c1 = (g + 1) * v.group < t->cols ? (g + 1) * v.group : t->cols;
            for (size_t c = g * v.group; c < c1; c++) {
                const uint8_t *p = v.planes + r * v.bpr + c / 8;
                unsigned code = 0;
                for (unsigned i = 0; i < v.k; i++)
                    code |= (unsigned)((p[i * ps] >> (c % 8)) & 1u) << i;
                out[c] = lq_bcq_value(a, v.k, off, code);
            }
        }
    }
    return LQ_OK;
}

/* Scalar reference product, LUT-GEMM style: along a group, the activations
 * are taken in segments of at most 8 that stay inside one byte; for each
 * segment a table T[m] = sum of x_j over the set bits of m (2^len entries,
 * built incrementally) is shared by every row and plane of the range; plane
 * i of row r then gathers S_i = sum over segments of T[bits]; the group
 * contributes alpha_i (2 S_i - X_g) to y (X_g = sum of x over the group)
 * plus offset X_g, since sum_j b_j x_j = 2 S - X_g. Partial sums in double. */
#define MM_ROWS 64
static lq_status bcq_matmul_rows(const lq_qtensor *t, const float *X, size_t batch, float *Y,
                                 size_t r0, size_t r1, lq_simd_level level)
{
    lq_bcq_layout v;
    if (lq_bcq_layout_of(t, &v) != LQ_OK || r1 > t->rows || r0 > r1) return LQ_ERR_CORRUPT;
    const size_t ps = t->rows * v.bpr, cols = t->cols, rows = t->rows;
    double acc[MM_ROWS][LQ_BCQ_MAX_K];
    double T[256];
    for (size_t rb = r0; rb < r1; rb += MM_ROWS) {
        size_t re = rb + MM_ROWS < r1 ? rb + MM_ROWS : r1;
        for (size_t b = 0; b < batch; b++) {
            const float *x = X + b * cols;
            double ysum[MM_ROWS] = {0};
            for (size_t g = 0; g < v.ngroups; g++) {
                size_t c0 = g * v.group, c1 = c0 + v.group < cols ? c0 + v.group : cols;
                memset(acc, 0, sizeof acc);
                double xg = 0;
                for (size_t c = c0; c < c1;) {
                    unsigned sh = (unsigned)(c % 8), len = 8 - sh;
                    if (len > c1 - c) len = (unsigned)(c1 - c);
                    T[0] = 0;
                    for (unsigned m = 1; m < (1u << len); m++) {
                        unsigned low = (unsigned)__builtin_ctz(m);
                        T[m] = T[m & (m - 1)] + (double)x[c + low];
                    }
                    xg += T[(1u << len) - 1];
                    unsigned mask = (1u << len) - 1;
                    for (size_t r = rb; r < re; r++) {
                        const uint8_t *p = v.planes + r * v.bpr + c / 8;
                        for (unsigned i = 0; i < v.k; i++)
                            acc[r - rb][i] += T[(p[i * ps] >> sh) & mask];
                    }
                    c += len;
                }
                for (size_t r = rb; r < re; r++) {
                    float a[LQ_BCQ_MAX_K], off;
                    group_params(&v, r, g, a, &off);
                    double s = (double)off * xg;
                    for (unsigned i = 0; i < v.k; i++)
                        s += (double)a[i] * (2.0 * acc[r - rb][i] - xg);
                    ysum[r - rb] += s;
                }
            }
            for (size_t r = rb; r < re; r++) Y[b * rows + r] = (float)ysum[r - rb];
        }
    }
    return LQ_OK;
}

const lq_format_traits lq_format_bcq_traits = {
    .format = LQ_FORMAT_BCQ,
    .name = "bcq",
    .validate = bcq_validate,
    .bits = bcq_bits,
    .dequant_rows = bcq_dequant_rows,
    .matmul_rows = bcq_matmul_rows,
};
