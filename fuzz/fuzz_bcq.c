/* libFuzzer harness for the LQ_FORMAT_BCQ decoder: builds a qtensor whose
 * parameters and section sizes come from the input (often inconsistent),
 * then validates it; whatever validation accepts must dequantize and
 * multiply without a memory error. Also runs the per-vector unpack/decode.
 *
 * Input: [0] rows-1 (mod 64), [1..2] cols-1 (mod 512), [3] k, [4..5] group,
 * [6] offset flag, [7] side bytes, [8] number of sections (mod 5), then per
 * section: tag, elem_size, signed delta to the expected size; the rest of
 * the input fills the section bytes cyclically. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "qtensor/format_bcq.h"
#include "qtensor/qtensor_internal.h"
#include "quant/bcq.h"
#include "fuzz_fill.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t expected(uint32_t tag, size_t rows, size_t cols, uint32_t k, uint32_t group,
                       uint32_t side)
{
    size_t g = group == 0 || group > cols ? cols : group, ng = (cols + g - 1) / g;
    if (k > 8) k = 8;
    if (side > 4) side = 4;
    switch (tag) {
    case LQ_SEC_CODES: return k * rows * ((cols + 7) / 8);
    case LQ_SEC_ALPHAS: return rows * ng * k * side;
    case LQ_SEC_OFFSETS: return rows * ng * side;
    default: return 16;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 9) return 0;
    size_t rows = 1 + data[0] % 64, cols = 1 + (((size_t)data[1] | (size_t)data[2] << 8) % 512);
    uint32_t k = data[3], group = (uint32_t)data[4] | (uint32_t)data[5] << 8;
    uint32_t has_off = data[6], side = data[7];
    size_t nsec = data[8] % 5, pos = 9;
    lq_qtensor *t = NULL;
    if (lq_qtensor_new(NULL, LQ_FORMAT_BCQ, rows, cols, &t) != LQ_OK) return 0;
    /* raw, possibly hostile parameters (not the writer's normalising setter) */
    t->ip[LQ_BCQ_IP_K] = k;
    t->ip[LQ_BCQ_IP_GROUP] = group;
    t->ip[LQ_BCQ_IP_HAS_OFFSET] = has_off;
    t->ip[LQ_BCQ_IP_SIDE_BYTES] = side;
    for (size_t s = 0; s < nsec && pos + 3 <= size; s++, pos += 3) {
        uint32_t tag = data[pos] % 10, elem = data[pos + 1] % 5;
        long delta = (long)(int8_t)data[pos + 2];
        long n = (long)expected(tag, rows, cols, k, group, side) + (delta % 3 == 0 ? delta : 0);
        if (n < 0) n = 0;
        uint8_t *p = lq_qtensor_add_section(t, tag, elem, (size_t)n);
        if (!p) break;
        fuzz_fill_cyclic(p, (size_t)n, data, size, pos + 3);
    }
    if (lq_qtensor_validate(t) == LQ_OK) {
        float *W = malloc(rows * cols * sizeof *W);
        float *x = malloc(cols * sizeof *x), *y = malloc(2 * rows * sizeof *y);
        float *X2 = malloc(2 * cols * sizeof *X2);
        if (W && x && y && X2) {
            for (size_t i = 0; i < cols; i++) x[i] = (float)((int)(i % 7) - 3) * 0.25f;
            for (size_t i = 0; i < 2 * cols; i++) X2[i] = (float)((int)(i % 5) - 2);
            (void)lq_dequantize(NULL, t, W);
            (void)lq_matvec(NULL, t, x, y);
            (void)lq_matmul(NULL, t, X2, 2, y);
            /* the format's own reference rows (lq_matmul may take a kernel) */
            const lq_format_traits *tr = lq_format_lookup(LQ_FORMAT_BCQ);
            if (tr) {
                (void)tr->matmul_rows(t, X2, 2, y, 0, rows, lq_simd_detected());
                (void)tr->dequant_rows(t, rows / 2, rows, W, lq_simd_detected());
            }
            double bpw;
            (void)lq_qtensor_bits_per_weight(t, &bpw);
        }
        free(W);
        free(x);
        free(y);
        free(X2);
    }
    lq_qtensor_free(t);

    /* the per-vector decoders on raw bytes: planes of n / kk bytes each */
    if (size >= 16) {
        unsigned kk = 1 + data[9] % 8;
        size_t n = size - 16, m = (n / kk) * 8;
        float alpha[8];
        for (unsigned i = 0; i < kk; i++) alpha[i] = (float)(int8_t)data[10 + i % 6] / 16.0f;
        uint8_t *codes = malloc(m ? m : 1);
        float *w = malloc((m ? m : 1) * sizeof *w);
        if (codes && w && m && lq_bcq_unpack(data + 16, m, kk, codes) == LQ_OK)
            (void)lq_bcq_decode(codes, m, alpha, kk, 0.5f, w);
        free(codes);
        free(w);
    }
    return 0;
}
