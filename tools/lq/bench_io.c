/* lq bench io: CRC-32C throughput (table vs SSE4.2) and .lqt save / open +
 * load times (read, mmap zero-copy, copy; with and without the section
 * checksums) against a plain read of the same file, warm page cache. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "io/io_internal.h"

#define REPS_MAX 64

typedef struct crc_arg {
    uint32_t (*fn)(uint32_t, const void *, size_t);
    const uint8_t *buf;
    size_t n;
    uint32_t sink;
} crc_arg;

static double med_of(double *t, size_t n) { return lq_cli_median(t, n); }

static double time_crc(crc_arg *a, size_t reps)
{
    double t[REPS_MAX];
    for (size_t r = 0; r < reps; r++) {
        double t0 = lq_cli_now();
        a->sink ^= a->fn(0, a->buf, a->n);
        t[r] = lq_cli_now() - t0;
    }
    return med_of(t, reps);
}

/* Plain read of the whole file into a buffer: the baseline. */
static double time_read(const char *path, size_t size, uint8_t *buf)
{
    double t0 = lq_cli_now();
    FILE *f = fopen(path, "rb");
    if (!f || fread(buf, 1, size, f) != size) {
        if (f) fclose(f);
        return -1;
    }
    fclose(f);
    return lq_cli_now() - t0;
}

static double time_load(const char *path, unsigned oflags, unsigned lflags, lq_status *st)
{
    double t0 = lq_cli_now();
    lq_lqt *f;
    *st = lq_lqt_open(NULL, path, oflags, &f);
    if (*st != LQ_OK) return -1;
    lq_qtensor *t = NULL;
    *st = lq_lqt_load(NULL, f, 0, lflags, &t);
    lq_lqt_close(f);
    lq_qtensor_free(t);
    return lq_cli_now() - t0;
}

int lq_bench_io(int argc, char **argv)
{
    size_t rows = 4096, cols = 4096, reps = 7, mib = 64;
    const char *dir = NULL;
    int json_only = 0;
    const lq_opt opts[] = {
        {"rows", LQ_OPT_SIZE, "tensor rows (default 4096)", &rows},
        {"cols", LQ_OPT_SIZE, "tensor cols (default 4096)", &cols},
        {"reps", LQ_OPT_SIZE, "repetitions, median reported (default 7)", &reps},
        {"crc-mib", LQ_OPT_SIZE, "CRC buffer in MiB (default 64)", &mib},
        {"dir", LQ_OPT_STR, "directory for the temporary file (default /tmp)", &dir},
        {"json", LQ_OPT_FLAG, "print only the JSON line", &json_only},
    };
    int r = lq_cli_parse(argc, argv, "lq bench io [options]", opts, sizeof opts / sizeof opts[0],
                         NULL, 0, NULL);
    if (r <= 0) return r < 0 ? 2 : 0;
    if (reps < 1 || reps > REPS_MAX || rows == 0 || cols == 0 || mib == 0 || mib > 4096) {
        fprintf(stderr, "error: bad sizes\n");
        return 2;
    }
    /* CRC-32C */
    size_t n = mib << 20;
    uint8_t *buf = malloc(n);
    if (!buf) return lq_cli_fail("memory", LQ_ERR_NO_MEMORY);
    for (size_t i = 0; i < n; i++) buf[i] = (uint8_t)(i * 2654435761u >> 13);
    crc_arg a = {lq_crc32c_scalar, buf, n, 0};
    double t_tab = time_crc(&a, reps);
    double t_hw = t_tab;
    int have_hw = 0;
#if LQ_ARCH_X86
    if (lq_simd_detected() >= LQ_SIMD_AVX2) {
        a.fn = lq_crc32c_sse42;
        t_hw = time_crc(&a, reps);
        have_hw = 1;
    }
#endif
    free(buf);

    /* .lqt: an INT 4-bit g128 tensor (round to nearest: quick) */
    float *W = malloc(rows * cols * sizeof *W);
    if (!W) return lq_cli_fail("memory", LQ_ERR_NO_MEMORY);
    lq_rng rng;
    lq_rng_init(&rng, 7, 0);
    for (size_t i = 0; i < rows * cols; i++) W[i] = (float)(0.02 * lq_rng_gaussian(&rng));
    lq_method m;
    lq_method_init(&m, LQ_METHOD_INT);
    m.engine.rtn = 1;
    lq_qtensor *q;
    lq_status st = lq_quantize(NULL, W, rows, cols, NULL, &m, &q, NULL);
    free(W);
    if (st != LQ_OK) return lq_cli_fail("quantize", st);
    char path[512];
    snprintf(path, sizeof path, "%s/lq_bench_io_%ld.lqt", dir ? dir : "/tmp", (long)getpid());
    double ts[REPS_MAX];
    for (size_t i = 0; i < reps && st == LQ_OK; i++) {
        double t0 = lq_cli_now();
        st = lq_qtensor_save(NULL, q, "w", path);
        ts[i] = lq_cli_now() - t0;
    }
    lq_qtensor_free(q);
    if (st != LQ_OK) return lq_cli_fail("save", st);
    FILE *f = fopen(path, "rb");
    size_t fsize = 0;
    if (f) {
        fseek(f, 0, SEEK_END);
        fsize = (size_t)ftell(f);
        fclose(f);
    }
    uint8_t *fb = malloc(fsize ? fsize : 1);
    if (!fb) return lq_cli_fail("memory", LQ_ERR_NO_MEMORY);
    struct {
        const char *name;
        unsigned oflags, lflags;
        double t;
    } cases[] = {
        {"read + load (checksums)", 0, 0, 0},
        {"mmap + load (checksums)", LQ_LQT_MMAP, 0, 0},
        {"mmap + load (no data crc)", LQ_LQT_MMAP, LQ_LQT_SKIP_DATA_CRC, 0},
        {"read + load copy", 0, LQ_LQT_COPY, 0},
    };
    size_t nc = sizeof cases / sizeof cases[0];
    double tr[REPS_MAX], tl[REPS_MAX];
    for (size_t i = 0; i < reps; i++) tr[i] = time_read(path, fsize, fb);
    double t_read = med_of(tr, reps);
    for (size_t c = 0; c < nc && st == LQ_OK; c++) {
        for (size_t i = 0; i < reps && st == LQ_OK; i++)
            tl[i] = time_load(path, cases[c].oflags, cases[c].lflags, &st);
        cases[c].t = med_of(tl, reps);
    }
    free(fb);
    remove(path);
    if (st != LQ_OK || t_read < 0) return lq_cli_fail("load", st != LQ_OK ? st : LQ_ERR_IO);
    double t_save = med_of(ts, reps), gb = (double)fsize / 1e9;
    if (!json_only) {
        printf("CRC-32C over %zu MiB (median of %zu):\n", mib, reps);
        printf("  %-28s %8.2f GB/s\n", "table (slicing-by-8)", (double)n / 1e9 / t_tab);
        if (have_hw)
            printf("  %-28s %8.2f GB/s   %.1fx the table\n", "SSE4.2 crc32", (double)n / 1e9 / t_hw,
                   t_tab / t_hw);
        printf("\n.lqt with one INT4 g128 tensor %zu x %zu: %.1f MiB, warm page cache\n", rows,
               cols, (double)fsize / 1048576.0);
        printf("  %-28s %9s %10s %12s\n", "operation", "ms", "GB/s", "vs fread");
        printf("  %-28s %9.2f %10.2f %12s\n", "save", t_save * 1e3, gb / t_save, "-");
        printf("  %-28s %9.2f %10.2f %11.2fx\n", "fread (baseline)", t_read * 1e3, gb / t_read,
               1.0);
        for (size_t c = 0; c < nc; c++)
            printf("  %-28s %9.2f %10.2f %11.2fx\n", cases[c].name, cases[c].t * 1e3,
                   gb / cases[c].t, cases[c].t / t_read);
        printf("(load includes the format's validation; 'vs fread' is time relative to fread)\n");
    }
    printf("{\"bench\":\"io\",\"crc_mib\":%zu,\"crc_table_gbs\":%.3f,\"crc_hw_gbs\":%.3f,"
           "\"rows\":%zu,\"cols\":%zu,\"file_bytes\":%zu,\"save_ms\":%.3f,\"fread_ms\":%.3f",
           mib, (double)n / 1e9 / t_tab, have_hw ? (double)n / 1e9 / t_hw : 0.0, rows, cols, fsize,
           t_save * 1e3, t_read * 1e3);
    const char *keys[] = {"read_load_ms", "mmap_load_ms", "mmap_nocrc_load_ms", "read_copy_ms"};
    for (size_t c = 0; c < nc; c++) printf(",\"%s\":%.3f", keys[c], cases[c].t * 1e3);
    printf(",\"reps\":%zu}\n", reps);
    return 0;
}
