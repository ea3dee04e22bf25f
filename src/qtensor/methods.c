/* The method registry: every quantization method in one table (name,
 * format, defaults, driver). lq_method_init, lq_quantize_ex, the name
 * lookups, the lq program's --method and its demos all iterate this table;
 * adding a method is one row here plus its driver (docs/design.md). */
#include <string.h>

#include "qtensor/qtensor_internal.h"

static void int_defaults(lq_method *m)
{
    m->u.int_ =
        (lq_int_opts){.bits = 4, .symmetric = 0, .group = 128, .mse_clip = 0, .gguf_exact = 0};
}

static void nestquant_defaults(lq_method *m)
{
    m->u.nestquant = (lq_nestquant_opts){.q = 16, .n_betas = 4, .group = 0, .hadamard = 1};
}

static void gptvq_defaults(lq_method *m)
{
    /* the paper's 2-D 2.125 bpw format (int8 codebooks per 256 columns x 8
     * rows); valid arguments, so the preset cannot fail */
    (void)lq_gptvq_preset(2, 2, &m->u.gptvq);
}

static void bcq_defaults(lq_method *m)
{
    m->u.bcq = (lq_bcq_opts){.k = 3,
                             .group = 128,
                             .offset = 1,
                             .iters = 15,
                             .linear_bits = 0,
                             .rescale_steps = 16,
                             .grid_codes = 0};
}

static void aqlm_defaults(lq_method *m)
{
    m->u.aqlm = (lq_aqlm_opts){
        .n_codebooks = 2, .code_bits = 8, .group = 8, .beam = 8, .rounds = 4, .kmeans_iters = 20};
}

static const lq_method_row g_methods[] = {
    {LQ_METHOD_INT, "int", LQ_FORMAT_INT, "uniform grid per group; GPTQ or round-to-nearest",
     int_defaults, lq_quantize_int},
    {LQ_METHOD_NESTQUANT, "nestquant", LQ_FORMAT_E8,
     "E8 nested-lattice (Voronoi) codes with several betas, Hadamard rotation, GPTQ",
     nestquant_defaults, lq_quantize_nestquant},
    {LQ_METHOD_GPTVQ, "gptvq", LQ_FORMAT_VQ,
     "vector quantization, EM codebooks per block, GPTQ updates", gptvq_defaults,
     lq_quantize_gptvq},
    {LQ_METHOD_GPTQT, "gptqt", LQ_FORMAT_BCQ,
     "linear quantization converted to binary coding (GPTQT)", bcq_defaults, lq_quantize_gptqt},
    {LQ_METHOD_BCQ, "bcq", LQ_FORMAT_BCQ, "binary-coding quantization (alternating fit)",
     bcq_defaults, lq_quantize_bcq},
    {LQ_METHOD_AQLM, "aqlm", LQ_FORMAT_AQ,
     "additive multi-codebook quantization, beam search under the Hessian", aqlm_defaults,
     lq_quantize_aqlm},
};
#define NMETHODS (sizeof g_methods / sizeof g_methods[0])

const lq_method_row *lq_method_row_of(lq_method_kind kind)
{
    for (size_t i = 0; i < NMETHODS; i++)
        if (g_methods[i].kind == kind) return &g_methods[i];
    return NULL;
}

lq_status lq_method_init(lq_method *m, lq_method_kind kind)
{
    const lq_method_row *row = lq_method_row_of(kind);
    if (!m || !row) return LQ_ERR_INVALID_ARG; /* *m untouched on error */
    memset(m, 0, sizeof *m);
    m->kind = kind;
    m->engine.percdamp = 0.01;
    m->engine.block_size = 128;
    row->defaults(m);
    return LQ_OK;
}

size_t lq_method_count(void) { return NMETHODS; }

lq_status lq_method_get_info(size_t i, lq_method_info *info)
{
    if (!info || i >= NMETHODS) return LQ_ERR_INVALID_ARG;
    const lq_method_row *r = &g_methods[i];
    *info = (lq_method_info){
        .kind = r->kind, .name = r->name, .format = r->format, .summary = r->summary};
    return LQ_OK;
}

lq_status lq_method_by_name(const char *name, lq_method_kind *kind)
{
    if (!name || !kind) return LQ_ERR_INVALID_ARG;
    for (size_t i = 0; i < NMETHODS; i++)
        if (!strcmp(g_methods[i].name, name)) {
            *kind = g_methods[i].kind;
            return LQ_OK;
        }
    return LQ_ERR_INVALID_ARG;
}

const char *lq_method_name(lq_method_kind kind)
{
    const lq_method_row *r = lq_method_row_of(kind);
    return r ? r->name : NULL;
}
