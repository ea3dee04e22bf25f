/*
 * The row-kernel interface of the products on codes: what the per-ISA
 * kernels in src/simd/kern_*_<isa>.c share with the products framework in
 * src/products/ (tile and block constants, the row-kernel signature). Leaf
 * code: includes nothing above src/core.
 *
 * Row kernels compute Y[b * ldy + r] for r in [r0, r1) and b in [0, batch):
 * r0 is a multiple of LQ_KERN_TILE. Within a row, the order of the float
 * operations is fixed by the format (not by the SIMD width), which is what
 * makes integer paths bit-exact across levels and results independent of
 * how rows are split across threads. `pack` is the format's kernel layout,
 * `act` the per-call activation data (both built by src/products/).
 */
#ifndef LQ_SIMD_KERN_H
#define LQ_SIMD_KERN_H

#include "core/internal.h"
#include "quant/kernels.h"

#define LQ_KERN_TILE 16 /* rows per tile: one AVX-512 register of row lanes */
#define LQ_KERN_QBLK 32 /* activations per int8 block */
#define LQ_KERN_NLEVELS 4

typedef void (*lq_kern_rows_fn)(const void *pack, const void *act, size_t batch, float *Y,
                                size_t ldy, size_t r0, size_t r1);

/* Round up to a multiple of m. */
static inline size_t lq_kern_roundup(size_t n, size_t m) { return (n + m - 1) / m * m; }

#endif
