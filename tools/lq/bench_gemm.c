/*
 * lq bench gemm: GFLOP/s of the library's sgemm (or dgemm) on n x n x n
 * products, 1 and 2 threads by default. Prints a table and one JSON line.
 * The OpenBLAS comparison is bench/peers/run_gemm_peer.sh (same sizes, same
 * timing rule: median of --reps runs after one warm-up).
 */
#include <math.h>
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
        double t0 = lq_cli_now(), c0 = lq_cli_cpu_now();
        st = dbl ? lq_dgemm(ctx, ta, tb, n, n, n, 1.0, A, n, B, n, 0.0, C, n)
                 : lq_sgemm(ctx, ta, tb, n, n, n, 1.0f, A, n, B, n, 0.0f, C, n);
        if (st != LQ_OK) goto done;
        times[rep] = lq_cli_now() - t0;
        cpu[rep] = lq_cli_cpu_now() - c0;
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

/* ---- --precision: float32 vs float64 for the Hessian path ---------------
 * A correlated layer X = Z A (Z Gaussian, one feature in 7 with 4x the scale,
 * A = random mixing / sqrt(n) + 0.3 I), H = 2/N X^T X accumulated in float
 * and in double, then Cholesky of H (undamped and with 1% mean-diagonal
 * damping) in float and in double: times (CPU seconds, robust to a shared
 * machine), relative errors, residuals ||L L^T - H||_F / ||H||_F. */
static double fro_rel_d(const double *a, const double *ref, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        num += (a[i] - ref[i]) * (a[i] - ref[i]);
        den += ref[i] * ref[i];
    }
    return sqrt(num / den);
}

/* residual of a lower factor L (float or double copy in Ld) against H + lam I */
static double chol_residual(lq_ctx *ctx, double *Ld, const double *H, double lam, double *T,
                            size_t n)
{
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++) Ld[i * n + j] = 0;
    memcpy(T, H, n * n * sizeof *T);
    for (size_t i = 0; i < n; i++) T[i * n + i] += lam;
    if (lq_dgemm(ctx, LQ_NO_TRANS, LQ_TRANS, n, n, n, 1.0, Ld, n, Ld, n, -1.0, T, n) != LQ_OK)
        return NAN;
    double num = 0, den = 0;
    for (size_t i = 0; i < n * n; i++) {
        num += T[i] * T[i];
        den += H[i] * H[i];
    }
    return sqrt(num / den);
}

static int precision_run(size_t n, size_t N, size_t threads)
{
    lq_ctx_config cfg;
    lq_ctx_config_init(&cfg);
    cfg.n_threads = threads;
    lq_ctx *ctx = NULL;
    lq_status st = lq_ctx_create(&cfg, &ctx);
    if (st != LQ_OK) return lq_cli_fail("context", st);
    float *Z = malloc(N * n * sizeof *Z), *A = malloc(n * n * sizeof *A);
    float *X = malloc(N * n * sizeof *X), *Hf = malloc(n * n * sizeof *Hf);
    float *Lf = malloc(n * n * sizeof *Lf);
    double *H = malloc(n * n * sizeof *H), *Hfd = malloc(n * n * sizeof *Hfd);
    double *L = malloc(n * n * sizeof *L), *T = malloc(n * n * sizeof *T);
    double *Lfd = malloc(n * n * sizeof *Lfd);
    int rc = 1;
    if (!Z || !A || !X || !Hf || !Lf || !H || !Hfd || !L || !T || !Lfd) {
        lq_cli_fail("precision", LQ_ERR_NO_MEMORY);
        goto done;
    }
    lq_rng r;
    lq_rng_init(&r, 7, 0);
    for (size_t i = 0; i < N * n; i++)
        Z[i] = (float)(lq_rng_gaussian(&r) * ((i % n) % 7 == 0 ? 4.0 : 1.0));
    for (size_t i = 0; i < n * n; i++) A[i] = (float)(lq_rng_gaussian(&r) / sqrt((double)n));
    for (size_t i = 0; i < n; i++) A[i * n + i] += 0.3f;
    st = lq_sgemm(ctx, LQ_NO_TRANS, LQ_NO_TRANS, N, n, n, 1.0f, Z, n, A, n, 0.0f, X, n);
    double c0 = lq_cli_cpu_now();
    if (st == LQ_OK) st = lq_dsyrk_tn_f32(ctx, n, N, 2.0 / (double)N, X, n, 0.0, H, n);
    double t_dsyrk = lq_cli_cpu_now() - c0;
    c0 = lq_cli_cpu_now();
    if (st == LQ_OK) st = lq_ssyrk_tn(ctx, n, N, 2.0f / (float)N, X, n, 0.0f, Hf, n);
    double t_ssyrk = lq_cli_cpu_now() - c0;
    if (st != LQ_OK) {
        lq_cli_fail("syrk", st);
        goto done;
    }
    for (size_t i = 0; i < n * n; i++) Hfd[i] = Hf[i];
    double syrk_flops = (double)n * (double)(n + 1) * (double)N;
    printf("H = 2/N X^T X, n = %zu, N = %zu, %zu thread(s), CPU seconds\n", n, N, threads);
    printf("  accumulate: double %.3f s (%.1f GFLOP/s), float %.3f s (%.1f GFLOP/s), "
           "||H_f32 - H_f64|| / ||H_f64|| = %.2e\n",
           t_dsyrk, syrk_flops / t_dsyrk * 1e-9, t_ssyrk, syrk_flops / t_ssyrk * 1e-9,
           fro_rel_d(Hfd, H, n * n));
    double mean = 0;
    for (size_t i = 0; i < n; i++) mean += H[i * n + i];
    mean /= (double)n;
    double jd[2][5]; /* per damping: double s, double residual, float s, float residual, diff */
    int jok[2][2];
    for (int damp = 0; damp < 2; damp++) {
        double lam = damp ? 0.01 * mean : 0.0;
        memcpy(L, H, n * n * sizeof *L);
        for (size_t i = 0; i < n; i++) L[i * n + i] += lam;
        for (size_t i = 0; i < n * n; i++) Lf[i] = (float)L[i];
        c0 = lq_cli_cpu_now();
        lq_status sd = lq_dpotrf_lower(ctx, L, n, n);
        double td = lq_cli_cpu_now() - c0;
        c0 = lq_cli_cpu_now();
        lq_status sf = lq_spotrf_lower(ctx, Lf, n, n);
        double tf = lq_cli_cpu_now() - c0;
        double rd = NAN, rf = NAN, diff = NAN, dmin = NAN, dmax = NAN;
        if (sd == LQ_OK) {
            dmin = dmax = L[0];
            for (size_t i = 0; i < n; i++) {
                dmin = fmin(dmin, L[i * n + i]);
                dmax = fmax(dmax, L[i * n + i]);
            }
            rd = chol_residual(ctx, L, H, lam, T, n);
        }
        if (sf == LQ_OK) {
            for (size_t i = 0; i < n * n; i++) Lfd[i] = Lf[i];
            rf = chol_residual(ctx, Lfd, H, lam, T, n);
            if (sd == LQ_OK) diff = fro_rel_d(Lfd, L, n * n);
        }
        printf("  Cholesky, damping %s: double %s %.3f s, residual %.2e, diag(L) in [%.3g, %.3g]; "
               "float %s %.3f s, residual %.2e; ||L_f32 - L_f64|| / ||L_f64|| = %.2e\n",
               damp ? "1%" : "0", lq_status_str(sd), td, rd, dmin, dmax, lq_status_str(sf), tf, rf,
               diff);
        fflush(stdout);
        jd[damp][0] = td;
        jd[damp][1] = rd;
        jd[damp][2] = tf;
        jd[damp][3] = rf;
        jd[damp][4] = diff;
        jok[damp][0] = sd == LQ_OK;
        jok[damp][1] = sf == LQ_OK;
    }
    printf("{\"bench\":\"gemm_precision\",\"n\":%zu,\"samples\":%zu,\"dsyrk_s\":%.4f,"
           "\"ssyrk_s\":%.4f,\"h_rel_err_f32\":%.3e",
           n, N, t_dsyrk, t_ssyrk, fro_rel_d(Hfd, H, n * n));
    for (int d = 0; d < 2; d++)
        printf(",\"chol_damp%d\":{\"f64_ok\":%d,\"f64_s\":%.4f,\"f64_resid\":%.3e,\"f32_ok\":%d,"
               "\"f32_s\":%.4f,\"f32_resid\":%.3e,\"factor_diff\":%.3e}",
               d, jok[d][0], jd[d][0], isnan(jd[d][1]) ? -1.0 : jd[d][1], jok[d][1], jd[d][2],
               isnan(jd[d][3]) ? -1.0 : jd[d][3], isnan(jd[d][4]) ? -1.0 : jd[d][4]);
    printf("}\n");
    rc = 0;
done:
    free(Z);
    free(A);
    free(X);
    free(Hf);
    free(Lf);
    free(H);
    free(Hfd);
    free(L);
    free(T);
    free(Lfd);
    lq_ctx_destroy(ctx);
    return rc;
}

int lq_bench_gemm(int argc, char **argv)
{
    size_t n = 0, threads = 0, reps = 5;
    const char *simd = NULL, *trans = "NN";
    int dbl = 0, precision = 0;
    size_t samples = 0;
    const lq_opt opts[] = {
        {"n", LQ_OPT_SIZE, "matrix size (default: 512, 1024, 2048, 4096)", &n},
        {"threads", LQ_OPT_SIZE, "threads (default: 1 and 2)", &threads},
        {"reps", LQ_OPT_SIZE, "timed repetitions, median reported (default 5; 3 at n>=4096)",
         &reps},
        {"simd", LQ_OPT_STR, "cap the SIMD level: scalar|avx2|avx512", &simd},
        {"trans", LQ_OPT_STR, "NN (default), NT, TN or TT", &trans},
        {"double", LQ_OPT_FLAG, "time dgemm instead of sgemm", &dbl},
        {"precision", LQ_OPT_FLAG,
         "float32 vs float64 Hessian accumulation and Cholesky (n default 2048)", &precision},
        {"samples", LQ_OPT_SIZE, "with --precision: samples N (default 2 n)", &samples},
    };
    int rc = lq_cli_parse(argc, argv, "lq bench gemm [--n N] [--threads T] [--reps R]", opts,
                          sizeof opts / sizeof opts[0], NULL, 0, NULL);
    if (rc <= 0) return rc == 0 ? 0 : 2;
    lq_simd_level cap = parse_simd(simd);
    if ((int)cap < 0 || strlen(trans) != 2 || !strchr("NT", trans[0]) || !strchr("NT", trans[1]) ||
        reps == 0) {
        fprintf(stderr, "error: bad --simd, --trans or --reps\n");
        return 2;
    }
    if (precision) {
        size_t pn = n ? n : 2048;
        return precision_run(pn, samples ? samples : 2 * pn, threads ? threads : 1);
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
