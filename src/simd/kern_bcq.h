/*
 * BCQ FAST path: int8 tables looked up 64 at a time with vpshufb (T-MAC).
 *
 * Second code layout (besides the table engine's): per tile, group, plane
 * and block of 8 chunks (32 columns, zero padded), 64 bytes: 128-bit lane L
 * holds the 16 rows' nibbles of chunks 2L (low) and 2L+1 (high), so that a
 * vpshufb of the low nibbles against [T(0) T(2) T(4) T(6)] and of the high
 * nibbles against [T(1) T(3) T(5) T(7)] returns 64 lookups.
 *
 * Tables: per activation and group, the float chunk tables T[m] (kern_bcq.c)
 * are quantized with one scale per group, d_g = max |T| / 63, to integers in
 * [-63, 63] (7 bits, so that a low and a high lookup add in int8 without
 * overflow). Row result, per group g in order:
 *   for each plane i:  y = y + alpha_i * (d_g * (float)isum_i)
 *   with offsets:      y = y + offset * X_g
 * where isum_i is the exact integer sum of the plane's lookups.
 */
#ifndef LQ_SIMD_KERN_BCQ_H
#define LQ_SIMD_KERN_BCQ_H

#include "simd/kern_lut.h"

typedef struct lq_bcq_fmt {
    size_t group, ngroups, nchunks; /* chunks of 4 columns over all groups */
    int has_off;
    unsigned k;
    size_t nkb;      /* blocks of 8 chunks over all groups */
    uint32_t *kb0;   /* ngroups + 1: first block of each group */
    uint8_t *fcodes; /* ntiles * k * nkb * 64 (tile, group, plane, block) */
} lq_bcq_fmt;

/* FAST activation data per vector: float d[ngroups], float xg[ngroups],
 * int8 tables[nkb][2][64] (lo then hi arrangement), 64-byte aligned. */
static inline size_t lq_bcq_fast_stride(const lq_bcq_fmt *f)
{
    return 2 * lq_kern_roundup(f->ngroups * sizeof(float), 64) + f->nkb * 128;
}

void lq_kern_bcq_fast_scalar(const void *pack, const void *act, size_t batch, float *Y, size_t ldy,
                             size_t r0, size_t r1);
void lq_kern_bcq_fast_avx2(const void *pack, const void *act, size_t batch, float *Y, size_t ldy,
                           size_t r0, size_t r1);
void lq_kern_bcq_fast_neon(const void *pack, const void *act, size_t batch, float *Y, size_t ldy,
                           size_t r0, size_t r1);
void lq_kern_bcq_fast_avx512(const void *pack, const void *act, size_t batch, float *Y, size_t ldy,
                             size_t r0, size_t r1);

#endif
