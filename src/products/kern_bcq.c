/* BCQ on the table kernels (LUT-GEMM / T-MAC style).
 *
 * Stored layout: src/qtensor/format_bcq.c (k bit planes, plane-major, LSB
 * first; alphas rows x groups x k; optional offsets; half or float).
 * Positions: for each group g, each plane i, each 4 columns of the group
 * (the last one zero padded): the 4 sign bits as a nibble, looked up in the
 * table of those 4 activations, T[m] = sum_j (bit j of m ? +x_j : -x_j);
 * segment (g, i) is weighted by alpha[r, g, i]. With offsets, one more
 * segment per group: a single position whose table holds sum of x over the
 * group (code 0), weighted by offset[r, g]. */
#include <string.h>

#include <math.h>

#include "core/half.h"
#include "products/lut.h"
#include "qtensor/format_bcq.h"
#include "simd/kern_bcq.h"

typedef lq_bcq_fmt bcq_fmt;

static void bcq_fmt_free(const lq_allocator *a, void *fp)
{
    bcq_fmt *f = fp;
    if (!f) return;
    lq_free_with(a, f->kb0);
    lq_free_with(a, f->fcodes);
    lq_free_with(a, f);
}

/* Chunk tables (16 floats each, in group order), then per group one table
 * whose entry 0 is the group's sum of x. */
static void bcq_build(const lq_lut_pack *p, const float *x, float *T, lq_simd_level level)
{
    const bcq_fmt *f = p->fmt;
    size_t ch = 0;
    for (size_t g = 0; g < f->ngroups; g++) {
        size_t c0 = g * f->group, c1 = c0 + f->group < p->cols ? c0 + f->group : p->cols;
        float sum = 0.0f;
        for (size_t c = c0; c < c1; c += 4, ch++) {
            float v[4];
            for (size_t j = 0; j < 4; j++) v[j] = c + j < c1 ? x[c + j] : 0.0f;
            float *t = T + 16 * ch;
            t[0] = -v[0] - v[1] - v[2] - v[3];
            for (unsigned m = 1; m < 16; m++) {
                unsigned low = (unsigned)__builtin_ctz(m);
                t[m] = t[m & (m - 1)] + 2.0f * v[low];
            }
            sum += (v[0] + v[1]) + (v[2] + v[3]);
        }
        float *o = T + 16 * (f->nchunks + g);
        memset(o, 0, 16 * sizeof(float));
        o[0] = sum;
    }
}

static lq_status bcq_prepare(const lq_qtensor *t, const lq_allocator *a, void **out)
{
    lq_bcq_layout L;
    lq_status lst = lq_bcq_layout_of(t, &L);
    if (lst != LQ_OK) return lst;
    unsigned k = L.k, side = L.side;
    size_t group = L.group, ngroups = L.ngroups;
    int has_off = L.has_off;
    size_t bpr = L.bpr, nchunks = 0;
    for (size_t g = 0; g < ngroups; g++) {
        size_t len = (g + 1) * group <= t->cols ? group : t->cols - g * group;
        nchunks += (len + 3) / 4;
    }
    lq_lut_pack geo;
    memset(&geo, 0, sizeof geo);
    geo.rows = t->rows;
    geo.cols = t->cols;
    geo.npos = nchunks * k + (has_off ? ngroups : 0);
    geo.K = 16;
    geo.cw = 4;
    geo.nseg = ngroups * (k + (has_off ? 1 : 0));
    geo.tabset = 16 * (nchunks + ngroups);
    geo.nsets = 1;
    lq_lut_pack *p;
    lq_status st = lq_lut_pack_alloc(&geo, a, &p);
    if (st != LQ_OK) return st;
    bcq_fmt *f = lq_alloc_with(a, sizeof *f);
    if (!f) {
        lq_lut_pack_free(a, p);
        return LQ_ERR_NO_MEMORY;
    }
    memset(f, 0, sizeof *f);
    f->group = group;
    f->ngroups = ngroups;
    f->nchunks = nchunks;
    f->has_off = has_off;
    f->k = k;
    p->fmt = f;
    p->fmt_free = bcq_fmt_free;
    f->kb0 = lq_alloc_with(a, (ngroups + 1) * sizeof(uint32_t));
    if (!f->kb0) {
        lq_lut_pack_free(a, p);
        return LQ_ERR_NO_MEMORY;
    }
    for (size_t g = 0; g < ngroups; g++) {
        size_t len = (g + 1) * group <= t->cols ? group : t->cols - g * group;
        f->kb0[g] = (uint32_t)f->nkb;
        f->nkb += ((len + 3) / 4 + 7) / 8;
    }
    f->kb0[ngroups] = (uint32_t)f->nkb;
    size_t nf;
    if (!lq_mul_ok(p->ntiles * k, f->nkb * 64, &nf) ||
        !(f->fcodes = lq_alloc_with(a, nf ? nf : 1))) {
        lq_lut_pack_free(a, p);
        return LQ_ERR_NO_MEMORY;
    }
    memset(f->fcodes, 0, nf ? nf : 1);
    p->build = bcq_build;
    for (size_t i = 0; i < p->ntiles; i++) p->uniform[i] = 1;
    /* segments and table offsets */
    size_t pos = 0, s = 0, ch0 = 0;
    for (size_t g = 0; g < ngroups; g++) {
        size_t len = (g + 1) * group <= t->cols ? group : t->cols - g * group, nch = (len + 3) / 4;
        for (unsigned i = 0; i < k; i++) {
            p->seg[s++] = (uint32_t)pos;
            for (size_t c = 0; c < nch; c++) p->tabofs[pos++] = (uint32_t)(16 * (ch0 + c));
        }
        if (has_off) {
            p->seg[s++] = (uint32_t)pos;
            p->tabofs[pos++] = (uint32_t)(16 * (nchunks + g));
        }
        ch0 += nch;
    }
    p->seg[s] = (uint32_t)pos;
    const uint8_t *planes = L.planes, *alpha = L.alpha, *off = L.off;
    size_t ps = t->rows * bpr;
    for (size_t r = 0; r < t->rows; r++) {
        size_t tile = r / LQ_KERN_TILE, lane = r % LQ_KERN_TILE;
        float *mult = p->mult + tile * p->nseg * LQ_KERN_TILE;
        pos = 0;
        s = 0;
        for (size_t g = 0; g < ngroups; g++) {
            size_t c0 = g * group, c1 = c0 + group < t->cols ? c0 + group : t->cols;
            for (unsigned i = 0; i < k; i++) {
                const uint8_t *pl = planes + i * ps + r * bpr;
                for (size_t c = c0; c < c1; c += 4) {
                    unsigned m = 0;
                    for (size_t j = 0; j < 4 && c + j < c1; j++)
                        m |= (unsigned)((pl[(c + j) / 8] >> ((c + j) % 8)) & 1u) << j;
                    lq_lut_put_code(p, r, pos++, m);
                    size_t ch = (c - c0) / 4, kb = f->kb0[g] + ch / 8, l = (ch % 8) / 2;
                    uint8_t *fb = f->fcodes + ((tile * k + i) * f->nkb + kb) * 64;
                    fb[16 * l + lane] |= (uint8_t)(m << (4 * (ch & 1)));
                }
                mult[s++ * LQ_KERN_TILE + lane] =
                    lq_bcq_side_at(alpha, (r * ngroups + g) * k + i, side);
            }
            if (has_off) {
                pos++; /* code 0 */
                mult[s++ * LQ_KERN_TILE + lane] =
                    off ? lq_bcq_side_at(off, r * ngroups + g, side) : 0.0f;
            }
        }
    }
    *out = p;
    return LQ_OK;
}

static size_t bcq_act_bytes(const void *pack, size_t batch, lq_kernel_mode mode)
{
    const lq_lut_pack *p = pack;
    if (mode != LQ_KERNEL_FAST) return lq_lut_act_bytes(pack, batch, mode);
    /* + the float tables of one vector as scratch */
    return batch * lq_bcq_fast_stride(p->fmt) + lq_lut_act_stride(p);
}

static size_t bcq_max_batch(const void *pack, lq_kernel_mode mode)
{
    return mode == LQ_KERNEL_FAST ? 64 : lq_lut_max_batch(pack, mode);
}

static void bcq_act_build(const void *pack, const float *X, size_t batch, lq_kernel_mode mode,
                          lq_simd_level level, void *act)
{
    const lq_lut_pack *p = pack;
    if (mode != LQ_KERNEL_FAST) {
        lq_lut_act_build(pack, X, batch, mode, level, act);
        return;
    }
    const bcq_fmt *f = p->fmt;
    size_t stride = lq_bcq_fast_stride(f), og = lq_kern_roundup(f->ngroups * sizeof(float), 64);
    float *T = (float *)(void *)((unsigned char *)act + batch * stride);
    for (size_t b = 0; b < batch; b++) {
        unsigned char *base = (unsigned char *)act + b * stride;
        float *d = (float *)(void *)base, *xg = (float *)(void *)(base + og);
        int8_t *tab = (int8_t *)(base + 2 * og);
        bcq_build(p, X + b * p->cols, T, level);
        memset(tab, 0, f->nkb * 128);
        size_t ch = 0;
        for (size_t g = 0; g < f->ngroups; g++) {
            size_t len = (g + 1) * f->group <= p->cols ? f->group : p->cols - g * f->group;
            size_t nch = (len + 3) / 4;
            float amax = 0.0f;
            for (size_t c = 0; c < nch; c++)
                for (int m = 0; m < 16; m++) {
                    float v = fabsf(T[16 * (ch + c) + m]);
                    if (v > amax) amax = v;
                }
            d[g] = amax / 63.0f;
            /* as lq_kern_q8_block: a block maximum below 2^-100 is scaled up by
             * 2^64 (exact) first, or 63 / amax overflows and Inf * 0 is NaN */
            float up = amax < 0x1p-100f ? 0x1p64f : 1.0f;
            float id = amax > 0.0f ? 63.0f / (amax * up) : 0.0f;
            for (size_t c = 0; c < nch; c++) {
                size_t kb = f->kb0[g] + c / 8, l = (c % 8) / 2, hi = c & 1;
                int8_t *dst = tab + kb * 128 + 64 * hi + 16 * l;
                for (int m = 0; m < 16; m++) {
                    float v = T[16 * (ch + c) + m] * up * id;
                    int q = (int)(v >= 0.0f ? v + 0.5f : v - 0.5f);
                    dst[m] = (int8_t)(q > 63 ? 63 : q < -63 ? -63 : q);
                }
            }
            xg[g] = T[16 * (f->nchunks + g)];
            ch += nch;
        }
    }
}

const lq_kern_format lq_kern_bcq = {
    .format = LQ_FORMAT_BCQ,
    .prepare = bcq_prepare,
    .pack_free = lq_lut_pack_free,
    .max_batch = bcq_max_batch,
    .act_bytes = bcq_act_bytes,
    .act_build = bcq_act_build,
    .rows =
        {
#if LQ_ARCH_X86
            {lq_kern_lut_scalar, lq_kern_lut_avx2, lq_kern_lut_avx512, NULL},
            {lq_kern_bcq_fast_scalar, lq_kern_bcq_fast_avx2, lq_kern_bcq_fast_avx512, NULL},
#elif LQ_ARCH_ARM
            {lq_kern_lut_scalar, NULL, NULL, NULL},
            {lq_kern_bcq_fast_scalar, NULL, NULL, lq_kern_bcq_fast_neon},
#else
            {lq_kern_lut_scalar, NULL, NULL, NULL},
            {lq_kern_bcq_fast_scalar, NULL, NULL, NULL},
#endif
        },
};
