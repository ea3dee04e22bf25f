/*
 * INT kernels: the kernel layout ("pack") of a k-bit integer tensor and the
 * per-call activation data shared by the scalar, AVX2, AVX-512 and NEON row
 * kernels.
 *
 * Pack. Rows are cut into tiles of 16; each group of scale columns is cut
 * into blocks of 32 columns (the last block of a group zero padded), so an
 * int8 activation block never straddles two groups. Per tile the blocks are
 * stored one after the other; in a block, a "sub-unit" s (columns 4s..4s+3)
 * is the 64 codes with byte 4r+k = code(row r, column 4s+k): one AVX-512
 * VNNI dpbusd against the broadcast 4 activations of the sub-unit gives the
 * 16 rows' partial sums in the 16 int32 lanes, with no horizontal reduction.
 * Codes are stored at their own width:
 *   4 bits: 4 units of 64 bytes; unit u holds sub-unit 2u in the low and
 *           2u+1 in the high nibbles (256 bytes per block);
 *   2 bits: 2 units; unit u holds sub-units 4u+i in bits 2i..2i+1 (128 B);
 *   3 bits: the low 2 bits as for 2 bits, then 8 little-endian uint64 masks,
 *           bit 4r+k of mask s = bit 2 of code(r, 4s+k) (192 B);
 *   5-8 bits: one byte per code, sub-unit s at byte 64s (512 B).
 * Group parameters become w = s * q + m (m = -s * zero), 16 scales then 16
 * offsets per (tile, group).
 *
 * Row result (FAST, bit-exact at every level): with int8 activations
 * q8 (scale d per block) and xs = sum over the group's blocks of d * sum(q8)
 * (the sum of the rounded activations, so the zero-point term cancels and
 * the error is sum_c w_c (x_c - x^_c), |x - x^| <= d/2),
 *   g = sum over blocks b of the group, in order: g = g + d_b * (float)isum_b
 *   y = y + (s * g + m * xs)          (groups in order)
 * where isum_b is the exact integer dot product of the block. EXACT uses
 * the float activations and xs = their float sum: g = sum over columns in
 * order of q * x (fused multiply-add in the SIMD kernels).
 */
#ifndef LQ_SIMD_KERN_INT_H
#define LQ_SIMD_KERN_INT_H

#include "simd/kern.h"

typedef struct lq_int_pack {
    size_t rows, cols;
    unsigned bits;  /* 2..8 as stored in the tensor */
    unsigned sbits; /* width in the pack: 2, 3, 4 or 8 */
    size_t ngroups;
    size_t nblk;  /* blocks of 32 over all groups */
    size_t kcols; /* nblk * 32: padded columns */
    size_t ntiles;
    size_t blk_bytes;  /* 16 * 32 * sbits / 8 */
    uint32_t *gblk;    /* ngroups + 1: first block of each group */
    uint32_t *col_src; /* kcols: source column of each padded column, or UINT32_MAX */
    uint8_t *codes;    /* ntiles * nblk * blk_bytes */
    float *sm;         /* ntiles * ngroups * 32: s[16] then m[16] */
} lq_int_pack;

/* Activation data: for each of `batch` vectors, in this order:
 *   FAST:  int8 q[kcols], float d[nblk], float xs[ngroups]
 *   EXACT: float x[kcols], float xs[ngroups]
 * each array starting at a 64-byte boundary. */
typedef struct lq_int_act_view {
    const int8_t *q;
    const float *d;
    const float *x;
    const float *xs;
} lq_int_act_view;

static inline size_t lq_int_act_stride(const lq_int_pack *p, lq_kernel_mode mode)
{
    if (mode == LQ_KERNEL_FAST)
        return lq_kern_roundup(p->kcols, 64) + lq_kern_roundup(p->nblk * sizeof(float), 64) +
               lq_kern_roundup(p->ngroups * sizeof(float), 64);
    return lq_kern_roundup(p->kcols * sizeof(float), 64) +
           lq_kern_roundup(p->ngroups * sizeof(float), 64);
}

static inline lq_int_act_view lq_int_act_get(const lq_int_pack *p, const void *act,
                                             lq_kernel_mode mode, size_t b)
{
    const unsigned char *base = (const unsigned char *)act + b * lq_int_act_stride(p, mode);
    lq_int_act_view v = {0, 0, 0, 0};
    if (mode == LQ_KERNEL_FAST) {
        size_t o1 = lq_kern_roundup(p->kcols, 64);
        size_t o2 = o1 + lq_kern_roundup(p->nblk * sizeof(float), 64);
        v.q = (const int8_t *)base;
        v.d = (const float *)(const void *)(base + o1);
        v.xs = (const float *)(const void *)(base + o2);
    } else {
        size_t o1 = lq_kern_roundup(p->kcols * sizeof(float), 64);
        v.x = (const float *)(const void *)base;
        v.xs = (const float *)(const void *)(base + o1);
    }
    return v;
}

/* Code of (lane, column c of the block) in a block of the pack (scalar). */
static inline unsigned lq_int_code(const uint8_t *blk, unsigned sbits, unsigned lane, unsigned c)
{
    unsigned s = c >> 2, k = c & 3, j = 4 * lane + k;
    switch (sbits) {
    case 4: return (blk[64 * (s >> 1) + j] >> (4 * (s & 1))) & 15u;
    case 2: return (blk[64 * (s >> 2) + j] >> (2 * (s & 3))) & 3u;
    case 3: {
        unsigned lo = (blk[64 * (s >> 2) + j] >> (2 * (s & 3))) & 3u;
        unsigned hi = (blk[128 + 8 * s + (j >> 3)] >> (j & 7)) & 1u;
        return lo | (hi << 2);
    }
    default: return blk[64 * s + j];
    }
}

/* Row kernels (kern_int_<isa>.c). */
void lq_kern_int_fast_scalar(const void *pack, const void *act, size_t batch, float *Y, size_t ldy,
                             size_t r0, size_t r1);
void lq_kern_int_fast_avx2(const void *pack, const void *act, size_t batch, float *Y, size_t ldy,
                           size_t r0, size_t r1);
void lq_kern_int_exact_avx2(const void *pack, const void *act, size_t batch, float *Y, size_t ldy,
                            size_t r0, size_t r1);
void lq_kern_int_fast_avx512(const void *pack, const void *act, size_t batch, float *Y, size_t ldy,
                             size_t r0, size_t r1);
void lq_kern_int_exact_avx512(const void *pack, const void *act, size_t batch, float *Y, size_t ldy,
                              size_t r0, size_t r1);
void lq_kern_int_fast_neon(const void *pack, const void *act, size_t batch, float *Y, size_t ldy,
                           size_t r0, size_t r1);
void lq_kern_int_exact_neon(const void *pack, const void *act, size_t batch, float *Y, size_t ldy,
                            size_t r0, size_t r1);

#endif
