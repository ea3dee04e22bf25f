/*
 * VQ FAST with int8 activations on GPTVQ's int8 codebooks (leaf interface;
 * the layout is built by src/products/kern_vq.c beside the float decode
 * layout of kern_dec.h, whose code bytes it shares: no second copy).
 *
 * Applies when the tensor stores int8 codebooks with a float scale per
 * codebook (GPTVQ's default, codebook_bits 8), 2^b <= 16 entries, d in
 * {1, 2, 4}, columns and column groups multiples of 32, and the codebooks a
 * 16-row tile reads fit one 64-byte register: (row blocks the tile spans) x
 * 2^b x d <= 64. Every GPTVQ preset with b * d <= 4 bits per vector index
 * meets it (the presets size the row blocks so that 16 rows read exactly 64
 * codebook bytes: d 2 / 4-bit index / 8-row blocks, d 1 / 3-bit / 2-row
 * blocks, ...).
 *
 * Row result, per row r and activation vector x: x is cut into blocks of
 * 32 columns, q8 = int8 of the block (lq_kern_q8_block: scale d_k), and
 *   isum_k = sum over the block's columns c of w8(r, c) * q8_c     (exact int32)
 *   f      = f + (float)isum_k * d_k        (blocks of column group g in order,
 *                                            f = 0 at the group start, product
 *                                            rounded before the add)
 *   y      = y + f * s(r, g)                (groups in order, y = 0 first)
 * where w8(r, c) is the int8 codebook value (entry code(r, c / d), coordinate
 * c mod d) and s(r, g) the codebook's scale. Every level performs these
 * float operations in this order (the integer sums are exact whatever the
 * instruction), so the result is bit-identical across levels, thread counts
 * and batch sizes. Error against the float decode (EXACT): the activation
 * rounding, |x_c - d_k q8_c| <= d_k / 2, so
 *   |Y_fast - Y_exact| <= sum_c |w(r, c)| d_k(c) / 2 + float rounding.
 *
 * Layout read by the kernels (besides the float pack's codes, cw = 4):
 *   tbl  [group][row block][coordinate][entry] int8 codebook values, 2^b
 *        entries per coordinate, then 64 zero bytes (a tile's 64-byte load
 *        may run past the last codebook); the table of tile t in group g
 *        starts at byte (g * nrb + rb0(t)) * 2^b * d;
 *   scl  [group][row block] floats, then 16 zeros;
 *   offs per tile 64 bytes: byte 4 l + k = (rb(l) - rb0) * 2^b * d + (k mod d) * 2^b,
 *        the table index of lane l's column k of a 4-column chunk without
 *        its code (0 for padding lanes);
 *   lblk per tile 16 bytes: rb(l) - rb0 (0 for padding lanes).
 */
#ifndef LQ_SIMD_KERN_VQ8_H
#define LQ_SIMD_KERN_VQ8_H

#include "simd/kern.h"
#include "simd/kern_dec.h"

typedef struct lq_vq8_pack {
    const lq_vqd_pack *dec; /* codes (cw = 4) and geometry */
    size_t K, d, nrb, ncg;
    size_t gcb;    /* blocks of 32 columns per column group */
    size_t nblk;   /* blocks of 32 columns per row */
    size_t kd;     /* K * d: bytes per codebook */
    int8_t *tbl;   /* ncg * nrb * kd + 64 */
    float *scl;    /* ncg * nrb + 16 */
    uint8_t *offs; /* ntiles * 64 */
    uint8_t *lblk; /* ntiles * 16 */
    uint32_t *rb0; /* ntiles: first row block of the tile */
    /* Byte routing of a 64-byte unit of codes (4 code pairs = 8 d-vectors =
     * 8 d columns, 16 rows) for its 2 d chunks of 4 columns c: route[c][4 l
     * + k] = the code byte of lane l holding column k of the chunk (pair * 16
     * + l), msh[c][4 l + k] = the bit offset of its nibble within lane l's
     * qword after routing (vpermb then vpmultishiftqb). */
    uint8_t route[8][64], msh[8][64];
} lq_vq8_pack;

/* Activation data per vector (64-byte aligned arrays): int8 q[cols], float
 * d[nblk], int32 nb128[nblk] = -128 * (sum of the block's q8) (the bias of
 * unsigned-by-signed byte products on w8 + 128). */
typedef struct lq_vq8_act_view {
    const int8_t *q;
    const float *d;
    const int32_t *nb128;
} lq_vq8_act_view;

static inline size_t lq_vq8_act_stride(const lq_vq8_pack *p)
{
    return lq_kern_roundup(p->dec->cols, 64) + 2 * lq_kern_roundup(p->nblk * 4, 64);
}

static inline lq_vq8_act_view lq_vq8_act_get(const lq_vq8_pack *p, const void *act, size_t b)
{
    const unsigned char *base = (const unsigned char *)act + b * lq_vq8_act_stride(p);
    size_t o1 = lq_kern_roundup(p->dec->cols, 64);
    size_t o2 = o1 + lq_kern_roundup(p->nblk * 4, 64);
    lq_vq8_act_view v = {(const int8_t *)base, (const float *)(const void *)(base + o1),
                         (const int32_t *)(const void *)(base + o2)};
    return v;
}

/* End of column group g's blocks (the last group may be shorter). */
static inline size_t lq_vq8_group_end(const lq_vq8_pack *p, size_t g)
{
    size_t e = (g + 1) * p->gcb;
    return e < p->nblk ? e : p->nblk;
}

/* Rows [r0, r1) (r0 a multiple of 16). */
void lq_kern_vq8_scalar(const lq_vq8_pack *p, const void *act, size_t batch, float *Y, size_t ldy,
                        size_t r0, size_t r1);
void lq_kern_vq8_avx2(const lq_vq8_pack *p, const void *act, size_t batch, float *Y, size_t ldy,
                      size_t r0, size_t r1);
void lq_kern_vq8_avx512(const lq_vq8_pack *p, const void *act, size_t batch, float *Y, size_t ldy,
                        size_t r0, size_t r1);

#endif
