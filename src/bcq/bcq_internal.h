/*
 * Internal pieces of binary coding shared by the fits, the GPTQT
 * conversion, the layer drivers (src/qtensor/method_{bcq,gptqt}.c) and the
 * packed format (src/qtensor/format_bcq.c).
 */
#ifndef LQ_BCQ_INTERNAL_H
#define LQ_BCQ_INTERNAL_H

#include "core/internal.h"
#include "quant/bcq.h"
#include "quant/hessian.h"

/* The value of code c: offset + sum_i (bit_i ? alpha_i : -alpha_i), summed
 * in float in plane order. Every decoder uses this so that decoded values
 * are identical everywhere. */
static inline float lq_bcq_value(const float *alpha, unsigned k, float offset, unsigned c)
{
    float v = offset;
    for (unsigned i = 0; i < k; i++) v += ((c >> i) & 1u) ? alpha[i] : -alpha[i];
    return v;
}

/* Alternating refinement of (alpha, *off) on w (weights v, NULL = ones;
 * at least one positive) starting by coding w to the nearest levels;
 * codes[n] receive the final codes. Returns the weighted squared error. */
double lq_bcq_refine(const float *w, const float *v, size_t n, unsigned k, int use_off,
                     unsigned iters, double tol, float *alpha, float *off, uint8_t *codes);

/* Sorted level table of (alpha, offset): lev[2^k] ascending (exactly
 * sorted on the float values lq_bcq_value gives), code[2^k]. */
void lq_bcq_table(const float *alpha, unsigned k, float offset, float *lev, uint8_t *code);

/* Index of the level nearest to x in lev[0..L) (ascending); ties go to the
 * upper level (as sign(0) = +1 in the greedy fit). The comparison is made in double, so the choice
 * is exact. */
static inline size_t lq_bcq_nearest(const float *lev, size_t L, float x)
{
    if (L <= 16) { /* branch-free: count the midpoints at or below x (exact in double) */
        size_t idx = 0;
        double x2 = 2.0 * (double)x;
        for (size_t i = 1; i < L; i++) idx += x2 >= (double)lev[i - 1] + (double)lev[i];
        return idx;
    }
    size_t lo = 0, hi = L; /* first index with lev >= x */
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (lev[mid] < x)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0) return 0;
    if (lo == L) return L - 1;
    double dl = (double)x - (double)lev[lo - 1], dh = (double)lev[lo] - (double)x;
    return dl < dh ? lo - 1 : lo;
}

/* ---- the column quantizer behind LQ_METHOD_BCQ and LQ_METHOD_GPTQT ------
 * One state for both: per (row, group) it fits either a BCQ directly
 * (lq_bcq_fit) or GPTQT's grid-then-conversion (lq_gptqt_convert) on the
 * group's current weights, weighted by 1 / [H^-1]_jj when `weighted`;
 * quantize() codes each weight of a column against its row's sorted levels
 * and writes the bits straight into the plane section. */
typedef struct lq_bcq_cq {
    lq_colquant vt;
    lq_ctx *ctx;
    size_t rows, cols, group, ngroups, bpr;
    unsigned k, iters;
    int offset, weighted, side16;
    int gptqt, grid_codes;
    unsigned lbits, steps;
    uint8_t *planes; /* the qtensor's code section: k x rows x bpr */
    float *alpha;    /* rows x ngroups x k (rounded to the stored precision) */
    float *off;      /* rows x ngroups */
    double *gscale;  /* GPTQT: rows x ngroups grid step */
    double *gorigin; /* GPTQT: rows x ngroups grid origin */
    size_t cur_g;    /* group whose level tables are built (SIZE_MAX: none) */
    float *lev;      /* rows x 2^k sorted levels of group cur_g */
    uint8_t *lcode;  /* rows x 2^k their codes */
    uint8_t *gmap;   /* GPTQT grid codes: rows x 2^lbits level -> code */
    float *imp;      /* group importance (group floats) */
    float *scr_w;    /* per fit task: group floats */
    uint8_t *scr_c;  /* per fit task: group bytes */
    lq_status *st;   /* per fit task */
    size_t nchunks;
} lq_bcq_cq;

#define LQ_BCQ_ROW_GRAIN 32

typedef struct lq_bcq_cq_cfg {
    size_t rows, cols, group; /* group 0 or >= cols: whole row */
    unsigned k, iters;
    int offset, weighted, side16;
    int gptqt, grid_codes;
    unsigned lbits, steps;
    uint8_t *planes;
} lq_bcq_cq_cfg;

/* Allocate the state (NO_MEMORY frees what was taken). */
lq_status lq_bcq_cq_init(lq_ctx *ctx, const lq_bcq_cq_cfg *cfg, lq_bcq_cq *cq);
void lq_bcq_cq_free(lq_bcq_cq *cq);
/* Round-to-nearest without the engine: fit every group on W (unweighted)
 * and code every column; W_hat (rows x cols) receives the decoded weight. */
lq_status lq_bcq_cq_run_rtn(lq_bcq_cq *cq, const float *W, float *W_hat);
/* Store alphas and offsets into sections (fp16 when side16, else fp32). */
void lq_bcq_cq_store(const lq_bcq_cq *cq, void *alpha_sec, void *off_sec);

/* The layer driver of LQ_METHOD_BCQ (gptqt = 0) and LQ_METHOD_GPTQT
 * (gptqt = 1), in src/qtensor/method_bcq.c. */
lq_status lq_bcq_quantize_common(lq_ctx *ctx, const float *W, size_t rows, size_t cols,
                                 const float *H, const lq_method *m, int gptqt, lq_qtensor **out,
                                 float *W_hat, lq_quant_report *rep);

/* Round a side value to the stored precision (fp16 saturates at +-65504). */
float lq_bcq_round_side(float x, int side16);

#endif
