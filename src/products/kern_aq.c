/* AQ (AQLM): decode kernels (simd/kern_dec.h) when the vector dimension is
 * a multiple of 8 (AQLM's default g = 8: 1x16, 2x8 ...), which read the
 * stored codes as they are; table kernels otherwise.
 *
 * Table layout:
 * Stored layout: src/mcq/aq_internal.h ("LQ_FORMAT_AQ"): codes per (row,
 * g-vector, codebook), M codebooks of 2^B g-vectors (half or float), fp32
 * row scales. Position p = j * M + m (vector j, codebook m); its table holds
 * T[e] = C_m[e] . x_j (g terms in order), built once per activation as in
 * AQLM's CPU kernels; one segment weighted by the row scale. Tables take
 * (cols / g) * M * max(2^B, 16) floats per activation. */
#include <string.h>

#include "products/lut.h"
#include "qtensor/format_aq.h"
#include "simd/kern_dec.h"

typedef struct aq_fmt {
    size_t M, K, g, ng;
    float *cb; /* M codebooks, each transposed: g x max(K, 16), zero padded */
} aq_fmt;

static void aq_fmt_free(const lq_allocator *a, void *fp)
{
    aq_fmt *f = fp;
    if (!f) return;
    lq_free_with(a, f->cb);
    lq_free_with(a, f);
}

static void aq_build(const lq_lut_pack *p, const float *x, float *T, lq_simd_level level)
{
    const aq_fmt *f = p->fmt;
    size_t stride = f->K < 16 ? 16 : f->K;
    lq_lut_dot_fn dot = lq_lut_dot_for(level);
    for (size_t j = 0; j < f->ng; j++)
        for (size_t m = 0; m < f->M; m++)
            dot(f->cb + m * f->g * stride, stride, f->g, x + j * f->g, T + (j * f->M + m) * stride);
}

static lq_status aq_prepare_lut(const lq_qtensor *t, const lq_allocator *a, lq_lut_pack **out)
{
    lq_aq_layout v;
    if (lq_aq_layout_read(t, &v) != LQ_OK) return LQ_ERR_CORRUPT;
    size_t M = v.M, B = v.B, g = v.g, K = v.K, ng = v.ng;
    size_t stride = K < 16 ? 16 : K, npos = ng * M, tabset;
    /* tables pay only when smaller than the weights (e.g. AQLM 1x16 on
     * 4096 columns would need 2^25 floats per activation: the reference
     * path serves such tensors); also keeps 32-bit gather indices */
    size_t limit = t->rows * t->cols > ((size_t)1 << 20) ? t->rows * t->cols : (size_t)1 << 20;
    if (!lq_mul_ok(npos, stride, &tabset) || tabset > limit || tabset > ((size_t)1 << 30))
        return LQ_ERR_UNSUPPORTED;
    lq_lut_pack geo;
    memset(&geo, 0, sizeof geo);
    geo.rows = t->rows;
    geo.cols = t->cols;
    geo.npos = npos;
    geo.K = (unsigned)K;
    geo.cw = B <= 4 ? 4 : B <= 8 ? 8 : 16;
    geo.nseg = 1;
    geo.tabset = tabset;
    geo.nsets = 1;
    lq_lut_pack *p;
    lq_status st = lq_lut_pack_alloc(&geo, a, &p);
    if (st != LQ_OK) return st;
    aq_fmt *f = lq_alloc_with(a, sizeof *f);
    float *cb = lq_alloc_with(a, M * stride * g * sizeof(float));
    if (!f || !cb) {
        lq_free_with(a, f);
        lq_free_with(a, cb);
        lq_lut_pack_free(a, p);
        return LQ_ERR_NO_MEMORY;
    }
    *f = (aq_fmt){M, K, g, ng, cb};
    p->fmt = f;
    p->fmt_bytes = M * stride * g * sizeof(float);
    p->fmt_free = aq_fmt_free;
    p->build = aq_build;
    memset(cb, 0, M * stride * g * sizeof(float));
    for (size_t i = 0; i < M * K * g; i++) {
        size_t m = i / (K * g), e = (i / g) % K, q = i % g;
        cb[(m * g + q) * stride + e] = lq_aq_layout_value(&v, i);
    }
    p->seg[0] = 0;
    p->seg[1] = (uint32_t)npos;
    for (size_t q = 0; q < npos; q++) p->tabofs[q] = (uint32_t)(q * stride);
    for (size_t i = 0; i < p->ntiles; i++) p->uniform[i] = 1;
    for (size_t r = 0; r < t->rows; r++) {
        for (size_t q = 0; q < npos; q++)
            lq_lut_put_code(p, r, q, (unsigned)lq_aq_layout_code(&v, r * npos + q));
        p->mult[(r / LQ_KERN_TILE) * LQ_KERN_TILE + r % LQ_KERN_TILE] = lq_aq_layout_scale(&v, r);
    }
    *out = p;
    return LQ_OK;
}

/* ---- decode layout: the tensor's own codes and codebooks --------------- */
static void aqd_free(const lq_allocator *a, lq_aqd_pack *p)
{
    if (!p) return;
    lq_free_with(a, p->scales);
    lq_free_with(a, p->cbf);
    lq_free_with(a, p);
}

static lq_status aq_prepare_dec(const lq_qtensor *t, const lq_allocator *a, lq_aqd_pack **out)
{
    lq_aq_layout v;
    if (lq_aq_layout_read(t, &v) != LQ_OK) return LQ_ERR_CORRUPT;
    size_t M = v.M, g = v.g;
    if (g % 8) return LQ_ERR_UNSUPPORTED;
    lq_aqd_pack *p = lq_alloc_with(a, sizeof *p);
    float *sc = lq_alloc_with(a, t->rows * sizeof(float));
    if (!p || !sc) {
        lq_free_with(a, p);
        lq_free_with(a, sc);
        return LQ_ERR_NO_MEMORY;
    }
    for (size_t r = 0; r < t->rows; r++) sc[r] = lq_aq_layout_scale(&v, r);
    *p = (lq_aqd_pack){.rows = t->rows,
                       .cols = t->cols,
                       .M = M,
                       .K = v.K,
                       .g = g,
                       .ng = v.ng,
                       .codeb = v.code_bytes,
                       .half = v.value_bytes == 2,
                       .codes = v.codes,
                       .cb = v.cb,
                       .scales = sc};
    /* small codebooks (2x8: 16 KiB) as floats, L1-resident: no conversion
     * in the loop; large ones (1x16: 1 MiB of halves) stay halves (L2) */
    size_t nv = M * p->K * g;
    if (p->half && nv * sizeof(float) <= (64u << 10)) {
        p->cbf = lq_alloc_with(a, nv * sizeof(float));
        if (!p->cbf) {
            aqd_free(a, p);
            return LQ_ERR_NO_MEMORY;
        }
        for (size_t i = 0; i < nv; i++) p->cbf[i] = lq_aq_layout_value(&v, i);
    }
    *out = p;
    return LQ_OK;
}

/* ---- int8 tables (FAST, K <= 256) ----------------------------------------- */
static void aq8_free(const lq_allocator *a, lq_aq8_pack *p)
{
    if (!p) return;
    lq_free_with(a, p->codes);
    lq_free_with(a, p->scales);
    lq_free_with(a, p);
}

static lq_status aq_prepare_q8(const lq_qtensor *t, const lq_allocator *a, lq_aq8_pack **out)
{
    lq_aq_layout v;
    if (lq_aq_layout_read(t, &v) != LQ_OK) return LQ_ERR_CORRUPT;
    lq_aq8_pack *p = lq_alloc_with(a, sizeof *p);
    if (!p) return LQ_ERR_NO_MEMORY;
    memset(p, 0, sizeof *p);
    p->rows = t->rows;
    p->cols = t->cols;
    p->ntiles = (t->rows + LQ_AQ8_TILE - 1) / LQ_AQ8_TILE;
    p->npos = v.ng * v.M;
    p->nblk = (p->npos + LQ_AQ8_BLK - 1) / LQ_AQ8_BLK;
    size_t nc = 0, ns = p->ntiles * LQ_AQ8_TILE;
    if (lq_mul_ok(ns, p->npos, &nc)) {
        p->codes = lq_alloc_with(a, nc ? nc : 1);
        p->scales = lq_alloc_with(a, ns * sizeof(float));
    }
    if (!p->codes || !p->scales) {
        aq8_free(a, p);
        return LQ_ERR_NO_MEMORY;
    }
    memset(p->codes, 0, nc ? nc : 1);
    memset(p->scales, 0, ns * sizeof(float));
    for (size_t r = 0; r < t->rows; r++) {
        uint8_t *tc = p->codes + (r / LQ_AQ8_TILE) * p->npos * LQ_AQ8_TILE + r % LQ_AQ8_TILE;
        for (size_t q = 0; q < p->npos; q++)
            tc[q * LQ_AQ8_TILE] = (uint8_t)lq_aq_layout_code(&v, r * p->npos + q);
        p->scales[r] = lq_aq_layout_scale(&v, r);
    }
    *out = p;
    return LQ_OK;
}

/* The int8 tables of one vector (kern_dec.h): float tables of a block of
 * positions as the float path builds them, one scale per block, rounding
 * half away from zero. The bytes do not depend on `level`. */
static void aq8_build(const lq_aq_kpack *k, const float *x, uint8_t *out, lq_simd_level level)
{
    const lq_lut_pack *lp = k->lut;
    const lq_aq8_pack *p = k->q8;
    const aq_fmt *f = lp->fmt;
    size_t stride = f->K < 16 ? 16 : f->K;
    lq_lut_dot_fn dot = lq_lut_dot_for(level);
    void (*quant)(const float *, size_t, float, int8_t *) = lq_aq8_quant_scalar;
#if LQ_ARCH_X86
    if (level == LQ_SIMD_AVX512)
        quant = lq_aq8_quant_avx512;
    else if (level == LQ_SIMD_AVX2)
        quant = lq_aq8_quant_avx2;
#endif
    int8_t *T8 = (int8_t *)out;
    float *sb = (float *)(void *)(out + p->npos * 256 + 64);
    float tb[LQ_AQ8_BLK * 256];
    memset(out, 0, p->npos * 256 + 64);
    for (size_t kb = 0; kb < p->nblk; kb++) {
        size_t q0 = kb * LQ_AQ8_BLK, q1 = q0 + LQ_AQ8_BLK < p->npos ? q0 + LQ_AQ8_BLK : p->npos;
        float mx = 0.0f;
        for (size_t q = q0; q < q1; q++) {
            size_t j = q / f->M, m = q % f->M;
            float *T = tb + (q - q0) * 256;
            dot(f->cb + m * f->g * stride, stride, f->g, x + j * f->g, T);
            /* max |T| on the bit patterns (non-negative floats order as
             * integers; the loop vectorizes) */
            uint32_t mb = 0, u[256];
            memcpy(u, T, f->K * sizeof(float));
            for (size_t e = 0; e < f->K; e++) {
                uint32_t a = u[e] & 0x7fffffffu;
                mb = a > mb ? a : mb;
            }
            float a;
            memcpy(&a, &mb, sizeof a);
            mx = a > mx ? a : mx;
        }
        sb[kb] = mx / 127.0f;
        if (!(mx > 0)) continue; /* all zero: the int8 entries stay 0 */
        /* 127 / mx is finite for mx >= 1e-30; below, divide (|T / mx| <= 1) */
        int big = mx >= 1e-30f;
        float inv = big ? 127.0f / mx : 0.0f;
        for (size_t q = q0; q < q1; q++) {
            const float *T = tb + (q - q0) * 256;
            int8_t *o = T8 + q * 256;
            if (big) {
                quant(T, f->K, inv, o);
            } else {
                float y[256];
                for (size_t e = 0; e < f->K; e++) y[e] = T[e] / mx * 127.0f;
                quant(y, f->K, 1.0f, o);
            }
        }
    }
}

/* ---- the record ------------------------------------------------------------ */
static void aq_pack_free(const lq_allocator *a, void *pack)
{
    lq_aq_kpack *k = pack;
    if (!k) return;
    aq8_free(a, k->q8);
    lq_lut_pack_free(a, k->lut);
    aqd_free(a, k->dec);
    lq_free_with(a, k);
}

static lq_status aq_prepare(const lq_qtensor *t, const lq_allocator *a, void **out)
{
    lq_aq_kpack *k = lq_alloc_with(a, sizeof *k);
    if (!k) return LQ_ERR_NO_MEMORY;
    k->lut = NULL;
    k->dec = NULL;
    k->q8 = NULL;
    /* measured (docs/benchmarks.md): for K <= 256 (2x8) the table kernel's
     * gathers (16 rows x g weights per lookup) beat decoding row by row at
     * every batch; 1x16 has no table layout worth building (2^16 entries
     * per position) and takes the decode kernel */
    lq_status st = LQ_ERR_UNSUPPORTED;
    lq_aq_layout v;
    if (lq_aq_layout_read(t, &v) != LQ_OK) {
        lq_free_with(a, k);
        return LQ_ERR_CORRUPT;
    }
    if (v.B <= 8) st = aq_prepare_lut(t, a, &k->lut);
    if (st == LQ_ERR_UNSUPPORTED) st = aq_prepare_dec(t, a, &k->dec);
    if (st == LQ_ERR_UNSUPPORTED) st = aq_prepare_lut(t, a, &k->lut);
    if (st == LQ_OK && k->lut && v.B <= 8) st = aq_prepare_q8(t, a, &k->q8);
    if (st != LQ_OK) {
        aq_pack_free(a, k);
        return st;
    }
    *out = k;
    return LQ_OK;
}

static size_t aq_max_batch(const void *pack, lq_kernel_mode mode)
{
    const lq_aq_kpack *k = pack;
    if (mode == LQ_KERNEL_FAST && k->q8) {
        size_t b = (1u << 20) / lq_aq8_act_stride(k->q8);
        return b < 1 ? 1 : b > 16 ? 16 : b;
    }
    return k->lut ? lq_lut_max_batch(k->lut, mode) : 64;
}

static size_t aq_act_bytes(const void *pack, size_t batch, lq_kernel_mode mode)
{
    const lq_aq_kpack *k = pack;
    if (mode == LQ_KERNEL_FAST && k->q8) return batch * lq_aq8_act_stride(k->q8);
    return k->lut ? lq_lut_act_bytes(k->lut, batch, mode) : batch * k->dec->cols * sizeof(float);
}

static void aq_act_build(const void *pack, const float *X, size_t batch, lq_kernel_mode mode,
                         lq_simd_level level, void *act)
{
    const lq_aq_kpack *k = pack;
    if (mode == LQ_KERNEL_FAST && k->q8) {
        size_t stride = lq_aq8_act_stride(k->q8);
        for (size_t b = 0; b < batch; b++)
            aq8_build(k, X + b * k->q8->cols, (uint8_t *)act + b * stride, level);
        return;
    }
    if (k->lut)
        lq_lut_act_build(k->lut, X, batch, mode, level, act);
    else
        memcpy(act, X, batch * k->dec->cols * sizeof(float));
}

/* Decode path: the stored codes, the codebooks as stored and the scales. */
static size_t aq_pack_bytes(const void *pack)
{
    const lq_aq_kpack *k = pack;
    if (k->lut) return lq_lut_pack_bytes(k->lut);
    const lq_aqd_pack *p = k->dec;
    return p->rows * (p->ng * p->M * p->codeb + sizeof(float)) +
           p->M * p->K * p->g * (p->half && !p->cbf ? 2 : 4);
}

const lq_kern_format lq_kern_aq = {
    .format = LQ_FORMAT_AQ,
    .prepare = aq_prepare,
    .pack_free = aq_pack_free,
    .max_batch = aq_max_batch,
    .act_bytes = aq_act_bytes,
    .act_build = aq_act_build,
    .rows = LQ_AQ_ROWS,
    .grain = LQ_LUT_GRAIN,
    .pack_bytes = aq_pack_bytes,
};
