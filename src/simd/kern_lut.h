/*
 * Look-up-table kernels shared by the table formats (BCQ, VQ, AQ): the
 * layout they read and the per-ISA kernels (leaf interface; the layout is
 * built by src/products/kern_lut.c and the formats' records).
 *
 * A row's product is written as y_r = sum over segments s (in order) of
 * mult[s][r] * sum over the segment's positions p of T_p[code(r, p)], where
 * T_p is a table of K partial dot products of code patterns with the
 * activations, built once per activation vector (LUT-GEMM / T-MAC / AQLM):
 *   BCQ: position = (group, plane, 4 columns), T[m] = sum_j (+-x_j) over the
 *        4 sign bits of m, mult = alpha; plus one position per group with
 *        the group's sum of x, mult = offset;
 *   VQ:  position = one d-vector, T[e] = codebook entry e . x, mult = 1;
 *   AQ:  position = (g-vector, codebook), T[e] = entry e . x, mult = row scale.
 * Tables live in "sets" (VQ: one set per row block of codebooks); each row
 * reads the set lane_set[r]. Inside a segment the positions are summed in
 * two partial sums (even and odd positions from the segment start) added at
 * the segment end: every level (scalar, AVX2 gathers or permutes, AVX-512
 * gathers or vpermps) performs exactly these float additions, so the
 * results are bit-identical across levels and thread counts.
 *
 * Codes: per tile of 16 rows and position, the 16 rows' codes: cw = 4:
 * positions 2q and 2q+1 share 16 bytes (low and high nibble); cw = 8: 16
 * bytes; cw = 16: 16 little-endian uint16.
 */
#ifndef LQ_SIMD_KERN_LUT_H
#define LQ_SIMD_KERN_LUT_H

#include "simd/kern.h"

typedef struct lq_lut_pack lq_lut_pack;

/* Build the table sets for one activation vector x (cols floats) into
 * tables (nsets * tabset floats), with helpers up to `level` (the bytes do
 * not depend on it). */
typedef void (*lq_lut_build_fn)(const lq_lut_pack *p, const float *x, float *tables,
                                lq_simd_level level);

struct lq_lut_pack {
    size_t rows, cols, ntiles;
    size_t npos; /* positions per row */
    unsigned K;  /* table entries; codes < K */
    unsigned cw; /* code width in the pack: 4, 8 or 16 */
    size_t nseg;
    uint32_t *seg;    /* nseg + 1: first position of each segment */
    uint32_t *tabofs; /* npos: offset (floats) of a position's table in a set */
    size_t tabset;    /* floats per table set (tables padded to >= 16 entries) */
    size_t nsets;
    uint32_t *lane_set; /* ntiles * 16: table set of each row (0 for padding) */
    uint8_t *uniform;   /* ntiles: 1 if the tile's rows share one set */
    uint8_t *codes;     /* ntiles * tile_code_bytes */
    size_t tile_code_bytes;
    float *mult; /* ntiles * nseg * 16 */
    lq_lut_build_fn build;
    void *fmt;        /* format data for build (codebooks...) */
    size_t fmt_bytes; /* bytes of fmt the row kernels read (0: none) */
    void (*fmt_free)(const lq_allocator *a, void *fmt);
};

/* Code of (tile, lane, position) (scalar). */
static inline unsigned lq_lut_code(const lq_lut_pack *p, size_t tile, unsigned lane, size_t pos)
{
    const uint8_t *tc = p->codes + tile * p->tile_code_bytes;
    switch (p->cw) {
    case 4: return (tc[(pos >> 1) * 16 + lane] >> (4 * (pos & 1))) & 15u;
    case 8: return tc[pos * 16 + lane];
    default:
        return (unsigned)tc[pos * 32 + 2 * lane] | ((unsigned)tc[pos * 32 + 2 * lane + 1] << 8);
    }
}

/* Dot-product tables: t[e] = (((0 + cbT[0][e] x[0]) + cbT[1][e] x[1]) + ...)
 * for e < K (cbT: d rows of K floats, the transposed codebook), products
 * and sums rounded separately (no fused multiply-add): every level gives
 * the same bits. K a multiple of 16. */
typedef void (*lq_lut_dot_fn)(const float *cbT, size_t K, size_t d, const float *x, float *t);
void lq_lut_dot_scalar(const float *cbT, size_t K, size_t d, const float *x, float *t);
void lq_lut_dot_avx2(const float *cbT, size_t K, size_t d, const float *x, float *t);
void lq_lut_dot_avx512(const float *cbT, size_t K, size_t d, const float *x, float *t);

/* Bytes of the table sets of one activation vector (64-aligned). */
static inline size_t lq_lut_act_stride(const lq_lut_pack *p)
{
    return lq_kern_roundup(p->nsets * p->tabset * sizeof(float), 64);
}

void lq_kern_lut_scalar(const void *pack, const void *act, size_t batch, float *Y, size_t ldy,
                        size_t r0, size_t r1);
void lq_kern_lut_avx2(const void *pack, const void *act, size_t batch, float *Y, size_t ldy,
                      size_t r0, size_t r1);
void lq_kern_lut_avx512(const void *pack, const void *act, size_t batch, float *Y, size_t ldy,
                        size_t r0, size_t r1);

/* Rows per task for formats with large tables (one segment): the AVX-512
 * kernel walks the positions in blocks whose tables fit in L2, for all the
 * task's tiles, carrying the partial sums (same additions in the same
 * order), so big tables are streamed from L3 once per task, not gathered
 * at random. */
#define LQ_LUT_GRAIN 256

/* Row kernels of a table format, same for EXACT and FAST (float tables). */
#if LQ_ARCH_X86
#define LQ_LUT_ROWS                                                                                \
    {                                                                                              \
        {lq_kern_lut_scalar, lq_kern_lut_avx2, lq_kern_lut_avx512, NULL},                          \
            {lq_kern_lut_scalar, lq_kern_lut_avx2, lq_kern_lut_avx512, NULL},                      \
    }
#else
#define LQ_LUT_ROWS                                                                                \
    {                                                                                              \
        {lq_kern_lut_scalar, NULL, NULL, NULL}, {lq_kern_lut_scalar, NULL, NULL, NULL},            \
    }
#endif

#endif
