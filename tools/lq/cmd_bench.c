/* lq bench <name>: every benchmark of the library behind one command. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

/* One row per benchmark; each lives in bench_<name>.c. */
static const lq_bench_entry g_benches[] = {
    {"matvec", "products on the codes vs streaming bandwidth and dequant+GEMV", lq_bench_matvec},
    {"gemm", "sgemm/dgemm GFLOP/s at n = 512..4096, 1 and 2 threads", lq_bench_gemm},
    {"stream", "streaming read bandwidth of this machine", lq_bench_stream},
    {"gptq", "INT GPTQ seconds and proxy loss vs round to nearest", lq_bench_gptq},
    {"kmeans", "k-means (Lloyd) time and inertia, same data as the FAISS peer", lq_bench_kmeans},
    {"gptvq", "GPTVQ vs INT-GPTQ at 2.125 / 3.125 bpw: seconds, proxy loss", lq_bench_gptvq},
    {"e8", "E8 nearest point / NestQuant encode per ISA, rate-distortion, NQ vs INT GPTQ",
     lq_bench_e8},
    {"bcq", "GPTQT vs INT-GPTQ vs BCQ (engine, RTN): proxy loss and seconds at 2, 3 bits",
     lq_bench_bcq},
    {"aqlm", "AQLM 2x8 on a 4096^2 layer vs 2-bit methods; MSE beam encoder vs FAISS data",
     lq_bench_aqlm},
    {"io", "CRC-32C GB/s; .lqt save and load (read, mmap, copy) vs fread", lq_bench_io},
    {NULL, NULL, NULL}, /* sentinel so the table is never empty */
};

int lq_cmd_bench(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        FILE *f = argc < 2 ? stderr : stdout;
        fprintf(f, "usage: lq bench <name> [options]   (lq bench <name> --help)\n\nbenchmarks:\n");
        for (size_t i = 0; g_benches[i].name; i++)
            fprintf(f, "  %-10s %s\n", g_benches[i].name, g_benches[i].summary);
        return argc < 2 ? 2 : 0;
    }
    for (size_t i = 0; g_benches[i].name; i++)
        if (!strcmp(argv[1], g_benches[i].name)) return g_benches[i].run(argc - 1, argv + 1);
    fprintf(stderr, "error: unknown benchmark '%s'\n", argv[1]);
    return 2;
}
