/* Per-ISA nearest-centroid kernels of the VQ module (internal). Each has
 * the contract of lq_vq_nearest_fn in src/vq/vq_internal.h and handles d in
 * {1, 2, 4, 8}; the dispatcher never calls them with another d. */
#ifndef LQ_SIMD_VQ_SIMD_H
#define LQ_SIMD_VQ_SIMD_H

#include <stddef.h>
#include <stdint.h>

#if LQ_ARCH_X86
void lq_vq_nearest_avx2(const float *x, const float *w, size_t n, size_t d, const float *ct,
                        size_t k, size_t kpad, uint32_t *idx, float *dist);
void lq_vq_nearest_avx512(const float *x, const float *w, size_t n, size_t d, const float *ct,
                          size_t k, size_t kpad, uint32_t *idx, float *dist);
#endif

#endif
