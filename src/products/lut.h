/*
 * Building the table-kernel layout (simd/kern_lut.h) and its activation
 * tables: shared by the records of the table formats (BCQ, VQ, AQ) in
 * src/products/.
 */
#ifndef LQ_PRODUCTS_LUT_H
#define LQ_PRODUCTS_LUT_H

#include "products/products.h"
#include "simd/kern_lut.h"

/* Allocate a pack with the geometry set in *g (rows, cols, npos, K, cw,
 * nseg, tabset, nsets filled by the caller; arrays allocated and zeroed
 * here). On failure frees everything. */
lq_status lq_lut_pack_alloc(const lq_lut_pack *g, const lq_allocator *a, lq_lut_pack **out);
void lq_lut_pack_free(const lq_allocator *a, void *pack);

/* Set code (row r, position p). */
void lq_lut_put_code(lq_lut_pack *p, size_t r, size_t pos, unsigned code);

/* The dot-table builder of a level (scalar fallback). */
lq_lut_dot_fn lq_lut_dot_for(lq_simd_level level);

/* Bytes the row kernels read from the pack (codes, lane sets, multipliers,
 * table offsets and fmt_bytes; the per-call tables are not counted). */
size_t lq_lut_pack_bytes(const void *pack);

/* Shared record pieces (act = the table sets of each vector, 64-aligned). */
size_t lq_lut_max_batch(const void *pack, lq_kernel_mode mode);
size_t lq_lut_act_bytes(const void *pack, size_t batch, lq_kernel_mode mode);
void lq_lut_act_build(const void *pack, const float *X, size_t batch, lq_kernel_mode mode,
                      lq_simd_level level, void *act);

#endif
