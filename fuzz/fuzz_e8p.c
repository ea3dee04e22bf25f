/* libFuzzer harness for the E8P code decoders (LQ_FORMAT_E8P).
 *
 * Part 1: builds an LQ_FORMAT_E8P qtensor whose parameters and section
 * sizes come from the input (often inconsistent), validates it, and runs
 * every decoder on whatever validation accepts (bits, dequantize with the
 * inverse Hadamard, matvec/matmul, the format's scalar matmul_rows): no
 * memory error, only LQ_OK or LQ_ERR_CORRUPT.
 * Part 2: raw codes from the input bytes through lq_e8p_decode (every
 * 16-bit value is a code: the output must be finite quarter-integers with
 * |y|^2 <= 17, the largest: |a|^2 = 12 with sum(a) = 9 at +1/4) and back through lq_e8p_encode,
 * which must return the same code (each codeword is its own nearest).
 *
 * Input: [0] rows-1 (mod 32), [1..2] cols-1 (mod 300), [3] group/8, [4]
 * hadamard (0..2), [5] corruption selector, [6] number of sections (0..3),
 * then per section: tag, signed size delta; the rest fills the sections. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "lattice/lattice_internal.h"
#include "qtensor/format_e8p.h"
#include "qtensor/qtensor_internal.h"
#include "fuzz_fill.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void raw_codes(const uint8_t *data, size_t size)
{
    size_t n = size / 2 > 64 ? 64 : size / 2;
    uint16_t codes[64], back[64];
    float y[8 * 64];
    for (size_t i = 0; i < n; i++) codes[i] = (uint16_t)(data[2 * i] | data[2 * i + 1] << 8);
    if (lq_e8p_decode(1.0f, codes, n, y) != LQ_OK) abort();
    for (size_t i = 0; i < n; i++) {
        double nn = 0;
        for (int k = 0; k < 8; k++) {
            float v = y[8 * i + k];
            if (!isfinite(v) || 4.0f * v != rintf(4.0f * v)) abort();
            nn += (double)v * v;
        }
        if (nn > 17.0) abort();
    }
    if (lq_e8p_encode(1.0f, y, n, back, NULL) != LQ_OK) abort();
    if (n && memcmp(codes, back, n * sizeof(uint16_t))) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 7) return 0;
    raw_codes(data, size);
    size_t rows = 1 + data[0] % 32, cols = 1 + (((size_t)data[1] | (size_t)data[2] << 8) % 300);
    size_t n8 = (cols + 7) / 8 * 8;
    lq_qtensor *t = NULL;
    if (lq_qtensor_new(NULL, LQ_FORMAT_E8P, rows, cols, &t) != LQ_OK) return 0;
    size_t group = 8 * (size_t)(1 + data[3] % 40);
    t->ip[LQ_E8P_IP_GROUP] = (uint32_t)group;
    t->ip[LQ_E8P_IP_HADAMARD] = data[4] % 3;
    t->ip[LQ_E8P_IP_N8] = (uint32_t)n8;
    t->ip[LQ_E8P_IP_SEED_LO] = data[5];
    switch (data[5] % 6) { /* perturb one parameter */
    case 1: t->ip[LQ_E8P_IP_N8] += 8; break;
    case 2: t->ip[LQ_E8P_IP_GROUP] = 12; break;
    case 3: t->ip[LQ_E8P_NIP + 2] = 1; break;
    case 4: t->fp[0] = 0.5f; break;
    default: break;
    }
    size_t nblk = n8 / 8, ng = (n8 + group - 1) / group;
    size_t nsec = data[6] % 4, pos = 7;
    for (size_t s = 0; s < nsec && pos + 2 <= size; s++, pos += 2) {
        uint32_t tag = (uint32_t)(data[pos] % 3 == 0   ? LQ_SEC_CODES
                                  : data[pos] % 3 == 1 ? LQ_SEC_SCALES
                                                       : LQ_SEC_AUX);
        long delta = (long)(int8_t)data[pos + 1];
        long n = tag == LQ_SEC_CODES    ? (long)(rows * nblk * 2)
                 : tag == LQ_SEC_SCALES ? (long)(rows * ng * 4)
                                        : 16;
        n += delta % 3 == 0 ? delta : 0;
        if (n < 0) n = 0;
        uint32_t es = tag == LQ_SEC_SCALES ? 4 : tag == LQ_SEC_CODES ? 2 : 1;
        uint8_t *p = lq_qtensor_add_section(t, tag, es, (size_t)n);
        if (!p) break;
        fuzz_fill_cyclic(p, (size_t)n, data, size, pos + 2);
        if (tag == LQ_SEC_SCALES && data[pos + 1] % 2 == 0) /* mostly sane scales */
            for (long i = 0; i + 4 <= n; i += 4) {
                float v = 0.5f + (float)(p[i] % 16);
                memcpy(p + i, &v, 4);
            }
    }
    if (lq_qtensor_validate(t) == LQ_OK) {
        fuzz_decode(t);
        const lq_format_traits *tr = lq_format_lookup(LQ_FORMAT_E8P);
        float *x = malloc(2 * cols * sizeof *x), *y = malloc(2 * rows * sizeof *y);
        if (!x || !y) abort();
        for (size_t i = 0; i < 2 * cols; i++) x[i] = (float)((int)(i % 5) - 2) * 0.5f;
        lq_status st = tr->matmul_rows(t, x, 2, y, 0, rows, LQ_SIMD_SCALAR);
        if (st != LQ_OK && st != LQ_ERR_CORRUPT) abort();
        free(x);
        free(y);
    }
    lq_qtensor_free(t);
    return 0;
}
