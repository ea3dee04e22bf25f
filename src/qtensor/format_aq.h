/*
 * The AQ format's typed layout (parameters and sections in
 * src/mcq/aq_internal.h, "LQ_FORMAT_AQ"): the one reader of an LQ_FORMAT_AQ
 * tensor's parameters and sections, used by the format's reference code
 * (format_aq.c) and its kernel layouts (src/products/kern_aq.c). Internal.
 */
#ifndef LQ_QTENSOR_FORMAT_AQ_H
#define LQ_QTENSOR_FORMAT_AQ_H

#include <string.h>

#include "core/half.h"
#include "mcq/aq_internal.h"
#include "qtensor/qtensor_internal.h"

typedef struct lq_aq_layout {
    size_t rows, cols;
    size_t M;              /* codebooks, 1..8 */
    unsigned B;            /* bits per code, 1..16 */
    size_t K;              /* 2^B entries per codebook */
    size_t g;              /* vector dimension, 1..64, divides cols */
    size_t ng;             /* vectors per row: cols / g */
    unsigned value_bytes;  /* codebook values: 2 (IEEE half) or 4 (float) */
    unsigned code_bytes;   /* 1 (B <= 8) or 2 (little-endian) */
    const uint8_t *codes;  /* rows x ng x M codes: code (r, j, m) at (r * ng + j) * M + m */
    const uint8_t *cb;     /* M x K x g values: entry e of codebook m at (m * K + e) * g */
    const uint8_t *scales; /* rows floats */
} lq_aq_layout;

/* Read and check the layout of t: parameters in range, unused parameters
 * zero, exactly the three sections with their exact sizes and element
 * sizes. Does not look at the values (the format's validation checks the
 * codes' range and that codebooks and scales are finite).
 * Errors: INVALID_ARG (NULL, not AQ), CORRUPT (*v then unspecified). */
lq_status lq_aq_layout_read(const lq_qtensor *t, lq_aq_layout *v);

/* Code i (= (r * ng + j) * M + m), masked to B bits. */
static inline size_t lq_aq_layout_code(const lq_aq_layout *v, size_t i)
{
    size_t c = v->code_bytes == 1 ? v->codes[i]
                                  : (size_t)v->codes[2 * i] | ((size_t)v->codes[2 * i + 1] << 8);
    return c & (v->K - 1);
}

/* Codebook value i (= (m * K + e) * g + q), widened exactly. */
static inline float lq_aq_layout_value(const lq_aq_layout *v, size_t i)
{
    if (v->value_bytes == 2)
        return lq_f16_to_f32((uint16_t)(v->cb[2 * i] | (v->cb[2 * i + 1] << 8)));
    uint32_t u = (uint32_t)v->cb[4 * i] | ((uint32_t)v->cb[4 * i + 1] << 8) |
                 ((uint32_t)v->cb[4 * i + 2] << 16) | ((uint32_t)v->cb[4 * i + 3] << 24);
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Scale of row r. */
static inline float lq_aq_layout_scale(const lq_aq_layout *v, size_t r)
{
    uint32_t u = (uint32_t)v->scales[4 * r] | ((uint32_t)v->scales[4 * r + 1] << 8) |
                 ((uint32_t)v->scales[4 * r + 2] << 16) | ((uint32_t)v->scales[4 * r + 3] << 24);
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

#endif
