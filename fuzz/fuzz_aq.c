/* libFuzzer harness for the LQ_FORMAT_AQ decoder (additive codebooks):
 * builds a qtensor whose parameters and section sizes come from the input
 * (often inconsistent), then validates it; whatever validation accepts must
 * dequantize and multiply without a memory error. Unvalidated tensors go
 * through the format's dequant_rows too (codes are masked, never trusted).
 * Also decodes raw codes with lq_aq_decode.
 *
 * Input: [0] rows-1 (mod 32), [1] groups per row - 1 (mod 32), [2] M, [3] B,
 * [4] g, [5] codebook value bytes, [6] extra ip / number of sections, then per
 * section: tag, elem_size, signed delta to the expected size; the rest of
 * the input fills the section bytes cyclically. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mcq/aq_internal.h"
#include "qtensor/qtensor_internal.h"
#include "quant/mcq.h"
#include "fuzz_fill.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t expected(uint32_t tag, size_t rows, size_t cols, uint32_t M, uint32_t B, uint32_t g,
                       uint32_t cbb)
{
    if (M > 8) M = 8;
    if (B > 12) B = 12; /* keep the inputs small */
    if (g == 0 || g > 64) g = 8;
    if (cbb != 2 && cbb != 4) cbb = 2;
    size_t ng = cols / g, codeb = B <= 8 ? 1 : 2;
    switch (tag) {
    case LQ_SEC_CODES: return rows * ng * M * codeb;
    case LQ_SEC_CODEBOOKS: return (size_t)M * ((size_t)1 << B) * g * cbb;
    case LQ_SEC_SCALES: return rows * 4;
    default: return 8;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 7) return 0;
    uint32_t M = data[2] % 10, B = data[3] % 18, g = data[4] % 66, cbb = data[5] % 6;
    size_t rows = 1 + data[0] % 32, ng = 1 + data[1] % 32;
    size_t cols = ng * (g ? g : 1) + ((data[6] & 0x80) ? 1 : 0);
    size_t nsec = data[6] % 5, pos = 7;
    lq_qtensor *t = NULL;
    if (lq_qtensor_new(NULL, LQ_FORMAT_AQ, rows, cols, &t) != LQ_OK) return 0;
    t->ip[LQ_AQ_IP_M] = M;
    t->ip[LQ_AQ_IP_B] = B;
    t->ip[LQ_AQ_IP_G] = g;
    t->ip[LQ_AQ_IP_CB] = cbb;
    if (data[6] & 0x40) t->ip[5] = 1;
    for (size_t s = 0; s < nsec && pos + 3 <= size; s++, pos += 3) {
        uint32_t tag = data[pos] % 6, elem = data[pos + 1] % 5;
        long delta = (long)(int8_t)data[pos + 2];
        long n = (long)expected(tag, rows, cols, M, B, g, cbb) + (delta % 3 == 0 ? delta : 0);
        if (n < 0) n = 0;
        if (n > (1L << 22)) n = 1L << 22;
        uint8_t *p = lq_qtensor_add_section(t, tag, elem, (size_t)n);
        if (!p) break;
        fuzz_fill_cyclic(p, (size_t)n, data, size, pos + 3);
    }
    float *W = malloc(rows * cols * sizeof *W);
    float *X2 = malloc(2 * cols * sizeof *X2), *y = malloc(2 * rows * sizeof *y);
    if (W && X2 && y) {
        for (size_t i = 0; i < 2 * cols; i++) X2[i] = (float)((int)(i % 5) - 2);
        const lq_format_traits *tr = lq_format_lookup(LQ_FORMAT_AQ);
        /* sections the right size (whatever validation says): the decoder
         * must stay in bounds on any bytes */
        const lq_qsection *c = lq_qtensor_section(t, LQ_SEC_CODES);
        const lq_qsection *b = lq_qtensor_section(t, LQ_SEC_CODEBOOKS);
        const lq_qsection *sc = lq_qtensor_section(t, LQ_SEC_SCALES);
        if (tr && M >= 1 && M <= 8 && B >= 1 && B <= 12 && g >= 1 && g <= 64 && cols % g == 0 &&
            (cbb == 2 || cbb == 4) && c && b && sc &&
            c->nbytes == expected(LQ_SEC_CODES, rows, cols, M, B, g, cbb) &&
            b->nbytes == expected(LQ_SEC_CODEBOOKS, rows, cols, M, B, g, cbb) &&
            sc->nbytes == rows * 4)
            (void)tr->dequant_rows(t, 0, rows, W, lq_simd_detected());
        if (lq_qtensor_validate(t) == LQ_OK) {
            (void)lq_dequantize(NULL, t, W);
            (void)lq_matmul(NULL, t, X2, 2, y);
            (void)lq_matvec(NULL, t, X2, y);
            if (tr) (void)tr->matmul_rows(t, X2, 2, y, rows / 2, rows, lq_simd_detected());
            double bpw;
            (void)lq_qtensor_bits_per_weight(t, &bpw);
        }
    }
    free(W);
    free(X2);
    free(y);
    lq_qtensor_free(t);

    /* raw decode: codes from the input against a small fixed codebook */
    if (size >= 16) {
        lq_aq_params p = {1 + data[7] % 3, 1 + data[8] % 6, 1 + data[9] % 8};
        size_t n = (size - 16) / 2, cl = p.group;
        size_t r = n / p.n_codebooks;
        if (r) {
            float cb[3 * 64 * 8];
            for (size_t i = 0; i < sizeof cb / sizeof cb[0]; i++) cb[i] = (float)(i % 13) - 6.0f;
            uint16_t *codes = malloc(r * p.n_codebooks * sizeof *codes);
            float *out = malloc(r * cl * sizeof *out);
            if (codes && out) {
                for (size_t i = 0; i < r * p.n_codebooks; i++)
                    codes[i] = (uint16_t)(data[16 + 2 * i] | data[17 + 2 * i] << 8);
                (void)lq_aq_decode(&p, r, cl, cb, codes, NULL, out);
            }
            free(codes);
            free(out);
        }
    }
    return 0;
}
