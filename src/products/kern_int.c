/* INT kernels: the kernel layout built from the stored tensor, activation
 * preparation, and the format's kernel record. */
#include <string.h>

#include "core/half.h"
#include "hessian/int_quant.h"
#include "products/products.h"
#include "qtensor/format_int.h"
#include "simd/kern_int.h"

static size_t int_act_bytes(const void *pack, size_t batch, lq_kernel_mode mode)
{
    return batch * lq_int_act_stride(pack, mode);
}

static size_t int_max_batch(const void *pack, lq_kernel_mode mode)
{
    (void)pack;
    (void)mode;
    return 64;
}

static void int_act_build(const void *pack, const float *X, size_t batch, lq_kernel_mode mode,
                          lq_simd_level level, void *act)
{
    const lq_int_pack *p = pack;
    size_t stride = lq_int_act_stride(p, mode);
    for (size_t b = 0; b < batch; b++) {
        const float *x = X + b * p->cols;
        lq_int_act_view v = lq_int_act_get(p, act, mode, b);
        float *xs = (float *)(uintptr_t)v.xs;
        unsigned char *base = (unsigned char *)act + b * stride;
        for (size_t g = 0; g < p->ngroups; g++) {
            float s = 0.0f, qsum = 0.0f;
            for (size_t k = p->gblk[g]; k < p->gblk[g + 1]; k++) {
                float blk[LQ_KERN_QBLK];
                for (size_t c = 0; c < LQ_KERN_QBLK; c++) {
                    uint32_t src = p->col_src[k * LQ_KERN_QBLK + c];
                    blk[c] = src == UINT32_MAX ? 0.0f : x[src];
                    s += blk[c];
                }
                if (mode == LQ_KERNEL_FAST) {
                    int32_t qs;
                    float *d = (float *)(uintptr_t)v.d;
                    d[k] =
                        lq_kern_q8_block(blk, LQ_KERN_QBLK, (int8_t *)base + k * LQ_KERN_QBLK, &qs);
                    qsum += d[k] * (float)qs;
                } else {
                    memcpy((float *)(void *)base + k * LQ_KERN_QBLK, blk, sizeof blk);
                }
            }
            /* FAST: the sum of the rounded activations, so that the zero
             * point term cancels exactly and the error is sum w (x - x^) */
            xs[g] = mode == LQ_KERNEL_FAST ? qsum : s;
        }
    }
}

static void int_pack_free(const lq_allocator *a, void *pack)
{
    lq_int_pack *p = pack;
    if (!p) return;
    lq_free_with(a, p->gblk);
    lq_free_with(a, p->col_src);
    lq_free_with(a, p->codes);
    lq_free_with(a, p->sm);
    lq_free_with(a, p);
}

/* Store code q of (row lane, block column c) into a pack block. */
static void put_code(uint8_t *blk, unsigned sbits, unsigned lane, unsigned c, unsigned q)
{
    unsigned s = c >> 2, k = c & 3, j = 4 * lane + k;
    switch (sbits) {
    case 4: blk[64 * (s >> 1) + j] |= (uint8_t)((q & 15u) << (4 * (s & 1))); break;
    case 2: blk[64 * (s >> 2) + j] |= (uint8_t)((q & 3u) << (2 * (s & 3))); break;
    case 3:
        blk[64 * (s >> 2) + j] |= (uint8_t)((q & 3u) << (2 * (s & 3)));
        blk[128 + 8 * s + (j >> 3)] |= (uint8_t)(((q >> 2) & 1u) << (j & 7));
        break;
    default: blk[64 * s + j] = (uint8_t)q; break;
    }
}

/* The stored INT tensor as seen by the repacker. */
typedef struct int_src {
    unsigned bits;
    size_t group;         /* columns per group (cols if whole row) */
    const uint32_t *perm; /* stored column j holds input column perm[j], or NULL */
    unsigned (*code)(const struct int_src *s, size_t r, size_t c);
    void (*param)(const struct int_src *s, size_t r, size_t g, float *scale, float *offset);
    const lq_qtensor *t;
} int_src;

static lq_status int_pack_build(const lq_qtensor *t, const int_src *src, const lq_allocator *a,
                                void **out)
{
    size_t rows = t->rows, cols = t->cols, G = src->group;
    lq_int_pack *p = lq_alloc_with(a, sizeof *p);
    if (!p) return LQ_ERR_NO_MEMORY;
    memset(p, 0, sizeof *p);
    p->rows = rows;
    p->cols = cols;
    p->bits = src->bits;
    p->sbits = src->bits <= 4 ? src->bits : 8;
    if (p->sbits == 1) p->sbits = 2;
    p->ngroups = (cols + G - 1) / G;
    size_t nblk = 0;
    for (size_t g = 0; g < p->ngroups; g++) {
        size_t len = (g + 1) * G <= cols ? G : cols - g * G;
        nblk += (len + LQ_KERN_QBLK - 1) / LQ_KERN_QBLK;
    }
    p->nblk = nblk;
    p->kcols = nblk * LQ_KERN_QBLK;
    p->ntiles = (rows + LQ_KERN_TILE - 1) / LQ_KERN_TILE;
    p->blk_bytes = (size_t)LQ_KERN_TILE * LQ_KERN_QBLK * p->sbits / 8;
    size_t ncode, nsm;
    if (!lq_mul_ok(p->ntiles * nblk, p->blk_bytes, &ncode) ||
        !lq_mul_ok(p->ntiles * p->ngroups, 2 * LQ_KERN_TILE * sizeof(float), &nsm)) {
        lq_free_with(a, p);
        return LQ_ERR_NO_MEMORY;
    }
    p->gblk = lq_alloc_with(a, (p->ngroups + 1) * sizeof(uint32_t));
    p->col_src = lq_alloc_with(a, p->kcols * sizeof(uint32_t));
    p->codes = lq_alloc_with(a, ncode);
    p->sm = lq_alloc_with(a, nsm);
    if (!p->gblk || !p->col_src || !p->codes || !p->sm) {
        int_pack_free(a, p);
        return LQ_ERR_NO_MEMORY;
    }
    memset(p->codes, 0, ncode);
    memset(p->sm, 0, nsm);
    size_t k = 0;
    for (size_t g = 0; g < p->ngroups; g++) {
        size_t c0 = g * G, len = (g + 1) * G <= cols ? G : cols - c0;
        p->gblk[g] = (uint32_t)k;
        size_t nb = (len + LQ_KERN_QBLK - 1) / LQ_KERN_QBLK;
        for (size_t i = 0; i < nb * LQ_KERN_QBLK; i++) {
            size_t c = c0 + i;
            p->col_src[k * LQ_KERN_QBLK + i] =
                i < len ? (src->perm ? src->perm[c] : (uint32_t)c) : UINT32_MAX;
        }
        k += nb;
    }
    p->gblk[p->ngroups] = (uint32_t)k;
    for (size_t r = 0; r < rows; r++) {
        size_t tile = r / LQ_KERN_TILE;
        unsigned lane = (unsigned)(r % LQ_KERN_TILE);
        uint8_t *tc = p->codes + tile * nblk * p->blk_bytes;
        float *sm = p->sm + tile * p->ngroups * 2 * LQ_KERN_TILE;
        for (size_t g = 0; g < p->ngroups; g++) {
            size_t c0 = g * G, len = (g + 1) * G <= cols ? G : cols - c0;
            for (size_t i = 0; i < len; i++) {
                size_t kb = p->gblk[g] + i / LQ_KERN_QBLK;
                put_code(tc + kb * p->blk_bytes, p->sbits, lane, (unsigned)(i % LQ_KERN_QBLK),
                         src->code(src, r, c0 + i));
            }
            src->param(src, r, g, &sm[g * 32 + lane], &sm[g * 32 + 16 + lane]);
        }
    }
    *out = p;
    return LQ_OK;
}

/* The stored layout (src/qtensor/format_int.c): LSB-first code streams per
 * row, half or float scales, bit-packed zeros, optional PERM. */
typedef struct int_stored {
    int_src base;
    size_t cb, zb, ng, sbytes;
    const uint8_t *codes, *zeros, *scales;
} int_stored;

static unsigned stored_code(const int_src *s, size_t r, size_t c)
{
    const int_stored *v = (const int_stored *)(const void *)s;
    return lq_int_get_bits(v->codes + r * v->cb, v->cb, c, s->bits);
}

static void stored_param(const int_src *s, size_t r, size_t g, float *scale, float *offset)
{
    const int_stored *v = (const int_stored *)(const void *)s;
    size_t i = r * v->ng + g;
    float sc;
    if (v->sbytes == 4) {
        memcpy(&sc, v->scales + 4 * i, 4);
    } else {
        const uint8_t *p = v->scales + 2 * i;
        sc = lq_f16_to_f32((uint16_t)(p[0] | (p[1] << 8)));
    }
    unsigned z =
        v->zeros ? lq_int_get_bits(v->zeros + r * v->zb, v->zb, g, s->bits) : 1u << (s->bits - 1);
    *scale = sc;
    *offset = -(float)z * sc;
}

static lq_status int_prepare(const lq_qtensor *t, const lq_allocator *a, void **out)
{
    int_stored v;
    memset(&v, 0, sizeof v);
    lq_int_layout L;
    lq_status st = lq_int_layout_of(t, &L);
    if (st != LQ_OK) return st;
    v.base.bits = L.bits;
    v.base.group = L.group;
    v.base.code = stored_code;
    v.base.param = stored_param;
    v.base.t = t;
    v.base.perm = L.perm;
    v.ng = L.ngroups;
    v.cb = L.code_bytes;
    v.zb = L.zero_bytes;
    v.sbytes = L.scale_bytes;
    v.codes = L.codes;
    v.scales = L.scales;
    v.zeros = L.zeros;
    return int_pack_build(t, &v.base, a, out);
}

const lq_kern_format lq_kern_int = {
    .format = LQ_FORMAT_INT,
    .prepare = int_prepare,
    .pack_free = int_pack_free,
    .max_batch = int_max_batch,
    .act_bytes = int_act_bytes,
    .act_build = int_act_build,
    .rows =
        {
            /* EXACT: scalar slot NULL = the format's reference matmul_rows */
            {NULL,
#if LQ_ARCH_X86
             lq_kern_int_exact_avx2, lq_kern_int_exact_avx512, NULL
#elif LQ_ARCH_ARM
             NULL, NULL, lq_kern_int_exact_neon
#else
             NULL, NULL, NULL
#endif
            },
            {lq_kern_int_fast_scalar,
#if LQ_ARCH_X86
             lq_kern_int_fast_avx2, lq_kern_int_fast_avx512, NULL
#elif LQ_ARCH_ARM
             NULL, NULL, lq_kern_int_fast_neon
#else
             NULL, NULL, NULL
#endif
            },
        },
};
