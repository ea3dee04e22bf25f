/* Method names and method options of the lq program, shared by quantize,
 * demo and the model pipeline: one table of options mapped onto lq_method. */
#ifndef LQ_METHODOPT_H
#define LQ_METHODOPT_H

#include "cli.h"

#define LQ_CLI_UNSET SIZE_MAX

/* Method options as given on the command line (UNSET / NAN: keep default). */
typedef struct lq_cli_qopts {
    size_t bits, group, q, betas, dim, index_bits, group_cols, group_rows, em_iters, codebook_bits,
        svd_rank, k, iters, linear_bits, rescale_steps, codebooks, code_bits, vec, beam, rounds,
        kmeans_iters, block_size;
    double percdamp;
    int rtn, act_order, static_groups, symmetric, mse_clip, no_hadamard, no_codebook_update,
        no_offset, grid_codes;
    const char *gguf_compatible;             /* int: q4_0, q4_1, q5_0, q5_1 or q8_0 (NULL: unset) */
    const char *select_name, *codebook_name; /* nestquant --select / --codebook (NULL: default) */
} lq_cli_qopts;

/* Every option unset. */
void lq_cli_qopts_init(lq_cli_qopts *o);
/* The method options as lq_opt rows bound to o (LQ_CLI_NMETHOD_OPTS of them)
 * into tab. */
#define LQ_CLI_NMETHOD_OPTS 36
size_t lq_cli_qopts_table(lq_cli_qopts *o, lq_opt *tab);
/* Map the given options onto m (its kind decides which apply). Returns 0,
 * or -1 with a message on stderr when they contradict each other
 * (--gguf-compatible against --bits, --group, --symmetric, --act-order
 * without --static-groups, or a method other than int; an unknown --select
 * or --codebook). */
int lq_cli_qopts_apply(const lq_cli_qopts *o, lq_method *m);
/* Method kind of a name ("int", "nestquant", ...): 0, or -1 when unknown. */
int lq_cli_method_kind(const char *name, lq_method_kind *kind);
/* The name of a kind ("?" when unknown). */
const char *lq_cli_method_name(lq_method_kind kind);
/* "int, nestquant, gptvq, gptqt, bcq, aqlm": the registry's names. */
const char *lq_cli_method_list(void);
/* Help text of a method's own options (NULL when it has none listed). */
const char *lq_cli_method_options(lq_method_kind kind);

/* Arguments of `lq quantize` on a model (cmd_quantize_model.c). */
typedef struct lq_model_quant_args {
    const char *method, *in, *out, *calib_text, *tokenizer, *exclude;
    size_t calib_chunks, threads, seed;
    int fp_inputs, json, quiet;
    const lq_cli_qopts *opts;
    size_t finetune_steps; /* block-wise fine-tuning (0: off) */
    double finetune_lr;
    /* activation / KV-cache quantization during the calibration (actq.h;
     * NULL: none) and --act-correct (yes, no; NULL: yes) */
    const struct lq_actq_cli *act;
    const char *act_correct;
    double act_damp; /* --act-damp (NAN: the method's --percdamp) */
} lq_model_quant_args;
int lq_quantize_model(const lq_model_quant_args *a);
/* 1 when path is a model rather than a tensor file: a directory, or a file
 * that is neither safetensors, .npy nor .lqt (a llama2.c checkpoint). */
int lq_cli_is_model(const char *path);

#endif
