/*
 * The BCQ format's typed view (layout in format_bcq.c and docs/formats.md):
 * named header parameters, the one structural reader of an LQ_FORMAT_BCQ
 * tensor's parameters and sections, and the writer's parameter setter. The
 * format's reference code, the method drivers, the LUT kernels' repack
 * (src/products/kern_bcq.c) and the fuzzer go through it. Internal.
 */
#ifndef LQ_QTENSOR_FORMAT_BCQ_H
#define LQ_QTENSOR_FORMAT_BCQ_H

#include <string.h>

#include "core/half.h"
#include "qtensor/qtensor_internal.h"

/* Header parameters t->ip[] (every other ip[] and every fp[] is 0). */
enum lq_bcq_ip {
    LQ_BCQ_IP_K,          /* bit planes, 1..LQ_BCQ_MAX_K */
    LQ_BCQ_IP_GROUP,      /* columns per alpha set, 1..cols; 0 = whole row */
    LQ_BCQ_IP_HAS_OFFSET, /* 0/1: an OFFSETS section is stored */
    LQ_BCQ_IP_SIDE_BYTES, /* bytes per alpha / offset: 2 (IEEE half) or 4 (float) */
    LQ_BCQ_NIP
};

typedef struct lq_bcq_layout {
    size_t rows, cols;
    unsigned k;            /* planes */
    unsigned side;         /* bytes per side value, 2 or 4 */
    int has_off;           /* offsets stored */
    size_t group;          /* columns per group (cols when ip[GROUP] = 0) */
    size_t ngroups;        /* ceil(cols / group) */
    size_t bpr;            /* bytes of one row of one plane, ceil(cols / 8) */
    const uint8_t *planes; /* k x rows x bpr bits, plane-major */
    const uint8_t *alpha;  /* rows x ngroups x k side values */
    const uint8_t *off;    /* rows x ngroups side values, or NULL */
} lq_bcq_layout;

/* Structural checks of t's parameters and sections (presence, element
 * sizes, byte counts, no stray parameter), no scan of values; enough for
 * code reading through v to stay in bounds. Errors: INVALID_ARG (NULL, not
 * BCQ), CORRUPT. */
lq_status lq_bcq_layout_of(const lq_qtensor *t, lq_bcq_layout *v);

/* The writer's half: the header parameters of a new BCQ tensor. group ==
 * cols is stored as 0 (whole row). */
static inline void lq_bcq_set_params(lq_qtensor *t, unsigned k, size_t group, int has_off,
                                     unsigned side)
{
    t->ip[LQ_BCQ_IP_K] = k;
    t->ip[LQ_BCQ_IP_GROUP] = group == t->cols ? 0u : (uint32_t)group;
    t->ip[LQ_BCQ_IP_HAS_OFFSET] = (uint32_t)(has_off != 0);
    t->ip[LQ_BCQ_IP_SIDE_BYTES] = side;
}

/* Side value i of a stream of `side`-byte values, widened exactly. */
static inline float lq_bcq_side_at(const uint8_t *p, size_t i, unsigned side)
{
    if (side == 2) return lq_f16_to_f32((uint16_t)(p[2 * i] | (p[2 * i + 1] << 8)));
    float f;
    memcpy(&f, p + 4 * i, 4); /* little-endian hosts (io checks) */
    return f;
}

#endif
