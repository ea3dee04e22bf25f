/*
 * E8P kernels on a tiled copy of the codes (docs/design.md, "E8P kernel
 * layout"; the format: src/qtensor/format_e8p.c, docs/formats.md 2.6).
 *
 * A code (pattern p, signs of coordinates 0-6, shift bit; sign 7 implied by
 * parity) stands for y = s * a + h with a = lq_e8p_abs2[p] / 2 in {1/2, 3/2,
 * 5/2}^8 and h = +-1/4, so k = 4y = +-(4 e + 2) +- 1 with e = (2a - 1) / 2 in
 * {0, 1, 2}: twelve odd integers in [-11, 11]. Per coordinate the kernels
 * work on a 4-bit index
 *   n_i = e_i | s_i << 2 | h << 3          (s_i = 1: minus, h = 1: -1/4)
 * built in registers from the pattern byte (ptab: byte i = e_i of the 256
 * patterns), the sign byte and the shift bit; k = lq_e8p_k(n) (a 16-entry
 * table; e = 3 does not occur).
 *
 * Per 16-row tile and 8-vector j, one block of LQ_E8P_BLOCK = 34 bytes:
 *   pat  16 bytes: pattern index of row r (byte r);
 *   sgn  16 bytes: all 8 signs of row r (bit i; sign 7 resolved at load);
 *   sh    2 bytes: bit r (little-endian 16-bit) = shift of row r.
 * Row scales per (tile, group) as 16 floats (rows past the end: 0). Kernel-
 * read bits per weight: 34 * 8 / 128 = 2.125 plus 32 / group, against 2 +
 * 32 / group stored (the implied sign is resolved at load: one bit per 8
 * weights more than the stored code, saving a popcount per code).
 *
 * EXACT: the format's reference product, operation for operation, per row
 * lane in double: x' = R [x; 0] (float, converted to double), for each
 * vector j
 *   d = 0; d = d + k_i x'_i (i = 0..7 in order);  acc = acc + (s_g / 4) d
 * and y = (float)acc. k_i x'_i is exact in double (|k| <= 11: 4 bits times
 * a 24-bit significand), so a fused multiply-add d + k_i x'_i rounds as the
 * reference's add does; the product (s_g / 4) d is rounded apart from the
 * add (no fusion), as in the reference. Bit-exact with the reference at
 * every level and for every input.
 * FAST: x' quantized to int8 per 8-vector (scale dx_j, q8, lq_kern_q8_block),
 *   isum_j = sum_i k_i q8_i   (int32, exact: |isum| <= 8 * 11 * 127)
 *   a = a + (float)isum_j * dx_j   (vectors of group g in order, a = 0 first)
 *   y = y + s_g * a;   Y = 0.25f * y
 * in float, each product rounded apart from its add: bit-exact across
 * levels. Error against EXACT: |x'_i - dx_j q8_i| <= dx_j / 2, so
 *   |Y_fast - Y_exact| <= sum_j |s_g(j)| sum_i |y_i| dx_j / 2 + float rounding.
 */
#ifndef LQ_SIMD_KERN_E8P_H
#define LQ_SIMD_KERN_E8P_H

#include <string.h>

#include "simd/kern.h"

#define LQ_E8P_BLOCK 34 /* bytes per (tile, vector) block */
#define LQ_E8P_NB 8     /* vectors per decoded tile in the AVX-512 kernels (AVX2: 4) */

typedef struct lq_e8p_pack {
    size_t rows, cols, n8, nvec, ngroups, group, ntiles;
    unsigned hadamard;
    uint64_t seed;
    uint64_t ptab[256]; /* byte i = e_i = (lq_e8p_abs2[p][i] - 1) / 2 */
    uint64_t stab[256]; /* byte i = 4 * bit i of the index (sign bits to n_i) */
    uint8_t *blocks;    /* ntiles * nvec * LQ_E8P_BLOCK */
    float *scale;       /* ntiles * ngroups * 16 */
} lq_e8p_pack;

/* k = 4y of index n (module comment). */
static inline int lq_e8p_k(unsigned n)
{
    int a = 4 * (int)(n & 3u) + 2;
    return ((n & 4u) ? -a : a) + ((n & 8u) ? -1 : 1);
}

/* The eight indices of lane r of a block, byte i = n_i. */
static inline uint64_t lq_e8p_lane(const lq_e8p_pack *p, const uint8_t *blk, unsigned r)
{
    uint64_t v = p->ptab[blk[r]] | p->stab[blk[16 + r]];
    unsigned sh = ((unsigned)blk[32] | (unsigned)blk[33] << 8) >> r & 1u;
    if (sh) v |= 0x0808080808080808ull;
    return v;
}

/* The 16-entry tables of k (as int8) and of k + 16 (unsigned, for
 * unsigned-by-signed byte products), by index n. */
static inline void lq_e8p_ktab(int8_t k[16], uint8_t u[16])
{
    for (unsigned n = 0; n < 16; n++) {
        k[n] = (int8_t)lq_e8p_k(n);
        u[n] = (uint8_t)(lq_e8p_k(n) + 16);
    }
}

/* Bytes of the layout the kernels read (blocks and scales). */
static inline size_t lq_e8p_pack_bytes(const lq_e8p_pack *p)
{
    return p->ntiles * (p->nvec * LQ_E8P_BLOCK + p->ngroups * 16 * sizeof(float));
}

/* Activation data per vector (64-byte aligned arrays):
 *   FAST:  int8 q[n8], float dx[nvec], int32 s16[nvec] (16 * sum of q8)
 *   EXACT: double x[n8] */
typedef struct lq_e8p_act_view {
    const int8_t *q;
    const float *dx;
    const int32_t *s16;
    const double *x;
} lq_e8p_act_view;

static inline size_t lq_e8p_act_stride(const lq_e8p_pack *p, lq_kernel_mode mode)
{
    if (mode == LQ_KERNEL_FAST)
        return lq_kern_roundup(p->n8, 64) + 2 * lq_kern_roundup(p->nvec * 4, 64);
    return lq_kern_roundup(p->n8 * sizeof(double), 64);
}

static inline lq_e8p_act_view lq_e8p_act_get(const lq_e8p_pack *p, const void *act,
                                             lq_kernel_mode mode, size_t b)
{
    const unsigned char *base = (const unsigned char *)act + b * lq_e8p_act_stride(p, mode);
    lq_e8p_act_view v = {0, 0, 0, 0};
    if (mode == LQ_KERNEL_FAST) {
        size_t o1 = lq_kern_roundup(p->n8, 64);
        size_t o2 = o1 + lq_kern_roundup(p->nvec * sizeof(float), 64);
        v.q = (const int8_t *)base;
        v.dx = (const float *)(const void *)(base + o1);
        v.s16 = (const int32_t *)(const void *)(base + o2);
    } else {
        v.x = (const double *)(const void *)base;
    }
    return v;
}

/* Vectors [j0, j1) of group g (j1 clipped to nvec). */
static inline size_t lq_e8p_group_end(const lq_e8p_pack *p, size_t g)
{
    size_t j1 = (g + 1) * p->group / 8;
    return j1 > p->nvec ? p->nvec : j1;
}

void lq_kern_e8p_fast_scalar(const void *pack, const void *act, size_t batch, float *Y, size_t ldy,
                             size_t r0, size_t r1);
void lq_kern_e8p_exact_scalar(const void *pack, const void *act, size_t batch, float *Y, size_t ldy,
                              size_t r0, size_t r1);
void lq_kern_e8p_fast_avx2(const void *pack, const void *act, size_t batch, float *Y, size_t ldy,
                           size_t r0, size_t r1);
void lq_kern_e8p_exact_avx2(const void *pack, const void *act, size_t batch, float *Y, size_t ldy,
                            size_t r0, size_t r1);
void lq_kern_e8p_fast_avx512(const void *pack, const void *act, size_t batch, float *Y, size_t ldy,
                             size_t r0, size_t r1);
void lq_kern_e8p_exact_avx512(const void *pack, const void *act, size_t batch, float *Y, size_t ldy,
                              size_t r0, size_t r1);
void lq_kern_e8p_fast_neon(const void *pack, const void *act, size_t batch, float *Y, size_t ldy,
                           size_t r0, size_t r1);
void lq_kern_e8p_exact_neon(const void *pack, const void *act, size_t batch, float *Y, size_t ldy,
                            size_t r0, size_t r1);

#endif
