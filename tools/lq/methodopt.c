/* Method names and options of the lq program (methodopt.h). */
#include "methodopt.h"

#include <math.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>

/* The options each method reads (beyond the engine's), for the help text.
 * The methods themselves come from the library's registry
 * (lq_method_get_info): a method missing here gets no option line, and
 * test_cli checks that every registered method has one. */
static const struct {
    lq_method_kind kind;
    const char *options;
} g_method_opts[] = {
    {LQ_METHOD_INT,
     "--bits --group --symmetric --mse-clip --gguf-compatible TYPE\n"
     "      (TYPE q4_0|q4_1|q5_0|q5_1|q8_0: the grid `lq export --gguf` writes exactly)"},
    {LQ_METHOD_NESTQUANT, "--q --betas --group --no-hadamard --select first|best|exhaustive\n"
                          "      --codebook voronoi|e8p (e8p: 2 bits/weight, --q --betas --select "
                          "ignored)"},
    {LQ_METHOD_GPTVQ, "--dim --index-bits --group-cols --group-rows --em-iters --codebook-bits\n"
                      "      --svd-rank --no-codebook-update"},
    {LQ_METHOD_GPTQT, "--k (or --bits) --group --iters --linear-bits --rescale-steps\n"
                      "      --no-offset --grid-codes"},
    {LQ_METHOD_BCQ, "--k (or --bits) --group --iters --linear-bits --rescale-steps\n"
                    "      --no-offset --grid-codes"},
    {LQ_METHOD_AQLM, "--codebooks --code-bits --vec --beam --rounds --kmeans-iters"},
};

#define UNSET LQ_CLI_UNSET

static unsigned u(size_t v) { return v > UINT32_MAX ? UINT32_MAX : (unsigned)v; }

/* --gguf-compatible TYPE: the INT grid of a GGUF legacy type (docs/formats.md
 * section 4): group 32, the type's bits, symmetric for the _0 types, and
 * gguf_exact (half scales; zero * scale a half for the _1 types). */
static int apply_gguf(const lq_cli_qopts *o, lq_method *m)
{
    static const struct {
        const char *name;
        unsigned bits;
        int symmetric;
    } types[] = {{"q4_0", 4, 1}, {"q4_1", 4, 0}, {"q5_0", 5, 1}, {"q5_1", 5, 0}, {"q8_0", 8, 1}};
    const char *t = o->gguf_compatible;
    size_t i = 0;
    while (i < sizeof types / sizeof types[0] && strcmp(types[i].name, t)) i++;
    if (i == sizeof types / sizeof types[0]) {
        fprintf(stderr,
                "error: --gguf-compatible takes q4_0, q4_1, q5_0, q5_1 or q8_0, not '" LQ_CLIP_FMT
                "'\n",
                LQ_CLIP(t));
        return -1;
    }
    if (m->kind != LQ_METHOD_INT) {
        fprintf(stderr,
                "error: --gguf-compatible is an option of --method int (GGUF's Q types "
                "are integer grids); %s tensors have no GGUF type\n",
                lq_cli_method_name(m->kind));
        return -1;
    }
    if ((o->bits != UNSET && o->bits != types[i].bits) || (o->group != UNSET && o->group != 32) ||
        (o->symmetric && !types[i].symmetric)) {
        fprintf(stderr,
                "error: --gguf-compatible %s means --bits %u --group 32%s; drop the "
                "contradicting --bits/--group/--symmetric\n",
                t, types[i].bits, types[i].symmetric ? " --symmetric" : " (asymmetric)");
        return -1;
    }
    if (m->engine.act_order && !m->engine.static_groups) {
        fprintf(stderr, "error: --gguf-compatible with --act-order needs --static-groups (GGUF "
                        "blocks are runs of 32 consecutive columns)\n");
        return -1;
    }
    m->u.int_.bits = types[i].bits;
    m->u.int_.group = 32;
    m->u.int_.symmetric = types[i].symmetric;
    m->u.int_.gguf_exact = 1;
    return 0;
}

/* Map the options onto lq_method fields (documented in `lq quantize --help`). */
int lq_cli_qopts_apply(const lq_cli_qopts *o, lq_method *m)
{
#define SET(field, v)                                                                              \
    if ((v) != UNSET) field = (v)
#define SETU(field, v)                                                                             \
    if ((v) != UNSET) field = u(v)
    if (o->rtn) m->engine.rtn = 1;
    if (o->act_order) m->engine.act_order = 1;
    if (o->static_groups) m->engine.static_groups = 1;
    if (!isnan(o->percdamp)) m->engine.percdamp = o->percdamp;
    SET(m->engine.block_size, o->block_size);
    switch (m->kind) {
    case LQ_METHOD_INT:
        SETU(m->u.int_.bits, o->bits);
        SET(m->u.int_.group, o->group);
        if (o->symmetric) m->u.int_.symmetric = 1;
        if (o->mse_clip) m->u.int_.mse_clip = 1;
        break;
    case LQ_METHOD_NESTQUANT:
        SETU(m->u.nestquant.q, o->q);
        SETU(m->u.nestquant.n_betas, o->betas);
        SET(m->u.nestquant.group, o->group);
        if (o->no_hadamard) m->u.nestquant.hadamard = 0;
        if (o->select_name) {
            static const char *const names[] = {"first", "best", "exhaustive"};
            int sel = -1;
            for (int i = 0; i < 3; i++)
                if (!strcmp(o->select_name, names[i])) sel = i;
            if (sel < 0) {
                fprintf(stderr,
                        "error: unknown --select '" LQ_CLIP_FMT "' (first, best, exhaustive)\n",
                        LQ_CLIP(o->select_name));
                return -1;
            }
            m->u.nestquant.select = (unsigned)sel;
        }
        if (o->codebook_name) {
            if (!strcmp(o->codebook_name, "voronoi"))
                m->u.nestquant.codebook = LQ_NQ_CODEBOOK_VORONOI;
            else if (!strcmp(o->codebook_name, "e8p"))
                m->u.nestquant.codebook = LQ_NQ_CODEBOOK_E8P;
            else {
                fprintf(stderr, "error: unknown --codebook '" LQ_CLIP_FMT "' (voronoi, e8p)\n",
                        LQ_CLIP(o->codebook_name));
                return -1;
            }
        }
        break;
    case LQ_METHOD_GPTVQ:
        SETU(m->u.gptvq.dim, o->dim);
        SETU(m->u.gptvq.index_bits, o->index_bits);
        SET(m->u.gptvq.group_cols, o->group_cols);
        SET(m->u.gptvq.group_rows, o->group_rows);
        SETU(m->u.gptvq.em_iters, o->em_iters);
        SETU(m->u.gptvq.codebook_bits, o->codebook_bits);
        SET(m->u.gptvq.svd_rank, o->svd_rank);
        if (o->no_codebook_update) m->u.gptvq.codebook_update = 0;
        break;
    case LQ_METHOD_GPTQT:
    case LQ_METHOD_BCQ:
        SETU(m->u.bcq.k, o->k != UNSET ? o->k : o->bits);
        SET(m->u.bcq.group, o->group);
        SETU(m->u.bcq.iters, o->iters);
        SETU(m->u.bcq.linear_bits, o->linear_bits);
        SETU(m->u.bcq.rescale_steps, o->rescale_steps);
        if (o->no_offset) m->u.bcq.offset = 0;
        if (o->grid_codes) m->u.bcq.grid_codes = 1;
        break;
    case LQ_METHOD_AQLM:
        SETU(m->u.aqlm.n_codebooks, o->codebooks);
        SETU(m->u.aqlm.code_bits, o->code_bits);
        SETU(m->u.aqlm.group, o->vec);
        SETU(m->u.aqlm.beam, o->beam);
        SETU(m->u.aqlm.rounds, o->rounds);
        SETU(m->u.aqlm.kmeans_iters, o->kmeans_iters);
        break;
    }
#undef SET
#undef SETU
    return o->gguf_compatible ? apply_gguf(o, m) : 0;
}

const char *lq_cli_method_list(void)
{
    static char buf[256];
    if (!buf[0]) {
        size_t len = 0;
        for (size_t i = 0; i < lq_method_count(); i++) {
            lq_method_info mi;
            if (lq_method_get_info(i, &mi) != LQ_OK) break;
            int w = snprintf(buf + len, sizeof buf - len, "%s%s", i ? ", " : "", mi.name);
            if (w < 0 || (size_t)w >= sizeof buf - len) break;
            len += (size_t)w;
        }
    }
    return buf;
}

const char *lq_cli_method_options(lq_method_kind kind)
{
    for (size_t i = 0; i < sizeof g_method_opts / sizeof g_method_opts[0]; i++)
        if (g_method_opts[i].kind == kind) return g_method_opts[i].options;
    return NULL;
}

int lq_cli_method_kind(const char *name, lq_method_kind *kind)
{
    return name && lq_method_by_name(name, kind) == LQ_OK ? 0 : -1;
}

const char *lq_cli_method_name(lq_method_kind kind)
{
    const char *n = lq_method_name(kind);
    return n ? n : "?";
}

void lq_cli_qopts_init(lq_cli_qopts *o)
{
    {
        size_t *sz[] = {
            &o->bits,         &o->group,      &o->q,          &o->betas,       &o->dim,
            &o->index_bits,   &o->group_cols, &o->group_rows, &o->em_iters,    &o->codebook_bits,
            &o->svd_rank,     &o->k,          &o->iters,      &o->linear_bits, &o->rescale_steps,
            &o->codebooks,    &o->code_bits,  &o->vec,        &o->beam,        &o->rounds,
            &o->kmeans_iters, &o->block_size};
        for (size_t i = 0; i < sizeof sz / sizeof sz[0]; i++) *sz[i] = UNSET;
        o->percdamp = NAN;
        o->rtn = o->act_order = o->static_groups = o->symmetric = o->mse_clip = 0;
        o->no_hadamard = o->no_codebook_update = o->no_offset = o->grid_codes = 0;
        o->select_name = o->codebook_name = NULL;
        o->gguf_compatible = NULL;
    }
}

size_t lq_cli_qopts_table(lq_cli_qopts *o, lq_opt *tab)
{
    const lq_opt t[] = {
        {"rtn", LQ_OPT_FLAG, "round to nearest (no Hessian updates)", &o->rtn},
        {"percdamp", LQ_OPT_DOUBLE, "damping, fraction of mean diag(H)", &o->percdamp},
        {"act-order", LQ_OPT_FLAG, "columns by descending diag(H)", &o->act_order},
        {"static-groups", LQ_OPT_FLAG, "group parameters from original order", &o->static_groups},
        {"block-size", LQ_OPT_SIZE, "lazy-update block", &o->block_size},
        {"bits", LQ_OPT_SIZE, "int: bits; gptqt/bcq: planes", &o->bits},
        {"group", LQ_OPT_SIZE, "columns per group (0: whole row)", &o->group},
        {"symmetric", LQ_OPT_FLAG, "int: symmetric grid", &o->symmetric},
        {"mse-clip", LQ_OPT_FLAG, "int: MSE-optimal range shrink", &o->mse_clip},
        {"gguf-compatible", LQ_OPT_STR, "int: q4_0|q4_1|q5_0|q5_1|q8_0 grid (exact GGUF export)",
         &o->gguf_compatible},
        {"q", LQ_OPT_SIZE, "nestquant: Voronoi modulus", &o->q},
        {"betas", LQ_OPT_SIZE, "nestquant: number of scales", &o->betas},
        {"select", LQ_OPT_STR, "nestquant: beta rule first|best|exhaustive", &o->select_name},
        {"codebook", LQ_OPT_STR, "nestquant: voronoi|e8p", &o->codebook_name},
        {"no-hadamard", LQ_OPT_FLAG, "nestquant: no Hadamard rotation", &o->no_hadamard},
        {"dim", LQ_OPT_SIZE, "gptvq: vector dimension", &o->dim},
        {"index-bits", LQ_OPT_SIZE, "gptvq: bits per index", &o->index_bits},
        {"group-cols", LQ_OPT_SIZE, "gptvq: columns per codebook", &o->group_cols},
        {"group-rows", LQ_OPT_SIZE, "gptvq: rows per codebook", &o->group_rows},
        {"em-iters", LQ_OPT_SIZE, "gptvq: EM iterations", &o->em_iters},
        {"codebook-bits", LQ_OPT_SIZE, "gptvq: 0 fp16, 8 int8", &o->codebook_bits},
        {"svd-rank", LQ_OPT_SIZE, "gptvq: SVD codebook rank", &o->svd_rank},
        {"no-codebook-update", LQ_OPT_FLAG, "gptvq: no codebook update", &o->no_codebook_update},
        {"k", LQ_OPT_SIZE, "gptqt/bcq: binary planes", &o->k},
        {"iters", LQ_OPT_SIZE, "gptqt/bcq: refinement iterations", &o->iters},
        {"linear-bits", LQ_OPT_SIZE, "gptqt: bits of the linear step", &o->linear_bits},
        {"rescale-steps", LQ_OPT_SIZE, "gptqt: scales searched", &o->rescale_steps},
        {"no-offset", LQ_OPT_FLAG, "gptqt/bcq: no offset", &o->no_offset},
        {"grid-codes", LQ_OPT_FLAG, "gptqt: code through the grid", &o->grid_codes},
        {"codebooks", LQ_OPT_SIZE, "aqlm: codebooks M", &o->codebooks},
        {"code-bits", LQ_OPT_SIZE, "aqlm: bits per code B", &o->code_bits},
        {"vec", LQ_OPT_SIZE, "aqlm: vector dimension g", &o->vec},
        {"beam", LQ_OPT_SIZE, "aqlm: beam size", &o->beam},
        {"rounds", LQ_OPT_SIZE, "aqlm: rounds", &o->rounds},
        {"kmeans-iters", LQ_OPT_SIZE, "aqlm: k-means iterations", &o->kmeans_iters},
    };
    _Static_assert(sizeof t / sizeof t[0] <= LQ_CLI_NMETHOD_OPTS, "raise LQ_CLI_NMETHOD_OPTS");
    memcpy(tab, t, sizeof t);
    return sizeof t / sizeof t[0];
}
