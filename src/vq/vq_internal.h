/*
 * VQ internals: nearest-centroid kernels (scalar reference + per-ISA twins
 * reached through a small dispatch table) and the k-means core used both by
 * lq_kmeans and by the GPTVQ driver. Not installed.
 */
#ifndef LQ_VQ_INTERNAL_H
#define LQ_VQ_INTERNAL_H

#include "core/internal.h"
#include "quant/vq.h"

/* Centroid blocks are padded to a multiple of this many entries in the
 * transposed (structure-of-arrays) layout the kernels read. */
#define LQ_VQ_KPAD 16

static inline size_t lq_vq_kpad(size_t k) { return (k + LQ_VQ_KPAD - 1) / LQ_VQ_KPAD * LQ_VQ_KPAD; }

/* Nearest centroid of each of n points.
 *   x    n x d points (row stride d); w n x d per-coordinate weights or NULL.
 *   ct   transposed centroids: coordinate j of centroid c at ct[j*kpad + c]
 *        (c < k; entries k..kpad-1 are never read as candidates).
 *   idx  n out: argmin_c dist(x_i, c), ties to the lowest index (0 if every
 *        distance is +Inf or NaN).  dist n out: that distance.
 * The distance is accumulated over j = 0..d-1 from 0 as
 *   t = c_j - x_j;  acc = fma(t, t, acc)          (w NULL)
 *   t = c_j - x_j;  acc = fma(t * w_j, t, acc)    (weighted)
 * in float with one rounding per fma: every kernel (scalar and SIMD) gives
 * bit-identical results. */
typedef void (*lq_vq_nearest_fn)(const float *x, const float *w, size_t n, size_t d,
                                 const float *ct, size_t k, size_t kpad, uint32_t *idx,
                                 float *dist);

/* Scalar reference (any d >= 1). */
void lq_vq_nearest_scalar(const float *x, const float *w, size_t n, size_t d, const float *ct,
                          size_t k, size_t kpad, uint32_t *idx, float *dist);

/* Kernel for a SIMD level and dimension: a SIMD kernel for d in {1,2,4,8}
 * when the level has one, else the scalar reference. */
lq_vq_nearest_fn lq_vq_nearest_for(lq_simd_level level, size_t d);

/* Transpose k x d centroids into ct (d x kpad), zero padding. */
void lq_vq_transpose(const float *c, size_t k, size_t d, float *ct, size_t kpad);

/* ---- k-means core ------------------------------------------------------
 * Workspace-based so callers that run many small k-means inside parallel
 * tasks (GPTVQ) allocate once, outside the tasks. */
typedef struct lq_kmeans_ws {
    size_t n, d, k, kpad, nchunks, chunk;
    uint32_t *cur_assign;  /* n */
    float *dist;           /* n */
    uint32_t *best_assign; /* n (only when restarts > 1) */
    float *cent;           /* k x d, current */
    float *best_cent;      /* k x d */
    float *ct;             /* d x kpad */
    double *part;          /* nchunks x k x (2d+1) partial sums; nchunks doubles of inertia after */
    double *sums;          /* k x (2d+1) */
    uint8_t *taken;        /* n/8+1 bytes (random init bitmap) */
    double *pp;            /* n: k-means++ D^2 (double) */
} lq_kmeans_ws;

/* Bytes of workspace needed (0 on overflow). */
size_t lq_kmeans_ws_bytes(size_t n, size_t d, size_t k, unsigned restarts);
/* Carve a workspace out of `mem` (lq_kmeans_ws_bytes(...) bytes, 64-aligned). */
void lq_kmeans_ws_init(lq_kmeans_ws *ws, void *mem, size_t n, size_t d, size_t k,
                       unsigned restarts);

/* Run k-means with validated arguments (see lq_kmeans). Restart r uses RNG
 * stream stream0 + r of `seed`. Parallel through ctx (inline when called
 * from a task). `centroids` is read for LQ_KMEANS_GIVEN and written at the
 * end; assign/inertia may be NULL. report: send progress through ctx (only
 * from the caller's thread). Fails only on the GEMM path (NO_MEMORY from
 * lq_sgemm); the direct kernels (d in {1,2,4,8}, or coordinate weights)
 * cannot fail. */
lq_status lq_kmeans_core(lq_ctx *ctx, lq_simd_level level, const float *x, const float *weights,
                         size_t n, size_t d, size_t k, const lq_kmeans_opts *o, uint64_t seed,
                         uint64_t stream0, int report, lq_kmeans_ws *ws, float *centroids,
                         uint32_t *assign, double *inertia);

/* ---- LQ_FORMAT_VQ layout (shared by format_vq.c and method_gptvq.c) ------
 * ip[0] d (1, 2, 4, 8)          ip[1] index bits b (1..16)
 * ip[2] group_cols (multiple of d, <= cols)    ip[3] group_rows (<= rows)
 * ip[4] codebook storage: 16 = IEEE half, 8 = int8 with a float scale per
 *       codebook            ip[5] SVD rank r (0 = full codebooks)
 * Codebook g = rb * ncg + cg covers rows [rb gr, ...) x columns [cg gc, ...)
 * (ncg = ceil(cols / gc), nrb = ceil(rows / gr)); it has 2^b entries of d.
 * Sections: CODES (elem 1) per row ceil((cols/d) b / 8) bytes, LSB-first
 * bit stream of the row's codes; CODEBOOKS: r == 0: ncb x 2^b x d values
 * (half, elem 2, or int8, elem 1); r > 0: Vt (r x 2^b d, half); SCALES
 * (int8 only, elem 4): ncb floats; AUX (r > 0, elem 2): U (ncb x r, half).
 * With SVD the codebook is entry (e, j) = sum_i U[g, i] Vt[i, e d + j],
 * summed in float in order i = 0..r-1. */
enum { LQ_VQ_IP_D = 0, LQ_VQ_IP_BITS, LQ_VQ_IP_GC, LQ_VQ_IP_GR, LQ_VQ_IP_CB, LQ_VQ_IP_RANK };

static inline size_t lq_vq_row_bytes(size_t nvec, unsigned bits) { return (nvec * bits + 7) / 8; }

static inline unsigned lq_vq_get_code(const uint8_t *row, size_t v, unsigned bits)
{
    size_t bit = v * bits;
    uint32_t x = 0;
    size_t b0 = bit >> 3, nb = ((bit & 7) + bits + 7) >> 3;
    for (size_t i = 0; i < nb; i++) x |= (uint32_t)row[b0 + i] << (8 * i);
    return (x >> (bit & 7)) & ((1u << bits) - 1u);
}

static inline void lq_vq_put_code(uint8_t *row, size_t v, unsigned bits, unsigned code)
{
    size_t bit = v * bits;
    for (unsigned i = 0; i < bits; i++, bit++)
        if ((code >> i) & 1u) row[bit >> 3] |= (uint8_t)(1u << (bit & 7));
}

#endif
