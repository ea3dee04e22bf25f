/*
 * lq bench e8: the lattice module on one thread.
 *  1. E8 (and D8) nearest point, points/s per ISA beside the scalar
 *     reference in the same run (kernel alone and through the public call,
 *     which adds the finiteness check), median of --reps.
 *  2. NestQuant encode (q = 14, K = 4, smallest non-overloading beta),
 *     8-vectors/s per ISA.
 *  3. Rate-distortion on iid N(0,1), every side bit counted (beta index):
 *     each Voronoi code config (q, K) with betas fitted for each selection
 *     rule, FIRST (the paper), BEST (the reference's try-all) and EXHAUSTIVE
 *     (the optimal encoder of the same codebook: the exhaustive bound), then
 *     E8P at 2 bits and its residual stacks at 3 (E8P + 1-bit E8P) and 4 (E8P
 *     + E8P) bits with MSE-optimal scales, beside the uniform scalar (INT)
 *     quantizer with the MSE-optimal step at the nearest integer rate,
 *     Lloyd-Max (computed here by Lloyd's iteration on the exact Gaussian
 *     density) and Shannon's 2^(-2R). R is the ideal rate log2(q) +
 *     ceil(log2 K)/8; "stored" is what the packed format spends (ceil(8 log2
 *     q) + ceil(log2 K) bits per 8-vector), before per-row scales.
 *  4. NestQuant-GPTQ vs INT-GPTQ proxy loss on a correlated synthetic layer
 *     (same recipe as the engine's tests: Student-t weights, X = Z A with
 *     every 7th feature 4x larger) at about matched bits per weight.
 * Prints tables and one JSON line.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "core/linalg.h"
#include "lattice/lattice_internal.h"

static const lq_simd_level g_lv[] = {LQ_SIMD_SCALAR, LQ_SIMD_AVX2, LQ_SIMD_AVX512};

/* Thread CPU seconds: the machine this runs on is often shared, and wall
 * time then measures the other processes; CPU time of this thread is the
 * per-core figure (both are printed for E8). */
static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double time_kernel(const lq_lattice_kernels *k, int e8, int api, const float *x, size_t n,
                          float *y, size_t reps, int wall)
{
    double *t = malloc(reps * sizeof *t);
    if (!t) return 0;
    double (*now)(void) = wall ? lq_cli_now : cpu_now;
    for (size_t r = 0; r < reps; r++) {
        size_t iters = 0;
        double t0 = now(), el;
        do {
            if (api)
                (e8 ? lq_e8_nearest_at : lq_d8_nearest_at)(k->level, x, n, y);
            else
                (e8 ? k->e8 : k->d8)(x, n, y);
            iters++;
            el = now() - t0;
        } while (el < 0.05);
        t[r] = (double)(iters * n) / el;
    }
    double m = lq_cli_median(t, reps);
    free(t);
    return m;
}

/* Lloyd-Max MSE for N(0,1) with 2^bits levels (Lloyd's iteration on the
 * exact density; converged to ~1e-7). */
static double phi(double x) { return exp(-0.5 * x * x) / sqrt(2.0 * M_PI); }
static double Phi(double x) { return 0.5 * erfc(-x / sqrt(2.0)); }
static double lloyd_max(int bits)
{
    int L = 1 << bits;
    double c[64], b[65];
    for (int i = 0; i < L; i++) c[i] = -3.0 + 6.0 * (i + 0.5) / L;
    for (int it = 0; it < 20000; it++) {
        b[0] = -INFINITY;
        b[L] = INFINITY;
        for (int i = 1; i < L; i++) b[i] = 0.5 * (c[i - 1] + c[i]);
        for (int i = 0; i < L; i++) {
            double p = Phi(b[i + 1]) - Phi(b[i]);
            double pa = isinf(b[i]) ? 0 : phi(b[i]), pb = isinf(b[i + 1]) ? 0 : phi(b[i + 1]);
            c[i] = (pa - pb) / p;
        }
    }
    /* MSE = 1 - sum p_i c_i^2 (centroid condition) */
    double s = 0;
    for (int i = 0; i < L; i++) s += (Phi(b[i + 1]) - Phi(b[i])) * c[i] * c[i];
    return 1.0 - s;
}

/* Uniform midrise quantizer with 2^bits levels and the best step (grid
 * search) on the data. */
static double int_mse(const float *x, size_t n, int bits)
{
    double best = INFINITY;
    int L = 1 << bits;
    for (int s = 1; s <= 400; s++) {
        double step = 4.0 * s / 400.0 * 8.0 / L;
        double e = 0;
        for (size_t i = 0; i < n; i++) {
            double q = floor(x[i] / step) + 0.5;
            if (q > L / 2 - 0.5) q = L / 2 - 0.5;
            if (q < -L / 2 + 0.5) q = -L / 2 + 0.5;
            double d = x[i] - q * step;
            e += d * d;
        }
        e /= (double)n;
        if (e < best) best = e;
    }
    return best;
}

static double mse_of(const float *x, const float *y, size_t n)
{
    double e = 0;
    for (size_t j = 0; j < n; j++) e += ((double)x[j] - y[j]) * ((double)x[j] - y[j]);
    return e / (double)n;
}

/* MSE of a greedy residual stack of E8P stages on n 8-vectors: stage s
 * codes the residual at scale sc[s] with the codes of pattern index <
 * npat[s] (256: E8P, 2 bits; 1: the 1-bit sub-codebook). r: n*8 scratch. */
static double stack_mse(const float *x, float *r, size_t n, unsigned nst, const unsigned *npat,
                        const double *sc)
{
    memcpy(r, x, n * 8 * sizeof(float));
    for (unsigned st = 0; st < nst; st++)
        for (size_t i = 0; i < n; i++) {
            double u[8];
            float p[8];
            for (int k = 0; k < 8; k++) u[k] = r[8 * i + k] / sc[st];
            lq_e8p_point(lq_e8p_nearest_code(u, npat[st]), p);
            for (int k = 0; k < 8; k++) r[8 * i + k] -= (float)(sc[st] * p[k]);
        }
    double e = 0;
    for (size_t j = 0; j < 8 * n; j++) e += (double)r[j] * r[j];
    return e / (8.0 * (double)n);
}

int lq_bench_e8(int argc, char **argv)
{
    size_t npts = 4096, reps = 7, rdn = 100000, rows = 512, cols = 1024, ns = 2048;
    int skip_layer = 0, skip_speed = 0;
    const lq_opt opts[] = {
        {"points", LQ_OPT_SIZE, "points per timed call (default 4096, in cache)", &npts},
        {"reps", LQ_OPT_SIZE, "repetitions, median reported (default 7)", &reps},
        {"rd-points", LQ_OPT_SIZE, "8-vectors for rate-distortion (default 100000)", &rdn},
        {"rows", LQ_OPT_SIZE, "layer rows (default 512)", &rows},
        {"cols", LQ_OPT_SIZE, "layer cols (default 1024)", &cols},
        {"nsamples", LQ_OPT_SIZE, "calibration samples (default 2048)", &ns},
        {"skip-layer", LQ_OPT_FLAG, "skip the GPTQ layer comparison", &skip_layer},
        {"skip-speed", LQ_OPT_FLAG, "skip the throughput table", &skip_speed},
    };
    int pr = lq_cli_parse(argc, argv, "lq bench e8 [options]", opts, sizeof opts / sizeof opts[0],
                          NULL, 0, NULL);
    if (pr <= 0) return pr == 0 ? 0 : 2;
    if (npts == 0 || reps == 0 || rdn < 1000) {
        fprintf(stderr, "error: bad sizes\n");
        return 2;
    }
    float *x = malloc(npts * 8 * sizeof *x), *y = malloc(npts * 8 * sizeof *y);
    float *g = malloc(rdn * 8 * sizeof *g), *gy = malloc(rdn * 8 * sizeof *gy);
    uint8_t *codes = malloc(rdn * 8), *bidx = malloc(rdn);
    if (!x || !y || !g || !gy || !codes || !bidx) return lq_cli_fail("bench e8", LQ_ERR_NO_MEMORY);
    lq_rng r;
    lq_rng_init(&r, 1, 0);
    for (size_t i = 0; i < npts * 8; i++) x[i] = (float)(lq_rng_uniform(&r) * 16.0 - 8.0);
    for (size_t i = 0; i < rdn * 8; i++) g[i] = (float)lq_rng_gaussian(&r);

    /* 1 + 2: throughput per ISA */
    lq_simd_level det = lq_simd_detected();
    double e8k[3] = {0}, e8w[3] = {0}, e8a[3] = {0}, d8k[3] = {0}, nqe[3] = {0};
    lq_nq_coder cd;
    lq_nq_coder_init(&cd, 14, 4);
    size_t nenc = rdn < 16384 ? rdn : 16384;
    if (!skip_speed) {
        printf("one thread; rates per CPU second of this thread (wall-clock rate in the 2nd "
               "column)\n");
        printf("%-8s %14s %14s %14s %14s %16s %8s %8s\n", "isa", "E8 pts/s", "E8 wall",
               "E8 api pts/s", "D8 pts/s", "NQ enc vec/s", "E8 x", "NQ x");
    }
    for (int l = 0; l < 3 && !skip_speed; l++) {
        if (g_lv[l] > det) continue;
        const lq_lattice_kernels *k = lq_lattice_kernels_at(g_lv[l]);
        if (k->level != g_lv[l]) continue;
        e8k[l] = time_kernel(k, 1, 0, x, npts, y, reps, 0);
        e8w[l] = time_kernel(k, 1, 0, x, npts, y, reps, 1);
        e8a[l] = time_kernel(k, 1, 1, x, npts, y, reps, 0);
        d8k[l] = time_kernel(k, 0, 0, x, npts, y, reps, 0);
        double *t = malloc(reps * sizeof *t);
        for (size_t rr = 0; t && rr < reps; rr++) {
            size_t it = 0;
            double t0 = cpu_now(), el;
            do {
                lq_nq_encode_k(k, &cd, g, nenc, codes, bidx, NULL, NULL);
                it++;
                el = cpu_now() - t0;
            } while (el < 0.1);
            t[rr] = (double)(it * nenc) / el;
        }
        nqe[l] = t ? lq_cli_median(t, reps) : 0;
        free(t);
        printf("%-8s %14.4g %14.4g %14.4g %14.4g %16.4g %8.2f %8.2f\n", lq_simd_name(g_lv[l]),
               e8k[l], e8w[l], e8a[l], d8k[l], nqe[l], e8k[l] / e8k[0], nqe[l] / nqe[0]);
    }

    /* 3: rate-distortion */
    static const struct {
        unsigned q, K;
    } cfgs[] = {{3, 8},  {4, 1},  {4, 4},  {6, 8},  {8, 1},  {7, 4}, {12, 8},
                {16, 1}, {14, 4}, {16, 4}, {24, 8}, {32, 1}, {28, 4}};
    const size_t ncfg = sizeof cfgs / sizeof cfgs[0];
    double lm[6];
    for (int b = 1; b <= 5; b++) lm[b] = lloyd_max(b);
    double im[6] = {0};
    for (int b = 2; b <= 5; b++) im[b] = int_mse(g, rdn * 8 < 400000 ? rdn * 8 : 400000, b);
    printf("\nLloyd-Max N(0,1) (computed): 1b %.5g 2b %.5g 3b %.5g 4b %.5g 5b %.5g\n", lm[1], lm[2],
           lm[3], lm[4], lm[5]);
    printf("rate-distortion on %zu iid N(0,1) 8-vectors, MSE per entry, side bits counted\n", rdn);
    printf("\n%-14s %6s %6s %10s %10s %10s %6s %10s %10s %10s %7s\n", "code", "R", "stored",
           "FIRST", "BEST", "EXHAUST", "ovl(F)", "INT(R)", "LloydMax", "Shannon", "best/LM");
    char json_rd[8192];
    size_t jl = 0;
    lq_ctx *ctx1 = NULL;
    lq_ctx_config cfg;
    lq_ctx_config_init(&cfg);
    cfg.n_threads = 1;
    if (lq_ctx_create(&cfg, &ctx1) != LQ_OK) return lq_cli_fail("context", LQ_ERR_NO_MEMORY);
    for (size_t i = 0; i < ncfg; i++) {
        unsigned ib = lq_nq_index_bits(cfgs[i].K);
        double R = log2((double)cfgs[i].q) + ib / 8.0;
        double Rs = (lq_voronoi_bits(cfgs[i].q) + ib) / 8.0;
        double m3[3];
        size_t ovl = 0;
        for (int sel = 0; sel < 3; sel++) {
            lq_nq_coder c;
            lq_nq_coder_init(&c, cfgs[i].q, cfgs[i].K);
            c.select = (unsigned)sel;
            lq_nq_coder_fit(ctx1, &c, g, rdn);
            size_t ov = 0;
            lq_nq_encode(&c, g, rdn, codes, bidx, gy, &ov);
            m3[sel] = mse_of(g, gy, rdn * 8);
            if (sel == 0) ovl = ov;
        }
        int rb = (int)floor(R + 0.5);
        if (rb < 2) rb = 2;
        if (rb > 5) rb = 5;
        char name[32];
        snprintf(name, sizeof name, "voronoi q%u K%u", cfgs[i].q, cfgs[i].K);
        printf("%-14s %6.3f %6.3f %10.5g %10.5g %10.5g %6zu %10.5g %10.5g %10.5g %7.3f\n", name, R,
               Rs, m3[0], m3[1], m3[2], ovl, im[rb], lm[rb], pow(2.0, -2.0 * R), m3[2] / lm[rb]);
        jl +=
            (size_t)snprintf(json_rd + jl, sizeof json_rd - jl,
                             "%s{\"code\":\"voronoi\",\"q\":%u,\"K\":%u,\"R\":%.4f,\"stored\":%.4f,"
                             "\"mse_first\":%.6g,\"mse_best\":%.6g,\"mse_exhaustive\":%.6g,"
                             "\"int_mse\":%.6g,\"lloyd_max\":%.6g,\"shannon\":%.6g}",
                             i ? "," : "", cfgs[i].q, cfgs[i].K, R, Rs, m3[0], m3[1], m3[2], im[rb],
                             lm[rb], pow(2.0, -2.0 * R));
    }
    /* E8P and its residual stacks: one global scale per stage (fitted on a
     * subsample by golden-section search, two rounds), greedy stages */
    static const struct {
        const char *name;
        unsigned nst, npat[2];
        double R;
    } e8s[] = {
        {"e8p", 1, {256, 0}, 2.0}, {"e8p+e8p1", 2, {256, 1}, 3.0}, {"e8p+e8p", 2, {256, 256}, 4.0}};
    for (size_t i = 0; i < sizeof e8s / sizeof e8s[0]; i++) {
        double sc[2] = {0.96, e8s[i].npat[1] == 1 ? 0.5 : 0.27};
        size_t nfit = rdn < 4096 ? rdn : 4096;
        for (int round = 0; round < 2; round++)
            for (unsigned st = 0; st < e8s[i].nst; st++) {
                double lo = sc[st] * 0.7, hi = sc[st] * 1.4;
                const double gr = 0.6180339887498949;
                for (int it = 0; it < 24; it++) {
                    double a = hi - gr * (hi - lo), b = lo + gr * (hi - lo), sa[2], sb[2];
                    memcpy(sa, sc, sizeof sa);
                    memcpy(sb, sc, sizeof sb);
                    sa[st] = a;
                    sb[st] = b;
                    if (stack_mse(g, gy, nfit, e8s[i].nst, e8s[i].npat, sa) <
                        stack_mse(g, gy, nfit, e8s[i].nst, e8s[i].npat, sb))
                        hi = b;
                    else
                        lo = a;
                }
                sc[st] = 0.5 * (lo + hi);
            }
        double m = stack_mse(g, gy, rdn, e8s[i].nst, e8s[i].npat, sc);
        int rb = (int)e8s[i].R;
        printf("%-14s %6.3f %6.3f %10s %10s %10.5g %6s %10.5g %10.5g %10.5g %7.3f   scales %.4g",
               e8s[i].name, e8s[i].R, e8s[i].R, "-", "-", m, "-", im[rb], lm[rb],
               pow(2.0, -2.0 * e8s[i].R), m / lm[rb], sc[0]);
        if (e8s[i].nst > 1) printf(" %.4g", sc[1]);
        printf("\n");
        jl += (size_t)snprintf(json_rd + jl, sizeof json_rd - jl,
                               ",{\"code\":\"%s\",\"R\":%.4f,\"stored\":%.4f,\"mse\":%.6g,"
                               "\"scales\":[%.5g,%.5g],\"lloyd_max\":%.6g,\"shannon\":%.6g}",
                               e8s[i].name, e8s[i].R, e8s[i].R, m, sc[0],
                               e8s[i].nst > 1 ? sc[1] : 0.0, lm[rb], pow(2.0, -2.0 * e8s[i].R));
    }

    /* 4: NestQuant-GPTQ vs INT-GPTQ on a correlated layer */
    char json_l[4096] = "";
    if (!skip_layer) {
        lq_ctx *ctx = NULL;
        lq_ctx_config_init(&cfg);
        if (lq_ctx_create(&cfg, &ctx) != LQ_OK) return lq_cli_fail("context", LQ_ERR_NO_MEMORY);
        float *W = malloc(rows * cols * sizeof *W), *H = malloc(cols * cols * sizeof *H);
        if (!W || !H || lq_cli_bench_layer(ctx, rows, cols, ns, W, H) != LQ_OK)
            return lq_cli_fail("layer", LQ_ERR_NO_MEMORY);
        printf("\nlayer %zu x %zu, %zu samples, %zu threads\n", rows, cols, ns,
               lq_ctx_threads(ctx));
        printf("%-28s %8s %14s %14s %9s %8s\n", "method", "bpw", "proxy (gptq)", "proxy (rtn)",
               "seconds", "ovl");
        struct {
            const char *name;
            lq_method_kind kind;
            unsigned a, b;
            int had;
            unsigned sel, cb;
        } ms[] = {
            {"int2 g128", LQ_METHOD_INT, 2, 128, 0, 0, 0},
            {"nestquant q4 K2 had", LQ_METHOD_NESTQUANT, 4, 2, 1, 0, 0},
            {"nestquant q4 K2 had exh", LQ_METHOD_NESTQUANT, 4, 2, 1, 2, 0},
            {"nestquant e8p had", LQ_METHOD_NESTQUANT, 0, 0, 1, 0, 1},
            {"int3 g128", LQ_METHOD_INT, 3, 128, 0, 0, 0},
            {"nestquant q7 K4 had", LQ_METHOD_NESTQUANT, 7, 4, 1, 0, 0},
            {"nestquant q7 K4 had exh", LQ_METHOD_NESTQUANT, 7, 4, 1, 2, 0},
            {"int4 g128", LQ_METHOD_INT, 4, 128, 0, 0, 0},
            {"nestquant q14 K4 had", LQ_METHOD_NESTQUANT, 14, 4, 1, 0, 0},
            {"nestquant q14 K4 had best", LQ_METHOD_NESTQUANT, 14, 4, 1, 1, 0},
            {"nestquant q14 K4 had exh", LQ_METHOD_NESTQUANT, 14, 4, 1, 2, 0},
            {"nestquant q14 K4 no-had", LQ_METHOD_NESTQUANT, 14, 4, 0, 0, 0},
        };
        size_t jm = 0;
        for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++) {
            lq_method m;
            lq_method_init(&m, ms[i].kind);
            if (ms[i].kind == LQ_METHOD_INT) {
                m.u.int_.bits = ms[i].a;
                m.u.int_.group = ms[i].b;
            } else {
                if (ms[i].a) m.u.nestquant.q = ms[i].a;
                if (ms[i].b) m.u.nestquant.n_betas = ms[i].b;
                m.u.nestquant.hadamard = ms[i].had;
                m.u.nestquant.select = ms[i].sel;
                m.u.nestquant.codebook = ms[i].cb;
            }
            lq_quant_report rep, rrep;
            lq_qtensor *t = NULL;
            double t0 = lq_cli_now();
            lq_status st = lq_quantize_ex(ctx, W, rows, cols, H, &m, &t, NULL, &rep);
            double sec = lq_cli_now() - t0;
            if (st != LQ_OK) return lq_cli_fail(ms[i].name, st);
            double bpw = 0;
            lq_qtensor_bits_per_weight(t, &bpw);
            lq_qtensor_free(t);
            m.engine.rtn = 1;
            st = lq_quantize_ex(ctx, W, rows, cols, H, &m, &t, NULL, &rrep);
            if (st != LQ_OK) return lq_cli_fail(ms[i].name, st);
            lq_qtensor_free(t);
            printf("%-28s %8.4f %14.6g %14.6g %9.2f %8zu\n", ms[i].name, bpw, rep.proxy_loss,
                   rrep.proxy_loss, sec, rep.overloads);
            jm += (size_t)snprintf(json_l + jm, sizeof json_l - jm,
                                   "%s{\"method\":\"%s\",\"bpw\":%.5f,\"proxy_gptq\":%.6g,"
                                   "\"proxy_rtn\":%.6g,\"seconds\":%.3f}",
                                   i ? "," : "", ms[i].name, bpw, rep.proxy_loss, rrep.proxy_loss,
                                   sec);
        }
        free(W);
        free(H);
        lq_ctx_destroy(ctx);
    }
    printf("{\"bench\":\"e8\",\"points\":%zu,\"reps\":%zu,\"e8_pts_per_s\":{\"scalar\":%.4g,"
           "\"avx2\":%.4g,\"avx512\":%.4g},\"e8_wall_pts_per_s\":{\"scalar\":%.4g,\"avx2\":%.4g,"
           "\"avx512\":%.4g},\"e8_api_pts_per_s\":{\"scalar\":%.4g,\"avx2\":%.4g,"
           "\"avx512\":%.4g},\"d8_pts_per_s\":{\"scalar\":%.4g,\"avx2\":%.4g,\"avx512\":%.4g},"
           "\"nq_encode_vec_per_s\":{\"scalar\":%.4g,\"avx2\":%.4g,\"avx512\":%.4g},"
           "\"rd\":[%s],\"layer\":[%s]}\n",
           npts, reps, e8k[0], e8k[1], e8k[2], e8w[0], e8w[1], e8w[2], e8a[0], e8a[1], e8a[2],
           d8k[0], d8k[1], d8k[2], nqe[0], nqe[1], nqe[2], json_rd, json_l);
    lq_ctx_destroy(ctx1);
    free(x);
    free(y);
    free(g);
    free(gy);
    free(codes);
    free(bidx);
    return 0;
}
