/* Writes the golden files of tests/data/golden/ (layout: common/golden_cases.h).
 *
 *   golden_gen <dir>          write <case>.lqt and <case>.ref for every case
 *   golden_gen <dir> <case>   only that case
 *
 * Run it only when a change of the stored bytes or of the products is
 * intended, and say so in the commit; tests/test_golden.c checks that the
 * library still writes these bytes and computes these products. The
 * quantization runs with a context capped at the scalar level (the bytes
 * are checked to be the same at every level this machine has); the
 * products are recorded for every level this machine has. Not a test:
 * built with the tests, never run by ctest. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "golden_cases.h"

static lq_ctx *make_ctx(lq_simd_level cap)
{
    lq_ctx_config cfg;
    lq_ctx_config_init(&cfg);
    cfg.n_threads = 1;
    cfg.simd_cap = cap;
    lq_ctx *ctx = NULL;
    if (lq_ctx_create(&cfg, &ctx) != LQ_OK) {
        fprintf(stderr, "golden_gen: cannot create a context\n");
        exit(1);
    }
    return ctx;
}

static int level_present(lq_simd_level l)
{
    return l == LQ_SIMD_SCALAR || (lq_simd_detected() != LQ_SIMD_NEON && l <= lq_simd_detected());
}

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

static void put(FILE *f, const void *p, size_t n)
{
    if (fwrite(p, 1, n, f) != n) {
        fprintf(stderr, "golden_gen: write failed\n");
        exit(1);
    }
}

static void check(lq_status st, const char *what, const char *name)
{
    if (st == LQ_OK) return;
    fprintf(stderr, "golden_gen: %s: %s: %s\n", name, what, lq_status_str(st));
    exit(1);
}

/* File of level li's bytes: <name>.lqt for scalar, <name>.<level>.lqt else. */
static void lqt_path(char *buf, size_t n, const char *dir, const char *name, size_t li)
{
    if (li == 0)
        snprintf(buf, n, "%s/%s.lqt", dir, name);
    else
        snprintf(buf, n, "%s/%s.%s.lqt", dir, name, lq_simd_name(lq_golden_levels[li]));
}

static void gen_case(const char *dir, const lq_golden_case *c)
{
    const size_t rows = LQ_GOLDEN_ROWS, cols = LQ_GOLDEN_COLS, batch = LQ_GOLDEN_BATCH;
    float *W = malloc(rows * cols * sizeof(float)), *H = malloc(cols * cols * sizeof(float));
    float *What = malloc(rows * cols * sizeof(float)), *X = malloc(batch * cols * sizeof(float));
    float *Y = malloc(batch * rows * sizeof(float));
    if (!W || !H || !What || !X || !Y) exit(1);
    lq_golden_layer(c, W, H);
    lq_golden_acts(c, X);
    lq_method m;
    check(lq_golden_method(c, &m), "method", c->name);

    char ref[1024], path[1024];
    snprintf(ref, sizeof ref, "%s/%s.ref", dir, c->name);
    FILE *f = fopen(ref, "wb");
    if (!f) {
        perror(ref);
        exit(1);
    }
    char magic[8] = LQ_GOLDEN_MAGIC;
    uint32_t hdr[4] = {(uint32_t)rows, (uint32_t)cols, (uint32_t)batch, LQ_GOLDEN_NLEVELS};
    put(f, magic, 8);
    put(f, hdr, sizeof hdr);
    unsigned char *kept[LQ_GOLDEN_NLEVELS] = {NULL};
    size_t kept_n[LQ_GOLDEN_NLEVELS] = {0};
    for (size_t li = 0; li < LQ_GOLDEN_NLEVELS; li++) {
        lq_simd_level l = lq_golden_levels[li];
        uint32_t present = (uint32_t)level_present(l), own = 0;
        lq_quant_report rep;
        memset(&rep, 0, sizeof rep);
        uint64_t hq = 0, hd = 0;
        memset(Y, 0, batch * rows * sizeof(float));
        if (!present) {
            put(f, &present, 4);
            put(f, &own, 4);
            double dd[2] = {0, 0};
            uint64_t du[4] = {0, 0, 0, 0};
            put(f, dd, sizeof dd);
            put(f, du, sizeof du);
            put(f, Y, batch * rows * sizeof(float));
            put(f, Y, batch * rows * sizeof(float));
            continue;
        }
        lq_ctx *ctx = make_ctx(l);
        lq_qtensor *t = NULL;
        check(lq_quantize_ex(ctx, W, rows, cols, c->use_hessian ? H : NULL, &m, &t, What, &rep),
              "quantize", c->name);
        hq = lq_golden_fnv1a(What, rows * cols * sizeof(float));
        lqt_path(path, sizeof path, dir, c->name, li);
        check(lq_qtensor_save(ctx, t, "w", path), "save", c->name);
        lq_qtensor_free(t);
        size_t n = 0;
        unsigned char *b = slurp(path, &n);
        if (!b) exit(1);
        own = (uint32_t)li;
        for (size_t k = 0; k < li; k++)
            if (kept[k] && kept_n[k] == n && memcmp(kept[k], b, n) == 0) {
                own = (uint32_t)k; /* an earlier level's file serves */
                break;
            }
        if (own != li) {
            remove(path);
            lqt_path(path, sizeof path, dir, c->name, own);
            free(b);
        } else {
            kept[li] = b;
            kept_n[li] = n;
            if (li > 0)
                printf("  %s: the %s level quantizes to other bytes than scalar\n", c->name,
                       lq_simd_name(l));
        }
        check(lq_qtensor_load(ctx, path, "w", 0, &t), "load", c->name);
        check(lq_dequantize(ctx, t, What), "dequantize", c->name);
        hd = lq_golden_fnv1a(What, rows * cols * sizeof(float));
        put(f, &present, 4);
        put(f, &own, 4);
        double dd[2] = {rep.damping, rep.proxy_loss};
        uint64_t du[4] = {rep.dead_columns, rep.overloads, hq, hd};
        put(f, dd, sizeof dd);
        put(f, du, sizeof du);
        check(lq_matmul(ctx, t, X, batch, Y), "matmul", c->name);
        put(f, Y, batch * rows * sizeof(float));
        check(lq_matmul_ex(ctx, t, X, batch, Y, LQ_KERNEL_FAST), "matmul fast", c->name);
        put(f, Y, batch * rows * sizeof(float));
        lq_qtensor_free(t);
        lq_ctx_destroy(ctx);
    }
    if (fclose(f) != 0) exit(1);
    printf("%-34s %6zu bytes (.lqt)\n", c->name, kept_n[0]);
    for (size_t k = 0; k < LQ_GOLDEN_NLEVELS; k++) free(kept[k]);
    free(W);
    free(H);
    free(What);
    free(X);
    free(Y);
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: golden_gen <dir> [case]\n");
        return 2;
    }
    const uint16_t one = 1;
    if (*(const unsigned char *)&one != 1) {
        fprintf(stderr, "golden_gen: the reference files are little-endian\n");
        return 1;
    }
    int found = 0;
    for (size_t i = 0; i < lq_golden_count(); i++) {
        const lq_golden_case *c = lq_golden_get(i);
        if (argc == 3 && strcmp(argv[2], c->name) != 0) continue;
        gen_case(argv[1], c);
        found = 1;
    }
    if (!found) {
        fprintf(stderr, "golden_gen: no case %s\n", argv[2]);
        return 2;
    }
    return 0;
}
