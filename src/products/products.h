/*
 * The products framework: matmul on codes for every format, above the
 * tensor model (src/qtensor/) and below the tools.
 *
 * Every format that has kernels contributes one lq_kern_format record
 * (src/products/kern_<format>.c): a repack of its sections into a
 * kernel-friendly layout (built once, cached in the qtensor), the per-call
 * activation data (int8 blocks or look-up tables, built once per call so
 * that every SIMD level sees the same bytes), and a table of per-ISA row
 * kernels (src/simd/, interface in simd/kern.h) indexed by [mode][simd
 * level]. A NULL slot falls back to the next lower level, and a NULL scalar
 * EXACT slot to the format's reference matmul_rows (its traits). This file
 * also holds the public products (lq_matvec, lq_matmul, lq_matmul_ex,
 * lq_qtensor_prepare: src/products/kern.c).
 */
#ifndef LQ_PRODUCTS_H
#define LQ_PRODUCTS_H

#include "qtensor/qtensor_internal.h"
#include "quant/kernels.h"
#include "simd/kern.h"

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
    /* Bytes of the layout the row kernels read for the weights (codes and
     * side data in the pack; not the per-call activation data), for the
     * benchmark's bandwidth figures. NULL: not counted. */
    size_t (*pack_bytes)(const void *pack);
} lq_kern_format;

/* The record of a format, or NULL when it has no kernels. */
const lq_kern_format *lq_kern_lookup(lq_format f);

/* The kernel layout of t (built and cached on first use). */
lq_status lq_kern_pack(const lq_qtensor *t, const lq_kern_format *kf, const void **pack);

/* Products through the kernels, following lq_kern_plan_for(ctx, ...);
 * LQ_ERR_UNSUPPORTED when the format has no kernel record or declines the
 * tensor (the caller then uses the format's reference). Arguments are
 * validated by the caller. */
lq_status lq_kern_matmul(lq_ctx *ctx, const lq_qtensor *t, const float *X, size_t batch, float *Y,
                         lq_kernel_mode mode);

/* The row kernel used for (mode, level) after fallbacks, NULL = reference;
 * *slot (may be NULL) receives the level of the slot it came from. */
lq_kern_rows_fn lq_kern_select(const lq_kern_format *kf, lq_kernel_mode mode, lq_simd_level level,
                               lq_simd_level *slot);

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
void lq_kern_plan_for(lq_ctx *ctx, const lq_qtensor *t, lq_kernel_mode mode, lq_kern_plan *plan);

/* ---- shared scalar helpers --------------------------------------------- */
/* Quantize n <= LQ_KERN_QBLK floats to int8 with one scale: d = max|x|/127,
 * q = round half away from zero of x * 127/max|x| (0 when max|x| == 0). Writes
 * LQ_KERN_QBLK bytes (zero padded) and returns d; *qsum = sum of q. */
float lq_kern_q8_block(const float *x, size_t n, int8_t *q, int32_t *qsum);

/* Per-format records (src/products/kern_<format>.c) are declared and
 * listed in kern.c only. */

#endif
