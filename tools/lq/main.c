/* lq: the libquant command-line program. `lq <command> [options]`. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

/* One row per sub-command. */
static const lq_cli_command g_commands[] = {
    {"info", "CPU features, dispatch level, threads and topology", lq_cmd_info},
    {"bench", "benchmarks (lq bench --help lists them)", lq_cmd_bench},
    {"quantize", "quantize safetensors/.npy weights into an .lqt file", lq_cmd_quantize},
    {"inspect", "header, sections, bits per weight and validity of an .lqt file", lq_cmd_inspect},
    {"eval", "perplexity and KL divergence of a model (fp32 or .lqt) on a text", lq_cmd_eval},
    {"generate", "text from a model (fp32 or .lqt), greedy or sampled", lq_cmd_generate},
    {"dequantize", "every tensor of an .lqt back to float, as safetensors", lq_cmd_dequantize},
    {"export", "a model (.lqt) as GGUF for llama.cpp, exact for Q4_0..Q8_0 INT layers",
     lq_cmd_export},
    {"demo", "every method on a synthetic layer at 2, 3 and 4 bits: one table", lq_cmd_demo},
};
#define NCOMMANDS (sizeof g_commands / sizeof g_commands[0])

static void usage(FILE *f)
{
    fprintf(f, "usage: lq <command> [options]\n       lq --version\n\ncommands:\n");
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf(f, "  %-10s %s\n", g_commands[i].name, g_commands[i].summary);
    fprintf(f, "\n`lq <command> --help` describes a command.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
        printf("lq (libquant) %s\n", lq_version());
        return 0;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (!strcmp(argv[1], g_commands[i].name)) return g_commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "error: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
