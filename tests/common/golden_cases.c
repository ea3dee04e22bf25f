/* Golden-file cases (golden_cases.h). */
#include "golden_cases.h"

#include <string.h>

const lq_simd_level lq_golden_levels[LQ_GOLDEN_NLEVELS] = {LQ_SIMD_SCALAR, LQ_SIMD_AVX2,
                                                           LQ_SIMD_AVX512};

/* Every method at its defaults (variant 0) and at least one non-default
 * configuration; the extra variants reach the stored-layout alternatives
 * (fp32 side values for tiny or huge weights, SVD codebooks). */
static const lq_golden_case g_cases[] = {
    {"int_default", LQ_METHOD_INT, 0, 1, 1.0f, 101},
    {"int_3bit_sym_g32_actorder", LQ_METHOD_INT, 1, 1, 1.0f, 102},
    {"int_rtn_tiny_fp32scales", LQ_METHOD_INT, 2, 0, 1e-4f, 103},
    {"nestquant_default", LQ_METHOD_NESTQUANT, 0, 1, 1.0f, 201},
    {"nestquant_q8_k8_g64_nohadamard", LQ_METHOD_NESTQUANT, 1, 1, 1.0f, 202},
    {"gptvq_default", LQ_METHOD_GPTVQ, 0, 1, 1.0f, 301},
    {"gptvq_d4_b8_int8cb", LQ_METHOD_GPTVQ, 1, 1, 1.0f, 302},
    {"gptvq_d1_svd", LQ_METHOD_GPTVQ, 2, 1, 1.0f, 303},
    {"gptqt_default", LQ_METHOD_GPTQT, 0, 1, 1.0f, 401},
    {"gptqt_k2_g32_grid", LQ_METHOD_GPTQT, 1, 1, 1.0f, 402},
    {"bcq_default", LQ_METHOD_BCQ, 0, 1, 1.0f, 501},
    {"bcq_rtn_k4_row_nooffset", LQ_METHOD_BCQ, 1, 0, 1.0f, 502},
    {"bcq_tiny_fp32side", LQ_METHOD_BCQ, 2, 1, 1e-4f, 503},
    {"aqlm_default", LQ_METHOD_AQLM, 0, 1, 1.0f, 601},
    {"aqlm_m1_b6_g4", LQ_METHOD_AQLM, 1, 1, 1.0f, 602},
    {"aqlm_huge_fp32cb", LQ_METHOD_AQLM, 2, 0, 1e7f, 603},
};

size_t lq_golden_count(void) { return sizeof g_cases / sizeof g_cases[0]; }

const lq_golden_case *lq_golden_get(size_t i) { return i < lq_golden_count() ? &g_cases[i] : NULL; }

lq_status lq_golden_method(const lq_golden_case *c, lq_method *m)
{
    lq_status st = lq_method_init(m, c->kind);
    if (st != LQ_OK || c->variant == 0) return st;
    switch (c->kind) {
    case LQ_METHOD_INT:
        if (c->variant == 1) {
            m->u.int_.bits = 3;
            m->u.int_.symmetric = 1;
            m->u.int_.group = 32;
            m->u.int_.mse_clip = 1;
            m->engine.act_order = 1; /* without static groups: a PERM section */
            m->engine.block_size = 32;
        } else {
            m->engine.rtn = 1;
            m->u.int_.bits = 5;
            m->u.int_.group = 48;
        }
        return LQ_OK;
    case LQ_METHOD_NESTQUANT:
        m->u.nestquant.q = 8;
        m->u.nestquant.n_betas = 8;
        m->u.nestquant.group = 64;
        m->u.nestquant.hadamard = 0;
        m->engine.percdamp = 0.05;
        return LQ_OK;
    case LQ_METHOD_GPTVQ:
        if (c->variant == 1) {
            m->u.gptvq.dim = 4;
            m->u.gptvq.index_bits = 8;
            m->u.gptvq.group_cols = 64;
            m->u.gptvq.group_rows = 0;
            m->u.gptvq.em_iters = 4;
            m->u.gptvq.codebook_update = 0;
            m->u.gptvq.codebook_bits = 8;
        } else {
            m->u.gptvq.dim = 1;
            m->u.gptvq.index_bits = 3;
            m->u.gptvq.group_cols = 32;
            m->u.gptvq.group_rows = 8;
            m->u.gptvq.svd_rank = 4;
            m->u.gptvq.codebook_bits = 0; /* fp16 at fit time, the default until the
                                           * paper's int8 became it */
        }
        return LQ_OK;
    case LQ_METHOD_GPTQT:
        m->u.bcq.k = 2;
        m->u.bcq.group = 32;
        m->u.bcq.offset = 0;
        m->u.bcq.linear_bits = 5;
        m->u.bcq.rescale_steps = 8;
        m->u.bcq.grid_codes = 1;
        return LQ_OK;
    case LQ_METHOD_BCQ:
        if (c->variant == 1) {
            m->engine.rtn = 1;
            m->u.bcq.k = 4;
            m->u.bcq.group = 0;
            m->u.bcq.offset = 0;
            m->u.bcq.iters = 5;
        } else {
            m->u.bcq.k = 2;
            m->u.bcq.group = 64;
        }
        return LQ_OK;
    case LQ_METHOD_AQLM:
        if (c->variant == 1) {
            m->u.aqlm.n_codebooks = 1;
            m->u.aqlm.code_bits = 6;
            m->u.aqlm.group = 4;
            m->u.aqlm.beam = 4;
            m->u.aqlm.rounds = 2;
            m->u.aqlm.kmeans_iters = 8;
        } else {
            m->u.aqlm.n_codebooks = 1;
            m->u.aqlm.code_bits = 4;
            m->u.aqlm.group = 8;
            m->u.aqlm.beam = 2;
            m->u.aqlm.rounds = 1;
        }
        return LQ_OK;
    }
    return LQ_ERR_INVALID_ARG;
}

/* ---- inputs: integer RNG, float arithmetic only ------------------------- */
static uint64_t sm64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform in [0, 1) with 53 bits. */
static double unif(uint64_t *s) { return (double)(sm64(s) >> 11) * 0x1.0p-53; }

/* Roughly Gaussian (Irwin-Hall of 4, unit variance). */
static double normalish(uint64_t *s)
{
    return (unif(s) + unif(s) + unif(s) + unif(s) - 2.0) * 1.7320508075688772;
}

void lq_golden_layer(const lq_golden_case *c, float *W, float *H)
{
    const size_t rows = LQ_GOLDEN_ROWS, cols = LQ_GOLDEN_COLS, nsamples = 2 * LQ_GOLDEN_COLS;
    uint64_t s = c->seed * 0x100000001B3ull;
    /* heavy tails: a normal divided by a random magnitude in (0.35, 1.35] */
    for (size_t i = 0; i < rows * cols; i++)
        W[i] = (float)(0.02 * c->wscale * normalish(&s) / (1.35 - unif(&s)));
    /* H = 2/N sum x x^T with x = z A: correlated columns, some loud ones */
    static double A[LQ_GOLDEN_COLS * LQ_GOLDEN_COLS], Hd[LQ_GOLDEN_COLS * LQ_GOLDEN_COLS];
    double x[LQ_GOLDEN_COLS], z[LQ_GOLDEN_COLS];
    for (size_t i = 0; i < cols * cols; i++) A[i] = normalish(&s) * 0.08838834764831845;
    for (size_t i = 0; i < cols; i++) A[i * cols + i] += 0.3;
    memset(Hd, 0, sizeof Hd);
    for (size_t n = 0; n < nsamples; n++) {
        for (size_t i = 0; i < cols; i++) z[i] = normalish(&s) * (1.0 + 3.0 * (i % 7 == 0));
        for (size_t j = 0; j < cols; j++) x[j] = 0.0;
        for (size_t i = 0; i < cols; i++)
            for (size_t j = 0; j < cols; j++) x[j] += z[i] * A[i * cols + j];
        for (size_t i = 0; i < cols; i++)
            for (size_t j = 0; j <= i; j++) Hd[i * cols + j] += x[i] * x[j];
    }
    for (size_t i = 0; i < cols; i++)
        for (size_t j = 0; j <= i; j++) {
            float v = (float)(2.0 * Hd[i * cols + j] / (double)nsamples);
            H[i * cols + j] = v;
            H[j * cols + i] = v;
        }
}

void lq_golden_acts(const lq_golden_case *c, float *X)
{
    uint64_t s = c->seed * 0x9E3779B97F4A7C15ull + 7;
    for (size_t i = 0; i < (size_t)LQ_GOLDEN_BATCH * LQ_GOLDEN_COLS; i++)
        X[i] = (float)normalish(&s);
}

uint64_t lq_golden_fnv1a(const void *data, size_t n)
{
    const unsigned char *p = data;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}
