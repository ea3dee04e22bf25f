/*
 * The VQ format's typed layout (parameters and sections in
 * src/vq/vq_internal.h, "LQ_FORMAT_VQ layout"): the one reader of an
 * LQ_FORMAT_VQ tensor's parameters and sections, used by the format's
 * reference code (format_vq.c) and its kernel layouts
 * (src/products/kern_vq.c). Internal.
 */
#ifndef LQ_QTENSOR_FORMAT_VQ_H
#define LQ_QTENSOR_FORMAT_VQ_H

#include <string.h>

#include "core/half.h"
#include "qtensor/qtensor_internal.h"
#include "vq/vq_internal.h"

typedef struct lq_vq_layout {
    size_t rows, cols;
    size_t d;              /* vector dimension: 1, 2, 4 or 8 */
    unsigned bits;         /* index bits b, 1..16 */
    size_t K;              /* 2^b entries per codebook */
    size_t gc, gr;         /* columns and rows per codebook */
    unsigned cbits;        /* codebook storage: 16 = half, 8 = int8 with a float scale */
    size_t rank;           /* SVD rank (0: full codebooks, then halves) */
    size_t ncg, nrb;       /* column groups, row blocks */
    size_t ncb;            /* codebooks: nrb * ncg, codebook g = rb * ncg + cg */
    size_t nvec;           /* codes per row: cols / d */
    size_t row_bytes;      /* bytes of one row's code stream */
    const uint8_t *codes;  /* rows * row_bytes */
    const uint8_t *cb;     /* half or int8 codebooks; Vt (halves) with SVD */
    const uint8_t *scales; /* ncb floats (int8 codebooks), else NULL */
    const uint8_t *U;      /* ncb x rank halves (SVD), else NULL */
} lq_vq_layout;

/* Read and check the layout of t: parameters in range, group sizes
 * consistent with the shape, every section present with its exact size and
 * element size and no other section. Does not look at the values (the
 * format's validation checks them: finite codebooks, positive scales).
 * Errors: INVALID_ARG (NULL, not VQ), CORRUPT (*v then unspecified). */
lq_status lq_vq_layout_read(const lq_qtensor *t, lq_vq_layout *v);

/* Code of row r, vector j. */
static inline unsigned lq_vq_layout_code(const lq_vq_layout *v, size_t r, size_t j)
{
    return lq_vq_get_code(v->codes + r * v->row_bytes, j, v->bits);
}

static inline float lq_vq_half_at(const uint8_t *p, size_t i)
{
    return lq_f16_to_f32((uint16_t)(p[2 * i] | (p[2 * i + 1] << 8)));
}

static inline float lq_vq_f32_at(const uint8_t *p, size_t i)
{
    uint32_t u = (uint32_t)p[4 * i] | ((uint32_t)p[4 * i + 1] << 8) |
                 ((uint32_t)p[4 * i + 2] << 16) | ((uint32_t)p[4 * i + 3] << 24);
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Value q (= entry * d + coordinate) of codebook g, by the format's formula
 * (SVD: sum_i U[g, i] Vt[i, q] in float, i = 0..rank-1). */
static inline float lq_vq_layout_value(const lq_vq_layout *v, size_t g, size_t q)
{
    size_t kd = v->K * v->d;
    if (v->rank) {
        float s = 0;
        for (size_t i = 0; i < v->rank; i++)
            s += lq_vq_half_at(v->U, g * v->rank + i) * lq_vq_half_at(v->cb, i * kd + q);
        return s;
    }
    if (v->cbits == 8) return (float)(int8_t)v->cb[g * kd + q] * lq_vq_f32_at(v->scales, g);
    return lq_vq_half_at(v->cb, g * kd + q);
}

/* Codebook of row block rb, column group cg. */
static inline size_t lq_vq_layout_book(const lq_vq_layout *v, size_t rb, size_t cg)
{
    return rb * v->ncg + cg;
}

#endif
