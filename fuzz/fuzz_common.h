/* Shared by the libFuzzer harnesses: a single-threaded context created
 * once, and the decode checks every loaded tensor goes through. */
#ifndef LQ_FUZZ_COMMON_H
#define LQ_FUZZ_COMMON_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "quant.h"

static lq_ctx *fuzz_ctx(void)
{
    static lq_ctx *ctx;
    if (!ctx) {
        lq_ctx_config cfg;
        lq_ctx_config_init(&cfg);
        cfg.n_threads = 1;
        if (lq_ctx_create(&cfg, &ctx) != LQ_OK) abort();
    }
    return ctx;
}

/* Run every decoder on a tensor that passed validation: bits, dequantize,
 * matvec and a batch-2 matmul on the codes. Sizes are bounded by the file
 * (validation ties them to the sections), the cap keeps runs fast. */
static void fuzz_decode(lq_qtensor *t)
{
    size_t rows, cols;
    double bpw;
    if (lq_qtensor_shape(t, &rows, &cols) != LQ_OK) abort();
    if (lq_qtensor_bits_per_weight(t, &bpw) != LQ_OK) abort();
    if (rows > 4096 || cols > 4096 || rows * cols > (1u << 20)) return;
    float *W = malloc(rows * cols * sizeof *W), *x = malloc(2 * cols * sizeof *x),
          *y = malloc(2 * rows * sizeof *y);
    if (!W || !x || !y) abort();
    for (size_t i = 0; i < 2 * cols; i++) x[i] = (float)((int)(i % 7) - 3) * 0.25f;
    lq_status st = lq_dequantize(fuzz_ctx(), t, W);
    if (st != LQ_OK && st != LQ_ERR_CORRUPT) abort();
    st = lq_matvec(fuzz_ctx(), t, x, y);
    if (st != LQ_OK && st != LQ_ERR_CORRUPT) abort();
    st = lq_matmul(fuzz_ctx(), t, x, 2, y);
    if (st != LQ_OK && st != LQ_ERR_CORRUPT) abort();
    free(W);
    free(x);
    free(y);
}

#endif
