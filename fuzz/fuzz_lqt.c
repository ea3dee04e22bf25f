/* libFuzzer: the .lqt reader (open, info, load borrowed and copied) and the
 * decoders of whatever it accepts. Checksums guard the data, so most inputs
 * stop at validation; fuzz_qtensor.c repairs them to reach the decoders. */
#include "fuzz_common.h"

static void run(const uint8_t *data, size_t size, unsigned flags)
{
    lq_lqt *f = NULL;
    if (lq_lqt_open_memory(fuzz_ctx(), data, size, &f) != LQ_OK) return;
    for (size_t i = 0; i < lq_lqt_count(f); i++) {
        lq_lqt_info info;
        if (lq_lqt_info_get(f, i, &info) != LQ_OK) abort();
        size_t idx;
        if (lq_lqt_find(f, info.name, &idx) != LQ_OK) abort();
        lq_qtensor *t = NULL;
        if (lq_lqt_load(fuzz_ctx(), f, i, flags, &t) != LQ_OK) continue;
        fuzz_decode(t);
        lq_qtensor_free(t);
    }
    lq_lqt_close(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* a 64-byte aligned copy exercises the zero-copy path */
    uint8_t *a = aligned_alloc(64, (size + 64) / 64 * 64);
    if (!a) return 0;
    memcpy(a, data, size);
    run(a, size, 0);
    run(a, size, LQ_LQT_COPY);
    free(a);
    return 0;
}
