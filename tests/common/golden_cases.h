/* Golden-file cases: the layers, methods and activations behind
 * tests/data/golden/, shared by the generator (tests/golden_gen.c) and the
 * check (tests/test_golden.c) so that both see the same inputs.
 *
 * Inputs come from a splitmix64 stream turned into floats with +, -, *, /
 * only (no libm): the same bits on every IEEE machine and libc, so the
 * golden files do not depend on where they are checked.
 *
 * Files per case, written by the generator (little-endian):
 *   <name>.lqt          the tensor (named "w") quantized at the scalar level;
 *   <name>.<level>.lqt  only for a level that quantizes to other bytes than
 *                       every lower level;
 *   <name>.ref          char magic[8] "LQGOLD1\0"; uint32 rows, cols, batch,
 *                       nlevels; then per level of lq_golden_levels:
 *     uint32 present    the generating machine had the level;
 *     uint32 lqt_level  index of the level whose .lqt holds these bytes;
 *     double damping, proxy_loss; uint64 dead_columns, overloads (the
 *                       lq_quant_report of quantizing at that level);
 *     uint64 fnv1a64 of the quantizer's W_hat, of lq_dequantize's output;
 *     float y_exact[batch * rows] (lq_matmul), y_fast[batch * rows]
 *                       (lq_matmul_ex FAST), on the tensor of that level.
 * Every computation at a level uses a context capped at that level. */
#ifndef LQ_GOLDEN_CASES_H
#define LQ_GOLDEN_CASES_H

#include <stddef.h>
#include <stdint.h>

#include "quant.h"

#define LQ_GOLDEN_ROWS 32
#define LQ_GOLDEN_COLS 128
#define LQ_GOLDEN_BATCH 2
#define LQ_GOLDEN_NLEVELS 3
#define LQ_GOLDEN_MAGIC "LQGOLD1"

typedef struct lq_golden_case {
    const char *name; /* file stem */
    lq_method_kind kind;
    int variant;     /* 0: the method's defaults; else a non-default configuration */
    int use_hessian; /* 0: H = NULL */
    float wscale;    /* weight scale (1: trained-weight magnitudes) */
    uint64_t seed;   /* layer and activations */
} lq_golden_case;

extern const lq_simd_level lq_golden_levels[LQ_GOLDEN_NLEVELS];

size_t lq_golden_count(void);
const lq_golden_case *lq_golden_get(size_t i);

/* The method of a case (defaults, then the variant's changes). */
lq_status lq_golden_method(const lq_golden_case *c, lq_method *m);

/* W (rows x cols) and H (cols x cols) of a case. */
void lq_golden_layer(const lq_golden_case *c, float *W, float *H);

/* Activations X (batch x cols) of a case. */
void lq_golden_acts(const lq_golden_case *c, float *X);

uint64_t lq_golden_fnv1a(const void *data, size_t n);

#endif
