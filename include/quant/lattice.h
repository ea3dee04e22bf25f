/*
 * Lattices: nearest point in Z^n, D_n and E8 (Conway and Sloane 1982),
 * Voronoi (nested-lattice) codes over E8 (Conway and Sloane 1983), the
 * NestQuant multi-beta coder (Savkin et al. 2025), the randomized Hadamard
 * transform, and coded activations with their inner product.
 *
 * Conventions of this module
 * - A "point" or "8-vector" is 8 consecutive floats.
 * - Rounding is IEEE round-half-to-even (rintf). D_n parity fix: the
 *   coordinate with the largest |x_k - round(x_k)| is rounded the other way;
 *   on equal errors the lowest index wins; when that error is exactly 0 the
 *   coordinate moves up (+1), otherwise away from round(x_k) towards x_k.
 *   E8 = D8 u (D8 + 1/2): the squared distances are summed in coordinate
 *   order 0..7 (multiply then add, no FMA) and the D8 candidate is kept
 *   unless the coset candidate is strictly closer. Every ISA implements
 *   exactly these operations, so outputs are bit-identical across ISAs.
 * - Exact lattice membership of the output is guaranteed for |x_k| <= 2^20
 *   (below that every intermediate is exact in float32). Larger finite inputs
 *   are processed by the same operations (deterministic, identical across
 *   ISAs) but the output may not be a lattice point.
 * - Functions that take no lq_ctx allocate nothing and are thread-safe.
 */
#ifndef QUANT_LATTICE_H
#define QUANT_LATTICE_H

#include <stddef.h>
#include <stdint.h>

#include "quant/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- nearest point ------------------------------------------------------ */

/* Nearest point of Z^n: y[i] = rint(x[i]) for n floats. y may equal x.
 * Errors: INVALID_ARG (NULL with n > 0), NOT_FINITE (y untouched). */
LQ_API lq_status lq_zn_nearest(const float *x, size_t n, float *y);

/* Nearest point of D_dim (integer vectors with even sum) for n points of
 * dimension dim (n*dim floats). y may equal x.
 * Errors: INVALID_ARG (NULL, dim == 0, overflow), NOT_FINITE (y untouched). */
LQ_API lq_status lq_dn_nearest(const float *x, size_t n, size_t dim, float *y);

/* Nearest point of D8 for n points (n*8 floats); SIMD-dispatched, bit-identical
 * to the scalar reference. y may equal x. Errors: INVALID_ARG, NOT_FINITE
 * (nothing written). */
LQ_API lq_status lq_d8_nearest(const float *x, size_t n, float *y);

/* Nearest point of E8 = D8 u (D8 + 1/2) for n points (n*8 floats);
 * SIMD-dispatched (AVX2: 8 points, AVX-512: 16 points per step, structure of
 * arrays in registers), bit-identical to the scalar reference. y may equal x.
 * Errors: INVALID_ARG, NOT_FINITE (nothing written). */
LQ_API lq_status lq_e8_nearest(const float *x, size_t n, float *y);

/* As lq_e8_nearest with an explicit SIMD level (capped to what the CPU
 * supports; a level without a kernel falls back to scalar). For tests and
 * benchmarks. */
LQ_API lq_status lq_e8_nearest_at(lq_simd_level level, const float *x, size_t n, float *y);
LQ_API lq_status lq_d8_nearest_at(lq_simd_level level, const float *x, size_t n, float *y);

/* ---- Voronoi codes over E8 -----------------------------------------------
 * Generator (rows are basis vectors, det 1):
 *   g0 = (2,0,0,0,0,0,0,0), g_i = e_i - e_{i-1} for i = 1..6,
 *   g7 = (1/2,...,1/2).
 * A lattice point is t = sum_i c_i g_i (c integer). Code of modulus q
 * (2 <= q <= LQ_VORONOI_Q_MAX): c mod q, 8 integers in [0, q).
 * decode(c) = z - q Q(z / q) with z = sum_i c_i g_i and Q the E8 nearest
 * point above (z / q evaluated as z * (1/q), 1/q rounded to float). The
 * codebook is the image of decode: exactly one point of every coset
 * z + qE8, i.e. q^8 points, the (tie-broken) Voronoi region qV. Encoding x
 * at scale beta: t = Q(x * (1/beta)) (1/beta rounded to float), c =
 * coordinates of t mod q; the vector
 * overloads when decode(c) != t (t lies outside the code's region), in
 * which case beta * decode(c) is not the nearest point.
 * Packing: each 8-vector becomes the mixed-radix integer sum c_i q^i (< q^8)
 * stored in lq_voronoi_bits(q) = ceil(8 log2 q) bits, LSB first, in one
 * little-endian bit stream (vector v starts at bit v * bits). */
#define LQ_VORONOI_Q_MAX 256u

/* The generator above as 64 floats, row-major (row i = g_i). */
LQ_API void lq_e8_generator(float G[64]);

/* Bits per packed 8-vector: the smallest b with 2^b >= q^8 (0 if q is out of
 * range). */
LQ_API unsigned lq_voronoi_bits(unsigned q);

/* Encode n 8-vectors x at scale beta > 0: codes (n*8 bytes, each < q),
 * overload (n bytes, 1 = overloaded; may be NULL), *n_overload (may be NULL).
 * Errors: INVALID_ARG (NULL, q out of range, beta not > 0), NOT_FINITE
 * (nothing written). */
LQ_API lq_status lq_voronoi_encode(unsigned q, float beta, const float *x, size_t n, uint8_t *codes,
                                   uint8_t *overload, size_t *n_overload);

/* Decode n code vectors (n*8 bytes) to y = beta * decode(c) (n*8 floats).
 * Errors: INVALID_ARG, CORRUPT (a code >= q; nothing written). */
LQ_API lq_status lq_voronoi_decode(unsigned q, float beta, const uint8_t *codes, size_t n,
                                   float *y);

/* Optimal encoder: codes (n*8 bytes) of the codeword of the code nearest to
 * x / beta (scaled codebook beta * C_q nearest to x), and y (optional, n*8
 * floats) = beta * decode(codes). Where the nearest lattice point does not
 * overload it is the answer (same codes as lq_voronoi_encode); otherwise an
 * exact depth-first search over the E8 points of qV near x / beta, started
 * from a codeword next to the projection of x / beta onto qV (see
 * docs/algorithms.md, "Exact nearest codeword"). The search is capped at
 * LQ_VORONOI_SEARCH_NODES tree nodes per vector: points far outside qV at
 * large q (|x / beta| well beyond q, where a whole face of qV is nearly
 * equidistant) can exceed it; such vectors get the best codeword found and
 * are counted in *n_inexact (may be NULL). Tested exact against brute force
 * over all q^8 codewords for q <= 4. Scalar, deterministic; ties: the first
 * codeword found in a fixed order.
 * Errors: INVALID_ARG, NOT_FINITE (nothing written). */
#define LQ_VORONOI_SEARCH_NODES 20000
LQ_API lq_status lq_voronoi_nearest(unsigned q, float beta, const float *x, size_t n,
                                    uint8_t *codes, float *y, size_t *n_inexact);

/* Bytes needed to pack n 8-vectors: ceil(n * lq_voronoi_bits(q) / 8).
 * Errors: INVALID_ARG (q out of range, overflow). */
LQ_API lq_status lq_voronoi_packed_size(unsigned q, size_t n, size_t *bytes);

/* Pack n code vectors (n*8 bytes, each < q) into out (out_size bytes, at least
 * lq_voronoi_packed_size; unused trailing bits are zero).
 * Errors: INVALID_ARG (sizes), CORRUPT (a code >= q). */
LQ_API lq_status lq_voronoi_pack(unsigned q, const uint8_t *codes, size_t n, uint8_t *out,
                                 size_t out_size);

/* Unpack n vectors from in (in_size bytes) into codes (n*8 bytes).
 * Errors: INVALID_ARG (in too small), CORRUPT (a packed value >= q^8). */
LQ_API lq_status lq_voronoi_unpack(unsigned q, const uint8_t *in, size_t in_size, size_t n,
                                   uint8_t *codes);

/* ---- NestQuant coder -----------------------------------------------------
 * K scales beta_0 < ... < beta_{K-1}. Each 8-vector x (already normalised to
 * about unit variance per entry) is encoded with the smallest beta that does
 * not overload; its index is stored (ceil(log2 K) bits per 8-vector). When
 * every beta overloads (counted as an overload) the fallback is a radial
 * shrink at the largest beta: x is multiplied by 0.9, 0.9^2, ... until the
 * code of x * gamma does not overload (gamma = 0 always works), so the
 * reconstruction is beta_{K-1} * Q(gamma x / beta_{K-1}), never a wrapped
 * point. Betas carry at most 8 significant bits (m * 2^e, m < 256): see
 * lq_nq_dot for why. */
#define LQ_NQ_MAX_BETAS 16u

/* Beta selection rule per 8-vector. All three write the same format (a code
 * and a beta index per 8-vector) and decode the same way; they differ in
 * the encoder only. Errors are squared errors of the reconstruction in
 * double. */
typedef enum lq_nq_select {
    /* The smallest beta that does not overload (the paper's rule); shrink
     * fallback when every beta overloads. One to K encodes per vector. */
    LQ_NQ_SELECT_FIRST = 0,
    /* The smallest error among the K usual codes (an overloaded code decodes
     * to its wrapped codeword, a valid if usually far one) and, when every
     * beta overloads, the shrink fallback. Ties: the smaller beta. Never a
     * larger error than FIRST on any vector. K encodes per vector. As the
     * reference implementation's "try all" rule. */
    LQ_NQ_SELECT_BEST = 1,
    /* BEST plus, at every beta where the usual code overloads, the exact
     * nearest codeword of the Voronoi code (lq_voronoi_nearest): the optimal
     * encoder for the union of the K scaled codes. Never a larger error than
     * BEST. Cost: an enumeration per overloaded (vector, beta) that can beat
     * the best so far, tens of microseconds each at q <= 4, rarer at larger q
     * where overload is rare. */
    LQ_NQ_SELECT_EXHAUSTIVE = 2
} lq_nq_select;

typedef struct lq_nq_coder {
    unsigned q;                   /* Voronoi modulus, 2..LQ_VORONOI_Q_MAX */
    unsigned n_betas;             /* K, 1..LQ_NQ_MAX_BETAS */
    float betas[LQ_NQ_MAX_BETAS]; /* strictly increasing, > 0 */
    unsigned select;              /* lq_nq_select (default FIRST) */
} lq_nq_coder;

/* Default coder for unit-variance data: K betas geometric between about
 * 2.3/q and 6/q (rounded to 8 significant bits).
 * Errors: INVALID_ARG (NULL, q or K out of range). */
LQ_API lq_status lq_nq_coder_init(lq_nq_coder *c, unsigned q, unsigned n_betas);

/* Check a coder (q, K, betas finite, positive, increasing, select known).
 * Errors: INVALID_ARG. */
LQ_API lq_status lq_nq_coder_check(const lq_nq_coder *c);

/* Bits per 8-vector for the beta index: ceil(log2 K) (0 for K = 1). */
LQ_API unsigned lq_nq_index_bits(unsigned n_betas);

/* Optimise the betas of *c (q and K kept) on n 8-vectors x of normalised
 * data to minimise the total squared error of the coder: a table of errors
 * and overloads on a geometric grid of 8-bit-mantissa betas, then coordinate
 * descent over the K chosen grid points (docs/algorithms.md). At most
 * 8192 vectors (an evenly strided subsample) are used. Deterministic,
 * multi-threaded through ctx.
 * Errors: INVALID_ARG, NOT_FINITE, NO_MEMORY (c untouched on error). */
LQ_API lq_status lq_nq_coder_fit(lq_ctx *ctx, lq_nq_coder *c, const float *x, size_t n);

/* Encode n 8-vectors: codes (n*8 bytes), beta_idx (n bytes), y (optional,
 * n*8 floats: the reconstruction), *n_overload (optional: vectors that
 * overloaded every beta and took the fallback). SIMD-dispatched, identical
 * results on every ISA. Errors: INVALID_ARG, NOT_FINITE (nothing written). */
LQ_API lq_status lq_nq_encode(const lq_nq_coder *c, const float *x, size_t n, uint8_t *codes,
                              uint8_t *beta_idx, float *y, size_t *n_overload);

/* As lq_nq_encode at an explicit SIMD level (tests, benchmarks). */
LQ_API lq_status lq_nq_encode_at(lq_simd_level level, const lq_nq_coder *c, const float *x,
                                 size_t n, uint8_t *codes, uint8_t *beta_idx, float *y,
                                 size_t *n_overload);

/* Decode: y = betas[beta_idx[v]] * decode(codes[v]) for n vectors.
 * Errors: INVALID_ARG, CORRUPT (code >= q or index >= K; nothing written). */
LQ_API lq_status lq_nq_decode(const lq_nq_coder *c, const uint8_t *codes, const uint8_t *beta_idx,
                              size_t n, float *y);

/* ---- E8P: a 2-bit E8 shell codebook ---------------------------------------
 * 2^16 points of E8 + 1/4 per 8-vector (16 bits = 2 bits per entry): 256
 * absolute-value patterns a in (Z>=0 + 1/2)^8 (the 227 with |a|^2 <= 10 and
 * 29 of |a|^2 = 12), 7 free sign bits (the 8th follows from the parity that
 * keeps s * a in D8 + 1/2) and a shift of +-1/4 on every entry (QuIP#'s E8P
 * construction; layout ours). Code bits 0-7: pattern, 8-14: signs of
 * entries 0-6 (1 = minus), 15: shift (0 = +1/4). Decoding is a table read,
 * sign bits and an add; encoding finds the exact nearest codeword from the
 * structure (512 candidates: pattern x shift, signs from the input, one
 * parity fix) and equals brute force over all 2^16 codewords up to ties.
 * For unit-variance Gaussian entries the MSE-optimal scale is about 0.96
 * (MSE 0.091 per entry at 2.0 bits; docs/benchmarks.md). Scalar, no
 * allocation, thread-safe. */
#define LQ_E8P_CODES 65536u

/* Nearest E8P codeword (unscaled) for n 8-vectors; y may equal x.
 * Errors: INVALID_ARG, NOT_FINITE (nothing written). */
LQ_API lq_status lq_e8p_nearest(const float *x, size_t n, float *y);

/* codes[i] = the code of the codeword nearest to x_i / scale (scale > 0);
 * y (optional) = scale * codeword. Errors: INVALID_ARG, NOT_FINITE
 * (nothing written). */
LQ_API lq_status lq_e8p_encode(float scale, const float *x, size_t n, uint16_t *codes, float *y);

/* y_i = scale * codeword(codes[i]) (every 16-bit value is a valid code).
 * Errors: INVALID_ARG (NULL, scale not finite). */
LQ_API lq_status lq_e8p_decode(float scale, const uint16_t *codes, size_t n, float *y);

/* ---- randomized Hadamard transform ----------------------------------------
 * R = orthogonal, from a 64-bit seed. For n a power of two:
 *   R x = H_n D x / sqrt(n), D = diag of random signs s_i (bit i of the
 *   xoshiro stream (seed, 0)), H_n the Sylvester Hadamard matrix applied by
 *   the in-place fast Walsh-Hadamard transform (n log2 n additions).
 * Other n: with P the largest power of two <= n, R = R2 R1 where R1 applies
 *   signs (stream 0) to all n entries then H_P / sqrt(P) to entries [0, P),
 *   and R2 applies signs (stream 1) to all n entries then H_P / sqrt(P) to
 *   entries [n - P, n). The two windows overlap and cover every entry, so
 *   every output mixes every input; R is orthogonal (a product of two).
 * Rotating weight rows and activations with the same seed keeps dot products:
 *   (R w) . (R x) = w . x. The inverse applies the steps backwards. */

/* In-place fast Walsh-Hadamard transform (unnormalised) of n floats, n a
 * power of two (n = 1 is the identity). SIMD-dispatched; results identical
 * on every ISA (same butterflies, same order).
 * Errors: INVALID_ARG (NULL, n not a power of two). */
LQ_API lq_status lq_fwht(float *x, size_t n);

/* x <- R x (forward) or x <- R^T x (inverse), in place, n >= 1.
 * Errors: INVALID_ARG (NULL, n == 0), NOT_FINITE (x untouched). */
LQ_API lq_status lq_rht_forward(float *x, size_t n, uint64_t seed);
LQ_API lq_status lq_rht_inverse(float *x, size_t n, uint64_t seed);

/* Rotate `count` rows of length n (stride ld >= n) in place, in parallel.
 * inverse = 0: forward. Errors: INVALID_ARG, NOT_FINITE (nothing changed). */
LQ_API lq_status lq_rht_rows(lq_ctx *ctx, float *X, size_t count, size_t n, size_t ld,
                             uint64_t seed, int inverse);

/* ---- coded activations ----------------------------------------------------
 * On-the-fly quantization of vectors (no Hessian) with the same coder as
 * the weights. A vector of length len is padded with zeros to n8 =
 * roundup(len, 8) (nblk = n8 / 8 blocks), rotated by R (seed) when rotate is
 * non-zero (length n8), normalised by its RMS s (scale; s = 1 for a zero
 * vector) and NestQuant-encoded; value ~= s * decode. */

/* Encode `batch` vectors X (batch x len, stride ldx >= len): codes (batch x
 * n8 bytes), beta_idx (batch x nblk bytes), scales (batch floats),
 * *n_overload (optional, total fallback count). Deterministic; parallel over
 * the batch through ctx. Errors: INVALID_ARG, NOT_FINITE, NO_MEMORY
 * (outputs untouched on error). */
LQ_API lq_status lq_nq_act_encode(lq_ctx *ctx, const lq_nq_coder *c, const float *X, size_t batch,
                                  size_t len, size_t ldx, int rotate, uint64_t seed, uint8_t *codes,
                                  uint8_t *beta_idx, float *scales, size_t *n_overload);

/* Coded inner product of two coded vectors of nblk blocks each (codes
 * nblk*8 bytes, beta indices nblk bytes, scales sa, sb), computed on the
 * codes: each block decodes to integer coordinates 2t (E8 points are
 * integers or half-integers), integer dot products are summed exactly per
 * pair of beta indices (int64), then
 *   *out = (sum_{k,l} beta_k beta_l I_kl / 4) * ((double)sa * (double)sb).
 * With 8-bit-mantissa betas every term and partial sum is exact in double
 * while the magnitude of the sum stays below 2^53 units of the smallest
 * beta product (about 5e5 entries at q = 16 with betas spanning 16x), so the
 * result equals, bit for bit, decoding both to floats (lq_nq_decode, exact)
 * and summing the products in double in any order, then multiplying by
 * (double)sa * sb. The vectors must have been encoded in the same rotated
 * basis (same seed) for the product to approximate the original one.
 * Errors: INVALID_ARG, CORRUPT (bad code or index). */
LQ_API lq_status lq_nq_dot(const lq_nq_coder *ca, const uint8_t *codes_a, const uint8_t *beta_a,
                           float sa, const lq_nq_coder *cb, const uint8_t *codes_b,
                           const uint8_t *beta_b, float sb, size_t nblk, double *out);

#ifdef __cplusplus
}
#endif
#endif
