/*
 * The INT format's typed view (layout in format_int.c and docs/formats.md
 * section 2.1): the one place the sections of an LQ_FORMAT_INT tensor are
 * read. The format's own reference code and the GGUF repack
 * (src/io/gguf_blocks.c) go through it. Internal.
 */
#ifndef LQ_QTENSOR_FORMAT_INT_H
#define LQ_QTENSOR_FORMAT_INT_H

#include "core/half.h"
#include "hessian/int_quant.h"
#include "qtensor/qtensor_internal.h"

/* Header parameters t->ip[] of an INT tensor, by name (every other ip[]
 * and every fp[] is 0). */
enum lq_int_ip {
    LQ_INT_IP_BITS,        /* 2..8 */
    LQ_INT_IP_SYMMETRIC,   /* 0/1: every zero is 2^(bits-1); no ZEROS section */
    LQ_INT_IP_GROUP,       /* columns per group, 1..cols */
    LQ_INT_IP_HAS_PERM,    /* 0/1: act-order without static groups, PERM section */
    LQ_INT_IP_SCALE_BYTES, /* 2 (IEEE half) or 4 (IEEE float) */
    LQ_INT_NIP
};

typedef struct lq_int_layout {
    size_t rows, cols;
    unsigned bits;         /* 2..8 */
    int symmetric;         /* every zero is 2^(bits-1) */
    size_t group, ngroups; /* columns per group; ceil(cols / group) */
    size_t code_bytes;     /* bytes of one row's code stream */
    size_t zero_bytes;     /* bytes of one row's zero stream (asymmetric) */
    size_t scale_bytes;    /* 2 (IEEE half) or 4 (IEEE float) */
    const uint8_t *codes, *zeros;
    const uint8_t *scales;
    const uint32_t *perm; /* stored column -> original column, or NULL */
} lq_int_layout;

/* The view of t, which must be a validated INT tensor. Errors: INVALID_ARG
 * (NULL, not INT). */
lq_status lq_int_layout_of(const lq_qtensor *t, lq_int_layout *v);

/* The writer's half: set the header parameters of a new INT tensor t. */
static inline void lq_int_set_params(lq_qtensor *t, unsigned bits, int symmetric, size_t group,
                                     int has_perm, size_t scale_bytes)
{
    t->ip[LQ_INT_IP_BITS] = bits;
    t->ip[LQ_INT_IP_SYMMETRIC] = (uint32_t)(symmetric != 0);
    t->ip[LQ_INT_IP_GROUP] = (uint32_t)group;
    t->ip[LQ_INT_IP_HAS_PERM] = (uint32_t)(has_perm != 0);
    t->ip[LQ_INT_IP_SCALE_BYTES] = (uint32_t)scale_bytes;
}

/* Code of row r at stored column k. */
static inline unsigned lq_int_layout_code(const lq_int_layout *v, size_t r, size_t k)
{
    return lq_int_get_bits(v->codes + r * v->code_bytes, v->code_bytes, k, v->bits);
}

/* Scale of row r, group gi, as stored (a half widened exactly, or a float). */
static inline float lq_int_layout_scale(const lq_int_layout *v, size_t r, size_t gi)
{
    size_t i = r * v->ngroups + gi;
    if (v->scale_bytes == 4) {
        float f;
        memcpy(&f, v->scales + 4 * i, 4); /* little-endian hosts (io checks) */
        return f;
    }
    const uint8_t *p = v->scales + 2 * i;
    return lq_f16_to_f32((uint16_t)(p[0] | (p[1] << 8)));
}

/* Zero of row r, group gi (2^(bits-1) when symmetric). */
static inline unsigned lq_int_layout_zero(const lq_int_layout *v, size_t r, size_t gi)
{
    if (v->symmetric) return 1u << (v->bits - 1);
    return lq_int_get_bits(v->zeros + r * v->zero_bytes, v->zero_bytes, gi, v->bits);
}

#endif
