/* Table kernels: pack allocation, code packing, activation tables. */
#include <string.h>

#include "products/lut.h"

void lq_lut_pack_free(const lq_allocator *a, void *pack)
{
    lq_lut_pack *p = pack;
    if (!p) return;
    if (p->fmt && p->fmt_free) p->fmt_free(a, p->fmt);
    lq_free_with(a, p->seg);
    lq_free_with(a, p->tabofs);
    lq_free_with(a, p->lane_set);
    lq_free_with(a, p->uniform);
    lq_free_with(a, p->codes);
    lq_free_with(a, p->mult);
    lq_free_with(a, p);
}

static void *zalloc(const lq_allocator *a, size_t n, size_t elem, int *ok)
{
    size_t bytes;
    if (!lq_mul_ok(n, elem, &bytes)) {
        *ok = 0;
        return NULL;
    }
    void *q = lq_alloc_with(a, bytes ? bytes : 1);
    if (!q)
        *ok = 0;
    else
        memset(q, 0, bytes ? bytes : 1);
    return q;
}

lq_status lq_lut_pack_alloc(const lq_lut_pack *g, const lq_allocator *a, lq_lut_pack **out)
{
    lq_lut_pack *p = lq_alloc_with(a, sizeof *p);
    if (!p) return LQ_ERR_NO_MEMORY;
    *p = *g;
    p->seg = NULL;
    p->tabofs = NULL;
    p->lane_set = NULL;
    p->uniform = NULL;
    p->codes = NULL;
    p->mult = NULL;
    p->fmt = NULL;
    p->fmt_free = NULL;
    p->fmt_bytes = 0;
    p->ntiles = (p->rows + LQ_KERN_TILE - 1) / LQ_KERN_TILE;
    size_t per_pos = p->cw == 16 ? 32 : 16;
    size_t npos_b = p->cw == 4 ? (p->npos + 1) / 2 : p->npos;
    int ok = 1;
    if (!lq_mul_ok(npos_b, per_pos, &p->tile_code_bytes)) ok = 0;
    p->seg = zalloc(a, p->nseg + 1, sizeof(uint32_t), &ok);
    p->tabofs = zalloc(a, p->npos, sizeof(uint32_t), &ok);
    p->lane_set = zalloc(a, p->ntiles, LQ_KERN_TILE * sizeof(uint32_t), &ok);
    p->uniform = zalloc(a, p->ntiles, 1, &ok);
    if (ok) p->codes = zalloc(a, p->ntiles, p->tile_code_bytes, &ok);
    size_t nm = 0;
    if (ok && !lq_mul_ok(p->ntiles, p->nseg * LQ_KERN_TILE, &nm)) ok = 0;
    if (ok) p->mult = zalloc(a, nm, sizeof(float), &ok);
    if (!ok) {
        lq_lut_pack_free(a, p);
        return LQ_ERR_NO_MEMORY;
    }
    *out = p;
    return LQ_OK;
}

void lq_lut_put_code(lq_lut_pack *p, size_t r, size_t pos, unsigned code)
{
    size_t tile = r / LQ_KERN_TILE, lane = r % LQ_KERN_TILE;
    uint8_t *tc = p->codes + tile * p->tile_code_bytes;
    switch (p->cw) {
    case 4: tc[(pos >> 1) * 16 + lane] |= (uint8_t)((code & 15u) << (4 * (pos & 1))); break;
    case 8: tc[pos * 16 + lane] = (uint8_t)code; break;
    default:
        tc[pos * 32 + 2 * lane] = (uint8_t)(code & 0xff);
        tc[pos * 32 + 2 * lane + 1] = (uint8_t)(code >> 8);
        break;
    }
}

size_t lq_lut_pack_bytes(const void *pack)
{
    const lq_lut_pack *p = pack;
    return p->ntiles * (p->tile_code_bytes + LQ_KERN_TILE * sizeof(uint32_t) +
                        p->nseg * LQ_KERN_TILE * sizeof(float)) +
           p->npos * sizeof(uint32_t) + p->fmt_bytes;
}

size_t lq_lut_max_batch(const void *pack, lq_kernel_mode mode)
{
    (void)mode;
    /* keep the tables of a batch chunk within about 1 MiB (L2): gathers
     * from several L2-missing tables cost more than re-reading the codes */
    size_t s = lq_lut_act_stride(pack), b = (1u << 20) / (s ? s : 1);
    return b < 1 ? 1 : b > 16 ? 16 : b;
}

size_t lq_lut_act_bytes(const void *pack, size_t batch, lq_kernel_mode mode)
{
    (void)mode;
    return batch * lq_lut_act_stride(pack);
}

void lq_lut_act_build(const void *pack, const float *X, size_t batch, lq_kernel_mode mode,
                      lq_simd_level level, void *act)
{
    (void)mode;
    const lq_lut_pack *p = pack;
    size_t stride = lq_lut_act_stride(p);
    for (size_t b = 0; b < batch; b++)
        p->build(p, X + b * p->cols, (float *)(void *)((unsigned char *)act + b * stride), level);
}

lq_lut_dot_fn lq_lut_dot_for(lq_simd_level level)
{
#if LQ_ARCH_X86
    if (level == LQ_SIMD_AVX512) return lq_lut_dot_avx512;
    if (level == LQ_SIMD_AVX2) return lq_lut_dot_avx2;
#endif
    (void)level;
    return lq_lut_dot_scalar;
}
