/* VQ: decode kernels (simd/kern_dec.h) for the layouts GPTVQ emits by
 * default (a codebook per block of rows), table kernels when one codebook
 * serves many rows.
 *
 * Table layout:
 * Stored layout: src/vq/vq_internal.h ("LQ_FORMAT_VQ layout"): per row a
 * bit stream of b-bit codes of d-vectors; one codebook of 2^b entries per
 * (row block, column block), stored as halves, int8 with a scale, or a
 * rank-r factorisation. At load the codebooks are decoded to float with
 * the format's formulas. Position j = the j-th d-vector of a row; the table
 * of position j in set rb holds T[e] = codebook(rb, j)[e] . x_j (a dot
 * product of d terms in order). One segment, weight 1. Tables are per
 * activation and row block: nrb * (cols / d) * max(2^b, 16) floats. */
#include <string.h>

#include "products/lut.h"
#include "qtensor/format_vq.h"
#include "simd/kern_dec.h"
#include "simd/kern_vq8.h"

typedef struct vq_fmt {
    size_t d, K, gc, ncg, nrb, nvec;
    float *cb; /* ncb codebooks, each transposed: d x max(K, 16), zero padded */
} vq_fmt;

static void vq_fmt_free(const lq_allocator *a, void *fp)
{
    vq_fmt *f = fp;
    if (!f) return;
    lq_free_with(a, f->cb);
    lq_free_with(a, f);
}

static void vq_build(const lq_lut_pack *p, const float *x, float *T, lq_simd_level level)
{
    const vq_fmt *f = p->fmt;
    size_t stride = f->K < 16 ? 16 : f->K;
    lq_lut_dot_fn dot = lq_lut_dot_for(level);
    for (size_t rb = 0; rb < f->nrb; rb++)
        for (size_t j = 0; j < f->nvec; j++) {
            const float *cbT = f->cb + (rb * f->ncg + j * f->d / f->gc) * stride * f->d;
            dot(cbT, stride, f->d, x + j * f->d, T + rb * p->tabset + j * stride);
        }
}

static lq_status vq_prepare_lut(const lq_qtensor *t, const lq_allocator *a, lq_lut_pack **out)
{
    lq_vq_layout v;
    if (lq_vq_layout_read(t, &v) != LQ_OK) return LQ_ERR_CORRUPT;
    size_t d = v.d, bits = v.bits, gc = v.gc, gr = v.gr, K = v.K, kd = K * d, nvec = v.nvec;
    size_t ncg = v.ncg, nrb = v.nrb, ncb = v.ncb;
    size_t stride = K < 16 ? 16 : K, tabset;
    size_t tables;
    /* tables pay only when smaller than the weights (many small row
     * blocks or huge codebooks: the reference path serves the tensor); this
     * also keeps 32-bit gather indices in range */
    size_t limit = t->rows * t->cols > ((size_t)1 << 20) ? t->rows * t->cols : (size_t)1 << 20;
    if (!lq_mul_ok(nvec, stride, &tabset) || !lq_mul_ok(tabset, nrb, &tables) || tables > limit ||
        tables > ((size_t)1 << 30))
        return LQ_ERR_UNSUPPORTED;
    lq_lut_pack geo;
    memset(&geo, 0, sizeof geo);
    geo.rows = t->rows;
    geo.cols = t->cols;
    geo.npos = nvec;
    geo.K = (unsigned)K;
    geo.cw = bits <= 4 ? 4 : bits <= 8 ? 8 : 16;
    geo.nseg = 1;
    geo.tabset = tabset;
    geo.nsets = nrb;
    lq_lut_pack *p;
    lq_status st = lq_lut_pack_alloc(&geo, a, &p);
    if (st != LQ_OK) return st;
    vq_fmt *f = lq_alloc_with(a, sizeof *f);
    size_t ncbv;
    float *cb = lq_mul_ok(ncb, stride * d, &ncbv) && ncbv < SIZE_MAX / 4
                    ? lq_alloc_with(a, ncbv * sizeof(float))
                    : NULL;
    if (!f || !cb) {
        lq_free_with(a, f);
        lq_free_with(a, cb);
        lq_lut_pack_free(a, p);
        return LQ_ERR_NO_MEMORY;
    }
    *f = (vq_fmt){d, K, gc, ncg, nrb, nvec, cb};
    p->fmt = f;
    p->fmt_bytes = ncbv * sizeof(float);
    p->fmt_free = vq_fmt_free;
    p->build = vq_build;
    memset(cb, 0, ncbv * sizeof(float));
    for (size_t g = 0; g < ncb; g++)
        for (size_t q = 0; q < kd; q++) /* entry q / d, coordinate q % d */
            cb[(g * d + q % d) * stride + q / d] = lq_vq_layout_value(&v, g, q);
    p->seg[0] = 0;
    p->seg[1] = (uint32_t)nvec;
    for (size_t j = 0; j < nvec; j++) p->tabofs[j] = (uint32_t)(j * stride);
    for (size_t r = 0; r < t->rows; r++) {
        for (size_t j = 0; j < nvec; j++) lq_lut_put_code(p, r, j, lq_vq_layout_code(&v, r, j));
        p->lane_set[r] = (uint32_t)(r / gr);
        p->mult[(r / LQ_KERN_TILE) * LQ_KERN_TILE + r % LQ_KERN_TILE] = 1.0f;
    }
    for (size_t tile = 0; tile < p->ntiles; tile++) {
        size_t r0 = tile * LQ_KERN_TILE,
               r1 = r0 + LQ_KERN_TILE < t->rows ? r0 + LQ_KERN_TILE : t->rows;
        p->uniform[tile] = (uint8_t)(r0 / gr == (r1 - 1) / gr);
        /* padding lanes read set 0: valid memory, results discarded */
    }
    *out = p;
    return LQ_OK;
}

/* ---- decode layout ------------------------------------------------------- */
static void vqd_free(const lq_allocator *a, lq_vqd_pack *p)
{
    if (!p) return;
    lq_free_with(a, p->codes);
    lq_free_with(a, p->lane_cb);
    lq_free_with(a, p->uniform);
    lq_free_with(a, p->cb);
    lq_free_with(a, p);
}

static lq_status vq_prepare_dec(const lq_qtensor *t, const lq_allocator *a, lq_vqd_pack **out)
{
    lq_vq_layout v;
    if (lq_vq_layout_read(t, &v) != LQ_OK) return LQ_ERR_CORRUPT;
    size_t d = v.d, bits = v.bits, gc = v.gc, gr = v.gr, K = v.K, kd = K * d, nvec = v.nvec;
    size_t ncg = v.ncg, ncb = v.ncb;
    size_t stride = K < 16 ? 16 : K, ncbv;
    /* gather indices are 32-bit */
    if (!lq_mul_ok(ncb, d * stride, &ncbv) || ncbv >= ((size_t)1 << 31)) return LQ_ERR_UNSUPPORTED;
    lq_vqd_pack *p = lq_alloc_with(a, sizeof *p);
    if (!p) return LQ_ERR_NO_MEMORY;
    memset(p, 0, sizeof *p);
    p->rows = t->rows;
    p->cols = t->cols;
    p->ntiles = (t->rows + LQ_KERN_TILE - 1) / LQ_KERN_TILE;
    p->nvec = nvec;
    p->d = d;
    p->K = K;
    p->stride = stride;
    p->ncg = ncg;
    p->ncb = ncb;
    p->gcv = gc / d;
    p->cw = bits <= 4 ? 4 : bits <= 8 ? 8 : 16;
    size_t npos_b = p->cw == 4 ? (nvec + 1) / 2 : nvec, per_pos = p->cw == 16 ? 32 : 16, ncode = 0;
    int ok = lq_mul_ok(npos_b, per_pos, &p->tile_code_bytes) &&
             lq_mul_ok(p->ntiles, p->tile_code_bytes, &ncode) && ncode < SIZE_MAX / 2;
    if (ok) {
        p->codes = lq_alloc_with(a, ncode ? ncode : 1);
        p->lane_cb = lq_alloc_with(a, p->ntiles * LQ_KERN_TILE * sizeof(uint32_t));
        p->uniform = lq_alloc_with(a, p->ntiles);
        p->cb = lq_alloc_with(a, ncbv * sizeof(float));
    }
    if (!ok || !p->codes || !p->lane_cb || !p->uniform || !p->cb) {
        vqd_free(a, p);
        return LQ_ERR_NO_MEMORY;
    }
    memset(p->codes, 0, ncode ? ncode : 1);
    memset(p->lane_cb, 0, p->ntiles * LQ_KERN_TILE * sizeof(uint32_t));
    memset(p->cb, 0, ncbv * sizeof(float));
    for (size_t g = 0; g < ncb; g++)
        for (size_t q = 0; q < kd; q++) /* entry q / d, coordinate q % d */
            p->cb[(g * d + q % d) * stride + q / d] = lq_vq_layout_value(&v, g, q);
    for (size_t r = 0; r < t->rows; r++) {
        size_t tile = r / LQ_KERN_TILE, lane = r % LQ_KERN_TILE;
        uint8_t *tc = p->codes + tile * p->tile_code_bytes;
        for (size_t j = 0; j < nvec; j++) {
            unsigned c = lq_vq_layout_code(&v, r, j);
            switch (p->cw) {
            case 4: tc[(j >> 1) * 16 + lane] |= (uint8_t)(c << (4 * (j & 1))); break;
            case 8: tc[j * 16 + lane] = (uint8_t)c; break;
            default:
                tc[j * 32 + 2 * lane] = (uint8_t)(c & 0xff);
                tc[j * 32 + 2 * lane + 1] = (uint8_t)(c >> 8);
                break;
            }
        }
        p->lane_cb[r] = (uint32_t)((r / gr) * ncg);
    }
    for (size_t tile = 0; tile < p->ntiles; tile++) {
        size_t r0 = tile * LQ_KERN_TILE;
        size_t r1 = r0 + LQ_KERN_TILE < t->rows ? r0 + LQ_KERN_TILE : t->rows;
        size_t b0 = r0 / gr, b1 = (r1 - 1) / gr;
        /* two row blocks in one tile (GPTVQ's 8-row blocks): lane split s */
        p->uniform[tile] = (uint8_t)(b0 == b1 ? 1 : b1 == b0 + 1 ? 2 + ((b0 + 1) * gr - r0) : 0);
    }
    *out = p;
    return LQ_OK;
}

/* ---- int8 layout (FAST, kern_vq8.h) ------------------------------------- */
static void vq8_free(const lq_allocator *a, lq_vq8_pack *p)
{
    if (!p) return;
    lq_free_with(a, p->tbl);
    lq_free_with(a, p->scl);
    lq_free_with(a, p->offs);
    lq_free_with(a, p->lblk);
    lq_free_with(a, p->rb0);
    lq_free_with(a, p);
}

/* The int8 layout beside the decode layout dp, or NULL when the tensor is
 * outside the path's conditions (kern_vq8.h) or memory runs out (FAST then
 * runs the float decode, as EXACT). */
static lq_vq8_pack *vq8_prepare(const lq_vq_layout *v, const lq_vqd_pack *dp, const lq_allocator *a)
{
    size_t d = v->d, K = v->K, kd = K * d, gr = v->gr;
    if (v->cbits != 8 || v->rank || K > 16 || dp->cw != 4 || (d != 1 && d != 2 && d != 4) ||
        v->cols % 32 || v->gc % 32)
        return NULL;
    for (size_t tile = 0; tile < dp->ntiles; tile++) {
        size_t r0 = tile * LQ_KERN_TILE,
               r1 = r0 + LQ_KERN_TILE < v->rows ? r0 + LQ_KERN_TILE : v->rows;
        if (((r1 - 1) / gr - r0 / gr + 1) * kd > 64) return NULL;
    }
    lq_vq8_pack *p = lq_alloc_with(a, sizeof *p);
    if (!p) return NULL;
    memset(p, 0, sizeof *p);
    p->dec = dp;
    p->K = K;
    p->d = d;
    p->nrb = v->nrb;
    p->ncg = v->ncg;
    p->gcb = v->gc / 32;
    p->nblk = v->cols / 32;
    p->kd = kd;
    size_t ncb = v->ncg * v->nrb;
    p->tbl = lq_alloc_with(a, ncb * kd + 64);
    p->scl = lq_alloc_with(a, (ncb + 16) * sizeof(float));
    p->offs = lq_alloc_with(a, dp->ntiles * 64);
    p->lblk = lq_alloc_with(a, dp->ntiles * LQ_KERN_TILE);
    p->rb0 = lq_alloc_with(a, dp->ntiles * sizeof(uint32_t));
    if (!p->tbl || !p->scl || !p->offs || !p->lblk || !p->rb0) {
        vq8_free(a, p);
        return NULL;
    }
    memset(p->tbl, 0, ncb * kd + 64);
    memset(p->scl, 0, (ncb + 16) * sizeof(float));
    memset(p->offs, 0, dp->ntiles * 64);
    memset(p->lblk, 0, dp->ntiles * LQ_KERN_TILE);
    for (size_t g = 0; g < v->ncg; g++)
        for (size_t rb = 0; rb < v->nrb; rb++) {
            size_t book = lq_vq_layout_book(v, rb, g);
            for (size_t q = 0; q < kd; q++) /* entry q / d, coordinate q % d */
                p->tbl[(g * v->nrb + rb) * kd + (q % d) * K + q / d] = (int8_t)v->cb[book * kd + q];
            p->scl[g * v->nrb + rb] = lq_vq_f32_at(v->scales, book);
        }
    for (size_t tile = 0; tile < dp->ntiles; tile++) {
        size_t r0 = tile * LQ_KERN_TILE;
        p->rb0[tile] = (uint32_t)(r0 / gr);
        for (size_t l = 0; l < LQ_KERN_TILE && r0 + l < v->rows; l++) {
            size_t lb = (r0 + l) / gr - r0 / gr;
            p->lblk[tile * LQ_KERN_TILE + l] = (uint8_t)lb;
            for (size_t k = 0; k < 4; k++)
                p->offs[tile * 64 + 4 * l + k] = (uint8_t)(lb * kd + (k % d) * K);
        }
    }
    for (size_t c = 0; c < 2 * d; c++)
        for (size_t l = 0; l < LQ_KERN_TILE; l++)
            for (size_t k = 0; k < 4; k++) {
                size_t vec = (4 * c + k) / d; /* d-vector of the unit */
                p->route[c][4 * l + k] = (uint8_t)((vec / 2) * 16 + l);
                p->msh[c][4 * l + k] = (uint8_t)(8 * (4 * (l & 1) + k) + 4 * (vec & 1));
            }
    return p;
}

/* ---- the record ------------------------------------------------------------ */
static void vq_pack_free(const lq_allocator *a, void *pack)
{
    lq_vq_kpack *k = pack;
    if (!k) return;
    lq_lut_pack_free(a, k->lut);
    vq8_free(a, k->q8);
    vqd_free(a, k->dec);
    lq_free_with(a, k);
}

/* Tables cost nrb * cols * K multiply-adds per activation against rows *
 * cols for the weights: they pay when a codebook serves at least 4K rows
 * (e.g. one codebook per column group for all rows); GPTVQ's default (16
 * rows per codebook) takes the decode kernels. */
static lq_status vq_prepare(const lq_qtensor *t, const lq_allocator *a, void **out)
{
    lq_vq_layout v;
    if (lq_vq_layout_read(t, &v) != LQ_OK) return LQ_ERR_CORRUPT;
    lq_vq_kpack *k = lq_alloc_with(a, sizeof *k);
    if (!k) return LQ_ERR_NO_MEMORY;
    k->lut = NULL;
    k->dec = NULL;
    k->q8 = NULL;
    lq_status st = LQ_ERR_UNSUPPORTED;
    if (v.gr >= 4 * v.K) st = vq_prepare_lut(t, a, &k->lut);
    if (st == LQ_ERR_UNSUPPORTED) {
        st = vq_prepare_dec(t, a, &k->dec);
        if (st == LQ_OK) k->q8 = vq8_prepare(&v, k->dec, a);
    }
    if (st != LQ_OK) {
        lq_free_with(a, k);
        return st;
    }
    *out = k;
    return LQ_OK;
}

static size_t vq_max_batch(const void *pack, lq_kernel_mode mode)
{
    const lq_vq_kpack *k = pack;
    return k->lut ? lq_lut_max_batch(k->lut, mode) : 64;
}

static size_t vq_act_bytes(const void *pack, size_t batch, lq_kernel_mode mode)
{
    const lq_vq_kpack *k = pack;
    if (k->lut) return lq_lut_act_bytes(k->lut, batch, mode);
    if (k->q8 && mode == LQ_KERNEL_FAST) return batch * lq_vq8_act_stride(k->q8);
    return batch * k->dec->cols * sizeof(float);
}

static void vq_act_build(const void *pack, const float *X, size_t batch, lq_kernel_mode mode,
                         lq_simd_level level, void *act)
{
    const lq_vq_kpack *k = pack;
    if (k->lut) {
        lq_lut_act_build(k->lut, X, batch, mode, level, act);
    } else if (k->q8 && mode == LQ_KERNEL_FAST) {
        const lq_vq8_pack *p = k->q8;
        for (size_t b = 0; b < batch; b++) {
            lq_vq8_act_view v = lq_vq8_act_get(p, act, b);
            for (size_t blk = 0; blk < p->nblk; blk++) {
                int32_t qs;
                ((float *)(uintptr_t)v.d)[blk] = lq_kern_q8_block(
                    X + b * p->dec->cols + 32 * blk, 32, (int8_t *)(uintptr_t)v.q + 32 * blk, &qs);
                ((int32_t *)(uintptr_t)v.nb128)[blk] = -128 * qs;
            }
        }
    } else {
        memcpy(act, X, batch * k->dec->cols * sizeof(float));
    }
}

static size_t vq_pack_bytes(const void *pack)
{
    const lq_vq_kpack *k = pack;
    if (k->lut) return lq_lut_pack_bytes(k->lut);
    const lq_vqd_pack *p = k->dec;
    /* the float decode's bytes (EXACT); the int8 path reads the same codes
     * and, instead of the float codebooks, int8 tables, scales and 81 bytes
     * per tile */
    return p->ntiles * (p->tile_code_bytes + LQ_KERN_TILE * sizeof(uint32_t) + 1) +
           p->ncb * p->d * p->stride * sizeof(float);
}

const lq_kern_format lq_kern_vq = {
    .format = LQ_FORMAT_VQ,
    .prepare = vq_prepare,
    .pack_free = vq_pack_free,
    .max_batch = vq_max_batch,
    .act_bytes = vq_act_bytes,
    .act_build = vq_act_build,
    .rows = LQ_VQ_ROWS,
    .grain = LQ_LUT_GRAIN,
    .pack_bytes = vq_pack_bytes,
};
