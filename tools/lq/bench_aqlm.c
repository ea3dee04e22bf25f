/*
 * lq bench aqlm: the additive quantizer (AQLM, src/mcq).
 *
 * --mode layer: LQ_METHOD_AQLM on a synthetic rows x cols layer (default
 *   4096 x 4096) with correlated inputs, beside the other methods at about
 *   2 bits per weight on the same W and H (INT-GPTQ 2-bit g128, GPTVQ d=2
 *   4-bit indices, GPTQT k=2): seconds, proxy loss, bits per weight.
 * --mode mse: the plain-MSE encoder on n 8-dimensional vectors (i.i.d.
 *   Gaussian and weight-like Student-t), M = 2, B = 8: codebooks trained on
 *   a training set (residual k-means + rounds of beam search / least-squares
 *   updates), then the test set encoded by beam search from empty codes
 *   (exactly FAISS ResidualQuantizer's beam search): MSE per vector and
 *   encoding time with 1 and 2 threads. --export DIR writes the data
 *   (train_<kind>.f32, test_<kind>.f32) for bench/peers/faiss_aq.sh.
 *
 * Prints a table and one JSON line per measurement; times are medians of
 * --reps runs.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "core/internal.h"
#include "core/linalg.h"

static void student_t(float *x, size_t n, uint64_t seed, double scale)
{
    lq_rng r;
    lq_rng_init(&r, seed, 0);
    lq_cli_student_t(&r, x, n, scale);
}

static void gaussian(float *x, size_t n, uint64_t seed)
{
    lq_rng r;
    lq_rng_init(&r, seed, 0);
    for (size_t i = 0; i < n; i++) x[i] = (float)lq_rng_gaussian(&r);
}

/* Correlated layer as in lq bench gptvq: W Student-t (0.02), X = Z A,
 * H = 2/N X^T X. */
static lq_status make_layer(lq_ctx *ctx, size_t rows, size_t cols, size_t nsamples, float *W,
                            float *H)
{
    lq_rng r;
    lq_rng_init(&r, 7, 0);
    lq_cli_student_t(&r, W, rows * cols, 0.02);
    lq_rng_init(&r, 8, 0);
    return lq_cli_correlated_hessian(ctx, &r, cols, nsamples, H);
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

static lq_ctx *make_ctx(size_t threads)
{
    lq_ctx_config cfg;
    lq_ctx_config_init(&cfg);
    cfg.n_threads = threads;
    lq_ctx *ctx = NULL;
    return lq_ctx_create(&cfg, &ctx) == LQ_OK ? ctx : NULL;
}

/* ---- layer ---------------------------------------------------------------- */
static int bench_layer(size_t rows, size_t cols, size_t threads, unsigned beam, unsigned rounds,
                       size_t reps, const char *only)
{
    lq_ctx *ctx = make_ctx(threads);
    if (!ctx) return lq_cli_fail("context", LQ_ERR_NO_MEMORY);
    float *W = malloc(rows * cols * sizeof *W), *H = malloc(cols * cols * sizeof *H);
    double *t = malloc(2 * reps * sizeof *t), *tc = t ? t + reps : NULL;
    int rc = 1;
    lq_status st = LQ_ERR_NO_MEMORY;
    if (!W || !H || !t) goto done;
    st = make_layer(ctx, rows, cols, 2 * cols, W, H);
    if (st != LQ_OK) goto done;
    struct {
        const char *name;
        lq_method m;
    } ms[5];
    size_t nm = 0;
    lq_method_init(&ms[nm].m, LQ_METHOD_INT);
    ms[nm].m.u.int_.bits = 2;
    ms[nm].m.u.int_.group = 128;
    ms[nm++].name = "int2-gptq-g128";
    lq_method_init(&ms[nm].m, LQ_METHOD_AQLM);
    ms[nm].m.u.aqlm.beam = beam;
    ms[nm].m.u.aqlm.rounds = rounds;
    ms[nm++].name = "aqlm-2x8";
    lq_method_init(&ms[nm].m, LQ_METHOD_GPTVQ);
    ms[nm].m.u.gptvq.dim = 2;
    ms[nm].m.u.gptvq.index_bits = 4;
    ms[nm++].name = "gptvq-2d-4b";
    lq_method_init(&ms[nm].m, LQ_METHOD_GPTQT);
    ms[nm].m.u.bcq.k = 2;
    ms[nm++].name = "gptqt-k2";
    printf("%-16s %-10s %-8s %-14s %-12s %-8s %-8s\n", "method", "layer", "bpw", "proxy_loss",
           "loss/int2", "seconds", "cpu_s");
    double loss_int = NAN;
    for (size_t q = 0; q < nm; q++) {
        if (only && !strstr(ms[q].name, only) && q != 0) continue;
        double loss = NAN, bpw = NAN;
        lq_status sq = LQ_OK;
        for (size_t i = 0; i < reps && sq == LQ_OK; i++) {
            lq_qtensor *qt = NULL;
            lq_quant_report rep;
            double t0 = lq_cli_now(), c0 = lq_cli_cpu_now();
            sq = lq_quantize_ex(ctx, W, rows, cols, H, &ms[q].m, &qt, NULL, &rep);
            t[i] = lq_cli_now() - t0;
            tc[i] = lq_cli_cpu_now() - c0;
            if (sq == LQ_OK) {
                loss = rep.proxy_loss;
                lq_qtensor_bits_per_weight(qt, &bpw);
            }
            lq_qtensor_free(qt);
        }
        if (sq != LQ_OK) {
            printf("%-16s %zux%zu   %s\n", ms[q].name, rows, cols, lq_status_str(sq));
            continue;
        }
        double sec = lq_cli_median(t, reps), csec = lq_cli_median(tc, reps);
        if (q == 0) loss_int = loss;
        printf("%-16s %zux%-5zu %-8.4f %-14.6g %-12.4f %-8.2f %-8.2f\n", ms[q].name, rows, cols,
               bpw, loss, loss / loss_int, sec, csec);
        printf("{\"bench\":\"aqlm\",\"mode\":\"layer\",\"method\":\"%s\",\"rows\":%zu,\"cols\":%zu,"
               "\"threads\":%zu,\"beam\":%u,\"rounds\":%u,\"bpw\":%.5f,\"proxy_loss\":%.9g,"
               "\"loss_over_int2\":%.5f,\"seconds_median\":%.4f,\"cpu_seconds_median\":%.4f,"
               "\"reps\":%zu}\n",
               ms[q].name, rows, cols, lq_ctx_threads(ctx), beam, rounds, bpw, loss,
               loss / loss_int, sec, csec, reps);
        fflush(stdout);
    }
    rc = 0;
done:
    if (rc) lq_cli_fail("layer", st);
    free(W);
    free(H);
    free(t);
    lq_ctx_destroy(ctx);
    return rc;
}

/* ---- plain-MSE encoder ------------------------------------------------------ */
static double mse_of(const float *x, size_t n, const lq_aq_params *p, const float *C,
                     const uint16_t *codes, float *y)
{
    lq_aq_decode(p, n, 8, C, codes, NULL, y);
    double s = 0;
    for (size_t i = 0; i < n * 8; i++) s += ((double)x[i] - y[i]) * ((double)x[i] - y[i]);
    return s / (double)n;
}

static int bench_mse(size_t ntrain, size_t ntest, unsigned beam, unsigned rounds, size_t reps,
                     const char *exp)
{
    const lq_aq_params p = {2, 8, 8};
    float *xtr = malloc(ntrain * 8 * sizeof(float)), *xte = malloc(ntest * 8 * sizeof(float));
    float *y = malloc(ntest * 8 * sizeof(float)), *C = malloc(2 * 256 * 8 * sizeof(float));
    uint16_t *ctr = malloc(ntrain * 2 * sizeof(uint16_t)),
             *cte = malloc(ntest * 2 * sizeof(uint16_t));
    double *t = malloc(2 * reps * sizeof *t), *tc = t + reps;
    lq_ctx *c1 = make_ctx(1), *c2 = make_ctx(2);
    int rc = 1;
    if (!xtr || !xte || !y || !C || !ctr || !cte || !t || !c1 || !c2) {
        lq_cli_fail("mse", LQ_ERR_NO_MEMORY);
        goto done;
    }
    printf("%-8s %-8s %-5s %-7s %-9s %-12s %-12s %-12s %-10s %-10s\n", "data", "ntest", "beam",
           "threads", "train_s", "mse_train", "mse_test", "mse_+sweep", "encode_s", "enc_cpu_s");
    for (int kind = 0; kind < 2; kind++) {
        const char *kn = kind ? "weights" : "gauss";
        if (kind) {
            student_t(xtr, ntrain * 8, 101, 1.0);
            student_t(xte, ntest * 8, 102, 1.0);
        } else {
            gaussian(xtr, ntrain * 8, 201);
            gaussian(xte, ntest * 8, 202);
        }
        if (exp) {
            char a[64], b[64];
            snprintf(a, sizeof a, "train_%s.f32", kn);
            snprintf(b, sizeof b, "test_%s.f32", kn);
            if (write_raw(exp, a, xtr, ntrain * 8) || write_raw(exp, b, xte, ntest * 8)) {
                fprintf(stderr, "error: cannot write to %s\n", exp);
                goto done;
            }
        }
        lq_aq_fit_opts fo = {beam, rounds, 25, 16, 0};
        double t0 = lq_cli_now();
        lq_status st = lq_aq_fit(c2, xtr, ntrain, 8, NULL, &p, &fo, C, ctr, NULL, NULL);
        double ttrain = lq_cli_now() - t0;
        if (st != LQ_OK) {
            lq_cli_fail("fit", st);
            goto done;
        }
        double mtr = mse_of(xtr, ntrain, &p, C, ctr, y);
        if (exp) {
            char a[64];
            snprintf(a, sizeof a, "codebooks_%s.f32", kn);
            write_raw(exp, a, C, 2 * 256 * 8);
        }
        unsigned beams[2] = {1, beam};
        for (int bi = 0; bi < 2; bi++) {
            if (bi == 1 && beam == 1) break;
            for (int th = 1; th <= 2; th++) {
                lq_ctx *ctx = th == 1 ? c1 : c2;
                for (size_t i = 0; i < reps; i++) {
                    t0 = lq_cli_now();
                    double c0 = lq_cli_cpu_now();
                    st = lq_aq_encode(ctx, xte, ntest, 8, NULL, &p, C, NULL, beams[bi], 0, cte,
                                      NULL);
                    tc[i] = lq_cli_cpu_now() - c0;
                    t[i] = lq_cli_now() - t0;
                    if (st != LQ_OK) {
                        lq_cli_fail("encode", st);
                        goto done;
                    }
                }
                double sec = lq_cli_median(t, reps), csec = lq_cli_median(tc, reps);
                double mte = mse_of(xte, ntest, &p, C, cte, y);
                /* one more warm sweep (replace codes one at a time) */
                st = lq_aq_encode(ctx, xte, ntest, 8, NULL, &p, C, NULL, beams[bi], 1, cte, NULL);
                double msw = st == LQ_OK ? mse_of(xte, ntest, &p, C, cte, y) : NAN;
                printf("%-8s %-8zu %-5u %-7d %-9.3f %-12.6g %-12.6g %-12.6g %-10.4f %-10.4f\n", kn,
                       ntest, beams[bi], th, ttrain, mtr, mte, msw, sec, csec);
                printf("{\"bench\":\"aqlm\",\"mode\":\"mse\",\"data\":\"%s\",\"M\":2,\"B\":8,"
                       "\"ntrain\":%zu,\"ntest\":%zu,\"beam\":%u,\"threads\":%d,"
                       "\"train_seconds\":%.4f,\"mse_train\":%.9g,\"mse_test\":%.9g,"
                       "\"mse_test_plus_sweep\":%.9g,\"encode_seconds_median\":%.5f,"
                       "\"encode_cpu_seconds_median\":%.5f,\"reps\":%zu}\n",
                       kn, ntrain, ntest, beams[bi], th, ttrain, mtr, mte, msw, sec, csec, reps);
                fflush(stdout);
            }
        }
    }
    rc = 0;
done:
    free(xtr);
    free(xte);
    free(y);
    free(C);
    free(ctr);
    free(cte);
    free(t);
    lq_ctx_destroy(c1);
    lq_ctx_destroy(c2);
    return rc;
}

int lq_bench_aqlm(int argc, char **argv)
{
    size_t rows = 4096, cols = 4096, threads = 0, reps = 1, beam = 8, rounds = 2;
    size_t ntrain = 65536, ntest = 100000, mreps = 5;
    const char *mode = "all", *exp = NULL, *only = NULL;
    const lq_opt opts[] = {
        {"mode", LQ_OPT_STR, "layer | mse | all (default all)", &mode},
        {"rows", LQ_OPT_SIZE, "layer rows (default 4096)", &rows},
        {"cols", LQ_OPT_SIZE, "layer cols (default 4096)", &cols},
        {"threads", LQ_OPT_SIZE, "threads for the layer (default: all cores)", &threads},
        {"beam", LQ_OPT_SIZE, "beam size (default 8)", &beam},
        {"rounds", LQ_OPT_SIZE, "AQLM rounds on the layer / training rounds (default 2)", &rounds},
        {"reps", LQ_OPT_SIZE, "layer repetitions, median (default 1)", &reps},
        {"only", LQ_OPT_STR, "layer: run only methods whose name contains this (+ int2)", &only},
        {"ntrain", LQ_OPT_SIZE, "mse: training vectors (default 65536)", &ntrain},
        {"ntest", LQ_OPT_SIZE, "mse: test vectors (default 100000)", &ntest},
        {"mreps", LQ_OPT_SIZE, "mse: encode repetitions, median (default 5)", &mreps},
        {"export", LQ_OPT_STR, "mse: directory for the data (FAISS peer input)", &exp},
    };
    int pr = lq_cli_parse(argc, argv, "lq bench aqlm [options]", opts, sizeof opts / sizeof opts[0],
                          NULL, 0, NULL);
    if (pr <= 0) return pr == 0 ? 0 : 2;
    if (rows == 0 || cols == 0 || cols % 8 || beam == 0 || beam > 256 || reps == 0 ||
        ntrain < 256 || ntest == 0 || mreps == 0 || rounds > 100) {
        fprintf(stderr, "error: bad sizes\n");
        return 2;
    }
    int rc = 0;
    if (!strcmp(mode, "mse") || !strcmp(mode, "all"))
        rc |= bench_mse(ntrain, ntest, (unsigned)beam, (unsigned)rounds, mreps, exp);
    if (!strcmp(mode, "layer") || !strcmp(mode, "all"))
        rc |= bench_layer(rows, cols, threads, (unsigned)beam, (unsigned)rounds, reps, only);
    if (strcmp(mode, "mse") && strcmp(mode, "layer") && strcmp(mode, "all")) {
        fprintf(stderr, "error: --mode layer|mse|all\n");
        return 2;
    }
    return rc;
}
