/* lq info: what libquant sees of this machine. */
#include <stdio.h>

#include "cli.h"

static void kib(char *buf, size_t n, size_t bytes)
{
    if (!bytes)
        snprintf(buf, n, "unknown");
    else if (bytes >= (1u << 20))
        snprintf(buf, n, "%zu MiB", bytes >> 20);
    else
        snprintf(buf, n, "%zu KiB", bytes >> 10);
}

int lq_cmd_info(int argc, char **argv)
{
    int json = 0;
    const lq_opt opts[] = {{"json", LQ_OPT_FLAG, "machine-readable output", &json}};
    int r = lq_cli_parse(argc, argv, "lq info [--json]", opts, 1, NULL, 0, NULL);
    if (r <= 0) return r < 0 ? 2 : 0;
    lq_machine_info m;
    lq_status st = lq_machine_query(&m);
    if (st != LQ_OK) return lq_cli_fail("machine query", st);
    lq_simd_level lvl = lq_simd_detected();
    size_t threads = lq_ctx_threads(NULL);
    struct {
        const char *name;
        int on;
    } feats[] = {{"sse4.2", m.has_sse42},
                 {"avx2", m.has_avx2},
                 {"fma", m.has_fma},
                 {"f16c", m.has_f16c},
                 {"avx512f", m.has_avx512f},
                 {"avx512bw", m.has_avx512bw},
                 {"avx512vl", m.has_avx512vl},
                 {"avx512dq", m.has_avx512dq},
                 {"avx512vnni", m.has_avx512vnni},
                 {"avx512vbmi", m.has_avx512vbmi},
                 {"avx512bf16", m.has_avx512bf16},
                 {"neon", m.has_neon},
                 {"dotprod", m.has_dotprod}};
    size_t nf = sizeof feats / sizeof feats[0];
    if (json) {
        printf("{\"version\":\"%s\",\"cpu\":\"%s\",\"dispatch\":\"%s\",\"threads\":%zu,"
               "\"physical_cores\":%zu,\"logical_cpus\":%zu,\"l1d\":%zu,\"l2\":%zu,\"l3\":%zu,"
               "\"os_avx\":%d,\"os_avx512\":%d,\"hwloc\":%d,\"sleef\":%d,\"features\":[",
               lq_version(), m.cpu_name, lq_simd_name(lvl), threads, m.physical_cores,
               m.logical_cpus, m.l1d_bytes, m.l2_bytes, m.l3_bytes, m.os_avx, m.os_avx512,
               m.have_hwloc, m.have_sleef);
        int first = 1;
        for (size_t i = 0; i < nf; i++)
            if (feats[i].on) {
                printf("%s\"%s\"", first ? "" : ",", feats[i].name);
                first = 0;
            }
        printf("]}\n");
        return 0;
    }
    char l1[32], l2[32], l3[32];
    kib(l1, sizeof l1, m.l1d_bytes);
    kib(l2, sizeof l2, m.l2_bytes);
    kib(l3, sizeof l3, m.l3_bytes);
    printf("libquant %s\n", lq_version());
    printf("cpu:        %s\n", m.cpu_name[0] ? m.cpu_name : "unknown");
    printf("features:  ");
    for (size_t i = 0; i < nf; i++)
        if (feats[i].on) printf(" %s", feats[i].name);
    printf("\nos state:   avx %s, avx512 %s\n", m.os_avx ? "yes" : "no",
           m.os_avx512 ? "yes" : "no");
    printf("dispatch:   %s (LQ_SIMD=scalar|avx2|avx512|neon lowers it)\n", lq_simd_name(lvl));
    printf("threads:    %zu (default context)\n", threads);
    printf("topology:   %zu physical cores, %zu logical CPUs (%s)\n", m.physical_cores,
           m.logical_cpus, m.have_hwloc ? "hwloc" : "sysconf");
    printf("caches:     L1d %s, L2 %s, L3 %s\n", l1, l2, l3);
    printf("vector math: %s\n", m.have_sleef ? "SLEEF" : "libm fallback");
    return 0;
}
