/*
 * Decode kernels of the codebook formats (VQ, AQ): the weights are decoded
 * from their codes and codebooks in registers and dotted with the raw float
 * activations, instead of reading per-activation tables. Leaf interface: the
 * layouts are built by src/products/kern_vq.c and kern_aq.c.
 *
 * VQ (GPTVQ's layout: a codebook per block of gr rows and gc columns). The
 * 16 rows of a tile are the lanes. Position j = the j-th d-vector of a row;
 * its codebook is cb_index(r, j) = lane_cb[r] + j / gcv (gcv = gc / d
 * vectors per column group), coordinate i of entry e is
 * cb[(cb_index * d + i) * stride + e]. Per row and activation vector x:
 *   v_j = (((w_0 x_{jd}) + w_1 x_{jd+1}) + ...) + w_{d-1} x_{jd+d-1}
 *   s_{j mod 4} = s_{j mod 4} + v_j          (s_0..s_3 start at 0)
 *   y = (s_0 + s_1) + (s_2 + s_3)
 * every product and sum rounded separately (no fused multiply-add): every
 * level (scalar, AVX2, AVX-512; the lookup is a register permute when the
 * tile's rows share their codebooks and K <= 32, else a gather) performs
 * exactly these operations, so the results are bit-identical across levels,
 * thread counts and batch sizes.
 *
 * Codes: per tile of 16 rows and position, the 16 rows' codes, as in
 * kern_lut.h: cw = 4: positions 2q and 2q+1 share 16 bytes (low and high
 * nibble); cw = 8: 16 bytes; cw = 16: 16 little-endian uint16.
 *
 * AQ (AQLM's layout: M shared codebooks of 2^B g-vectors, g a multiple of 8
 * on this path, codes per (row, g-vector, codebook) as stored, one float
 * scale per row). A row is read as chunks u of 8 columns; chunk u of group
 * j = u / (g / 8) decodes to the 8 floats
 *   w = C_0[c_0] (+ C_1[c_1] (+ ...))      (added in codebook order)
 * (C_m[e] the 8 values of codebook m, entry e, at chunk offset); per lane
 * k < 8 and activation vector x:
 *   P_{u mod 4}[k] = P_{u mod 4}[k] + w[k] x[8u + k]   (product rounded first)
 *   z[k] = (P_0[k] + P_1[k]) + (P_2[k] + P_3[k])
 *   y = scale * (((z0 + z1) + (z2 + z3)) + ((z4 + z5) + (z6 + z7)))
 * bit-identical across levels as for VQ. Codebook values are stored as
 * halves (converted exactly) or floats, as the tensor stores them.
 */
#ifndef LQ_SIMD_KERN_DEC_H
#define LQ_SIMD_KERN_DEC_H

#include "simd/kern.h"
#include "simd/kern_lut.h"

typedef struct lq_vqd_pack {
    size_t rows, cols, ntiles;
    size_t nvec;   /* positions per row (cols / d) */
    size_t d;      /* 1, 2, 4 or 8 */
    size_t K;      /* entries per codebook; codes < K */
    size_t stride; /* floats per codebook coordinate: max(K, 16) */
    size_t ncg;    /* column groups */
    size_t ncb;    /* codebooks */
    size_t gcv;    /* positions per column group */
    unsigned cw;   /* code width in the pack: 4, 8 or 16 */
    size_t tile_code_bytes;
    uint8_t *codes;    /* ntiles * tile_code_bytes */
    uint32_t *lane_cb; /* ntiles * 16: first codebook of each row's row block (0 for padding) */
    uint8_t *uniform;  /* ntiles: 1 if the tile's rows share their codebooks; 2 + s (s in
                        * 1..15) if they span two row blocks, lanes < s the first (lane 0's
                        * codebooks) and lanes >= s the second (lane s's); 0 otherwise */
    float *cb;         /* ncb * d * stride, zero padded */
} lq_vqd_pack;

/* Code of (tile, lane, position) (scalar). */
static inline unsigned lq_vqd_code(const lq_vqd_pack *p, size_t tile, unsigned lane, size_t pos)
{
    const uint8_t *tc = p->codes + tile * p->tile_code_bytes;
    switch (p->cw) {
    case 4: return (tc[(pos >> 1) * 16 + lane] >> (4 * (pos & 1))) & 15u;
    case 8: return tc[pos * 16 + lane];
    default:
        return (unsigned)tc[pos * 32 + 2 * lane] | ((unsigned)tc[pos * 32 + 2 * lane + 1] << 8);
    }
}

/* Row kernels: act = the batch's activations, batch x cols floats. */
void lq_kern_vqd_scalar(const void *pack, const void *act, size_t batch, float *Y, size_t ldy,
                        size_t r0, size_t r1);
void lq_kern_vqd_avx2(const void *pack, const void *act, size_t batch, float *Y, size_t ldy,
                      size_t r0, size_t r1);
void lq_kern_vqd_avx512(const void *pack, const void *act, size_t batch, float *Y, size_t ldy,
                        size_t r0, size_t r1);

typedef struct lq_aqd_pack {
    size_t rows, cols;
    size_t M;             /* codebooks, 1..8 */
    size_t K;             /* entries per codebook; codes are masked to K - 1 */
    size_t g;             /* vector dimension, a multiple of 8 */
    size_t ng;            /* groups per row: cols / g */
    unsigned codeb;       /* bytes per stored code: 1 or 2 */
    unsigned half;        /* 1: codebook values are IEEE halves, 0: floats */
    const uint8_t *codes; /* rows * ng * M codes (the tensor's section) */
    const void *cb;       /* M * K * g values (the tensor's section) */
    float *cbf;           /* the same values as floats (owned), or NULL: read cb */
    float *scales;        /* rows (aligned copy, owned by the pack) */
} lq_aqd_pack;

void lq_kern_aqd_scalar(const void *pack, const void *act, size_t batch, float *Y, size_t ldy,
                        size_t r0, size_t r1);
void lq_kern_aqd_avx2(const void *pack, const void *act, size_t batch, float *Y, size_t ldy,
                      size_t r0, size_t r1);
void lq_kern_aqd_avx512(const void *pack, const void *act, size_t batch, float *Y, size_t ldy,
                        size_t r0, size_t r1);

/* AQ FAST with int8 tables (K <= 256: AQLM 2x8 and smaller codebooks).
 * Tables as for the float table kernel (position p = j * M + m, T_p[e] =
 * C_m[e] . x_j), then per block of LQ_AQ8_BLK positions one scale s_blk =
 * max |T| / 127 over the block and T8 = T / s_blk rounded half away from
 * zero (int8, 256 entries per position, zero padded). Codes: per tile of 64
 * rows and position, the 64 rows' codes (one byte each). Per row and vector:
 *   isum_blk = sum over the block's positions of T8_p[code]   (exact integer)
 *   f = f + (float)isum_blk * s_blk                           (blocks in order,
 *                                                              product rounded first)
 *   y = scale * f
 * bit-identical at every level. Error against the float tables: at most
 * s_blk / 2 per lookup, i.e. |scale| * sum_blk (positions * s_blk / 2). */
#define LQ_AQ8_TILE 64
#define LQ_AQ8_BLK 32

typedef struct lq_aq8_pack {
    size_t rows, cols, ntiles; /* tiles of LQ_AQ8_TILE rows */
    size_t npos, nblk;         /* positions per row; blocks of LQ_AQ8_BLK */
    uint8_t *codes;            /* ntiles * npos * 64 */
    float *scales;             /* ntiles * 64 (0 for padding rows) */
} lq_aq8_pack;

/* Bytes of one vector's activation data: npos * 256 int8 entries (plus
 * 64 bytes of padding for 32-bit gathers), then nblk floats; 64-aligned. */
static inline size_t lq_aq8_act_stride(const lq_aq8_pack *p)
{
    return lq_kern_roundup(p->npos * 256 + 64 + p->nblk * sizeof(float), 64);
}

/* o[e] = round half away from zero of clamp(y[e] * inv, -127, 127), e < n
 * (y finite): the table quantizer, the same bytes at every level. */
void lq_aq8_quant_scalar(const float *y, size_t n, float inv, int8_t *o);
void lq_aq8_quant_avx2(const float *y, size_t n, float inv, int8_t *o);
void lq_aq8_quant_avx512(const float *y, size_t n, float inv, int8_t *o);

/* Rows [r0, r1) (r0 a multiple of 16); act = batch vectors of
 * lq_aq8_act_stride bytes. */
void lq_kern_aq8_scalar(const lq_aq8_pack *p, const void *act, size_t batch, float *Y, size_t ldy,
                        size_t r0, size_t r1);
void lq_kern_aq8_avx2(const lq_aq8_pack *p, const void *act, size_t batch, float *Y, size_t ldy,
                      size_t r0, size_t r1);
void lq_kern_aq8_avx512(const lq_aq8_pack *p, const void *act, size_t batch, float *Y, size_t ldy,
                        size_t r0, size_t r1);

/* What the VQ and AQ records cache: the decode layout or the table layout
 * (exactly one is non-NULL), chosen at prepare time (src/products/). */
typedef struct lq_vq_kpack {
    lq_lut_pack *lut;
    lq_vqd_pack *dec;
    struct lq_vq8_pack *q8; /* with dec when the int8 path applies (kern_vq8.h): FAST */
} lq_vq_kpack;
typedef struct lq_aq_kpack {
    lq_lut_pack *lut;
    lq_aqd_pack *dec;
    lq_aq8_pack *q8; /* with lut when K <= 256: the FAST path */
} lq_aq_kpack;

/* Row kernels of the records: the decode kernel or the table kernel of the
 * same level, whichever layout the pack holds. */
void lq_kern_vq_scalar(const void *pack, const void *act, size_t batch, float *Y, size_t ldy,
                       size_t r0, size_t r1);
void lq_kern_vq_avx2(const void *pack, const void *act, size_t batch, float *Y, size_t ldy,
                     size_t r0, size_t r1);
void lq_kern_vq_avx512(const void *pack, const void *act, size_t batch, float *Y, size_t ldy,
                       size_t r0, size_t r1);
void lq_kern_aq_scalar(const void *pack, const void *act, size_t batch, float *Y, size_t ldy,
                       size_t r0, size_t r1);
void lq_kern_aq_avx2(const void *pack, const void *act, size_t batch, float *Y, size_t ldy,
                     size_t r0, size_t r1);
void lq_kern_aq_avx512(const void *pack, const void *act, size_t batch, float *Y, size_t ldy,
                       size_t r0, size_t r1);
/* FAST: the int8 path when the pack has it (kern_vq8.h), else as EXACT. */
void lq_kern_vqf_scalar(const void *pack, const void *act, size_t batch, float *Y, size_t ldy,
                        size_t r0, size_t r1);
void lq_kern_vqf_avx2(const void *pack, const void *act, size_t batch, float *Y, size_t ldy,
                      size_t r0, size_t r1);
void lq_kern_vqf_avx512(const void *pack, const void *act, size_t batch, float *Y, size_t ldy,
                        size_t r0, size_t r1);
/* FAST: the int8 tables when the pack has them, else as EXACT. */
void lq_kern_aqf_scalar(const void *pack, const void *act, size_t batch, float *Y, size_t ldy,
                        size_t r0, size_t r1);
void lq_kern_aqf_avx2(const void *pack, const void *act, size_t batch, float *Y, size_t ldy,
                      size_t r0, size_t r1);
void lq_kern_aqf_avx512(const void *pack, const void *act, size_t batch, float *Y, size_t ldy,
                        size_t r0, size_t r1);

#if LQ_ARCH_X86
#define LQ_AQ_ROWS                                                                                 \
    {                                                                                              \
        {lq_kern_aq_scalar, lq_kern_aq_avx2, lq_kern_aq_avx512, NULL},                             \
            {lq_kern_aqf_scalar, lq_kern_aqf_avx2, lq_kern_aqf_avx512, NULL},                      \
    }
#define LQ_DEC_ROWS(F)                                                                             \
    {                                                                                              \
        {lq_kern_##F##_scalar, lq_kern_##F##_avx2, lq_kern_##F##_avx512, NULL},                    \
            {lq_kern_##F##_scalar, lq_kern_##F##_avx2, lq_kern_##F##_avx512, NULL},                \
    }
#define LQ_VQ_ROWS                                                                                 \
    {                                                                                              \
        {lq_kern_vq_scalar, lq_kern_vq_avx2, lq_kern_vq_avx512, NULL},                             \
            {lq_kern_vqf_scalar, lq_kern_vqf_avx2, lq_kern_vqf_avx512, NULL},                      \
    }
#else
#define LQ_AQ_ROWS                                                                                 \
    {                                                                                              \
        {lq_kern_aq_scalar, NULL, NULL, NULL}, {lq_kern_aqf_scalar, NULL, NULL, NULL},             \
    }
#define LQ_DEC_ROWS(F)                                                                             \
    {                                                                                              \
        {lq_kern_##F##_scalar, NULL, NULL, NULL}, {lq_kern_##F##_scalar, NULL, NULL, NULL},        \
    }
#define LQ_VQ_ROWS                                                                                 \
    {                                                                                              \
        {lq_kern_vq_scalar, NULL, NULL, NULL}, {lq_kern_vqf_scalar, NULL, NULL, NULL},             \
    }
#endif

#endif
