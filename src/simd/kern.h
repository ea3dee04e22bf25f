/*
 * Matmul-on-codes kernels: the per-format kernel records and the shared
 * pieces (activation quantization, tiling constants).
 *
 * Every format that has kernels contributes one lq_kern_format record: a
 * repack of its sections into a kernel-friendly layout (built once, cached
 * in the qtensor), the per-call activation data (int8 blocks or look-up
 * tables, built once per call by portable scalar code so that every SIMD
 * level sees the same bytes), and a table of row kernels indexed by
 * [mode][simd level]. A NULL slot falls back to the next lower level, and
 * a NULL scalar EXACT slot to the format's reference matmul_rows.
 *
 * Row kernels compute Y[b * ldy + r] for r in [r0, r1) and b in [0, batch):
 * r0 is a multiple of LQ_KERN_TILE. Within a row, the order of the float
 * operations is fixed by the format (not by the SIMD width), which is what
 * makes integer paths bit-exact across levels and results independent of
 * how rows are split across threads.
 */
#ifndef LQ_SIMD_KERN_H
#define LQ_SIMD_KERN_H

#include "qtensor/qtensor_internal.h"
#include "quant/kernels.h"

#define LQ_KERN_TILE 16  /* rows per tile: one AVX-512 register of row lanes */
#define LQ_KERN_QBLK 32  /* activations per int8 block */
#define LQ_KERN_NLEVELS 4

typedef void (*lq_kern_rows_fn)(const void *pack, const void *act, size_t batch, float *Y,
                                size_t ldy, size_t r0, size_t r1);

typedef struct lq_kern_format {
    lq_format format;
    /* Repack t into *pack using allocator a. LQ_ERR_CORRUPT / NO_MEMORY. */
    lq_status (*prepare)(const lq_qtensor *t, const lq_allocator *a, void **pack);
    void (*pack_free)(const lq_allocator *a, void *pack);
    /* Largest batch handled by one activation build (0 = any). */
    size_t (*max_batch)(const void *pack, lq_kernel_mode mode);
    /* Bytes of activation data for `batch` vectors, and its build. `level`
     * is the call's SIMD level (lq_simd_for(ctx)): the build may use helpers
     * up to it, never above; the bytes it writes do not depend on it. */
    size_t (*act_bytes)(const void *pack, size_t batch, lq_kernel_mode mode);
    void (*act_build)(const void *pack, const float *X, size_t batch, lq_kernel_mode mode,
                      lq_simd_level level, void *act);
    lq_kern_rows_fn rows[2][LQ_KERN_NLEVELS]; /* [mode][lq_simd_level] */
    size_t grain; /* rows per task, a multiple of LQ_KERN_TILE (0: 64) */
} lq_kern_format;

/* The record of a format, or NULL when it has no kernels. */
const lq_kern_format *lq_kern_lookup(lq_format f);

/* Free the cached kernel layout of t (called by lq_qtensor_free). */
void lq_kern_release(lq_qtensor *t);

/* The kernel layout of t (built and cached on first use). */
lq_status lq_kern_pack(const lq_qtensor *t, const lq_kern_format *kf, const void **pack);

/* Products through the kernels, following lq_kern_plan_for(ctx, ...);
 * LQ_ERR_UNSUPPORTED when the format has no kernel record or declines the
 * tensor (the caller then uses the format's reference). Arguments are
 * validated by the caller. */
lq_status lq_kern_matmul(lq_ctx *ctx, const lq_qtensor *t, const float *X, size_t batch,
                         float *Y, lq_kernel_mode mode);

/* The row kernel used for (mode, level) after fallbacks, NULL = reference;
 * *slot (may be NULL) receives the level of the slot it came from. */
lq_kern_rows_fn lq_kern_select(const lq_kern_format *kf, lq_kernel_mode mode,
                               lq_simd_level level, lq_simd_level *slot);

/* What a product on a tensor runs, decided once per call from the
 * context's level (lq_simd_for(ctx), which applies its simd_cap). */
typedef struct lq_kern_plan {
    const lq_kern_format *kf; /* NULL: the format has no kernel record */
    lq_kernel_mode mode;      /* after the FAST -> EXACT fallback */
    lq_kern_rows_fn rows;     /* NULL: the format's reference rows */
    lq_simd_level rows_level; /* the slot `rows` came from (level when rows is NULL) */
    lq_simd_level level;      /* the call's level: bounds the activation build and
                               * the reference rows */
} lq_kern_plan;

/* The plan of a product on t in `mode` under ctx: level = lq_simd_for(ctx).
 * lq_kern_matmul follows it (a kernel layout the format declines at
 * prepare time still falls back to the reference, at plan->level). */
void lq_kern_plan_for(lq_ctx *ctx, const lq_qtensor *t, lq_kernel_mode mode,
                      lq_kern_plan *plan);

/* ---- shared scalar helpers --------------------------------------------- */
/* Quantize n <= LQ_KERN_QBLK floats to int8 with one scale: d = max|x|/127,
 * q = round half away from zero of x * 127/max|x| (0 when max|x| == 0). Writes
 * LQ_KERN_QBLK bytes (zero padded) and returns d; *qsum = sum of q. */
float lq_kern_q8_block(const float *x, size_t n, int8_t *q, int32_t *qsum);

/* Round up to a multiple of m. */
static inline size_t lq_kern_roundup(size_t n, size_t m)
{
    return (n + m - 1) / m * m;
}

/* Per-format records (src/simd/kern_<format>.c). */
extern const lq_kern_format lq_kern_int;
extern const lq_kern_format lq_kern_bcq;
extern const lq_kern_format lq_kern_vq;
extern const lq_kern_format lq_kern_aq;
extern const lq_kern_format lq_kern_e8;

#endif
