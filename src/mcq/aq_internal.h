/*
 * Internals of the additive quantizer (src/mcq): per-ISA kernels, shared
 * argument checks and the per-row objective used by every step, so that the
 * acceptance tests of encode / codebook / scale updates compare numbers
 * computed the same way.
 */
#ifndef LQ_MCQ_AQ_INTERNAL_H
#define LQ_MCQ_AQ_INTERNAL_H

#include "core/internal.h"
#include "quant/mcq.h"
#include "simd/aq_simd.h"

/* Kernels (interface and per-ISA records: simd/aq_simd.h). */
const aq_kernels *aq_kernels_for(lq_simd_level level);

/* Validate p against cols; fills K, ng (groups per row), ncodes. */
lq_status aq_check_params(const lq_aq_params *p, size_t rows, size_t cols, size_t *K, size_t *ng);
/* True when every code is < K. */
/* W and H (optional) within the quantizers' range: NOT_FINITE on NaN/Inf,
 * OUT_OF_RANGE beyond LQ_MAX_ABS_WEIGHT / LQ_MAX_ABS_HESSIAN. */
lq_status aq_check_inputs(const float *W, size_t rows, size_t cols, const float *H);
int aq_codes_in_range(const uint16_t *codes, size_t n, size_t K);

/* Decode rows [r0, r1) into out (ld = cols) minus W when sub != 0:
 * out = s_i * B_i c - sub * w_i. */
void aq_decode_rows(const lq_aq_params *p, size_t cols, const float *C, const uint16_t *codes,
                    const float *scales, const float *W, int sub, size_t r0, size_t r1, float *out);

/* Rows per tile of the H products (one GEMM of AQ_TILE x cols by cols x cols
 * per tile). Every per-row objective is computed on the same tiles, so the
 * numbers compared by the acceptance tests come from identical arithmetic. */
#define AQ_TILE 128

/* Y (T x cols) = E (T x cols) H through lq_sgemm (inline when called from a
 * task). NO_MEMORY only. */
lq_status aq_times_h(lq_ctx *ctx, size_t T, size_t cols, const float *E, const float *H, float *Y);

/* Per-row objective of rows [r0, r1) (r1 - r0 <= AQ_TILE, r0 a multiple of
 * AQ_TILE): E = decode - W, Y = E H, f_i = sum E_i . Y_i in double. E, Y:
 * AQ_TILE x cols scratch. With H NULL, f_i = ||E_i||^2. NO_MEMORY only. */
lq_status aq_tile_objective(lq_ctx *ctx, const float *W, size_t cols, const float *H,
                            const lq_aq_params *p, const float *C, const uint16_t *codes,
                            const float *scales, size_t r0, size_t r1, float *E, float *Y,
                            double *f);

/* Per-row objectives for all rows (parallel over tiles). NO_MEMORY only. */
lq_status aq_row_objectives(lq_ctx *ctx, const float *W, size_t rows, size_t cols, const float *H,
                            const lq_aq_params *p, const float *C, const uint16_t *codes,
                            const float *scales, double *f);

/* Sum in row order. */
double aq_sum(const double *f, size_t n);

/* Nearest centroid of every point (ties to the lowest index). Parallel,
 * deterministic. NO_MEMORY only. */
lq_status aq_assign(lq_ctx *ctx, const float *x, size_t n, size_t d, const float *c, size_t k,
                    uint32_t *assign);

/* ---- LQ_FORMAT_AQ ------------------------------------------------------
 * Integer parameters of the packed tensor (src/qtensor/format_aq.c):
 *   ip[LQ_AQ_IP_M]   M, ip[LQ_AQ_IP_B]  B, ip[LQ_AQ_IP_G]  g,
 *   ip[LQ_AQ_IP_CB]  bytes per stored codebook value: 2 (fp16) or 4 (fp32).
 * Sections (little-endian):
 *   CODES      rows * cols/g * M codes, 1 byte each when B <= 8, else 2
 *   CODEBOOKS  M * 2^B * g values (fp16 or fp32)
 *   SCALES     rows fp32 row scales */
enum { LQ_AQ_IP_M = 0, LQ_AQ_IP_B = 1, LQ_AQ_IP_G = 2, LQ_AQ_IP_CB = 3 };

#endif
