/*
 * lq bench kmeans: Lloyd k-means (lq_kmeans) on n points of dimension d,
 * k centroids, a fixed number of iterations from given initial centroids
 * (k distinct data points drawn with a fixed seed), so that the FAISS peer
 * (bench/peers/faiss_kmeans.sh) can start from the very same centroids on
 * the very same data (--export DIR writes x.f32 and init.f32).
 *
 * lq bench gptvq: GPTVQ (LQ_METHOD_GPTVQ) on a synthetic rows x cols layer
 * with correlated inputs at the paper's 2.125 and 3.125 bpw settings,
 * beside INT-GPTQ at 2 and 3 bits (groups of 128: 2.156 / 3.156 bpw) on the
 * same layer: seconds, proxy loss, bits per weight.
 *
 * Both print a table and one JSON line; times are medians of --reps runs.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <time.h>

#include "cli.h"
#include "core/internal.h"
#include "core/linalg.h"

/* Data: iid Student-t (4 dof) coordinates, scale 0.02, like LLM weights
 * grouped in d-vectors (what GPTVQ clusters). */
static void make_points(float *x, size_t n, uint64_t seed)
{
    lq_rng r;
    lq_rng_init(&r, seed, 0);
    lq_cli_student_t(&r, x, n, 0.02);
}

static int write_raw(const char *dir, const char *name, const float *a, size_t n)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(a, sizeof *a, n, f);
    return fclose(f) == 0 && w == n ? 0 : -1;
}

int lq_bench_kmeans(int argc, char **argv)
{
    size_t n = 1000000, d = 8, k = 256, iters = 20, threads = 0, reps = 3;
    const char *exp = NULL, *init = "given";
    const lq_opt opts[] = {
        {"n", LQ_OPT_SIZE, "points (default 1000000)", &n},
        {"d", LQ_OPT_SIZE, "dimension (default 8)", &d},
        {"k", LQ_OPT_SIZE, "centroids (default 256)", &k},
        {"iters", LQ_OPT_SIZE, "Lloyd iterations (default 20)", &iters},
        {"threads", LQ_OPT_SIZE, "threads (default: all cores)", &threads},
        {"reps", LQ_OPT_SIZE, "timed repetitions, median reported (default 3)", &reps},
        {"init", LQ_OPT_STR, "given (k random data points, as the peer) | random | plusplus",
         &init},
        {"export", LQ_OPT_STR, "directory for x.f32 and init.f32 (FAISS peer input)", &exp},
    };
    int pr = lq_cli_parse(argc, argv, "lq bench kmeans [options]", opts,
                          sizeof opts / sizeof opts[0], NULL, 0, NULL);
    if (pr <= 0) return pr == 0 ? 0 : 2;
    lq_kmeans_init mode = LQ_KMEANS_GIVEN;
    if (!strcmp(init, "random"))
        mode = LQ_KMEANS_RANDOM;
    else if (!strcmp(init, "plusplus"))
        mode = LQ_KMEANS_PLUSPLUS;
    else if (strcmp(init, "given")) {
        fprintf(stderr, "error: --init given|random|plusplus\n");
        return 2;
    }
    if (n == 0 || d == 0 || k == 0 || k > n || iters == 0 || reps == 0 || iters > 100000) {
        fprintf(stderr, "error: bad sizes\n");
        return 2;
    }
    lq_ctx_config cfg;
    lq_ctx_config_init(&cfg);
    cfg.n_threads = threads;
    lq_ctx *ctx = NULL;
    lq_status st = lq_ctx_create(&cfg, &ctx);
    if (st != LQ_OK) return lq_cli_fail("context", st);
    float *x = malloc(n * d * sizeof *x), *c0 = malloc(k * d * sizeof *c0);
    float *c = malloc(k * d * sizeof *c);
    double *times = malloc(reps * sizeof *times), *trace = malloc(iters * sizeof *trace);
    double *cpu = malloc(reps * sizeof *cpu);
    uint8_t *taken = calloc(n / 8 + 1, 1);
    int rc = 1;
    if (!x || !c0 || !c || !times || !trace || !taken || !cpu) {
        st = LQ_ERR_NO_MEMORY;
        goto fail;
    }
    make_points(x, n * d, 11);
    /* k distinct points (Floyd), fixed seed: the shared initial centroids */
    lq_rng r;
    lq_rng_init(&r, 12, 0);
    for (size_t j = n - k, q = 0; j < n; j++, q++) {
        size_t t = (size_t)lq_rng_below(&r, (uint64_t)j + 1);
        if (taken[t >> 3] & (1u << (t & 7))) t = j;
        taken[t >> 3] |= (uint8_t)(1u << (t & 7));
        memcpy(c0 + q * d, x + t * d, d * sizeof(float));
    }
    if (exp && (write_raw(exp, "x.f32", x, n * d) || write_raw(exp, "init.f32", c0, k * d))) {
        fprintf(stderr, "error: cannot write to %s\n", exp);
        goto fail;
    }
    lq_kmeans_opts o;
    lq_kmeans_opts_init(&o);
    o.init = mode;
    o.max_iter = (unsigned)iters;
    o.tol = 0;
    o.inertia_trace = trace;
    double inertia = 0;
    for (size_t i = 0; i < reps; i++) {
        memcpy(c, c0, k * d * sizeof *c);
        double t0 = lq_cli_now(), u0 = lq_cli_cpu_now();
        st = lq_kmeans(ctx, x, NULL, n, d, k, &o, c, NULL, &inertia);
        times[i] = lq_cli_now() - t0;
        cpu[i] = lq_cli_cpu_now() - u0;
        if (st != LQ_OK) goto fail;
    }
    double med = lq_cli_median(times, reps), cmed = lq_cli_median(cpu, reps);
    size_t nt = lq_ctx_threads(ctx);
    const char *simd = lq_simd_name(lq_ctx_simd(ctx));
    int gemm = !(d == 1 || d == 2 || d == 4 || d == 8) && k * d >= 256;
    printf("%-8s %-4s %-5s %-6s %-7s %-7s %-7s %-9s %-9s %-16s %-16s\n", "n", "d", "k", "iters",
           "threads", "simd", "path", "wall s", "cpu s", "inertia@iter", "final inertia");
    printf("%-8zu %-4zu %-5zu %-6zu %-7zu %-7s %-7s %-9.3f %-9.3f %-16.9g %-16.9g\n", n, d, k,
           iters, nt, simd, gemm ? "gemm" : "direct", med, cmed, trace[iters - 1], inertia);
    printf("{\"bench\":\"kmeans\",\"n\":%zu,\"d\":%zu,\"k\":%zu,\"iters\":%zu,\"threads\":%zu,"
           "\"simd\":\"%s\",\"init\":\"%s\",\"path\":\"%s\",\"seconds_median\":%.6f,"
           "\"cpu_seconds_median\":%.6f,\"reps\":%zu,"
           "\"inertia_last_iter\":%.12g,\"inertia_final\":%.12g}\n",
           n, d, k, iters, nt, simd, init, gemm ? "gemm" : "direct", med, cmed, reps,
           trace[iters - 1], inertia);
    rc = 0;
fail:
    if (st != LQ_OK) lq_cli_fail("kmeans", st);
    free(x);
    free(c0);
    free(c);
    free(times);
    free(cpu);
    free(trace);
    free(taken);
    lq_ctx_destroy(ctx);
    return rc;
}

/* ---- GPTVQ vs INT-GPTQ ------------------------------------------------------ */

/* Correlated layer: W Student-t (scale 0.02), X = Z A with Z Gaussian (every
 * 7th feature 4x larger), A = 0.3 I + G / sqrt(cols), H = 2/N X^T X. */
static lq_status make_layer(lq_ctx *ctx, size_t rows, size_t cols, size_t nsamples, float *W,
                            float *H)
{
    lq_rng r;
    lq_rng_init(&r, 7, 0);
    lq_cli_student_t(&r, W, rows * cols, 0.02);
    lq_rng_init(&r, 8, 0);
    return lq_cli_correlated_hessian(ctx, &r, cols, nsamples, H);
}

typedef struct gv_row {
    const char *name;
    double bpw, loss, sec;
} gv_row;

static lq_status time_method(lq_ctx *ctx, const float *W, size_t rows, size_t cols, const float *H,
                             const lq_method *m, size_t reps, gv_row *row)
{
    double *t = malloc(reps * sizeof *t);
    if (!t) return LQ_ERR_NO_MEMORY;
    lq_status st = LQ_OK;
    for (size_t i = 0; i < reps && st == LQ_OK; i++) {
        lq_qtensor *q = NULL;
        lq_quant_report rep;
        double t0 = lq_cli_now();
        st = lq_quantize_ex(ctx, W, rows, cols, H, m, &q, NULL, i == 0 ? &rep : NULL);
        t[i] = lq_cli_now() - t0;
        if (st == LQ_OK && i == 0) {
            row->loss = rep.proxy_loss;
            lq_qtensor_bits_per_weight(q, &row->bpw);
        }
        lq_qtensor_free(q);
    }
    /* the first run also computes the proxy loss: time only the others when
     * there are several */
    if (st == LQ_OK) row->sec = reps > 1 ? lq_cli_median(t + 1, reps - 1) : t[0];
    free(t);
    return st;
}

int lq_bench_gptvq(int argc, char **argv)
{
    size_t rows = 4096, cols = 4096, nsamples = 0, threads = 0, reps = 1, em = 10;
    const lq_opt opts[] = {
        {"rows", LQ_OPT_SIZE, "output features (default 4096)", &rows},
        {"cols", LQ_OPT_SIZE, "input features (default 4096)", &cols},
        {"nsamples", LQ_OPT_SIZE, "calibration samples (default cols)", &nsamples},
        {"threads", LQ_OPT_SIZE, "threads (default: all cores)", &threads},
        {"reps", LQ_OPT_SIZE, "runs; >1: the first (with loss) is not timed (default 1)", &reps},
        {"em-iters", LQ_OPT_SIZE, "GPTVQ EM iterations (default 10)", &em},
    };
    int pr = lq_cli_parse(argc, argv, "lq bench gptvq [options]", opts,
                          sizeof opts / sizeof opts[0], NULL, 0, NULL);
    if (pr <= 0) return pr == 0 ? 0 : 2;
    if (rows == 0 || cols == 0 || cols % 2 || reps == 0 || em == 0) {
        fprintf(stderr, "error: bad sizes\n");
        return 2;
    }
    if (nsamples == 0) nsamples = cols;
    lq_ctx_config cfg;
    lq_ctx_config_init(&cfg);
    cfg.n_threads = threads;
    lq_ctx *ctx = NULL;
    lq_status st = lq_ctx_create(&cfg, &ctx);
    if (st != LQ_OK) return lq_cli_fail("context", st);
    float *W = malloc(rows * cols * sizeof *W), *H = malloc(cols * cols * sizeof *H);
    gv_row res[4];
    int rc = 1;
    if (!W || !H) {
        st = LQ_ERR_NO_MEMORY;
        goto fail;
    }
    double t0 = lq_cli_now();
    if ((st = make_layer(ctx, rows, cols, nsamples, W, H)) != LQ_OK) goto fail;
    fprintf(stderr, "layer %zu x %zu, %zu samples: %.1f s\n", rows, cols, nsamples,
            lq_cli_now() - t0);
    for (int s = 0; s < 2; s++) {
        lq_method m;
        lq_method_init(&m, LQ_METHOD_GPTVQ);
        m.u.gptvq.index_bits = s ? 6 : 4;
        m.u.gptvq.group_rows = s ? 64 : 16;
        m.u.gptvq.em_iters = (unsigned)em;
        res[2 * s].name = s ? "gptvq-3.125" : "gptvq-2.125";
        if ((st = time_method(ctx, W, rows, cols, H, &m, reps, &res[2 * s])) != LQ_OK) goto fail;
        lq_method mi;
        lq_method_init(&mi, LQ_METHOD_INT);
        mi.u.int_.bits = s ? 3 : 2;
        mi.u.int_.group = 128;
        res[2 * s + 1].name = s ? "int3-g128" : "int2-g128";
        if ((st = time_method(ctx, W, rows, cols, H, &mi, reps, &res[2 * s + 1])) != LQ_OK)
            goto fail;
    }
    printf("%-12s %-8s %-10s %-14s %-12s\n", "method", "bpw", "seconds", "proxy loss",
           "loss / INT");
    for (int i = 0; i < 4; i++)
        printf("%-12s %-8.4f %-10.2f %-14.6g %-12.3f\n", res[i].name, res[i].bpw, res[i].sec,
               res[i].loss, res[i].loss / res[i | 1].loss);
    printf("{\"bench\":\"gptvq\",\"rows\":%zu,\"cols\":%zu,\"nsamples\":%zu,\"threads\":%zu,"
           "\"results\":[",
           rows, cols, nsamples, lq_ctx_threads(ctx));
    for (int i = 0; i < 4; i++)
        printf("%s{\"method\":\"%s\",\"bpw\":%.6f,\"seconds\":%.4f,\"proxy_loss\":%.9g}",
               i ? "," : "", res[i].name, res[i].bpw, res[i].sec, res[i].loss);
    printf("]}\n");
    rc = 0;
fail:
    if (st != LQ_OK) lq_cli_fail("gptvq", st);
    free(W);
    free(H);
    lq_ctx_destroy(ctx);
    return rc;
}
