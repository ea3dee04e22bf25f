/* libFuzzer: every qtensor decoder, reached through the .lqt reader.
 *
 * The input is an .lqt file whose checksums and file-size field this
 * harness repairs before reading (and whose format tags it folds into the
 * known range), so mutations of parameters, shapes and section contents get
 * past the container checks and reach each format's validate, then
 * dequantize, matvec and matmul. Seeds: one file per method (gen_corpus.c). */
#include "fuzz_common.h"
#include "io/io_internal.h"

#define NFORMATS 5

static void repair(uint8_t *b, size_t n)
{
    if (n < 64) return;
    lq_wr64(b + 16, n);
    uint64_t dir = lq_rd64(b + 24);
    uint32_t cnt = lq_rd32(b + 40);
    for (uint32_t i = 0; i < cnt && dir <= n && 16ull * (i + 1) <= n - dir; i++) {
        uint64_t R = lq_rd64(b + dir + 16 * i);
        if (n < 164 || R > n - 164) continue;
        uint32_t fmt = lq_rd32(b + R + 4);
        if (fmt < 1 || fmt > NFORMATS) lq_wr32(b + R + 4, fmt % NFORMATS + 1);
        uint32_t nsec = lq_rd32(b + R + 24), nlen = lq_rd32(b + R + 28);
        if (nsec > 8 || nlen > 4096) continue;
        uint64_t h = 160 + 32ull * nsec + nlen;
        if (h + 4 > n - R) continue;
        for (uint32_t s = 0; s < nsec; s++) {
            uint8_t *e = b + R + 160 + 32 * s;
            uint64_t off = lq_rd64(e + 8), nb = lq_rd64(e + 16);
            if (off <= n && nb <= n - off) lq_wr32(e + 24, lq_crc32c(0, b + off, nb));
        }
        lq_wr32(b + R + h, lq_crc32c(0, b + R, h));
    }
    if (dir <= n && 16ull * cnt <= n - dir) lq_wr32(b + 48, lq_crc32c(0, b + dir, 16ull * cnt));
    lq_wr32(b + 60, lq_crc32c(0, b, 60));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *a = aligned_alloc(64, (size + 64) / 64 * 64);
    if (!a) return 0;
    memcpy(a, data, size);
    repair(a, size);
    lq_lqt *f = NULL;
    if (lq_lqt_open_memory(fuzz_ctx(), a, size, &f) == LQ_OK) {
        for (size_t i = 0; i < lq_lqt_count(f); i++) {
            lq_qtensor *t = NULL;
            if (lq_lqt_load(fuzz_ctx(), f, i, 0, &t) != LQ_OK) continue;
            fuzz_decode(t);
            lq_qtensor_free(t);
        }
        lq_lqt_close(f);
    }
    free(a);
    return 0;
}
