/* libFuzzer harness for the LQ_FORMAT_VQ decoder: builds a qtensor whose
 * parameters and section sizes come from the input (often inconsistent),
 * then validates it; whatever validation accepts must dequantize, multiply
 * and count its bits without a memory error. Also runs lq_vq_decode on raw
 * codes (codes out of range must give LQ_ERR_CORRUPT, never a read past the
 * codebook).
 *
 * Input: [0] rows-1 (mod 64), [1..2] cols-1 (mod 512), [3] d, [4] bits,
 * [5..6] group_cols, [7] group_rows, [8] codebook storage (8/16/other),
 * [9] SVD rank, [10] number of sections (mod 5), then per section: tag,
 * elem_size, signed delta to the expected size; the rest of the input fills
 * the section bytes cyclically. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "qtensor/qtensor_internal.h"
#include "quant/vq.h"
#include "vq/vq_internal.h"
#include "fuzz_fill.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The size a consistent tensor would have (bounded so that huge
 * parameters do not make the harness allocate gigabytes). */
static size_t expected(uint32_t tag, size_t rows, size_t cols, const uint32_t *ip)
{
    size_t d = ip[LQ_VQ_IP_D] ? ip[LQ_VQ_IP_D] : 1, bits = ip[LQ_VQ_IP_BITS] % 17;
    size_t gc = ip[LQ_VQ_IP_GC] ? ip[LQ_VQ_IP_GC] : 1, gr = ip[LQ_VQ_IP_GR] ? ip[LQ_VQ_IP_GR] : 1;
    size_t ncb = ((cols + gc - 1) / gc) * ((rows + gr - 1) / gr), kd = ((size_t)1 << bits) * d;
    size_t rank = ip[LQ_VQ_IP_RANK], n;
    switch (tag) {
    case LQ_SEC_CODES: n = rows * lq_vq_row_bytes(cols / d, (unsigned)bits); break;
    case LQ_SEC_CODEBOOKS:
        n = rank ? rank * kd * 2 : ncb * kd * (ip[LQ_VQ_IP_CB] == 8 ? 1 : 2);
        break;
    case LQ_SEC_SCALES: n = ncb * 4; break;
    case LQ_SEC_AUX: n = ncb * rank * 2; break;
    default: n = 16;
    }
    return n > (1u << 22) ? (1u << 22) : n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 11) return 0;
    size_t rows = 1 + data[0] % 64, cols = 1 + (((size_t)data[1] | (size_t)data[2] << 8) % 512);
    lq_qtensor *t = NULL;
    if (lq_qtensor_new(NULL, LQ_FORMAT_VQ, rows, cols, &t) != LQ_OK) return 0;
    t->ip[LQ_VQ_IP_D] = data[3] % 10;
    t->ip[LQ_VQ_IP_BITS] = data[4] % 18;
    t->ip[LQ_VQ_IP_GC] = (uint32_t)data[5] | (uint32_t)data[6] << 8;
    t->ip[LQ_VQ_IP_GR] = data[7];
    t->ip[LQ_VQ_IP_CB] = data[8] % 3 == 0 ? 8 : (data[8] % 3 == 1 ? 16 : data[8]);
    t->ip[LQ_VQ_IP_RANK] = data[9] % 8;
    size_t nsec = data[10] % 5, pos = 11;
    for (size_t s = 0; s < nsec && pos + 3 <= size; s++, pos += 3) {
        uint32_t tag = data[pos] % 10, elem = data[pos + 1] % 5;
        long delta = (long)(int8_t)data[pos + 2];
        long n = (long)expected(tag, rows, cols, t->ip) + (delta % 3 == 0 ? delta : 0);
        if (n < 0) n = 0;
        uint8_t *p = lq_qtensor_add_section(t, tag, elem, (size_t)n);
        if (!p) break;
        fuzz_fill_cyclic(p, (size_t)n, data, size, pos + 3);
    }
    if (lq_qtensor_validate(t) == LQ_OK) {
        float *W = malloc(rows * cols * sizeof *W);
        float *X2 = malloc(2 * cols * sizeof *X2), *y = malloc(2 * rows * sizeof *y);
        if (W && X2 && y) {
            for (size_t i = 0; i < 2 * cols; i++) X2[i] = (float)((int)(i % 5) - 2) * 0.5f;
            (void)lq_dequantize(NULL, t, W);
            (void)lq_matvec(NULL, t, X2, y);
            (void)lq_matmul(NULL, t, X2, 2, y);
            double bpw;
            (void)lq_qtensor_bits_per_weight(t, &bpw);
        }
        free(W);
        free(X2);
        free(y);
    }
    lq_qtensor_free(t);

    /* lq_vq_decode on raw codes against a 2^bits-entry codebook */
    if (size >= 16) {
        static const size_t dims[4] = {1, 2, 4, 8};
        size_t d = dims[data[11] % 4], n = (size - 16) / 2;
        unsigned bits = 1 + data[12] % 16;
        size_t k = (size_t)1 << bits;
        float *cb = calloc(k * d, sizeof *cb), *out = malloc((n ? n : 1) * d * sizeof *out);
        uint16_t *codes = malloc((n ? n : 1) * sizeof *codes);
        if (cb && out && codes && n) {
            memcpy(codes, data + 16, n * 2);
            lq_status st = lq_vq_decode(codes, n, d, cb, bits, out);
            int bad = 0;
            for (size_t i = 0; i < n; i++) bad |= codes[i] >= k;
            if ((st == LQ_ERR_CORRUPT) != bad) abort();
        }
        free(cb);
        free(out);
        free(codes);
    }
    return 0;
}
