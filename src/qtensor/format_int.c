/*
 * LQ_FORMAT_INT: k-bit uniform grid with per-(row, group) scales and zeros.
 *
 * Parameters (ip[]):
 *   ip[LQ_INT_IP_BITS]        bits, 2..8
 *   ip[LQ_INT_IP_SYMMETRIC]   0/1 (1: every zero is 2^(bits-1); no ZEROS section)
 *   ip[LQ_INT_IP_GROUP]       columns per group, 1..cols (cols = one group per row)
 *   ip[LQ_INT_IP_HAS_PERM]    0/1 (1: act-order without static groups, PERM section)
 *   ip[LQ_INT_IP_SCALE_BYTES] 2 (IEEE half) or 4 (IEEE float)
 *   (indices: enum lq_int_ip in format_int.h)
 * Stored columns: column k of the stored tensor is original column perm[k]
 * (identity without PERM). Group gi covers stored columns [gi g, min((gi +
 * 1) g, cols)): the last group is shorter when g does not divide cols;
 * ngroups = ceil(cols / g).
 * Sections (all little-endian):
 *   CODES  (elem 1) per row ceil(cols * bits / 8) bytes: an LSB-first bit
 *          stream of the row's codes in stored order (code k at stream bits
 *          [k bits, (k + 1) bits), stream bit i = bit i % 8 of byte i / 8;
 *          4 bits: low nibble first; 8 bits: one byte per code); padding 0.
 *   SCALES (elem 2 or 4) rows x ngroups, row-major, half or float.
 *   ZEROS  (elem 1, asymmetric only) per row ceil(ngroups * bits / 8) bytes:
 *          the row's zeros as an LSB-first bit stream of `bits`-bit values.
 *   PERM   (elem 4, has_perm only) cols uint32: a permutation of 0..cols-1.
 * Value: W[r, perm[k]] = (code[r, k] - zero[r, k / g]) * scale[r, k / g],
 * computed in float exactly so (the quantizer produced the same floats).
 */
#include <math.h>

#include "qtensor/format_int.h"

lq_status lq_int_layout_of(const lq_qtensor *t, lq_int_layout *v)
{
    if (!t || !v || t->format != LQ_FORMAT_INT) return LQ_ERR_INVALID_ARG;
    v->rows = t->rows;
    v->cols = t->cols;
    v->bits = t->ip[LQ_INT_IP_BITS];
    v->symmetric = (int)t->ip[LQ_INT_IP_SYMMETRIC];
    v->group = t->ip[LQ_INT_IP_GROUP];
    v->ngroups = (t->cols + v->group - 1) / v->group;
    v->code_bytes = lq_int_stream_bytes(t->cols, v->bits);
    v->zero_bytes = lq_int_stream_bytes(v->ngroups, v->bits);
    v->scale_bytes = t->ip[LQ_INT_IP_SCALE_BYTES];
    v->codes = lq_qtensor_section(t, LQ_SEC_CODES)->data;
    v->scales = lq_qtensor_section(t, LQ_SEC_SCALES)->data;
    v->zeros = v->symmetric ? NULL : lq_qtensor_section(t, LQ_SEC_ZEROS)->data;
    v->perm = t->ip[LQ_INT_IP_HAS_PERM] ? lq_qtensor_section(t, LQ_SEC_PERM)->data : NULL;
    return LQ_OK;
}

static lq_status int_validate(const lq_qtensor *t)
{
    unsigned bits = t->ip[LQ_INT_IP_BITS];
    if (bits < 2 || bits > 8 || t->ip[LQ_INT_IP_SYMMETRIC] > 1 || t->ip[LQ_INT_IP_HAS_PERM] > 1)
        return LQ_ERR_CORRUPT;
    if (t->ip[LQ_INT_IP_GROUP] == 0 || t->ip[LQ_INT_IP_GROUP] > t->cols) return LQ_ERR_CORRUPT;
    if (t->ip[LQ_INT_IP_SCALE_BYTES] != 2 && t->ip[LQ_INT_IP_SCALE_BYTES] != 4)
        return LQ_ERR_CORRUPT;
    for (unsigned k = LQ_INT_NIP; k < LQ_QT_NPARAMS; k++) /* words INT does not define */
        if (t->ip[k]) return LQ_ERR_CORRUPT;
    for (unsigned k = 0; k < LQ_QT_NPARAMS; k++)
        if (t->fp[k] != 0.0f) return LQ_ERR_CORRUPT;
    size_t g = t->ip[LQ_INT_IP_GROUP], ng = (t->cols + g - 1) / g, n;
    size_t want = 2 + (t->ip[LQ_INT_IP_SYMMETRIC] == 0) + (t->ip[LQ_INT_IP_HAS_PERM] == 1);
    if (t->nsec != want) return LQ_ERR_CORRUPT;
    const lq_qsection *c = lq_qtensor_section(t, LQ_SEC_CODES);
    const lq_qsection *s = lq_qtensor_section(t, LQ_SEC_SCALES);
    const lq_qsection *z = lq_qtensor_section(t, LQ_SEC_ZEROS);
    const lq_qsection *p = lq_qtensor_section(t, LQ_SEC_PERM);
    if (!c || !s || (t->ip[LQ_INT_IP_SYMMETRIC] == 0) != (z != NULL) ||
        (t->ip[LQ_INT_IP_HAS_PERM] == 1) != (p != NULL))
        return LQ_ERR_CORRUPT;
    if (!lq_mul_ok(t->rows, lq_int_stream_bytes(t->cols, bits), &n) || c->nbytes != n ||
        c->elem_size != 1)
        return LQ_ERR_CORRUPT;
    if (!lq_mul_ok(t->rows, ng, &n) || !lq_mul_ok(n, t->ip[LQ_INT_IP_SCALE_BYTES], &n) ||
        s->nbytes != n || s->elem_size != t->ip[LQ_INT_IP_SCALE_BYTES])
        return LQ_ERR_CORRUPT;
    if (z && (!lq_mul_ok(t->rows, lq_int_stream_bytes(ng, bits), &n) || z->nbytes != n ||
              z->elem_size != 1))
        return LQ_ERR_CORRUPT;
    if (p && (!lq_mul_ok(t->cols, 4, &n) || p->nbytes != n || p->elem_size != 4))
        return LQ_ERR_CORRUPT;
    lq_int_layout v;
    lq_int_layout_of(t, &v);
    for (size_t r = 0; r < t->rows; r++)
        for (size_t gi = 0; gi < ng; gi++)
            if (!isfinite(lq_int_layout_scale(&v, r, gi))) return LQ_ERR_CORRUPT;
    if (p) {
        /* a permutation: in range and no repeats (bitmap from the tensor's
         * own allocator; validation of a big tensor is rare and linear) */
        uint8_t *seen = lq_alloc_with(&t->alloc, (t->cols + 7) / 8);
        if (!seen) return LQ_ERR_NO_MEMORY;
        memset(seen, 0, (t->cols + 7) / 8);
        lq_status st = LQ_OK;
        for (size_t k = 0; k < t->cols && st == LQ_OK; k++) {
            uint32_t j = v.perm[k];
            if (j >= t->cols || (seen[j >> 3] >> (j & 7)) & 1u)
                st = LQ_ERR_CORRUPT;
            else
                seen[j >> 3] |= (uint8_t)(1u << (j & 7));
        }
        lq_free_with(&t->alloc, seen);
        return st;
    }
    return LQ_OK;
}

static double int_bits(const lq_qtensor *t)
{
    double b = 0;
    for (size_t i = 0; i < t->nsec; i++) b += 8.0 * (double)t->sec[i].nbytes;
    return b;
}

static lq_status int_dequant_rows(const lq_qtensor *t, size_t r0, size_t r1, float *W,
                                  lq_simd_level level)
{
    lq_int_layout v;
    lq_int_layout_of(t, &v);
    size_t cols = t->cols;
    for (size_t r = r0; r < r1; r++) {
        float *out = W + (r - r0) * cols;
        for (size_t gi = 0; gi < v.ngroups; gi++) {
            float s = lq_int_layout_scale(&v, r, gi);
            int z = (int)lq_int_layout_zero(&v, r, gi);
            size_t k1 = (gi + 1) * v.group < cols ? (gi + 1) * v.group : cols;
            for (size_t k = gi * v.group; k < k1; k++) {
                float val = (float)((int)lq_int_layout_code(&v, r, k) - z) * s;
                out[v.perm ? v.perm[k] : k] = val;
            }
        }
    }
    return LQ_OK;
}

/* Reference product: per row, codes decoded by chunks of stored columns,
 * each chunk's dot product summed in double then added to Y in order. */
#define MM_CHUNK 256

static lq_status int_matmul_rows(const lq_qtensor *t, const float *X, size_t batch, float *Y,
                                 size_t r0, size_t r1, lq_simd_level level)
{
    lq_int_layout v;
    lq_int_layout_of(t, &v);
    size_t cols = t->cols, rows = t->rows;
    float buf[MM_CHUNK];
    for (size_t r = r0; r < r1; r++) {
        for (size_t b = 0; b < batch; b++) Y[b * rows + r] = 0.0f;
        for (size_t k0 = 0; k0 < cols; k0 += MM_CHUNK) {
            size_t k1 = k0 + MM_CHUNK < cols ? k0 + MM_CHUNK : cols;
            for (size_t k = k0; k < k1; k++) {
                size_t gi = k / v.group;
                float s = lq_int_layout_scale(&v, r, gi);
                int z = (int)lq_int_layout_zero(&v, r, gi);
                buf[k - k0] = (float)((int)lq_int_layout_code(&v, r, k) - z) * s;
            }
            for (size_t b = 0; b < batch; b++) {
                const float *x = X + b * cols;
                double acc = 0;
                for (size_t k = k0; k < k1; k++)
                    acc += (double)buf[k - k0] * (double)x[v.perm ? v.perm[k] : k];
                Y[b * rows + r] += (float)acc;
            }
        }
    }
    return LQ_OK;
}

const lq_format_traits lq_format_int_traits = {
    LQ_FORMAT_INT, "int", int_validate, int_bits, int_dequant_rows, int_matmul_rows,
};
