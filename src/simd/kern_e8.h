/*
 * E8 kernels: the stored Voronoi codes (src/qtensor/format_e8.c) are decoded
 * once at load to the integer coordinates u = 2y of the lattice points
 * (|u| <= 127 is checked; larger q falls back to the reference), kept as
 * bytes u + 128 in the INT sub-unit layout (16-row tiles; per 8-vector j
 * two sub-units of 64 bytes, byte 4r+k = u(r, 8j+4s+k) + 128), with the
 * beta index of every (row, vector) as a byte (16 per tile and vector) and
 * the row scales per (tile, group) as 16 floats.
 *
 * FAST: x' = R [x; 0] (the format's Hadamard rotation when enabled) is
 * quantized to int8 per 8-vector (scale d_j); per row and vector
 *   isum_j = sum (u + 128) q8 - 128 * sum q8      (exact, vpdpbusd)
 *   v = ((float)isum_j * d_j) * hb[idx]            hb = beta / 2
 *   a = a + v   (vectors of a group in order),  y = y + s_g * a.
 * Every level performs exactly these operations: bit-exact with scalar.
 * EXACT: float x'; a = a + hb[idx] * (sum_i u_i x'_i) per vector (fused
 * multiply-adds for the dot product in the SIMD kernels).
 */
#ifndef LQ_SIMD_KERN_E8_H
#define LQ_SIMD_KERN_E8_H

#include "simd/kern.h"

typedef struct lq_e8_pack {
    size_t rows, cols, n8, nvec, ngroups, group, ntiles;
    unsigned hadamard;
    uint64_t seed;
    float hb[16];        /* beta / 2 (16 entries, unused ones 0) */
    uint8_t *coords;     /* ntiles * nvec * 128 */
    uint8_t *idx;        /* ntiles * nvec * 16 */
    float *scale;        /* ntiles * ngroups * 16 */
} lq_e8_pack;

/* Activation data per vector (64-byte aligned arrays):
 *   FAST:  int8 q[n8], float d[nvec], int32 qs[nvec] (128 * sum of q8)
 *   EXACT: float x[n8] */
typedef struct lq_e8_act_view {
    const int8_t *q;
    const float *d;
    const int32_t *qs;
    const float *x;
} lq_e8_act_view;

static inline size_t lq_e8_act_stride(const lq_e8_pack *p, lq_kernel_mode mode)
{
    if (mode == LQ_KERNEL_FAST)
        return lq_kern_roundup(p->n8, 64) + 2 * lq_kern_roundup(p->nvec * 4, 64);
    return lq_kern_roundup(p->n8 * sizeof(float), 64);
}

static inline lq_e8_act_view lq_e8_act_get(const lq_e8_pack *p, const void *act,
                                           lq_kernel_mode mode, size_t b)
{
    const unsigned char *base = (const unsigned char *)act + b * lq_e8_act_stride(p, mode);
    lq_e8_act_view v = {0, 0, 0, 0};
    if (mode == LQ_KERNEL_FAST) {
        size_t o1 = lq_kern_roundup(p->n8, 64);
        size_t o2 = o1 + lq_kern_roundup(p->nvec * sizeof(float), 64);
        v.q = (const int8_t *)base;
        v.d = (const float *)(const void *)(base + o1);
        v.qs = (const int32_t *)(const void *)(base + o2);
    } else {
        v.x = (const float *)(const void *)base;
    }
    return v;
}

void lq_kern_e8_fast_scalar(const void *pack, const void *act, size_t batch, float *Y,
                            size_t ldy, size_t r0, size_t r1);
void lq_kern_e8_exact_scalar(const void *pack, const void *act, size_t batch, float *Y,
                             size_t ldy, size_t r0, size_t r1);
void lq_kern_e8_fast_avx2(const void *pack, const void *act, size_t batch, float *Y,
                          size_t ldy, size_t r0, size_t r1);
void lq_kern_e8_exact_avx2(const void *pack, const void *act, size_t batch, float *Y,
                           size_t ldy, size_t r0, size_t r1);
void lq_kern_e8_fast_avx512(const void *pack, const void *act, size_t batch, float *Y,
                            size_t ldy, size_t r0, size_t r1);
void lq_kern_e8_exact_avx512(const void *pack, const void *act, size_t batch, float *Y,
                             size_t ldy, size_t r0, size_t r1);
void lq_kern_e8_fast_neon(const void *pack, const void *act, size_t batch, float *Y,
                          size_t ldy, size_t r0, size_t r1);

#endif
