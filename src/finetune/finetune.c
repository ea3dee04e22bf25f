/*
 * Fine-tuning of a packed tensor's continuous parameters (quant/finetune.h).
 *
 * Each format contributes a parameter map (which sections hold the tuned
 * values, in which storage type) and a gradient routine. With the codes
 * fixed W_hat is linear in each parameter family:
 *   INT   W[r, perm k] = (c - z) s[r, k / g]           dL/ds = sum G (c - z)
 *   E8    W = R^T W',  W'[r, 8j + i] = s (beta y_i)     dL/dW' = R [G 0]
 *   E8P   as E8 with y the E8P codeword                 dL/ds = sum dL/dW' (beta y)
 *   VQ    W[r, d v + j] = C_gi[e d + j] (fp16)          dL/dC = sum of G over uses
 *         W = int8 * scale_gi                           dL/dscale = sum G int8
 *   BCQ   W = off + sum_i b_i alpha_i                   dL/dalpha_i = sum G b_i
 *   AQ    W[r, j g + q] = s_r sum_m C_m[c_m][q]         dL/dC = s_r G, dL/ds_r = sum G v
 * All sums run in a fixed order in double on one thread, so results do not
 * depend on the thread count.
 */
#include <float.h>
#include <math.h>
#include <string.h>

#include "quant/finetune.h"

#include "core/half.h"
#include "core/internal.h"
#include "lattice/lattice_internal.h"
#include "mcq/aq_internal.h"
#include "qtensor/format_aq.h"
#include "qtensor/format_bcq.h"
#include "qtensor/format_e8.h"
#include "qtensor/format_e8p.h"
#include "qtensor/format_int.h"
#include "qtensor/format_vq.h"
#include "qtensor/qtensor_internal.h"
#include "vq/vq_internal.h"

#define FT_MAX_FAM 2
#define FT_HALF_MAX 65504.0

/* One family of parameters: `count` values of `elem` bytes (2 = IEEE half,
 * 4 = float) at the start of section `tag`. positive: values must stay > 0
 * (VQ int8 codebook scales). */
typedef struct ft_family {
    uint32_t tag;
    unsigned elem;
    size_t count;
    int positive;
} ft_family;

typedef struct ft_map {
    size_t nfam, total;
    ft_family fam[FT_MAX_FAM];
} ft_map;

struct lq_finetune {
    lq_allocator alloc;
    lq_format format;
    size_t rows, cols, n, steps;
    lq_adam_opts o;
    float *master;
    double *m, *v;
};

static lq_status add_family(ft_map *mp, const lq_qtensor *t, uint32_t tag, unsigned elem,
                            size_t count, int positive)
{
    const lq_qsection *s = lq_qtensor_section(t, tag);
    size_t need;
    if (!s || !lq_mul_ok(count, elem, &need) || s->nbytes < need || (count && !s->data))
        return LQ_ERR_CORRUPT;
    mp->fam[mp->nfam++] = (ft_family){tag, elem, count, positive};
    mp->total += count;
    return LQ_OK;
}

/* The parameter map of a validated tensor, through its format's typed layout. */
static lq_status map_of(const lq_qtensor *t, ft_map *mp)
{
    memset(mp, 0, sizeof *mp);
    size_t n;
    switch (t->format) {
    case LQ_FORMAT_INT: {
        lq_int_layout v;
        if (lq_int_layout_of(t, &v) != LQ_OK || !lq_mul_ok(t->rows, v.ngroups, &n))
            return LQ_ERR_CORRUPT;
        return add_family(mp, t, LQ_SEC_SCALES, (unsigned)v.scale_bytes, n, 0);
    }
    case LQ_FORMAT_E8: {
        lq_e8_layout v;
        if (lq_e8_layout_of(t, &v) != LQ_OK || !lq_mul_ok(t->rows, v.ngroups, &n))
            return LQ_ERR_CORRUPT;
        return add_family(mp, t, LQ_SEC_SCALES, 4, n, 0);
    }
    case LQ_FORMAT_E8P: {
        lq_e8p_layout v;
        if (lq_e8p_layout_of(t, &v) != LQ_OK || !lq_mul_ok(t->rows, v.ngroups, &n))
            return LQ_ERR_CORRUPT;
        return add_family(mp, t, LQ_SEC_SCALES, 4, n, 0);
    }
    case LQ_FORMAT_VQ: {
        lq_vq_layout v;
        if (lq_vq_layout_read(t, &v) != LQ_OK) return LQ_ERR_CORRUPT;
        if (v.rank) return LQ_ERR_UNSUPPORTED;
        if (v.cbits == 8) return add_family(mp, t, LQ_SEC_SCALES, 4, v.ncb, 1);
        if (!lq_mul_ok(v.ncb, v.K * v.d, &n)) return LQ_ERR_CORRUPT;
        return add_family(mp, t, LQ_SEC_CODEBOOKS, 2, n, 0);
    }
    case LQ_FORMAT_BCQ: {
        lq_bcq_layout v;
        size_t na;
        if (lq_bcq_layout_of(t, &v) != LQ_OK || !lq_mul_ok(t->rows, v.ngroups, &n) ||
            !lq_mul_ok(n, v.k, &na))
            return LQ_ERR_CORRUPT;
        lq_status st = add_family(mp, t, LQ_SEC_ALPHAS, v.side, na, 0);
        if (st == LQ_OK && v.has_off) st = add_family(mp, t, LQ_SEC_OFFSETS, v.side, n, 0);
        return st;
    }
    case LQ_FORMAT_AQ: {
        lq_aq_layout v;
        if (lq_aq_layout_read(t, &v) != LQ_OK) return LQ_ERR_CORRUPT;
        lq_status st = add_family(mp, t, LQ_SEC_CODEBOOKS, v.value_bytes, v.M * v.K * v.g, 0);
        if (st == LQ_OK) st = add_family(mp, t, LQ_SEC_SCALES, 4, t->rows, 0);
        return st;
    }
    default: return LQ_ERR_UNSUPPORTED;
    }
}

static lq_status checked_map(const lq_qtensor *t, ft_map *mp)
{
    if (!t) return LQ_ERR_INVALID_ARG;
    lq_status st = lq_qtensor_validate(t);
    if (st != LQ_OK) return st;
    return map_of(t, mp);
}

static float fam_get(const ft_family *f, const void *data, size_t i)
{
    const uint8_t *p = (const uint8_t *)data + i * f->elem;
    if (f->elem == 2) return lq_f16_to_f32((uint16_t)(p[0] | (p[1] << 8)));
    uint32_t u =
        (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

static void fam_put(const ft_family *f, void *data, size_t i, float x)
{
    uint8_t *p = (uint8_t *)data + i * f->elem;
    if (f->elem == 2) {
        uint16_t h = lq_f32_to_f16(x);
        p[0] = (uint8_t)h;
        p[1] = (uint8_t)(h >> 8);
        return;
    }
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    for (int b = 0; b < 4; b++) p[b] = (uint8_t)(u >> (8 * b));
}

/* The value x takes once stored (rounded to a half where stored so). */
static float fam_round(const ft_family *f, float x)
{
    return f->elem == 2 ? lq_f16_to_f32(lq_f32_to_f16(x)) : x;
}

static void get_all(const lq_qtensor *t, const ft_map *mp, float *p)
{
    size_t o = 0;
    for (size_t k = 0; k < mp->nfam; k++) {
        const ft_family *f = &mp->fam[k];
        const void *d = lq_qtensor_section(t, f->tag)->data;
        for (size_t i = 0; i < f->count; i++) p[o++] = fam_get(f, d, i);
    }
}

/* Check every value of p against its family's storage. */
static lq_status check_values(const ft_map *mp, const float *p)
{
    size_t o = 0;
    lq_status st = LQ_OK;
    for (size_t k = 0; k < mp->nfam; k++) {
        const ft_family *f = &mp->fam[k];
        for (size_t i = 0; i < f->count; i++, o++) {
            float x = p[o];
            if (!isfinite(x)) return LQ_ERR_NOT_FINITE;
            if (fabsf(x) > LQ_MAX_ABS_WEIGHT || (f->elem == 2 && fabs((double)x) > FT_HALF_MAX) ||
                (f->positive && !(x >= FLT_MIN)))
                st = LQ_ERR_OUT_OF_RANGE;
        }
    }
    return st;
}

static void put_all(lq_qtensor *t, const ft_map *mp, const float *p)
{
    size_t o = 0;
    for (size_t k = 0; k < mp->nfam; k++) {
        const ft_family *f = &mp->fam[k];
        lq_qsection *s = lq_qtensor_section_mut(t, f->tag);
        for (size_t i = 0; i < f->count; i++) fam_put(f, s->data, i, p[o++]);
    }
    lq_qtensor_drop_kernel_layout(t); /* built from the old values */
}

lq_status lq_finetune_param_count(const lq_qtensor *t, size_t *n)
{
    if (!t || !n) return LQ_ERR_INVALID_ARG;
    ft_map mp;
    lq_status st = checked_map(t, &mp);
    if (st != LQ_OK) return st;
    *n = mp.total;
    return LQ_OK;
}

lq_status lq_finetune_get_params(const lq_qtensor *t, float *p, size_t n)
{
    if (!t || !p) return LQ_ERR_INVALID_ARG;
    ft_map mp;
    lq_status st = checked_map(t, &mp);
    if (st != LQ_OK) return st;
    if (n != mp.total) return LQ_ERR_INVALID_ARG;
    get_all(t, &mp, p);
    return LQ_OK;
}

lq_status lq_finetune_set_params(lq_qtensor *t, const float *p, size_t n)
{
    if (!t || !p) return LQ_ERR_INVALID_ARG;
    ft_map mp;
    lq_status st = checked_map(t, &mp);
    if (st != LQ_OK) return st;
    if (n != mp.total) return LQ_ERR_INVALID_ARG;
    if (t->borrowed) return LQ_ERR_UNSUPPORTED;
    if ((st = check_values(&mp, p)) != LQ_OK) return st;
    put_all(t, &mp, p);
    return LQ_OK;
}

/* ---- gradients (t validated; g: mp.total doubles, zeroed) ------------------ */

static void grad_int(const lq_qtensor *t, const float *G, double *g)
{
    lq_int_layout v;
    lq_int_layout_of(t, &v);
    for (size_t r = 0; r < t->rows; r++)
        for (size_t k = 0; k < t->cols; k++) {
            size_t gi = k / v.group;
            double c =
                (double)((int)lq_int_layout_code(&v, r, k) - (int)lq_int_layout_zero(&v, r, gi));
            g[r * v.ngroups + gi] += (double)G[r * t->cols + (v.perm ? v.perm[k] : k)] * c;
        }
}

/* What the E8 and E8P gradients need of either layout. */
typedef struct ft_e8 {
    int e8p;
    lq_e8_layout e8;
    lq_e8p_layout e8p_v;
    size_t n8, ngroups, group;
    unsigned hadamard;
    uint64_t seed;
} ft_e8;

static lq_status ft_e8_of(const lq_qtensor *t, ft_e8 *f)
{
    memset(f, 0, sizeof *f);
    f->e8p = t->format == LQ_FORMAT_E8P;
    if (f->e8p) {
        if (lq_e8p_layout_of(t, &f->e8p_v) != LQ_OK) return LQ_ERR_CORRUPT;
        f->n8 = f->e8p_v.n8;
        f->ngroups = f->e8p_v.ngroups;
        f->group = f->e8p_v.group;
        f->hadamard = f->e8p_v.hadamard;
        f->seed = f->e8p_v.seed;
    } else {
        if (lq_e8_layout_of(t, &f->e8) != LQ_OK) return LQ_ERR_CORRUPT;
        f->n8 = f->e8.n8;
        f->ngroups = f->e8.ngroups;
        f->group = f->e8.group;
        f->hadamard = f->e8.hadamard;
        f->seed = f->e8.seed;
    }
    return LQ_OK;
}

/* E8 / E8P: unscaled row r of W' into base (n8 floats); false on corrupt codes. */
static bool e8_base_row(const ft_e8 *f, const lq_lattice_kernels *k, size_t r, float *base)
{
    size_t nblk = f->n8 / 8;
    if (f->e8p) {
        for (size_t j = 0; j < nblk; j++) lq_e8p_point(f->e8p_v.codes[r * nblk + j], base + 8 * j);
        return true;
    }
    const lq_e8_layout *v = &f->e8;
    uint8_t c[8];
    for (size_t j = 0; j < nblk; j++) {
        if (!lq_voronoi_from_index(v->q, lq_e8_layout_code(v, r, j), c)) return false;
        unsigned bi = lq_e8_layout_beta(v, r, j);
        if (bi >= v->K) return false;
        lq_voronoi_decode_batch(k, v->q, c, 1, base + 8 * j);
        float beta = v->betas[bi];
        for (int i = 0; i < 8; i++) base[8 * j + i] = beta * base[8 * j + i];
    }
    return true;
}

static lq_status grad_e8(lq_ctx *ctx, const lq_qtensor *t, const float *G, double *g)
{
    ft_e8 f;
    if (ft_e8_of(t, &f) != LQ_OK) return LQ_ERR_CORRUPT;
    size_t n8 = f.n8, ng = f.ngroups;
    const lq_lattice_kernels *k = lq_lattice_kernels_at(lq_ctx_simd(ctx));
    float *base = lq_alloc_array(ctx, 2 * n8, sizeof(float));
    if (!base) return LQ_ERR_NO_MEMORY;
    float *gp = base + n8;
    lq_status st = LQ_OK;
    for (size_t r = 0; r < t->rows; r++) {
        if (!e8_base_row(&f, k, r, base)) {
            st = LQ_ERR_CORRUPT;
            break;
        }
        /* W = R^T W' row by row (dequantization applies the inverse
         * transform), so dL/dW' = R [G 0] (R orthogonal) */
        lq_rht_pad_forward(k, G + r * t->cols, t->cols, n8, (int)f.hadamard, f.seed, gp);
        for (size_t c = 0; c < n8; c++) g[r * ng + c / f.group] += (double)gp[c] * (double)base[c];
    }
    lq_free(ctx, base);
    return st;
}

static void grad_vq(const lq_qtensor *t, const float *G, double *g)
{
    lq_vq_layout v;
    if (lq_vq_layout_read(t, &v) != LQ_OK) return; /* validated by the caller */
    size_t kd = v.K * v.d;
    const int8_t *cb = (const int8_t *)v.cb;
    int int8 = v.cbits == 8;
    for (size_t r = 0; r < t->rows; r++) {
        size_t rb = r / v.gr;
        for (size_t vi = 0; vi < v.nvec; vi++) {
            size_t gi = lq_vq_layout_book(&v, rb, (vi * v.d) / v.gc);
            size_t e = lq_vq_layout_code(&v, r, vi);
            for (size_t j = 0; j < v.d; j++) {
                double gw = G[r * t->cols + vi * v.d + j];
                if (int8)
                    g[gi] += gw * (double)cb[gi * kd + e * v.d + j];
                else
                    g[gi * kd + e * v.d + j] += gw;
            }
        }
    }
}

static void grad_bcq(const lq_qtensor *t, const float *G, double *g)
{
    lq_bcq_layout v;
    if (lq_bcq_layout_of(t, &v) != LQ_OK) return; /* validated by the caller */
    size_t ps = t->rows * v.bpr, na = t->rows * v.ngroups * v.k;
    for (size_t r = 0; r < t->rows; r++)
        for (size_t c = 0; c < t->cols; c++) {
            double gw = G[r * t->cols + c];
            size_t rg = r * v.ngroups + c / v.group;
            const uint8_t *p = v.planes + r * v.bpr + c / 8;
            for (unsigned i = 0; i < v.k; i++)
                g[rg * v.k + i] += ((p[i * ps] >> (c % 8)) & 1u) ? gw : -gw;
            if (v.has_off) g[na + rg] += gw;
        }
}

static void grad_aq(const lq_qtensor *t, const float *G, double *g)
{
    lq_aq_layout v;
    if (lq_aq_layout_read(t, &v) != LQ_OK) return; /* validated by the caller */
    size_t M = v.M, K = v.K, gs = v.g, ng = v.ng, ncb = M * K * gs;
    for (size_t r = 0; r < t->rows; r++) {
        double s = lq_aq_layout_scale(&v, r), gsum = 0;
        for (size_t j = 0; j < ng; j++) {
            float w[64] = {0};
            size_t cidx[8];
            for (size_t m = 0; m < M; m++) {
                cidx[m] = (m * K + lq_aq_layout_code(&v, (r * ng + j) * M + m)) * gs;
                for (size_t q = 0; q < gs; q++) w[q] += lq_aq_layout_value(&v, cidx[m] + q);
            }
            for (size_t q = 0; q < gs; q++) {
                double gw = G[r * t->cols + j * gs + q];
                gsum += gw * (double)w[q];
                for (size_t m = 0; m < M; m++) g[cidx[m] + q] += s * gw;
            }
        }
        g[ncb + r] += gsum;
    }
}

/* Gradient into g (mp->total doubles) after the argument checks. */
static lq_status grad_core(lq_ctx *ctx, const lq_qtensor *t, const ft_map *mp, const float *dW,
                           double *g)
{
    memset(g, 0, mp->total * sizeof *g);
    switch (t->format) {
    case LQ_FORMAT_INT: grad_int(t, dW, g); break;
    case LQ_FORMAT_E8:
    case LQ_FORMAT_E8P: {
        lq_status st = grad_e8(ctx, t, dW, g);
        if (st != LQ_OK) return st;
        break;
    }
    case LQ_FORMAT_VQ: grad_vq(t, dW, g); break;
    case LQ_FORMAT_BCQ: grad_bcq(t, dW, g); break;
    case LQ_FORMAT_AQ: grad_aq(t, dW, g); break;
    default: return LQ_ERR_UNSUPPORTED;
    }
    for (size_t i = 0; i < mp->total; i++)
        if (!(fabs(g[i]) <= FLT_MAX)) return LQ_ERR_OUT_OF_RANGE;
    return LQ_OK;
}

static lq_status grad_args(const lq_qtensor *t, const float *dW, size_t rows, size_t cols,
                           ft_map *mp)
{
    if (!t || !dW) return LQ_ERR_INVALID_ARG;
    lq_status st = checked_map(t, mp);
    if (st != LQ_OK) return st;
    if (rows != t->rows || cols != t->cols) return LQ_ERR_INVALID_ARG;
    for (size_t i = 0; i < rows * cols; i++)
        if (!isfinite(dW[i])) return LQ_ERR_NOT_FINITE;
    return LQ_OK;
}

lq_status lq_finetune_grad(lq_ctx *ctx, const lq_qtensor *t, const float *dW, size_t rows,
                           size_t cols, float *grad, size_t n)
{
    if (!grad) return LQ_ERR_INVALID_ARG;
    ft_map mp;
    lq_status st = grad_args(t, dW, rows, cols, &mp);
    if (st != LQ_OK) return st;
    if (n != mp.total) return LQ_ERR_INVALID_ARG;
    if (!(ctx = lq_ctx_resolve(ctx))) return LQ_ERR_NO_MEMORY;
    double *g = lq_alloc_array(ctx, mp.total ? mp.total : 1, sizeof *g);
    if (!g) return LQ_ERR_NO_MEMORY;
    st = grad_core(ctx, t, &mp, dW, g);
    if (st == LQ_OK)
        for (size_t i = 0; i < n; i++) grad[i] = (float)g[i];
    lq_free(ctx, g);
    return st;
}

/* ---- Adam ------------------------------------------------------------------ */

lq_status lq_adam_opts_init(lq_adam_opts *o)
{
    if (!o) return LQ_ERR_INVALID_ARG;
    o->lr = 1e-4;
    o->beta1 = 0.9;
    o->beta2 = 0.999;
    o->eps = 1e-8;
    return LQ_OK;
}

static int adam_ok(const lq_adam_opts *o)
{
    return isfinite(o->lr) && o->lr > 0 && o->lr <= 1e6 && o->beta1 >= 0 && o->beta1 < 1 &&
           o->beta2 >= 0 && o->beta2 < 1 && isfinite(o->eps) && o->eps > 0;
}

lq_status lq_finetune_create(lq_ctx *ctx, const lq_qtensor *t, const lq_adam_opts *o,
                             lq_finetune **out)
{
    if (!t || !out) return LQ_ERR_INVALID_ARG;
    lq_adam_opts def;
    lq_adam_opts_init(&def);
    if (!o) o = &def;
    if (!adam_ok(o)) return LQ_ERR_INVALID_ARG;
    ft_map mp;
    lq_status st = checked_map(t, &mp);
    if (st != LQ_OK) return st;
    if (!(ctx = lq_ctx_resolve(ctx))) return LQ_ERR_NO_MEMORY;
    lq_allocator a = lq_ctx_allocator(ctx);
    size_t n = mp.total ? mp.total : 1, bm, bd;
    if (!lq_mul_ok(n, sizeof(float), &bm) || !lq_mul_ok(n, sizeof(double), &bd))
        return LQ_ERR_NO_MEMORY;
    lq_finetune *f = lq_alloc_with(&a, sizeof *f);
    float *master = lq_alloc_with(&a, bm);
    double *m = lq_alloc_with(&a, bd), *v = lq_alloc_with(&a, bd);
    if (!f || !master || !m || !v) {
        lq_free_with(&a, f);
        lq_free_with(&a, master);
        lq_free_with(&a, m);
        lq_free_with(&a, v);
        return LQ_ERR_NO_MEMORY;
    }
    *f = (lq_finetune){a, t->format, t->rows, t->cols, mp.total, 0, *o, master, m, v};
    get_all(t, &mp, master);
    memset(m, 0, bd);
    memset(v, 0, bd);
    *out = f;
    return LQ_OK;
}

lq_status lq_finetune_step(lq_ctx *ctx, lq_finetune *f, lq_qtensor *t, const float *dW, size_t rows,
                           size_t cols)
{
    if (!f) return LQ_ERR_INVALID_ARG;
    ft_map mp;
    lq_status st = grad_args(t, dW, rows, cols, &mp);
    if (st != LQ_OK) return st;
    if (t->format != f->format || t->rows != f->rows || t->cols != f->cols || mp.total != f->n)
        return LQ_ERR_INVALID_ARG;
    if (t->borrowed) return LQ_ERR_UNSUPPORTED;
    if (!(ctx = lq_ctx_resolve(ctx))) return LQ_ERR_NO_MEMORY;
    size_t n = f->n ? f->n : 1;
    double *g = lq_alloc_array(ctx, 3 * n, sizeof *g);
    float *p = lq_alloc_array(ctx, 2 * n, sizeof *p);
    if (!g || !p) {
        lq_free(ctx, g);
        lq_free(ctx, p);
        return LQ_ERR_NO_MEMORY;
    }
    double *nm = g + n, *nv = g + 2 * n;
    float *stored = p + n;
    st = grad_core(ctx, t, &mp, dW, g);
    if (st == LQ_OK) {
        get_all(t, &mp, stored);
        double b1 = f->o.beta1, b2 = f->o.beta2, step = (double)(f->steps + 1);
        double c1 = 1.0 - pow(b1, step), c2 = 1.0 - pow(b2, step);
        size_t o = 0;
        for (size_t k = 0; k < mp.nfam; k++) {
            const ft_family *fam = &mp.fam[k];
            for (size_t i = 0; i < fam->count; i++, o++) {
                /* a value changed behind the state's back (set_params, a
                 * re-encode) restarts from the stored value */
                float x = f->master[o];
                if (fam_round(fam, x) != stored[o]) x = stored[o];
                nm[o] = b1 * f->m[o] + (1 - b1) * g[o];
                nv[o] = b2 * f->v[o] + (1 - b2) * g[o] * g[o];
                double upd = f->o.lr * (nm[o] / c1) / (sqrt(nv[o] / c2) + f->o.eps);
                double y = (double)x - upd;
                if (fam->positive && y < FLT_MIN) y = FLT_MIN;
                p[o] = (float)y;
            }
        }
        st = check_values(&mp, p);
        if (st == LQ_OK) {
            for (size_t i = 0; i < f->n; i++) {
                f->master[i] = p[i];
                f->m[i] = nm[i];
                f->v[i] = nv[i];
            }
            f->steps++;
            put_all(t, &mp, p);
        }
    }
    lq_free(ctx, g);
    lq_free(ctx, p);
    return st;
}

size_t lq_finetune_steps(const lq_finetune *f) { return f ? f->steps : 0; }

void lq_finetune_destroy(lq_finetune *f)
{
    if (!f) return;
    lq_allocator a = f->alloc;
    lq_free_with(&a, f->master);
    lq_free_with(&a, f->m);
    lq_free_with(&a, f->v);
    lq_free_with(&a, f);
}
