/* Additive quantizer: parameter checks, decoding and the exact objective. */
#include <string.h>

#include "core/linalg.h"
#include "mcq/aq_internal.h"

lq_status aq_check_params(const lq_aq_params *p, size_t rows, size_t cols, size_t *K, size_t *ng)
{
    if (!p || rows == 0 || cols == 0) return LQ_ERR_INVALID_ARG;
    if (p->n_codebooks < 1 || p->n_codebooks > 8) return LQ_ERR_INVALID_ARG;
    if (p->code_bits < 1 || p->code_bits > 16) return LQ_ERR_INVALID_ARG;
    if (p->group < 1 || p->group > 64 || cols % p->group) return LQ_ERR_INVALID_ARG;
    size_t n;
    if (!lq_mul_ok(rows, cols, &n) || !lq_mul_ok(n, p->n_codebooks, &n)) return LQ_ERR_INVALID_ARG;
    if (!lq_mul_ok(cols, cols, &n)) return LQ_ERR_INVALID_ARG;
    if (K) *K = (size_t)1 << p->code_bits;
    if (ng) *ng = cols / p->group;
    return LQ_OK;
}

int aq_codes_in_range(const uint16_t *codes, size_t n, size_t K)
{
    uint16_t bad = 0;
    if (K > 65535) return 1;
    for (size_t i = 0; i < n; i++) bad |= (uint16_t)(codes[i] >= K);
    return !bad;
}

size_t lq_aq_codebooks_len(const lq_aq_params *p)
{
    if (!p || p->n_codebooks < 1 || p->n_codebooks > 8 || p->code_bits < 1 || p->code_bits > 16 ||
        p->group < 1 || p->group > 64)
        return 0;
    return (size_t)p->n_codebooks * ((size_t)1 << p->code_bits) * p->group;
}

size_t lq_aq_codes_len(const lq_aq_params *p, size_t rows, size_t cols)
{
    if (aq_check_params(p, rows, cols, NULL, NULL) != LQ_OK) return 0;
    return rows * (cols / p->group) * p->n_codebooks;
}

void aq_decode_rows(const lq_aq_params *p, size_t cols, const float *C, const uint16_t *codes,
                    const float *scales, const float *W, int sub, size_t r0, size_t r1, float *out)
{
    size_t g = p->group, M = p->n_codebooks, K = (size_t)1 << p->code_bits, ng = cols / g;
    for (size_t i = r0; i < r1; i++) {
        float s = scales ? scales[i] : 1.0f;
        float *o = out + (i - r0) * cols;
        const uint16_t *ci = codes + i * ng * M;
        for (size_t j = 0; j < ng; j++) {
            float v[64];
            for (size_t a = 0; a < g; a++) v[a] = 0.0f;
            for (size_t m = 0; m < M; m++) {
                const float *c = C + (m * K + ci[j * M + m]) * g;
                for (size_t a = 0; a < g; a++) v[a] += c[a];
            }
            for (size_t a = 0; a < g; a++)
                o[j * g + a] = sub ? s * v[a] - W[i * cols + j * g + a] : s * v[a];
        }
    }
}

lq_status aq_check_inputs(const float *W, size_t rows, size_t cols, const float *H)
{
    lq_status st = lq_check_range(W, rows * cols, LQ_MAX_ABS_WEIGHT);
    if (st == LQ_OK && H) st = lq_check_range(H, cols * cols, LQ_MAX_ABS_HESSIAN);
    return st;
}

lq_status aq_times_h(lq_ctx *ctx, size_t T, size_t cols, const float *E, const float *H, float *Y)
{
    return lq_sgemm(ctx, LQ_NO_TRANS, LQ_NO_TRANS, T, cols, cols, 1.0f, E, cols, H, cols, 0.0f, Y,
                    cols);
}

lq_status aq_tile_objective(lq_ctx *ctx, const float *W, size_t cols, const float *H,
                            const lq_aq_params *p, const float *C, const uint16_t *codes,
                            const float *scales, size_t r0, size_t r1, float *E, float *Y,
                            double *f)
{
    size_t T = r1 - r0;
    aq_decode_rows(p, cols, C, codes, scales, W, 1, r0, r1, E);
    if (H) {
        lq_status st = aq_times_h(ctx, T, cols, E, H, Y);
        if (st != LQ_OK) return st;
    }
    for (size_t t = 0; t < T; t++) {
        const float *e = E + t * cols, *y = H ? Y + t * cols : e;
        double s = 0.0;
        for (size_t c = 0; c < cols; c++) s += (double)e[c] * y[c];
        f[r0 + t] = s;
    }
    return LQ_OK;
}

typedef struct obj_job {
    const aq_kernels *kr;
    lq_ctx *ctx;
    const float *W, *H, *C, *scales;
    const uint16_t *codes;
    const lq_aq_params *p;
    size_t rows, cols;
    double *f;
    volatile int failed;
} obj_job;

static void obj_task(void *arg, size_t t)
{
    obj_job *j = arg;
    size_t r0 = t * AQ_TILE, r1 = r0 + AQ_TILE;
    if (r1 > j->rows) r1 = j->rows;
    float *E = lq_alloc_array(j->ctx, 2 * AQ_TILE, j->cols * sizeof(float));
    if (!E) {
        j->failed = 1;
        return;
    }
    if (aq_tile_objective(j->ctx, j->W, j->cols, j->H, j->p, j->C, j->codes, j->scales, r0, r1, E,
                          E + AQ_TILE * j->cols, j->f) != LQ_OK)
        j->failed = 1;
    lq_free(j->ctx, E);
}

lq_status aq_row_objectives(lq_ctx *ctx, const float *W, size_t rows, size_t cols, const float *H,
                            const lq_aq_params *p, const float *C, const uint16_t *codes,
                            const float *scales, double *f)
{
    obj_job j = {
        aq_kernels_for(lq_simd_for(ctx)), ctx, W, H, C, scales, codes, p, rows, cols, f, 0};
    lq_parallel_for(ctx, lq_chunks(rows, AQ_TILE), obj_task, &j);
    return j.failed ? LQ_ERR_NO_MEMORY : LQ_OK;
}

double aq_sum(const double *f, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += f[i];
    return s;
}

lq_status lq_aq_decode(const lq_aq_params *p, size_t rows, size_t cols, const float *codebooks,
                       const uint16_t *codes, const float *scales, float *W_hat)
{
    size_t K, ng;
    if (!codebooks || !codes || !W_hat) return LQ_ERR_INVALID_ARG;
    lq_status st = aq_check_params(p, rows, cols, &K, &ng);
    if (st != LQ_OK) return st;
    if (!aq_codes_in_range(codes, rows * ng * p->n_codebooks, K)) return LQ_ERR_INVALID_ARG;
    aq_decode_rows(p, cols, codebooks, codes, scales, NULL, 0, 0, rows, W_hat);
    return LQ_OK;
}

lq_status lq_aq_objective(lq_ctx *ctx, const float *W, size_t rows, size_t cols, const float *H,
                          const lq_aq_params *p, const float *codebooks, const uint16_t *codes,
                          const float *scales, double *row_obj, double *objective)
{
    size_t K, ng;
    if (!W || !codebooks || !codes || !objective) return LQ_ERR_INVALID_ARG;
    lq_status st = aq_check_params(p, rows, cols, &K, &ng);
    if (st != LQ_OK) return st;
    if (!aq_codes_in_range(codes, rows * ng * p->n_codebooks, K)) return LQ_ERR_INVALID_ARG;
    st = aq_check_inputs(W, rows, cols, H);
    if (st != LQ_OK) return st;
    if (!lq_all_finite(codebooks, lq_aq_codebooks_len(p)) ||
        (scales && !lq_all_finite(scales, rows)))
        return LQ_ERR_NOT_FINITE;
    if (!lq_ctx_resolve(ctx)) return LQ_ERR_NO_MEMORY;
    double *f = lq_alloc_array(ctx, rows, sizeof(double));
    if (!f) return LQ_ERR_NO_MEMORY;
    st = aq_row_objectives(ctx, W, rows, cols, H, p, codebooks, codes, scales, f);
    if (st == LQ_OK) {
        if (row_obj) memcpy(row_obj, f, rows * sizeof(double));
        *objective = aq_sum(f, rows);
    }
    lq_free(ctx, f);
    return st;
}
