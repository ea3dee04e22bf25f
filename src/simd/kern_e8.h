/*
 * E8 kernels on a packed layout (docs/design.md, "E8 kernel layout").
 *
 * The stored Voronoi codes (src/qtensor/format_e8.c: mixed-radix index of c
 * in [0, q)^8, y = decode(c) in E8) are decoded once at load and re-encoded
 * coordinate-wise: y = d + s/2 with s in {0, 1} the coset of D8 in E8, and
 *   f_i = q - s/2 - y_i  in [0, 2q)          (u_i = 2 y_i = 2q - s - 2 f_i)
 * (the tie-broken code qV has y_i in [-q + 1/2, q - 1/2] when s = 1 and in
 * [-q + 1, q] when s = 0: +q e_0 is the one codeword with |y_i| = q; the
 * load checks every field). f takes 4 bits when q <= 8, 5 bits when
 * q <= 16 and 6 bits when q <= 32; larger q and K > 8 have no layout here
 * (the format's reference product runs). A coordinate-wise layout cannot be smaller: the Voronoi
 * cell has width 2 along every root, so any coordinate of a basis of roots
 * spans 2q values; the stored mixed-radix index (8 log2 q bits) decodes
 * only through a nearest-point search.
 *
 * Per 16-row tile and 8-vector j, one block of lq_e8_block_bytes(p) bytes:
 *   lo   64 bytes: dword r (row r of the tile), byte k (k = 0..3) holds the
 *        low 4 bits of f_k in its low nibble and of f_{k+4} in its high one;
 *   hi   16 bytes when q > 8: byte r, bit k = bit 4 of f_k (k = 0..7);
 *   hi2  16 bytes when q > 16: byte r, bit k = bit 5 of f_k;
 *   meta 8 bytes: row r in byte r % 8, nibble r / 8: s | beta index << 1.
 * Row scales per (tile, group) as 16 floats. Kernel-read bits per weight:
 * (64 + 16 hi + 16 hi2 + 8) * 8 / 128 = 4.5 (q <= 8), 5.5 (q <= 16) or
 * 6.5 (q <= 32), plus the scales (32 / group), against
 * 8 log2 q / 8 + log2 K / 8 + 32 / group stored.
 *
 * FAST: x' = R [x; 0] quantized to int8 per 8-vector (scale d_j, sum sq_j);
 * per row and vector, exactly in int32,
 *   fdot = sum_i f_i q8_i,   isum = 2q sq_j - s sq_j - 2 fdot  (= sum u_i q8_i)
 *   v = ((float)isum * d_j) * hb[beta]        hb = beta / 2
 *   a = a + v   (vectors of a group in order),  y = y + s_g * a.
 * Every level performs exactly these operations: bit-exact with scalar. (The
 * AVX-512 kernel forms isum as a2q_j + sum_i g_i (-q8_i) with g_i = 2 f_i + s
 * decoded once per block: the same integer.)
 * EXACT: float x'; per (row, 8-vector) the weights w_i = round(hb[beta] u_i)
 * (one rounding: u_i is a small integer), four partial sums per row and group,
 *   a_{i mod 4} = fma(w_i, x'_i, a_{i mod 4})   i = 0..7 in order,
 * then at the end of a group y = fma((a_0 + a_1) + (a_2 + a_3), s_g, y).
 * Every level (scalar with fmaf) performs exactly these operations: EXACT is
 * bit-identical across levels and batch sizes. The SIMD kernels decode a
 * block's weights once and apply them to every vector of the batch.
 */
#ifndef LQ_SIMD_KERN_E8_H
#define LQ_SIMD_KERN_E8_H

#include "simd/kern.h"

#define LQ_E8_KERN_QMAX 32u /* largest q with a kernel layout */
#define LQ_E8_KERN_KMAX 8u  /* largest K with a kernel layout */

typedef struct lq_e8_pack {
    size_t rows, cols, n8, nvec, ngroups, group, ntiles;
    unsigned q, hadamard;
    unsigned hi;  /* 1: the 16-byte hi plane is present (q > 8) */
    unsigned hi2; /* 1: the 16-byte hi2 plane is present (q > 16) */
    size_t block; /* bytes per (tile, vector) block */
    uint64_t seed;
    float hb[16];    /* beta / 2 (16 entries, unused ones 0) */
    uint8_t *blocks; /* ntiles * nvec * block */
    float *scale;    /* ntiles * ngroups * 16 */
} lq_e8_pack;

static inline size_t lq_e8_block_bytes(unsigned q)
{
    return 64 + (q > 8 ? 16 : 0) + (q > 16 ? 16 : 0) + 8;
}

/* Bytes of the layout the kernels read (blocks and scales). */
static inline size_t lq_e8_pack_bytes(const lq_e8_pack *p)
{
    return p->ntiles * (p->nvec * p->block + p->ngroups * 16 * sizeof(float));
}

/* Meta nibble (s | beta << 1) of lane r in [0, 16) of a block's meta. */
static inline unsigned lq_e8_meta(const uint8_t *meta, unsigned r)
{
    return (meta[r % 8] >> (4 * (r / 8))) & 15u;
}

/* f_k of lane r of a block. */
static inline unsigned lq_e8_field(const lq_e8_pack *p, const uint8_t *blk, unsigned r, unsigned k)
{
    unsigned f = (blk[4 * r + k % 4] >> (4 * (k / 4))) & 15u;
    if (p->hi) f |= ((blk[64 + r] >> k) & 1u) << 4;
    if (p->hi2) f |= ((blk[80 + r] >> k) & 1u) << 5;
    return f;
}

/* Activation data per vector (64-byte aligned arrays):
 *   FAST:  int8 q[n8], float d[nvec], int32 sq[nvec] (sum of q8),
 *          int32 a2q[nvec] (2q * sq)
 *   EXACT: float x[n8] */
typedef struct lq_e8_act_view {
    const int8_t *q;
    const float *d;
    const int32_t *sq;
    const int32_t *a2q;
    const float *x;
} lq_e8_act_view;

static inline size_t lq_e8_act_stride(const lq_e8_pack *p, lq_kernel_mode mode)
{
    if (mode == LQ_KERNEL_FAST)
        return lq_kern_roundup(p->n8, 64) + 3 * lq_kern_roundup(p->nvec * 4, 64);
    return lq_kern_roundup(p->n8 * sizeof(float), 64);
}

static inline lq_e8_act_view lq_e8_act_get(const lq_e8_pack *p, const void *act,
                                           lq_kernel_mode mode, size_t b)
{
    const unsigned char *base = (const unsigned char *)act + b * lq_e8_act_stride(p, mode);
    lq_e8_act_view v = {0, 0, 0, 0, 0};
    if (mode == LQ_KERNEL_FAST) {
        size_t o1 = lq_kern_roundup(p->n8, 64);
        size_t o2 = o1 + lq_kern_roundup(p->nvec * sizeof(float), 64);
        size_t o3 = o2 + lq_kern_roundup(p->nvec * sizeof(int32_t), 64);
        v.q = (const int8_t *)base;
        v.d = (const float *)(const void *)(base + o1);
        v.sq = (const int32_t *)(const void *)(base + o2);
        v.a2q = (const int32_t *)(const void *)(base + o3);
    } else {
        v.x = (const float *)(const void *)base;
    }
    return v;
}

/* FAST only, after the per-vector data and one rotated vector of scratch:
 * per 8-vector j and vector b (record j * batch + b) 16 bytes: the negated
 * int8 activations -q8 (8 bytes), a2q_j (int32), d_j (float), so that a
 * kernel reads every vector of a batch at fixed offsets from one pointer. */
#define LQ_E8_IREC 16u
static inline const unsigned char *lq_e8_act_irec(const lq_e8_pack *p, const void *act,
                                                  size_t batch)
{
    return (const unsigned char *)act + batch * lq_e8_act_stride(p, LQ_KERNEL_FAST) +
           lq_kern_roundup(p->n8 * sizeof(float), 64);
}

void lq_kern_e8_fast_scalar(const void *pack, const void *act, size_t batch, float *Y, size_t ldy,
                            size_t r0, size_t r1);
void lq_kern_e8_exact_scalar(const void *pack, const void *act, size_t batch, float *Y, size_t ldy,
                             size_t r0, size_t r1);
void lq_kern_e8_fast_avx2(const void *pack, const void *act, size_t batch, float *Y, size_t ldy,
                          size_t r0, size_t r1);
void lq_kern_e8_exact_avx2(const void *pack, const void *act, size_t batch, float *Y, size_t ldy,
                           size_t r0, size_t r1);
void lq_kern_e8_fast_avx512(const void *pack, const void *act, size_t batch, float *Y, size_t ldy,
                            size_t r0, size_t r1);
void lq_kern_e8_exact_avx512(const void *pack, const void *act, size_t batch, float *Y, size_t ldy,
                             size_t r0, size_t r1);
void lq_kern_e8_fast_neon(const void *pack, const void *act, size_t batch, float *Y, size_t ldy,
                          size_t r0, size_t r1);

#endif
