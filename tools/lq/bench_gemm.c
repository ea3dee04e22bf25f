/*
 * lq bench gemm: GFLOP/s of the library's sgemm (or dgemm) on n x n x n
 * products, 1 and 2 threads by default. Prints a table and one JSON line.
 * The OpenBLAS comparison is bench/peers/run_gemm_peer.sh (same sizes, same
 * timing rule: median of --reps runs after one warm-up).
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "core/linalg.h"

typedef struct gemm_result {
    size_t n, threads;
    double seconds, gflops;
    double cpu_gflops; /* flops per second of process CPU time (all threads) */
} gemm_result;

/* Process CPU time: on a shared machine wall time includes the time other
 * processes held the cores; flops per CPU-second is the per-core efficiency
 * (it does not show threading speed-ups). */
static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static const size_t g_default_n[] = {512, 1024, 2048, 4096};

static lq_simd_level parse_simd(const char *s)
{
    if (!s) return LQ_SIMD_AUTO;
    if (!strcmp(s, "scalar")) return LQ_SIMD_SCALAR;
    if (!strcmp(s, "avx2")) return LQ_SIMD_AVX2;
    if (!strcmp(s, "avx512")) return LQ_SIMD_AVX512;
    return (lq_simd_level)-1;
}

static lq_status time_one(size_t n, size_t threads, lq_simd_level cap, int dbl, lq_trans ta,
                          lq_trans tb, size_t reps, gemm_result *out)
{
    lq_ctx_config cfg;
    lq_ctx_config_init(&cfg);
    cfg.n_threads = threads;
    cfg.simd_cap = cap;
    lq_ctx *ctx = NULL;
    lq_status st = lq_ctx_create(&cfg, &ctx);
    if (st != LQ_OK) return st;
    size_t esz = dbl ? sizeof(double) : sizeof(float);
    void *A = malloc(n * n * esz), *B = malloc(n * n * esz), *C = malloc(n * n * esz);
    double *times = malloc((reps + 1) * sizeof *times);
    double *cpu = malloc((reps + 1) * sizeof *cpu);
    if (!A || !B || !C || !times || !cpu) {
        st = LQ_ERR_NO_MEMORY;
        goto done;
    }
    lq_rng r;
    lq_rng_init(&r, 1, 0);
    for (size_t i = 0; i < n * n; i++) {
        double a = lq_rng_uniform(&r) - 0.5, b = lq_rng_uniform(&r) - 0.5;
        if (dbl) {
            ((double *)A)[i] = a;
            ((double *)B)[i] = b;
        } else {
            ((float *)A)[i] = (float)a;
            ((float *)B)[i] = (float)b;
        }
    }
    for (size_t rep = 0; rep <= reps; rep++) { /* rep 0: warm-up */
        double t0 = lq_cli_now(), c0 = cpu_now();
        st = dbl ? lq_dgemm(ctx, ta, tb, n, n, n, 1.0, A, n, B, n, 0.0, C, n)
                 : lq_sgemm(ctx, ta, tb, n, n, n, 1.0f, A, n, B, n, 0.0f, C, n);
        if (st != LQ_OK) goto done;
        times[rep] = lq_cli_now() - t0;
        cpu[rep] = cpu_now() - c0;
    }
    out->n = n;
    out->threads = threads;
    out->seconds = lq_cli_median(times + 1, reps);
    out->gflops = 2.0 * (double)n * (double)n * (double)n / out->seconds * 1e-9;
    out->cpu_gflops = 2.0 * (double)n * (double)n * (double)n / lq_cli_median(cpu + 1, reps) * 1e-9;
done:
    free(A);
    free(B);
    free(C);
    free(times);
    free(cpu);
    lq_ctx_destroy(ctx);
    return st;
}

int lq_bench_gemm(int argc, char **argv)
{
    size_t n = 0, threads = 0, reps = 5;
    const char *simd = NULL, *trans = "NN";
    int dbl = 0;
    const lq_opt opts[] = {
        {"n", LQ_OPT_SIZE, "matrix size (default: 512, 1024, 2048, 4096)", &n},
        {"threads", LQ_OPT_SIZE, "threads (default: 1 and 2)", &threads},
        {"reps", LQ_OPT_SIZE, "timed repetitions, median reported (default 5; 3 at n>=4096)",
         &reps},
        {"simd", LQ_OPT_STR, "cap the SIMD level: scalar|avx2|avx512", &simd},
        {"trans", LQ_OPT_STR, "NN (default), NT, TN or TT", &trans},
        {"double", LQ_OPT_FLAG, "time dgemm instead of sgemm", &dbl},
    };
    int rc = lq_cli_parse(argc, argv, "lq bench gemm [--n N] [--threads T] [--reps R]", opts,
                          sizeof opts / sizeof opts[0], NULL, 0, NULL);
    if (rc <= 0) return rc == 0 ? 0 : 2;
    lq_simd_level cap = parse_simd(simd);
    if ((int)cap < 0 || strlen(trans) != 2 || !strchr("NT", trans[0]) ||
        !strchr("NT", trans[1]) || reps == 0) {
        fprintf(stderr, "error: bad --simd, --trans or --reps\n");
        return 2;
    }
    lq_trans ta = trans[0] == 'T' ? LQ_TRANS : LQ_NO_TRANS;
    lq_trans tb = trans[1] == 'T' ? LQ_TRANS : LQ_NO_TRANS;
    const size_t *ns = n ? &n : g_default_n;
    size_t nn = n ? 1 : sizeof g_default_n / sizeof g_default_n[0];
    const size_t default_threads[] = {1, 2};
    const size_t *ts = threads ? &threads : default_threads;
    size_t nt = threads ? 1 : 2;
    gemm_result res[8];
    size_t nres = 0;
    lq_simd_level eff = cap == LQ_SIMD_AUTO ? lq_simd_detected() : cap;
    if (eff > lq_simd_detected()) eff = lq_simd_detected();
    printf("%cgemm %s, kernel %s, median of %zu runs (%zu at n >= 4096)\n", dbl ? 'd' : 's', trans,
           lq_simd_name(eff), reps, reps > 3 ? (size_t)3 : reps);
    printf("%8s %8s %12s %10s %10s %14s\n", "n", "threads", "seconds", "GFLOP/s", "speedup",
           "GFLOP/cpu-s");
    for (size_t i = 0; i < nn; i++) {
        double base = 0;
        for (size_t t = 0; t < nt; t++) {
            gemm_result g;
            size_t r = ns[i] >= 4096 && reps > 3 ? 3 : reps;
            lq_status st = time_one(ns[i], ts[t], cap, dbl, ta, tb, r, &g);
            if (st != LQ_OK) return lq_cli_fail("gemm", st);
            if (t == 0) base = g.gflops;
            printf("%8zu %8zu %12.4f %10.1f %9.2fx %14.1f\n", g.n, g.threads, g.seconds, g.gflops,
                   g.gflops / base, g.cpu_gflops);
            fflush(stdout);
            if (nres < sizeof res / sizeof res[0]) res[nres++] = g;
        }
    }
    printf("{\"bench\":\"gemm\",\"type\":\"%s\",\"trans\":\"%s\",\"simd\":\"%s\",\"results\":[",
           dbl ? "f64" : "f32", trans, lq_simd_name(eff));
    for (size_t i = 0; i < nres; i++)
        printf("%s{\"n\":%zu,\"threads\":%zu,\"seconds\":%.6f,\"gflops\":%.2f,"
               "\"cpu_gflops\":%.2f}",
               i ? "," : "", res[i].n, res[i].threads, res[i].seconds, res[i].gflops,
               res[i].cpu_gflops);
    printf("]}\n");
    return 0;
}
