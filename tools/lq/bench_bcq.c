/*
 * lq bench bcq: proxy loss tr((W - W_hat) H (W - W_hat)^T) and seconds of
 * GPTQT (LQ_METHOD_GPTQT through the engine) beside INT-GPTQ at the same
 * bits (LQ_METHOD_INT, asymmetric, same group), BCQ through the engine
 * without the linear step, and BCQ round-to-nearest, at 2 and 3 bits, on
 * one synthetic layer. Prints a table and one JSON line; loss ratios are
 * against BCQ round-to-nearest and INT-GPTQ measured in the same run.
 * Seconds are wall time (median over --reps); cpu is the process CPU time
 * of the same runs (all threads), which a loaded machine disturbs less.
 *
 * Layer (as lq bench gptq): W rows x cols heavy-tailed (Student-t, 4
 * degrees of freedom, scale 0.02), X = Z A (nsamples x cols), Z Gaussian
 * with every 7th feature 4x larger, A = 0.3 I + G / sqrt(cols), H = 2/N X^T X.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "core/linalg.h"

typedef struct bcq_row {
    const char *name;
    unsigned bits;
    double bpw, loss, seconds, cpu;
} bcq_row;

enum { M_GPTQT, M_INT, M_BCQ_ENGINE, M_BCQ_RTN, M_COUNT };
static const char *const g_names[M_COUNT] = {"gptqt", "int-gptq", "bcq-engine", "bcq-rtn"};

static void set_method(lq_method *m, int which, unsigned bits, size_t group)
{
    switch (which) {
    case M_INT:
        lq_method_init(m, LQ_METHOD_INT);
        m->u.int_.bits = bits;
        m->u.int_.group = group;
        return;
    case M_GPTQT: lq_method_init(m, LQ_METHOD_GPTQT); break;
    default:
        lq_method_init(m, LQ_METHOD_BCQ);
        m->engine.rtn = which == M_BCQ_RTN;
        break;
    }
    m->u.bcq.k = bits;
    m->u.bcq.group = group;
}

int lq_bench_bcq(int argc, char **argv)
{
    size_t rows = 4096, cols = 4096, group = 128, threads = 0, reps = 1, nsamples = 0, bits = 0;
    const lq_opt opts[] = {
        {"rows", LQ_OPT_SIZE, "output features (default 4096)", &rows},
        {"cols", LQ_OPT_SIZE, "input features (default 4096)", &cols},
        {"bits", LQ_OPT_SIZE, "bits / binary planes 2..8; 0 = both 2 and 3 (default)", &bits},
        {"group", LQ_OPT_SIZE, "columns per alpha set / scale, 0 = row (default 128)", &group},
        {"threads", LQ_OPT_SIZE, "threads (default: all cores)", &threads},
        {"reps", LQ_OPT_SIZE, "timed repetitions, median reported (default 1)", &reps},
        {"nsamples", LQ_OPT_SIZE, "calibration samples (default cols)", &nsamples},
    };
    int pr = lq_cli_parse(argc, argv, "lq bench bcq [options]", opts, sizeof opts / sizeof opts[0],
                          NULL, 0, NULL);
    if (pr <= 0) return pr == 0 ? 0 : 2;
    if (rows == 0 || cols == 0 || reps == 0 || reps > 100 ||
        (bits != 0 && (bits < 2 || bits > 8))) {
        fprintf(stderr, "error: bad sizes, bits or reps\n");
        return 2;
    }
    if (nsamples == 0) nsamples = cols;
    unsigned blist[2] = {2, 3}, nb = 2;
    if (bits) {
        blist[0] = (unsigned)bits;
        nb = 1;
    }
    lq_ctx_config cfg;
    lq_ctx_config_init(&cfg);
    cfg.n_threads = threads;
    lq_ctx *ctx = NULL;
    lq_status st = lq_ctx_create(&cfg, &ctx);
    if (st != LQ_OK) return lq_cli_fail("context", st);
    float *W = malloc(rows * cols * sizeof *W), *H = malloc(cols * cols * sizeof *H);
    float *Q = malloc(rows * cols * sizeof *Q);
    double *times = malloc(reps * sizeof *times), *cpus = malloc(reps * sizeof *cpus);
    bcq_row res[2 * M_COUNT];
    size_t nres = 0;
    int rc = 1;
    if (!W || !H || !Q || !times || !cpus) {
        st = LQ_ERR_NO_MEMORY;
        goto fail;
    }
    double t0 = lq_cli_now();
    st = lq_cli_bench_layer(ctx, rows, cols, nsamples, W, H);
    if (st != LQ_OK) goto fail;
    fprintf(stderr, "layer %zu x %zu, %zu samples: %.1f s; %zu thread(s)\n", rows, cols, nsamples,
            lq_cli_now() - t0, lq_ctx_threads(ctx));
    for (unsigned b = 0; b < nb; b++)
        for (int which = 0; which < M_COUNT; which++) {
            lq_method m;
            set_method(&m, which, blist[b], group);
            lq_qtensor *t = NULL;
            for (size_t i = 0; i < reps; i++) {
                lq_qtensor_free(t);
                t = NULL;
                t0 = lq_cli_now();
                clock_t c0 = clock();
                st = lq_quantize(ctx, W, rows, cols, H, &m, &t, Q);
                cpus[i] = (double)(clock() - c0) / CLOCKS_PER_SEC;
                times[i] = lq_cli_now() - t0;
                if (st != LQ_OK) goto fail;
            }
            bcq_row *r = &res[nres++];
            r->name = g_names[which];
            r->bits = blist[b];
            lq_qtensor_bits_per_weight(t, &r->bpw);
            lq_qtensor_free(t);
            st = lq_proxy_loss(ctx, W, Q, rows, cols, H, &r->loss);
            if (st != LQ_OK) goto fail;
            r->seconds = lq_cli_median(times, reps);
            r->cpu = lq_cli_median(cpus, reps);
            fprintf(stderr, "  %-10s %u bits: loss %.6g, %.2f s (cpu %.2f s)\n", r->name, r->bits,
                    r->loss, r->seconds, r->cpu);
        }
    printf("%-11s %4s %7s %13s %9s %9s %9s %9s\n", "method", "bits", "bpw", "proxy loss",
           "/bcq-rtn", "/int-gptq", "seconds", "cpu s");
    for (size_t i = 0; i < nres; i++) {
        const bcq_row *base = &res[i - i % M_COUNT];
        printf("%-11s %4u %7.3f %13.6g %9.4f %9.4f %9.2f %9.2f\n", res[i].name, res[i].bits,
               res[i].bpw, res[i].loss, res[i].loss / base[M_BCQ_RTN].loss,
               res[i].loss / base[M_INT].loss, res[i].seconds, res[i].cpu);
    }
    printf("{\"bench\":\"bcq\",\"rows\":%zu,\"cols\":%zu,\"group\":%zu,\"nsamples\":%zu,"
           "\"threads\":%zu,\"reps\":%zu,\"results\":[",
           rows, cols, group, nsamples, lq_ctx_threads(ctx), reps);
    for (size_t i = 0; i < nres; i++)
        printf("%s{\"method\":\"%s\",\"bits\":%u,\"bpw\":%.4f,\"proxy_loss\":%.8g,"
               "\"seconds\":%.4f,\"cpu_seconds\":%.4f}",
               i ? "," : "", res[i].name, res[i].bits, res[i].bpw, res[i].loss, res[i].seconds,
               res[i].cpu);
    printf("]}\n");
    rc = 0;
fail:
    if (rc) lq_cli_fail("bench bcq", st);
    free(W);
    free(H);
    free(Q);
    free(times);
    free(cpus);
    lq_ctx_destroy(ctx);
    return rc;
}
