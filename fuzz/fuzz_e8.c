/* libFuzzer harness for the E8 / NestQuant code decoders.
 *
 * Part 1: builds an LQ_FORMAT_E8 qtensor whose parameters and section sizes
 * come from the input (often inconsistent), validates it, and runs every
 * decoder on whatever validation accepts (bits, dequantize with the inverse
 * Hadamard, matvec/matmul on the codes, the format's scalar matmul_rows):
 * no memory error, only LQ_OK or
 * LQ_ERR_CORRUPT (packed values >= q^8, beta indices >= K).
 * Part 2: raw decoders on the input bytes: lq_voronoi_unpack +
 * lq_voronoi_decode, lq_nq_decode and lq_nq_dot on codes and beta indices
 * that may be out of range (must give LQ_ERR_CORRUPT, never a bad read).
 *
 * Input: [0] rows-1 (mod 32), [1..2] cols-1 (mod 300), [3] q-1 (q in
 * 1..256, 1 invalid), [4] K (0..17), [5] group/8, [6] hadamard (0..2),
 * [7] corruption selector (which derived parameter to perturb), [8] number
 * of sections (0..4), then per section: tag, signed size delta; the rest of
 * the input fills the section bytes cyclically and seeds the betas. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "lattice/lattice_internal.h"
#include "qtensor/format_e8.h"
#include "qtensor/qtensor_internal.h"
#include "fuzz_fill.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void raw_decoders(const uint8_t *data, size_t size)
{
    unsigned q = 2 + data[3] % 255;
    size_t n = size / 16 > 64 ? 64 : size / 16;
    uint8_t codes[8 * 64], codes2[8 * 64], bidx[64];
    float y[8 * 64];
    size_t bytes;
    if (lq_voronoi_packed_size(q, n, &bytes) != LQ_OK) abort();
    if (bytes <= size) {
        lq_status st = lq_voronoi_unpack(q, data, size, n, codes);
        if (st == LQ_OK) {
            if (lq_voronoi_decode(q, 0.5f, codes, n, y) != LQ_OK) abort();
            for (size_t i = 0; i < 8 * n; i++)
                if (!isfinite(y[i])) abort();
        } else if (st != LQ_ERR_CORRUPT) {
            abort();
        }
    }
    /* raw bytes as codes and indices: out of range must be refused */
    for (size_t i = 0; i < 8 * n; i++) codes2[i] = data[(i * 7 + 1) % size];
    for (size_t i = 0; i < n; i++) bidx[i] = data[(i * 5 + 2) % size] % 6;
    lq_nq_coder c;
    if (lq_nq_coder_init(&c, q, 4) != LQ_OK) abort();
    lq_status st = lq_nq_decode(&c, codes2, bidx, n, y);
    if (st != LQ_OK && st != LQ_ERR_CORRUPT) abort();
    double dot;
    st = lq_nq_dot(&c, codes2, bidx, 1.0f, &c, codes2, bidx, 2.0f, n, &dot);
    if (st != LQ_OK && st != LQ_ERR_CORRUPT) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 9) return 0;
    raw_decoders(data, size);
    size_t rows = 1 + data[0] % 32, cols = 1 + (((size_t)data[1] | (size_t)data[2] << 8) % 300);
    size_t n8 = (cols + 7) / 8 * 8;
    unsigned q = 1 + data[3], K = data[4] % 18;
    lq_qtensor *t = NULL;
    if (lq_qtensor_new(NULL, LQ_FORMAT_E8, rows, cols, &t) != LQ_OK) return 0;
    size_t group = 8 * (size_t)(1 + data[5] % 40);
    t->ip[LQ_E8_IP_Q] = q;
    t->ip[LQ_E8_IP_K] = K;
    t->ip[LQ_E8_IP_GROUP] = (uint32_t)group;
    t->ip[LQ_E8_IP_HADAMARD] = data[6] % 3;
    t->ip[LQ_E8_IP_N8] = (uint32_t)n8;
    t->ip[LQ_E8_IP_SEED_LO] = data[7];
    t->ip[LQ_E8_IP_SEED_HI] = 0;
    t->ip[LQ_E8_IP_CBITS] = lq_voronoi_bits(q);
    t->ip[LQ_E8_IP_IBITS] = lq_nq_index_bits(K);
    switch (data[7] % 8) { /* perturb one derived parameter */
    case 1: t->ip[LQ_E8_IP_N8] += 8; break;
    case 2: t->ip[LQ_E8_IP_CBITS] ^= 1; break;
    case 3: t->ip[LQ_E8_IP_IBITS] += 1; break;
    case 4: t->ip[LQ_E8_IP_GROUP] = 0; break;
    case 5: t->ip[LQ_E8_NIP] = 1; break;
    default: break;
    }
    /* betas from the input: usually increasing, sometimes not */
    float b = 0.01f;
    for (unsigned k = 0; k < K && k < LQ_QT_NPARAMS; k++) {
        b += (float)(1 + data[(9 + k) % size] % 63) * 0.01f;
        t->fp[k] = (data[(9 + k) % size] == 255) ? NAN : b;
    }
    size_t nblk = n8 / 8, nvec = rows * nblk, ng = (n8 + group - 1) / group;
    size_t cb = (nvec * t->ip[LQ_E8_IP_CBITS] + 7) / 8, ib = (nvec * lq_nq_index_bits(K) + 7) / 8;
    size_t nsec = data[8] % 5, pos = 9;
    for (size_t s = 0; s < nsec && pos + 2 <= size; s++, pos += 2) {
        uint32_t tag = (uint32_t)(data[pos] % 4 == 0   ? LQ_SEC_CODES
                                  : data[pos] % 4 == 1 ? LQ_SEC_BETAS
                                  : data[pos] % 4 == 2 ? LQ_SEC_SCALES
                                                       : LQ_SEC_AUX);
        long delta = (long)(int8_t)data[pos + 1];
        long n = tag == LQ_SEC_CODES    ? (long)cb
                 : tag == LQ_SEC_BETAS  ? (long)ib
                 : tag == LQ_SEC_SCALES ? (long)(rows * ng * 4)
                                        : 16;
        n += delta % 3 == 0 ? delta : 0;
        if (n < 0) n = 0;
        uint8_t *p = lq_qtensor_add_section(t, tag, tag == LQ_SEC_SCALES ? 4 : 1, (size_t)n);
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
        /* the format's scalar reference rows directly (lq_matmul may take
         * a SIMD kernel instead) */
        const lq_format_traits *tr = lq_format_lookup(LQ_FORMAT_E8);
        float *x = malloc(2 * cols * sizeof *x), *y = malloc(2 * rows * sizeof *y);
        if (!x || !y) abort();
        for (size_t i = 0; i < 2 * cols; i++) x[i] = (float)((int)(i % 5) - 2) * 0.5f;
        lq_status st = tr->matmul_rows(t, x, 2, y, 0, rows, lq_simd_detected());
        if (st != LQ_OK && st != LQ_ERR_CORRUPT) abort();
        free(x);
        free(y);
    }
    lq_qtensor_free(t);
    return 0;
}
