/*
 * Internal pieces of the lattice module: the scalar reference nearest-point
 * routines (one point), the per-ISA kernel table, and Voronoi helpers shared
 * by the NestQuant coder, the E8 packed format and the fuzz harness.
 */
#ifndef LQ_LATTICE_INTERNAL_H
#define LQ_LATTICE_INTERNAL_H

#include <stdbool.h>

#include "core/internal.h"
#include "quant/lattice.h"

/* Scalar reference for one point (the rule documented in quant/lattice.h). */
void lq_d8_point_ref(const float x[8], float y[8]);
void lq_e8_point_ref(const float x[8], float y[8]);

/* Batch kernels: n points, no argument checks, inputs finite. y may equal x. */
typedef void (*lq_lat_batch_fn)(const float *x, size_t n, float *y);
typedef struct lq_lattice_kernels {
    lq_simd_level level;
    lq_lat_batch_fn e8;
    lq_lat_batch_fn d8;
    void (*fwht)(float *x, size_t n);         /* n power of two */
    bool (*finite)(const float *x, size_t n); /* every float finite */
    /* Voronoi glue for m vectors: coords (c = coordinates of t mod q; far[i]
     * = 1 and c zeroed when t is far outside any code, see
     * lq_voronoi_coords) and lift (z = sum c_i g_i, w = z * iq). */
    void (*coords)(unsigned q, const float *t, size_t m, uint8_t *c, uint8_t *far);
    void (*lift)(const uint8_t *c, size_t m, float iq, float *z, float *w);
    /* NestQuant glue: t[i] = x[idx[i]] * ib (then * gamma unless gamma == 1);
     * ok[i] = !far[i] && y[i] == t[i] (all 8, float ==), and t[i] = y[i]
     * where ok. */
    void (*gather_scale)(const float *x, const size_t *idx, size_t m, float ib, float gamma,
                         float *t);
    void (*accept)(const float *y, float *t, const uint8_t *far, size_t m, uint8_t *ok);
} lq_lattice_kernels;

/* Kernels for a level (capped to the detected level; scalar fallback). */
const lq_lattice_kernels *lq_lattice_kernels_at(lq_simd_level level);

void lq_e8_batch_scalar(const float *x, size_t n, float *y);
void lq_d8_batch_scalar(const float *x, size_t n, float *y);
void lq_fwht_scalar(float *x, size_t n);
bool lq_finite_scalar(const float *x, size_t n);
void lq_voronoi_coords_scalar(unsigned q, const float *t, size_t m, uint8_t *c, uint8_t *far);
void lq_voronoi_lift_scalar(const uint8_t *c, size_t m, float iq, float *z, float *w);
void lq_nq_gather_scale_scalar(const float *x, const size_t *idx, size_t m, float ib, float gamma,
                               float *t);
void lq_nq_accept_scalar(const float *y, float *t, const uint8_t *far, size_t m, uint8_t *ok);

/* ---- Voronoi helpers (no checks) --------------------------------------- */
/* Coordinates of an E8 point t in the generator basis, reduced mod q.
 * Returns false (codes unspecified) when |t_k| is far outside any code
 * (> 4q + 4): such a point certainly overloads. */
bool lq_voronoi_coords(unsigned q, const float t[8], uint8_t c[8]);
/* z = sum_i c_i g_i (exact). */
void lq_voronoi_lift(const uint8_t c[8], float z[8]);
/* y = decode(c) for n vectors (unscaled lattice points), with kernels k;
 * processed in chunks of LQ_VORONOI_CHUNK vectors on the stack. */
#define LQ_VORONOI_CHUNK 64
void lq_voronoi_decode_batch(const lq_lattice_kernels *k, unsigned q, const uint8_t *codes,
                             size_t n, float *y);

/* Bit stream helpers (little-endian, LSB first). */
uint64_t lq_bits_get(const uint8_t *buf, size_t bitpos, unsigned nbits);
void lq_bits_put(uint8_t *buf, size_t bitpos, unsigned nbits, uint64_t v);

/* Mixed-radix packing of one code vector; unpack returns false when the
 * value is >= q^8. */
uint64_t lq_voronoi_index(unsigned q, const uint8_t c[8]);
bool lq_voronoi_from_index(unsigned q, uint64_t v, uint8_t c[8]);

/* Exact nearest codeword (src/lattice/voronoi_nearest.c). member: y is a
 * codeword of C_q (decode(coords(y)) == y, the operations of
 * lq_voronoi_decode_batch). cell_excess: max over the 240 roots r of u.r
 * (u is in qV iff this is <= q). search: the codeword p nearest to u with
 * |u - p|^2 < *bound (lattice units); on success *bound = that distance, y
 * = p and true; false when there is none (y untouched). *exact (may be
 * NULL) = 0 when the enumeration stopped at LQ_VORONOI_SEARCH_NODES nodes
 * (then p is the best codeword found, not proven nearest). Deterministic
 * and scalar (no dependence on the SIMD level). */
bool lq_voronoi_member(unsigned q, const float y[8]);
double lq_voronoi_cell_excess(const double u[8]);
bool lq_voronoi_search(unsigned q, const double u[8], double *bound, float y[8], int *exact);

/* E8P (src/lattice/e8p.c): the 256 absolute-value patterns (doubled), the
 * codeword of a code (unscaled), the exact nearest code of u among the
 * codes whose pattern index is < npat (256: the whole codebook; 1: the 256
 * points (+-1/2)^8 +- 1/4 with the parity rule, a 1-bit codebook whose codes
 * have bits 0-7 zero). */
extern const uint8_t lq_e8p_abs2[256][8];
void lq_e8p_point(uint16_t code, float y[8]);
uint16_t lq_e8p_nearest_code(const double u[8], unsigned npat);

/* NestQuant encode with explicit kernels: see lq_nq_encode. */
void lq_nq_encode_k(const lq_lattice_kernels *k, const lq_nq_coder *c, const float *x, size_t n,
                    uint8_t *codes, uint8_t *beta_idx, float *y, size_t *n_overload);

/* Round a positive float to 8 significant bits (nearest). */
float lq_nq_round_beta(double b);

/* Randomized Hadamard transform without checks (n >= 1). */
void lq_rht_apply(const lq_lattice_kernels *k, float *x, size_t n, uint64_t seed, int inverse);

/* out (n8 floats) = R [x; 0]: x (len <= n8 floats) zero-padded to n8 and,
 * when rotate, transformed forward with seed (the vector side of W' = [W 0]
 * R^T: products rotate x, gradients rotate dL/dW). */
void lq_rht_pad_forward(const lq_lattice_kernels *k, const float *x, size_t len, size_t n8,
                        int rotate, uint64_t seed, float *out);

#endif
