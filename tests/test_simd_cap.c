/* The per-context SIMD cap (lq_ctx_config.simd_cap) holds on every path.
 *
 * Properties:
 *  - a context capped at level L computes exactly what the whole process
 *    computes under LQ_SIMD=L (checked against a child process started
 *    with that environment): quantization by every method, the written
 *    .lqt bytes, loading, dequantization, EXACT and FAST products, k-means
 *    and VQ encoding;
 *  - the product plan of a capped context (the kernels a product runs, and
 *    the level handed to activation preparation: look-up tables, rotations)
 *    never exceeds the cap, for every format. The table builders of VQ and
 *    AQ, and the E8 reference paths, used lq_simd_detected() before. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qtensor/qtensor_internal.h"
#include "products/products.h"
#include "test_common.h"

#define ROWS 40
#define COLS 72
#define BATCH 3

static const lq_method_kind kinds[] = {LQ_METHOD_INT,   LQ_METHOD_NESTQUANT, LQ_METHOD_GPTVQ,
                                       LQ_METHOD_GPTQT, LQ_METHOD_BCQ,       LQ_METHOD_AQLM};
#define NKINDS (sizeof kinds / sizeof kinds[0])

static const char *const kind_names[] = {"int", "nestquant", "gptvq", "gptqt", "bcq", "aqlm"};

static lq_method method_for(size_t i)
{
    lq_method m;
    ck_assert_int_eq(lq_method_init(&m, kinds[i]), LQ_OK);
    if (kinds[i] == LQ_METHOD_AQLM) {
        m.u.aqlm.code_bits = 6;
        m.u.aqlm.rounds = 1;
        m.u.aqlm.beam = 2;
        m.u.aqlm.kmeans_iters = 4;
    }
    if (kinds[i] == LQ_METHOD_GPTVQ) m.u.gptvq.group_cols = 24; /* several codebooks */
    return m;
}

static uint64_t fnv(uint64_t h, const void *data, size_t n)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}
#define FNV0 0xcbf29ce484222325ull

static unsigned char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(sz > 0 ? (size_t)sz : 1);
    if (b && fread(b, 1, (size_t)sz, f) != (size_t)sz) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *n = (size_t)sz;
    return b;
}

/* One line per result: "<name> <status> <hash>". Runs in the Check child
 * (capped context) and in the re-executed process (LQ_SIMD); no Check
 * assertions here, failures are reported as statuses in the text. */
static void digest(lq_ctx *ctx, FILE *out)
{
    float *W = malloc(ROWS * COLS * sizeof(float)), *H = malloc(COLS * COLS * sizeof(float));
    float *What = malloc(ROWS * COLS * sizeof(float)), *X = malloc(BATCH * COLS * sizeof(float));
    float *Y = malloc(BATCH * ROWS * sizeof(float));
    if (!W || !H || !What || !X || !Y) abort();
    lq_test_correlated_layer(ROWS, COLS, 2 * COLS, 77, W, H);
    lq_test_fill_uniform(X, BATCH * COLS, -2.0f, 2.0f, 78);
    char path[] = "/tmp/lq_test_simd_cap_XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) abort();
    close(fd);
    for (size_t i = 0; i < NKINDS; i++) {
        lq_method m = method_for(i);
        lq_qtensor *t = NULL;
        lq_quant_report rep;
        memset(&rep, 0, sizeof rep);
        lq_status st = lq_quantize_ex(ctx, W, ROWS, COLS, H, &m, &t, What, &rep);
        uint64_t h = fnv(FNV0, What, st == LQ_OK ? ROWS * COLS * sizeof(float) : 0);
        h = fnv(h, &rep.proxy_loss, sizeof rep.proxy_loss);
        fprintf(out, "%s.quantize %d %016llx\n", kind_names[i], (int)st, (unsigned long long)h);
        if (st != LQ_OK) continue;
        st = lq_qtensor_save(ctx, t, "w", path);
        size_t n = 0;
        unsigned char *b = st == LQ_OK ? slurp(path, &n) : NULL;
        fprintf(out, "%s.lqt %d %016llx\n", kind_names[i], (int)st,
                (unsigned long long)fnv(FNV0, b, b ? n : 0));
        free(b);
        lq_qtensor *g = NULL;
        st = lq_qtensor_load(ctx, path, "w", 0, &g);
        fprintf(out, "%s.load %d\n", kind_names[i], (int)st);
        const lq_qtensor *use[2] = {t, g};
        for (size_t u = 0; u < 2 && use[u]; u++) {
            st = lq_dequantize(ctx, use[u], What);
            fprintf(out, "%s.%zu.dequantize %d %016llx\n", kind_names[i], u, (int)st,
                    (unsigned long long)fnv(FNV0, What, ROWS * COLS * sizeof(float)));
            for (int mode = 0; mode < 2; mode++) {
                st = lq_matmul_ex(ctx, use[u], X, BATCH, Y, (lq_kernel_mode)mode);
                fprintf(out, "%s.%zu.matmul%d %d %016llx\n", kind_names[i], u, mode, (int)st,
                        (unsigned long long)fnv(FNV0, Y, BATCH * ROWS * sizeof(float)));
            }
        }
        lq_qtensor_free(g);
        lq_qtensor_free(t);
    }
    remove(path);
    /* k-means and VQ encoding (their own nearest-centroid kernels) */
    enum { KN = 512, KD = 4, KK = 16 };
    float *pts = malloc(KN * KD * sizeof(float)), C[KK * KD];
    uint32_t assign[KN];
    uint16_t codes[KN];
    double inertia = 0;
    if (!pts) abort();
    lq_test_fill_gaussian(pts, KN * KD, 1.0f, 79);
    lq_status st = lq_kmeans(ctx, pts, NULL, KN, KD, KK, NULL, C, assign, &inertia);
    uint64_t h = fnv(fnv(fnv(FNV0, C, sizeof C), assign, sizeof assign), &inertia, sizeof inertia);
    fprintf(out, "kmeans %d %016llx\n", (int)st, (unsigned long long)h);
    double err = 0;
    st = lq_vq_encode(ctx, pts, NULL, KN, KD, C, 4, codes, &err); /* 2^4 = KK entries */
    h = fnv(fnv(FNV0, codes, sizeof codes), &err, sizeof err);
    fprintf(out, "vq_encode %d %016llx\n", (int)st, (unsigned long long)h);
    free(pts);
    free(W);
    free(H);
    free(What);
    free(X);
    free(Y);
}

static char *digest_string(lq_ctx *ctx)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    ck_assert_ptr_nonnull(f);
    digest(ctx, f);
    fclose(f);
    return buf;
}

static int machine_has(lq_simd_level l)
{
    lq_simd_level det = lq_simd_detected();
    if (det == LQ_SIMD_NEON) return l == LQ_SIMD_SCALAR || l == LQ_SIMD_NEON;
    return l <= det;
}

/* A kernel of level `slot` may run under cap `cap`. */
static int within(lq_simd_level slot, lq_simd_level cap)
{
    if (slot == LQ_SIMD_SCALAR || slot == cap) return 1;
    return cap != LQ_SIMD_NEON && slot != LQ_SIMD_NEON && slot < cap;
}

static const lq_simd_level g_levels[] = {LQ_SIMD_SCALAR, LQ_SIMD_AVX2, LQ_SIMD_AVX512,
                                         LQ_SIMD_NEON};

/* For each level below the detected one: capped context == LQ_SIMD=level. */
START_TEST(capped_context_equals_environment)
{
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    ck_assert_int_gt(n, 0);
    exe[n] = 0;
    size_t compared = 0;
    for (size_t li = 0; li < sizeof g_levels / sizeof g_levels[0]; li++) {
        lq_simd_level l = g_levels[li];
        if (!machine_has(l)) continue;
        lq_ctx *ctx = lq_test_ctx(2, l);
        ck_assert_int_eq(lq_ctx_simd(ctx), l);
        char *mine = digest_string(ctx);
        lq_ctx_destroy(ctx);
        char cmd[4200];
        snprintf(cmd, sizeof cmd, "LQ_SIMD=%s '%s' --digest", lq_simd_name(l), exe);
        FILE *p = popen(cmd, "r");
        ck_assert_ptr_nonnull(p);
        char *theirs = NULL;
        size_t cap = 0, len = 0;
        char chunk[4096];
        size_t k;
        while ((k = fread(chunk, 1, sizeof chunk, p)) > 0) {
            if (len + k + 1 > cap) {
                cap = 2 * (len + k + 1);
                theirs = realloc(theirs, cap);
                ck_assert_ptr_nonnull(theirs);
            }
            memcpy(theirs + len, chunk, k);
            len += k;
        }
        ck_assert_int_eq(pclose(p), 0);
        ck_assert_ptr_nonnull(theirs);
        theirs[len] = 0;
        /* compare line by line for a readable failure */
        char *sa = NULL, *sb = NULL;
        char *la = strtok_r(mine, "\n", &sa), *lb = strtok_r(theirs, "\n", &sb);
        size_t lines = 0;
        while (la || lb) {
            ck_assert_msg(la && lb && strcmp(la, lb) == 0,
                          "cap %s: context gives '%s', LQ_SIMD=%s gives '%s'", lq_simd_name(l),
                          la ? la : "(end)", lq_simd_name(l), lb ? lb : "(end)");
            int st = -1;
            ck_assert_msg(sscanf(la, "%*s %d", &st) == 1 && st == 0, "cap %s: %s failed",
                          lq_simd_name(l), la);
            la = strtok_r(NULL, "\n", &sa);
            lb = strtok_r(NULL, "\n", &sb);
            lines++;
        }
        ck_assert_uint_eq(lines, NKINDS * 9 + 2); /* quantize, lqt, load, 2 x 3 products; 2 */
        free(mine);
        free(theirs);
        compared++;
    }
    ck_assert_uint_ge(compared, 1);
}
END_TEST

/* Every format, both modes: what a product under a capped context runs. */
START_TEST(plan_honours_cap)
{
    float *W = malloc(ROWS * COLS * sizeof(float)), *H = malloc(COLS * COLS * sizeof(float));
    ck_assert(W && H);
    lq_test_correlated_layer(ROWS, COLS, 2 * COLS, 81, W, H);
    for (size_t i = 0; i < NKINDS; i++) {
        lq_method m = method_for(i);
        lq_qtensor *t = NULL;
        ck_assert_int_eq(lq_quantize(NULL, W, ROWS, COLS, H, &m, &t, NULL), LQ_OK);
        for (size_t li = 0; li < sizeof g_levels / sizeof g_levels[0]; li++) {
            lq_simd_level l = g_levels[li];
            if (!machine_has(l)) continue;
            lq_ctx *ctx = lq_test_ctx(1, l);
            for (int mode = 0; mode < 2; mode++) {
                lq_kern_plan p;
                lq_kern_plan_for(ctx, t, (lq_kernel_mode)mode, &p);
                ck_assert_msg(p.level == l, "%s mode %d cap %s: plan level %s", kind_names[i], mode,
                              lq_simd_name(l), lq_simd_name(p.level));
                ck_assert_msg(within(p.rows_level, l),
                              "%s mode %d cap %s: row kernel from level %s", kind_names[i], mode,
                              lq_simd_name(l), lq_simd_name(p.rows_level));
                if (p.kf && p.rows)
                    ck_assert_ptr_eq(p.rows, p.kf->rows[p.mode == LQ_KERNEL_FAST][p.rows_level]);
                if (l == LQ_SIMD_SCALAR && p.kf && p.rows)
                    ck_assert_ptr_eq(p.rows, p.kf->rows[p.mode == LQ_KERNEL_FAST][LQ_SIMD_SCALAR]);
            }
            lq_ctx_destroy(ctx);
        }
        lq_qtensor_free(t);
    }
    free(W);
    free(H);
}
END_TEST

static Suite *cap_suite(void)
{
    Suite *s = suite_create("simd_cap");
    TCase *tc = tcase_create("cap");
    tcase_set_timeout(tc, 900);
    tcase_add_test(tc, plan_honours_cap);
    tcase_add_test(tc, capped_context_equals_environment);
    suite_add_tcase(s, tc);
    return s;
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--digest") == 0) {
        lq_ctx_config cfg;
        lq_ctx_config_init(&cfg);
        cfg.n_threads = 2;
        lq_ctx *ctx = NULL;
        if (lq_ctx_create(&cfg, &ctx) != LQ_OK) return 1;
        digest(ctx, stdout);
        lq_ctx_destroy(ctx);
        return 0;
    }
    return lq_test_run(cap_suite());
}
