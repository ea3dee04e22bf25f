/*
 * lq demo --synthetic: every method on one synthetic layer (the default
 * `lq demo`, on the real model, is cmd_demo_model.c).
 *
 * A synthetic linear layer that behaves like an LLM projection is built from
 * a seed (generator below), its calibration Hessian is accumulated with the
 * library, and every available method quantizes it at about 2, 3 and 4 bits
 * per weight. One table reports, per method and bit level: bits per weight
 * (all side information counted), the proxy loss tr(E H E^T) relative to
 * INT round-to-nearest at the same nominal bits, quantization seconds, and
 * the speed of a matvec on the codes against a dense fp32 matvec.
 *
 * Generator (seed s, rows R, cols C, samples N; lq_rng streams):
 *   weights   W[r, c] = 0.02 * t4 * g_c, t4 a Student-t variate with 4
 *             degrees of freedom (heavy tails), g_c = exp(0.3 n_c) a
 *             log-normal per-input-channel gain (stream 1);
 *   inputs    x = y + (y U) V^T with y_c = d_c z_c, z ~ N(0, I), channel
 *             scales d_c = 1 except 1 in 32 channels at 8 (outlier features,
 *             as observed in LLM activations), U, V: C x 8 Gaussian / sqrt(C)
 *             (low-rank correlation) (streams 2, 3);
 *   Hessian   H = 2/N sum x x^T through lq_hessian_add.
 * `lq demo --save PREFIX` writes this layer (weights as F32, F16 and BF16
 * safetensors, the Hessian, the activations as .npy) for `lq quantize`.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "core/internal.h"

/* ---- method configurations: one row per method; tune yours here --------------
 * setup(m, bits) receives m already filled by lq_method_init(kind) and sets
 * the options that give about `bits` bits per weight. */

static void setup_int_rtn(lq_method *m, unsigned bits)
{
    m->u.int_.bits = bits;
    m->u.int_.group = 128;
    m->engine.rtn = 1;
}

static void setup_int_gptq(lq_method *m, unsigned bits)
{
    m->u.int_.bits = bits;
    m->u.int_.group = 128;
}

static void setup_nestquant(lq_method *m, unsigned bits)
{
    /* ceil(8 log2 q) bits per 8 weights + log2(K) per 8 for the beta index:
     * (4, 2) = 2.125, (6, 8) = 21/8 + 3/8 = 3.0, (12, 8) = 29/8 + 3/8 = 4.0
     * bits per weight before the row scales (see docs/algorithms.md). */
    static const unsigned q[] = {4, 6, 12}, k[] = {2, 8, 8};
    unsigned i = bits <= 2 ? 0 : bits == 3 ? 1 : 2;
    m->u.nestquant.q = q[i];
    m->u.nestquant.n_betas = k[i];
}

static void setup_gptvq(lq_method *m, unsigned bits)
{
    m->u.gptvq.dim = 2;
    m->u.gptvq.index_bits = 2 * bits; /* 2-D codes: bits per weight = index_bits / 2 */
    m->u.gptvq.group_cols = 256;
    m->u.gptvq.group_rows = (size_t)1 << (2 * bits); /* codebooks: ~0.125 bit/weight */
    m->u.gptvq.em_iters = 10;
}

static void setup_bcq(lq_method *m, unsigned bits)
{
    m->u.bcq.k = bits;
    m->u.bcq.group = 128;
}

static void setup_aqlm(lq_method *m, unsigned bits)
{
    m->u.aqlm.group = 8;     /* codes: M * B / g bits per weight; the codebooks add */
    m->u.aqlm.code_bits = 8; /* about M / 2 more on this small layer */
    m->u.aqlm.n_codebooks = bits;
    m->u.aqlm.beam = 4;
    m->u.aqlm.rounds = 2;
    m->u.aqlm.kmeans_iters = 10;
}

typedef struct demo_method {
    const char *name;
    lq_method_kind kind;
    void (*setup)(lq_method *m, unsigned bits);
} demo_method;

static const demo_method g_demo_methods[] = {
    {"int-rtn", LQ_METHOD_INT, setup_int_rtn}, /* the reference row: keep it first */
    {"int-gptq", LQ_METHOD_INT, setup_int_gptq},
    {"nestquant", LQ_METHOD_NESTQUANT, setup_nestquant},
    {"gptvq", LQ_METHOD_GPTVQ, setup_gptvq},
    {"gptqt", LQ_METHOD_GPTQT, setup_bcq},
    {"bcq", LQ_METHOD_BCQ, setup_bcq},
    {"aqlm", LQ_METHOD_AQLM, setup_aqlm},
};
#define NDEMO (sizeof g_demo_methods / sizeof g_demo_methods[0])
static const unsigned g_demo_bits[] = {2, 3, 4};
#define NBITS (sizeof g_demo_bits / sizeof g_demo_bits[0])

/* ---- the synthetic layer ------------------------------------------------------ */

typedef struct layer {
    size_t rows, cols, n;
    float *W, *X, *H;
} layer;

static double student_t4(lq_rng *r)
{
    double g = lq_rng_gaussian(r), chi = 0;
    for (int k = 0; k < 4; k++) {
        double z = lq_rng_gaussian(r);
        chi += z * z;
    }
    return g / sqrt(chi / 4.0);
}

#define RANK 8

static lq_status make_layer(lq_ctx *ctx, size_t rows, size_t cols, size_t n, uint64_t seed,
                            layer *L)
{
    L->rows = rows;
    L->cols = cols;
    L->n = n;
    L->W = malloc(rows * cols * sizeof *L->W);
    L->X = malloc(n * cols * sizeof *L->X);
    L->H = malloc(cols * cols * sizeof *L->H);
    float *U = malloc(cols * RANK * sizeof *U), *V = malloc(cols * RANK * sizeof *V);
    double *y = malloc(cols * sizeof *y);
    if (!L->W || !L->X || !L->H || !U || !V || !y) {
        free(U);
        free(V);
        free(y);
        return LQ_ERR_NO_MEMORY;
    }
    lq_rng r;
    lq_rng_init(&r, seed, 1);
    for (size_t c = 0; c < cols; c++) {
        double gain = exp(0.3 * lq_rng_gaussian(&r));
        for (size_t i = 0; i < rows; i++)
            L->W[i * cols + c] = (float)(0.02 * student_t4(&r) * gain);
    }
    lq_rng_init(&r, seed, 2);
    double inv = 1.0 / sqrt((double)cols);
    for (size_t i = 0; i < cols * RANK; i++) U[i] = (float)(lq_rng_gaussian(&r) * inv);
    for (size_t i = 0; i < cols * RANK; i++) V[i] = (float)(lq_rng_gaussian(&r) * inv);
    lq_rng_init(&r, seed, 3);
    for (size_t s = 0; s < n; s++) {
        double p[RANK] = {0};
        for (size_t c = 0; c < cols; c++) {
            y[c] = lq_rng_gaussian(&r) * (c % 32 == 5 ? 8.0 : 1.0);
            for (size_t k = 0; k < RANK; k++) p[k] += y[c] * U[c * RANK + k];
        }
        for (size_t c = 0; c < cols; c++) {
            double v = y[c];
            for (size_t k = 0; k < RANK; k++) v += p[k] * V[c * RANK + k];
            L->X[s * cols + c] = (float)v;
        }
    }
    free(U);
    free(V);
    free(y);
    lq_hessian *h;
    lq_status st = lq_hessian_create(ctx, cols, &h);
    if (st != LQ_OK) return st;
    st = lq_hessian_add(ctx, h, L->X, n, cols);
    if (st == LQ_OK) st = lq_hessian_get(h, L->H);
    lq_hessian_free(h);
    return st;
}

static void free_layer(layer *L)
{
    free(L->W);
    free(L->X);
    free(L->H);
}

static int save_layer(lq_ctx *ctx, const layer *L, const char *prefix)
{
    char path[1024];
    lq_tensor_desc d[3] = {
        {"layer.weight", LQ_DTYPE_F32, 2, {L->rows, L->cols}, L->W},
        {"layer_f16.weight", LQ_DTYPE_F16, 2, {L->rows, L->cols}, L->W},
        {"layer_bf16.weight", LQ_DTYPE_BF16, 2, {L->rows, L->cols}, L->W},
    };
    snprintf(path, sizeof path, "%s.safetensors", prefix);
    lq_status st = lq_safetensors_write(ctx, path, d, 3);
    if (st != LQ_OK) return lq_cli_fail(path, st);
    printf("wrote %s (layer.weight F32, layer_f16.weight F16, layer_bf16.weight BF16)\n", path);
    lq_tensor_desc h = {"hessian", LQ_DTYPE_F32, 2, {L->cols, L->cols}, L->H};
    snprintf(path, sizeof path, "%s.hessian.safetensors", prefix);
    if ((st = lq_safetensors_write(ctx, path, &h, 1)) != LQ_OK) return lq_cli_fail(path, st);
    printf("wrote %s (one %zu x %zu Hessian)\n", path, L->cols, L->cols);
    lq_tensor_desc x = {"x", LQ_DTYPE_F32, 2, {L->n, L->cols}, L->X};
    snprintf(path, sizeof path, "%s.calib.npy", prefix);
    if ((st = lq_npy_write(ctx, path, &x)) != LQ_OK) return lq_cli_fail(path, st);
    printf("wrote %s (%zu x %zu activations)\n", path, L->n, L->cols);
    return 0;
}

/* ---- timing --------------------------------------------------------------------- */

/* Median seconds per call of a matvec (7 batches of >= 10 ms each; the
 * median resists the noise of a shared machine). */
typedef struct mv_job {
    lq_ctx *ctx;
    const lq_qtensor *q; /* NULL: dense fp32 */
    const float *W, *x;
    float *y;
    size_t rows, cols;
} mv_job;

static void run_mv(const mv_job *j)
{
    if (j->q) {
        lq_matvec(j->ctx, j->q, j->x, j->y);
        return;
    }
    for (size_t r = 0; r < j->rows; r++) {
        const float *w = j->W + r * j->cols;
        float s = 0;
        for (size_t c = 0; c < j->cols; c++) s += w[c] * j->x[c];
        j->y[r] = s;
    }
}

static double time_mv(const mv_job *j)
{
    double t[7];
    size_t reps = 1;
    for (;;) { /* calibrate the batch size */
        double t0 = lq_cli_now();
        for (size_t i = 0; i < reps; i++) run_mv(j);
        double dt = lq_cli_now() - t0;
        if (dt > 0.01 || reps > (1u << 20)) break;
        reps *= 2;
    }
    for (int b = 0; b < 7; b++) {
        double t0 = lq_cli_now();
        for (size_t i = 0; i < reps; i++) run_mv(j);
        t[b] = (lq_cli_now() - t0) / (double)reps;
    }
    return lq_cli_median(t, 7);
}

/* ---- the run ------------------------------------------------------------------------ */

typedef struct row {
    const char *method;
    unsigned bits;
    lq_status st;
    double bpw, loss, rel, secs, mv;
} row;

int lq_demo_synthetic(int argc, char **argv)
{
    size_t rows = 256, cols = 512, n = 2048, seed = 1234, threads = 0;
    const char *save = NULL, *methods = NULL;
    int json = 0, synthetic = 0;
    const lq_opt opts[] = {
        {"synthetic", LQ_OPT_FLAG, "this demo (the default demo is the real model)", &synthetic},
        {"rows", LQ_OPT_SIZE, "output features (default 256)", &rows},
        {"cols", LQ_OPT_SIZE, "input features (default 512)", &cols},
        {"samples", LQ_OPT_SIZE, "calibration samples (default 2048)", &n},
        {"seed", LQ_OPT_SIZE, "generator and method seed (default 1234)", &seed},
        {"threads", LQ_OPT_SIZE, "threads (0: all physical cores)", &threads},
        {"methods", LQ_OPT_STR, "comma list of rows to run (default: all)", &methods},
        {"json", LQ_OPT_FLAG, "also print one JSON line", &json},
        {"save", LQ_OPT_STR,
         "write the layer to PREFIX.{safetensors,hessian.safetensors,"
         "calib.npy} and exit",
         &save},
    };
    int r = lq_cli_parse(argc, argv, "lq demo --synthetic [options]", opts,
                         sizeof opts / sizeof opts[0], NULL, 0, NULL);
    if (r <= 0) return r < 0 ? 2 : 0;
    if (rows == 0 || cols == 0 || n == 0 || rows > 65536 || cols > 65536 || n > (1u << 24)) {
        fprintf(stderr, "error: sizes must be in 1..65536 (samples 1..2^24)\n");
        return 2;
    }
    lq_ctx_config cfg;
    lq_ctx_config_init(&cfg);
    cfg.n_threads = threads;
    cfg.seed = seed;
    lq_ctx *ctx;
    lq_status st = lq_ctx_create(&cfg, &ctx);
    if (st != LQ_OK) return lq_cli_fail("context", st);
    layer L = {0};
    double t0 = lq_cli_now();
    st = make_layer(ctx, rows, cols, n, seed, &L);
    if (st != LQ_OK) {
        free_layer(&L);
        lq_ctx_destroy(ctx);
        return lq_cli_fail("building the layer", st);
    }
    if (save) {
        int rc = save_layer(ctx, &L, save);
        free_layer(&L);
        lq_ctx_destroy(ctx);
        return rc;
    }
    printf("lq demo: synthetic layer %zu x %zu (heavy-tailed weights, %zu correlated samples with "
           "outlier channels), seed %zu, %zu thread(s), %s kernels; built in %.2f s\n\n",
           rows, cols, n, seed, lq_ctx_threads(ctx), lq_simd_name(lq_ctx_simd(ctx)),
           lq_cli_now() - t0);
    float *What = malloc(rows * cols * sizeof *What), *x = malloc(cols * sizeof *x),
          *y = malloc(rows * sizeof *y);
    row *res = calloc(NDEMO * NBITS, sizeof *res);
    if (!What || !x || !y || !res) {
        free(What);
        free(x);
        free(y);
        free(res);
        free_layer(&L);
        lq_ctx_destroy(ctx);
        return lq_cli_fail("memory", LQ_ERR_NO_MEMORY);
    }
    memcpy(x, L.X, cols * sizeof *x);
    mv_job dense = {ctx, NULL, L.W, x, y, rows, cols};
    double mv_fp32 = time_mv(&dense);
    double ref[NBITS] = {0};
    size_t nres = 0;
    /* the registry's methods in its order, each with its demo rows; a
     * registered method without one is a failure of the demo */
    size_t order[NDEMO], norder = 0;
    for (size_t ri = 0; ri < lq_method_count(); ri++) {
        lq_method_info info;
        if (lq_method_get_info(ri, &info) != LQ_OK) break;
        size_t before = norder;
        for (size_t k = 0; k < NDEMO; k++)
            if (g_demo_methods[k].kind == info.kind) order[norder++] = k;
        if (norder == before) {
            fprintf(stderr, "lq demo: method %s has no demo configuration\n", info.name);
            free(What);
            free(x);
            free(y);
            free(res);
            free_layer(&L);
            lq_ctx_destroy(ctx);
            return 1;
        }
    }
    for (size_t oi = 0; oi < norder; oi++) {
        size_t mi = order[oi];
        const demo_method *dm = &g_demo_methods[mi];
        if (mi > 0 && !lq_cli_in_list(methods, dm->name)) continue;
        for (size_t bi = 0; bi < NBITS; bi++) {
            row *rw = &res[nres++];
            rw->method = dm->name;
            rw->bits = g_demo_bits[bi];
            lq_method m;
            lq_method_init(&m, dm->kind);
            dm->setup(&m, g_demo_bits[bi]);
            lq_qtensor *q = NULL;
            double ts = lq_cli_now();
            rw->st = lq_quantize(ctx, L.W, rows, cols, L.H, &m, &q, What);
            rw->secs = lq_cli_now() - ts;
            if (rw->st == LQ_OK) rw->st = lq_proxy_loss(ctx, L.W, What, rows, cols, L.H, &rw->loss);
            if (rw->st == LQ_OK) rw->st = lq_qtensor_bits_per_weight(q, &rw->bpw);
            if (rw->st == LQ_OK) {
                rw->rel = ref[bi] > 0 ? rw->loss / ref[bi] : 1.0;
                if (mi == 0) ref[bi] = rw->loss;
                mv_job j = {ctx, q, NULL, x, y, rows, cols};
                rw->mv = time_mv(&j);
            }
            lq_qtensor_free(q);
        }
    }
    printf("%-10s %5s %8s %18s %9s %11s %9s\n", "method", "bits", "bits/w", "proxy / INT-RTN",
           "quant s", "matvec us", "vs fp32");
    for (size_t i = 0; i < nres; i++) {
        const row *rw = &res[i];
        /* every method exists: an error is a failure of the run */
        if (rw->st != LQ_OK) {
            printf("%-10s %5u %8s %18s %9.2f %11s %9s   failed: %s\n", rw->method, rw->bits, "-",
                   "-", rw->secs, "-", "-", lq_status_str(rw->st));
        } else {
            printf("%-10s %5u %8.3f %18.3f %9.2f %11.1f %8.2fx\n", rw->method, rw->bits, rw->bpw,
                   rw->rel, rw->secs, rw->mv * 1e6, mv_fp32 / rw->mv);
        }
    }
    printf("\nproxy = tr((W - W_hat) H (W - W_hat)^T), relative to INT round-to-nearest (g128) at "
           "the same bits;\nmatvec: median time of lq_matvec on the codes; fp32 reference %.1f us "
           "(plain C loop); total %.1f s\n",
           mv_fp32 * 1e6, lq_cli_now() - t0);
    if (json) {
        printf("{\"demo\":{\"rows\":%zu,\"cols\":%zu,\"samples\":%zu,\"seed\":%zu,\"threads\":%zu,"
               "\"fp32_matvec_us\":%.3f},\"results\":[",
               rows, cols, n, seed, lq_ctx_threads(ctx), mv_fp32 * 1e6);
        for (size_t i = 0; i < nres; i++) {
            const row *rw = &res[i];
            printf("%s{\"method\":\"%s\",\"bits\":%u,\"status\":\"%s\"", i ? "," : "", rw->method,
                   rw->bits, rw->st == LQ_OK ? "ok" : lq_status_str(rw->st));
            if (rw->st == LQ_OK)
                printf(",\"bits_per_weight\":%.4f,\"proxy_loss\":%.6g,\"proxy_vs_int_rtn\":%.4f,"
                       "\"seconds\":%.3f,\"matvec_us\":%.3f",
                       rw->bpw, rw->loss, rw->rel, rw->secs, rw->mv * 1e6);
            printf("}");
        }
        printf("]}\n");
    }
    int failed = 0;
    for (size_t i = 0; i < nres; i++)
        if (res[i].st != LQ_OK) failed = 1;
    free(What);
    free(x);
    free(y);
    free(res);
    free_layer(&L);
    lq_ctx_destroy(ctx);
    return failed;
}
