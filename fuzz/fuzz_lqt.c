/* libFuzzer: the .lqt reader (open, info, load borrowed and copied, float
 * entries read, metadata listed and looked up) and the decoders of whatever
 * it accepts. Checksums guard the data, so most inputs stop at validation;
 * fuzz_qtensor.c repairs them to reach the decoders. */
#include "fuzz_common.h"

/* A float entry: read_f32 gives OK or CORRUPT (and leaves dst alone on
 * CORRUPT), lq_lqt_load refuses it. The size is bounded by the input. */
static void read_float(const lq_lqt *f, size_t i, const lq_lqt_info *info)
{
    size_t n = info->rows * info->cols;
    float *v = malloc(n * sizeof *v);
    if (!v) abort();
    memset(v, 0xA5, n * sizeof *v);
    lq_status st = lq_lqt_read_f32(f, i, v, n);
    if (st == LQ_ERR_CORRUPT) {
        for (size_t k = 0; k < n * sizeof *v; k++)
            if (((const uint8_t *)v)[k] != 0xA5) abort();
    } else if (st != LQ_OK || lq_lqt_read_f32(f, i, v, n + 1) != LQ_ERR_INVALID_ARG) {
        abort();
    }
    free(v);
    lq_qtensor *t = NULL;
    if (lq_lqt_load(fuzz_ctx(), f, i, 0, &t) != LQ_ERR_INVALID_ARG || t) abort();
}

static void run(const uint8_t *data, size_t size, unsigned flags)
{
    lq_lqt *f = NULL;
    if (lq_lqt_open_memory(fuzz_ctx(), data, size, &f) != LQ_OK) return;
    uint32_t version;
    if (lq_lqt_file_info(f, &version, NULL, NULL) != LQ_OK) abort();
    for (size_t i = 0; i < lq_lqt_meta_count(f); i++) {
        const char *k, *v, *found;
        if (lq_lqt_meta_get(f, i, &k, &v) != LQ_OK || !*k || version < 2) abort();
        if (lq_lqt_meta_find(f, k, &found) != LQ_OK || found != v) abort();
    }
    for (size_t i = 0; i < lq_lqt_count(f); i++) {
        lq_lqt_info info;
        if (lq_lqt_info_get(f, i, &info) != LQ_OK) abort();
        size_t idx;
        if (lq_lqt_find(f, info.name, &idx) != LQ_OK) abort();
        if (version >= 2 && info.format == LQ_LQT_FORMAT_F32) {
            read_float(f, i, &info);
            continue;
        }
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
