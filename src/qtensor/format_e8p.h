/*
 * The E8P format's typed view (layout in format_e8p.c and docs/formats.md
 * 2.6): the one reader (lq_e8p_layout_of, validating) and writer
 * (lq_e8p_layout_write) of an LQ_FORMAT_E8P tensor's parameters and
 * sections, used by the format, the method driver and the fuzzer. Internal.
 */
#ifndef LQ_QTENSOR_FORMAT_E8P_H
#define LQ_QTENSOR_FORMAT_E8P_H

#include "qtensor/qtensor_internal.h"

/* Where the parameters sit in ip[]; ip[LQ_E8P_NIP..] and every fp are 0. */
enum lq_e8p_ip {
    LQ_E8P_IP_GROUP,
    LQ_E8P_IP_HADAMARD,
    LQ_E8P_IP_N8,
    LQ_E8P_IP_SEED_LO,
    LQ_E8P_IP_SEED_HI,
    LQ_E8P_NIP
};

typedef struct lq_e8p_layout {
    size_t rows, cols;
    size_t group;      /* columns of W' per scale, multiple of 8, <= n8 */
    unsigned hadamard; /* 1: W' = [W 0] R^T */
    size_t n8;         /* roundup(cols, 8) */
    uint64_t seed;
    size_t nblk, ngroups;  /* n8 / 8, ceil(n8 / group) */
    const uint16_t *codes; /* rows x nblk */
    const float *scales;   /* rows x ngroups */
} lq_e8p_layout;

/* The validated view (scales' finiteness is the format's validate).
 * Errors: INVALID_ARG (NULL, not E8P), CORRUPT. */
lq_status lq_e8p_layout_of(const lq_qtensor *t, lq_e8p_layout *v);

/* A new E8P tensor with zeroed sections; *v (may be NULL) gets the view,
 * whose arrays are writable. Errors: INVALID_ARG, NO_MEMORY. */
lq_status lq_e8p_layout_write(lq_ctx *ctx, size_t rows, size_t cols, size_t group,
                              unsigned hadamard, uint64_t seed, lq_qtensor **out, lq_e8p_layout *v);

#endif
