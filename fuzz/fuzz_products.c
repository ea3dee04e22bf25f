/* libFuzzer: the products on the codes as an inference engine calls them,
 * on tensors loaded from (mutated) .lqt bytes.
 *
 * Input: an .lqt file followed by a 4-byte control trailer:
 *   ctl[0] bit 0: load with LQ_LQT_SKIP_DATA_CRC (mutated codes, scales and
 *          codebooks then reach validation and the kernels unchecksummed);
 *          bit 1: LQ_LQT_COPY; bit 2: a context capped at LQ_SIMD_SCALAR;
 *          bit 3: lq_qtensor_prepare before the products;
 *   ctl[1]: batch 1..8;  ctl[2]: activation scale 2^(ctl[2] - 150), from
 *          subnormal to beyond LQ_MAX_ABS_ACTIVATION;  ctl[3]: pattern.
 * Both kernel modes run. Promises checked: no crash or sanitizer report;
 * statuses only OK, CORRUPT or OUT_OF_RANGE, OUT_OF_RANGE exactly when an
 * activation exceeds the bound; Y untouched on every error.
 * Seeds: every method's tensor with a zero trailer (gen_corpus.c). */
#include <math.h>

#include "fuzz_common.h"

static lq_ctx *capped_ctx(void)
{
    static lq_ctx *ctx;
    if (!ctx) {
        lq_ctx_config cfg;
        lq_ctx_config_init(&cfg);
        cfg.n_threads = 1;
        cfg.simd_cap = LQ_SIMD_SCALAR;
        if (lq_ctx_create(&cfg, &ctx) != LQ_OK) abort();
    }
    return ctx;
}

static void products(lq_ctx *ctx, lq_qtensor *t, const uint8_t *ctl)
{
    size_t rows, cols;
    if (lq_qtensor_shape(t, &rows, &cols) != LQ_OK) abort();
    if (rows > 4096 || cols > 4096 || rows * cols > (1u << 20)) return;
    size_t batch = 1 + ctl[1] % 8;
    float scale = ldexpf(1.0f, (int)ctl[2] - 150);
    float *x = malloc(batch * cols * sizeof *x), *y = malloc(batch * rows * sizeof *y);
    if (!x || !y) abort();
    float amax = 0;
    for (size_t i = 0; i < batch * cols; i++) {
        x[i] = (float)((int)((i * 37 + ctl[3]) % 15) - 7) / 7.0f * scale;
        amax = fmaxf(amax, fabsf(x[i]));
    }
    if (ctl[0] & 8) {
        lq_status st = lq_qtensor_prepare(ctx, t);
        if (st != LQ_OK && st != LQ_ERR_CORRUPT) abort();
    }
    for (int mode = 0; mode < 2; mode++) {
        for (size_t i = 0; i < batch * rows; i++) y[i] = 3.5f;
        lq_status st = lq_matmul_ex(ctx, t, x, batch, y, (lq_kernel_mode)mode);
        if (st != LQ_OK && st != LQ_ERR_CORRUPT && st != LQ_ERR_OUT_OF_RANGE) abort();
        if ((st == LQ_ERR_OUT_OF_RANGE) != (amax > LQ_MAX_ABS_ACTIVATION)) abort();
        if (st != LQ_OK)
            for (size_t i = 0; i < batch * rows; i++)
                if (y[i] != 3.5f) abort(); /* outputs untouched on error */
    }
    free(x);
    free(y);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4) return 0;
    const uint8_t *ctl = data + size - 4;
    size_t n = size - 4;
    uint8_t *a = aligned_alloc(64, (n + 64) / 64 * 64);
    if (!a) return 0;
    memcpy(a, data, n);
    lq_ctx *ctx = (ctl[0] & 4) ? capped_ctx() : fuzz_ctx();
    unsigned flags = ((ctl[0] & 1) ? LQ_LQT_SKIP_DATA_CRC : 0u) | ((ctl[0] & 2) ? LQ_LQT_COPY : 0u);
    lq_lqt *f = NULL;
    if (lq_lqt_open_memory(ctx, a, n, &f) == LQ_OK) {
        for (size_t i = 0; i < lq_lqt_count(f); i++) {
            lq_qtensor *t = NULL;
            if (lq_lqt_load(ctx, f, i, flags, &t) != LQ_OK) continue;
            products(ctx, t, ctl);
            lq_qtensor_free(t);
        }
        lq_lqt_close(f);
    }
    free(a);
    return 0;
}
