/*
 * The uniform integer grid quantizer (GPTQ's "Quantizer") as an lq_colquant,
 * plus the small helpers the INT format shares with it (half-precision scales,
 * LSB-first bit streams). Internal.
 *
 * Grid per (row, group): xmin = min(0, min x), xmax = max(0, max x) (the range
 * always holds 0, so a zero weight is exact); symmetric: xmin = -xmax'
 * with xmax' = max(|xmin|, xmax). All-zero: [-1, 1]. scale = (xmax - xmin) /
 * maxq (maxq = 2^bits - 1), rounded to half precision when that is a normal
 * half (else kept in float and the tensor stores fp32 scales); zero =
 * round(-xmin / scale) clamped to [0, maxq] (asymmetric) or 2^(bits-1)
 * (symmetric). code = clamp(round(x / scale) + zero, 0, maxq), value =
 * (code - zero) * scale. With mse_clip the range is shrunk by p = 1 - i/100,
 * i = 0..79, keeping the p with the least squared error of the group's row.
 *
 * gguf_exact: the scale is rounded to a half with subnormals allowed (never
 * kept in float) and, asymmetric, to the most significant bits (11, 10, ...
 * down to 11 - bits) for which zero * scale is a half as well, the zero being
 * recomputed at each precision; 11 - bits always succeeds since zero < 2^bits.
 * Then ggml's Q4_1/Q5_1 "x = q d + m" with d = scale and m = -zero * scale
 * is exactly (q - zero) * scale (both products and the sum are exact).
 *
 * Codes are recorded per (row, stored column): the stored order is the
 * original column order, except with act-order without static groups (and
 * more than one group per row) where it is the processing order (stored
 * column k = original column perm[k]) so that every group is a contiguous
 * run of stored columns.
 */
#ifndef LQ_HESSIAN_INT_QUANT_H
#define LQ_HESSIAN_INT_QUANT_H

#include <math.h>
#include <string.h>

#include "core/half.h"
#include "core/internal.h"
#include "quant/hessian.h"

typedef struct lq_intq {
    lq_ctx *ctx;
    unsigned bits, maxq;
    int symmetric, mse_clip, gguf_exact;
    size_t rows, cols;
    size_t g;              /* columns per group (cols for whole rows) */
    size_t ngroups;        /* ceil(cols / g) */
    float *scale;          /* rows x ngroups */
    uint8_t *zero;         /* rows x ngroups */
    uint8_t *codes;        /* cols x rows (column-major: the engine asks column by
                            * column), stored column order */
    uint32_t *perm;        /* cols: stored column -> original column (valid if has_perm) */
    int has_perm;          /* act-order without static groups */
    int need_fp32;         /* some scale is not a half (normal, or any with gguf_exact) */
    int out_of_range;      /* gguf_exact: some scale or zero * scale above 65504 */
    const lq_colquant *cq; /* the vtable driving q: the engine's perm lives there */
} lq_intq;

/* Set up q for a rows x cols weight with options o (bits 2..8). Errors:
 * INVALID_ARG, NO_MEMORY (nothing left allocated). */
lq_status lq_intq_init(lq_ctx *ctx, lq_intq *q, size_t rows, size_t cols, const lq_int_opts *o);
void lq_intq_free(lq_intq *q);
/* The vtable driving q (width 1, group g); cq must stay at its address
 * while the engine runs (q reads cq->perm and cq->static_groups). */
void lq_intq_colquant(lq_intq *q, lq_colquant *cq);

/* ---- half-precision scales ------------------------------------------------
 * A positive scale s is stored as a half when it lies in the normal half
 * range [2^-14, 65504] (core/half.h rounds it to nearest even, and the
 * rounded value is then normal too); returns 0 otherwise (then *rounded and
 * *h are untouched). */
static inline int lq_int_half_round(float s, float *rounded, uint16_t *h)
{
    if (!(s >= 6.103515625e-05f) || !(s <= 65504.0f)) return 0;
    uint16_t v = lq_f32_to_f16(s);
    if (rounded) *rounded = lq_f16_to_f32(v);
    if (h) *h = v;
    return 1;
}

/* The nearest IEEE half (subnormals included, ties to even) of a finite
 * x >= 0, as a float; +inf when it is above the half range. */
static inline float lq_int_half_nearest(float x)
{
    if (x < 6.103515625e-05f) return nearbyintf(x * 0x1p24f) * 0x1p-24f; /* 2^-24 steps */
    float r;
    return lq_int_half_round(x, &r, NULL) ? r : INFINITY;
}

/* Round a finite x > 0 to p (1..24) significant bits, ties to even. */
static inline float lq_int_round_sig(float x, unsigned p)
{
    uint32_t u, sh = 24u - p;
    if (sh == 0) return x;
    memcpy(&u, &x, sizeof u);
    u += (1u << (sh - 1)) - 1u + ((u >> sh) & 1u);
    u &= ~((1u << sh) - 1u);
    memcpy(&x, &u, sizeof x);
    return x;
}

/* 1 when x >= 0 is exactly an IEEE half (zero and subnormals included),
 * with its bits in *h (may be NULL). */
static inline int lq_int_half_bits(float x, uint16_t *h)
{
    if (!(x >= 0.0f) || !(x <= 65504.0f) || !(lq_int_half_nearest(x) == x)) return 0;
    if (h) {
        uint16_t b = 0;
        if (x < 6.103515625e-05f)
            b = (uint16_t)(x * 0x1p24f);
        else
            lq_int_half_round(x, NULL, &b);
        *h = b;
    }
    return 1;
}

/* ---- LSB-first bit streams -------------------------------------------------
 * Value j of width b occupies stream bits [j b, (j + 1) b); stream bit k is
 * bit (k mod 8) of byte k / 8. nbytes bounds the reads (b <= 8). */
static inline unsigned lq_int_get_bits(const uint8_t *p, size_t nbytes, size_t j, unsigned b)
{
    size_t bit = j * b, byte = bit >> 3;
    unsigned v = p[byte];
    if (byte + 1 < nbytes) v |= (unsigned)p[byte + 1] << 8;
    return (v >> (bit & 7u)) & ((1u << b) - 1u);
}

static inline void lq_int_put_bits(uint8_t *p, size_t j, unsigned b, unsigned v)
{
    size_t bit = j * b, byte = bit >> 3;
    unsigned sh = (unsigned)(bit & 7u);
    p[byte] |= (uint8_t)(v << sh);
    if (sh + b > 8) p[byte + 1] |= (uint8_t)(v >> (8 - sh));
}

static inline size_t lq_int_stream_bytes(size_t n, unsigned b) { return (n * b + 7) / 8; }

#endif
