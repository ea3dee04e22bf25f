/*
 * Per-ISA E8 / D8 nearest-point and fast Walsh-Hadamard kernels (internal).
 * Each is bit-identical to its scalar twin in src/lattice/nearest.c and
 * src/lattice/hadamard.c: the same IEEE operations in the same order, with
 * points transposed to structure-of-arrays inside registers (one register
 * per coordinate, 8 points per AVX2 step, 16 per AVX-512 step), so the D8
 * parity fix (argmax of 8 errors) is lane-wise compare/blend, no horizontal
 * operation. Tails are run through the same code on a zero-padded copy.
 */
#ifndef LQ_E8_SIMD_H
#define LQ_E8_SIMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

void lq_e8_batch_avx2(const float *x, size_t n, float *y);
void lq_d8_batch_avx2(const float *x, size_t n, float *y);
void lq_fwht_avx2(float *x, size_t n);
bool lq_finite_avx2(const float *x, size_t n);
/* Voronoi glue (coordinates mod q, lift), one vector per ymm register; also
 * used at the AVX-512 level. */
void lq_voronoi_coords_avx2(unsigned q, const float *t, size_t m, uint8_t *c, uint8_t *far);
void lq_voronoi_lift_avx2(const uint8_t *c, size_t m, float iq, float *z, float *w);
void lq_nq_gather_scale_avx2(const float *x, const size_t *idx, size_t m, float ib, float gamma,
                             float *t);
void lq_nq_accept_avx2(const float *y, float *t, const uint8_t *far, size_t m, uint8_t *ok);

void lq_e8_batch_avx512(const float *x, size_t n, float *y);
void lq_d8_batch_avx512(const float *x, size_t n, float *y);
void lq_fwht_avx512(float *x, size_t n);
bool lq_finite_avx512(const float *x, size_t n);

#endif
