/* E8 kernels: load-time decode of the Voronoi codes, activation
 * preparation (rotation, int8 per 8-vector) and the format's record. */
#include <string.h>

#include "lattice/lattice_internal.h"
#include "products/products.h"
#include "simd/kern_e8.h"

static size_t e8_act_bytes(const void *pack, size_t batch, lq_kernel_mode mode)
{
    /* + one rotated vector of scratch at the end */
    const lq_e8_pack *p = pack;
    return batch * lq_e8_act_stride(p, mode) + lq_kern_roundup(p->n8 * sizeof(float), 64);
}

static size_t e8_max_batch(const void *pack, lq_kernel_mode mode)
{
    (void)pack;
    (void)mode;
    return 64;
}

static void e8_act_build(const void *pack, const float *X, size_t batch, lq_kernel_mode mode,
                         lq_simd_level level, void *act)
{
    const lq_e8_pack *p = pack;
    size_t stride = lq_e8_act_stride(p, mode);
    float *xr = (float *)(void *)((unsigned char *)act + batch * stride);
    const lq_lattice_kernels *k = lq_lattice_kernels_at(level);
    for (size_t b = 0; b < batch; b++) {
        memcpy(xr, X + b * p->cols, p->cols * sizeof(float));
        memset(xr + p->cols, 0, (p->n8 - p->cols) * sizeof(float));
        if (p->hadamard) lq_rht_apply(k, xr, p->n8, p->seed, 0);
        unsigned char *base = (unsigned char *)act + b * stride;
        if (mode == LQ_KERNEL_EXACT) {
            memcpy(base, xr, p->n8 * sizeof(float));
            continue;
        }
        lq_e8_act_view v = lq_e8_act_get(p, act, mode, b);
        float *d = (float *)(uintptr_t)v.d;
        int32_t *qs = (int32_t *)(uintptr_t)v.qs;
        for (size_t j = 0; j < p->nvec; j++) {
            int8_t q[LQ_KERN_QBLK];
            int32_t s;
            d[j] = lq_kern_q8_block(xr + 8 * j, 8, q, &s);
            memcpy((int8_t *)base + 8 * j, q, 8);
            qs[j] = 128 * s;
        }
    }
}

static void e8_pack_free(const lq_allocator *a, void *pack)
{
    lq_e8_pack *p = pack;
    if (!p) return;
    lq_free_with(a, p->coords);
    lq_free_with(a, p->idx);
    lq_free_with(a, p->scale);
    lq_free_with(a, p);
}

static lq_status e8_prepare(const lq_qtensor *t, const lq_allocator *a, void **out)
{
    unsigned q = t->ip[0], K = t->ip[1], cbits = t->ip[7], ibits = t->ip[8];
    if (q > 60) return LQ_ERR_UNSUPPORTED; /* |2y| may exceed 127 */
    lq_e8_pack *p = lq_alloc_with(a, sizeof *p);
    if (!p) return LQ_ERR_NO_MEMORY;
    memset(p, 0, sizeof *p);
    p->rows = t->rows;
    p->cols = t->cols;
    p->group = t->ip[2];
    p->hadamard = t->ip[3];
    p->n8 = t->ip[4];
    p->seed = (uint64_t)t->ip[5] | ((uint64_t)t->ip[6] << 32);
    p->nvec = p->n8 / 8;
    p->ngroups = (p->n8 + p->group - 1) / p->group;
    p->ntiles = (p->rows + LQ_KERN_TILE - 1) / LQ_KERN_TILE;
    for (unsigned i = 0; i < K && i < 16; i++) p->hb[i] = 0.5f * t->fp[i];
    size_t nc, ni, ns;
    if (!lq_mul_ok(p->ntiles * p->nvec, 128, &nc) || !lq_mul_ok(p->ntiles * p->nvec, 16, &ni) ||
        !lq_mul_ok(p->ntiles * p->ngroups, 16 * sizeof(float), &ns)) {
        lq_free_with(a, p);
        return LQ_ERR_NO_MEMORY;
    }
    p->coords = lq_alloc_with(a, nc);
    p->idx = lq_alloc_with(a, ni);
    p->scale = lq_alloc_with(a, ns);
    float *row = lq_alloc_with(a, p->n8 * sizeof(float));
    if (!p->coords || !p->idx || !p->scale || !row) {
        lq_free_with(a, row);
        e8_pack_free(a, p);
        return LQ_ERR_NO_MEMORY;
    }
    memset(p->coords, 128, nc);
    memset(p->idx, 0, ni);
    memset(p->scale, 0, ns);
    const uint8_t *codes = lq_qtensor_section(t, LQ_SEC_CODES)->data;
    const lq_qsection *sb = lq_qtensor_section(t, LQ_SEC_BETAS);
    const uint8_t *bidx = sb && sb->nbytes ? sb->data : NULL;
    const float *scales = lq_qtensor_section(t, LQ_SEC_SCALES)->data;
    const lq_lattice_kernels *k = lq_lattice_kernels_at(LQ_SIMD_SCALAR);
    lq_status st = LQ_OK;
    uint8_t c[8 * LQ_VORONOI_CHUNK];
    for (size_t r = 0; r < p->rows && st == LQ_OK; r++) {
        size_t tile = r / LQ_KERN_TILE, lane = r % LQ_KERN_TILE;
        for (size_t j0 = 0; j0 < p->nvec && st == LQ_OK; j0 += LQ_VORONOI_CHUNK) {
            size_t m = p->nvec - j0 < LQ_VORONOI_CHUNK ? p->nvec - j0 : LQ_VORONOI_CHUNK;
            for (size_t j = 0; j < m; j++) {
                size_t vec = r * p->nvec + j0 + j;
                if (!lq_voronoi_from_index(q, lq_bits_get(codes, vec * cbits, cbits), c + 8 * j))
                    st = LQ_ERR_CORRUPT;
                unsigned bi = ibits ? (unsigned)lq_bits_get(bidx, vec * ibits, ibits) : 0;
                if (bi >= K) st = LQ_ERR_CORRUPT;
                p->idx[(tile * p->nvec + j0 + j) * 16 + lane] = (uint8_t)bi;
            }
            if (st == LQ_OK) lq_voronoi_decode_batch(k, q, c, m, row + 8 * j0);
        }
        for (size_t j = 0; j < p->nvec && st == LQ_OK; j++)
            for (size_t i = 0; i < 8; i++) {
                float u = 2.0f * row[8 * j + i];
                if (!(u >= -127.0f && u <= 127.0f) || u != (float)(int)u) {
                    st = LQ_ERR_UNSUPPORTED;
                    break;
                }
                size_t s = i / 4, kk = i % 4;
                p->coords[(tile * p->nvec + j) * 128 + 64 * s + 4 * lane + kk] =
                    (uint8_t)((int)u + 128);
            }
        for (size_t g = 0; g < p->ngroups; g++)
            p->scale[(tile * p->ngroups + g) * 16 + lane] = scales[r * p->ngroups + g];
    }
    lq_free_with(a, row);
    if (st != LQ_OK) {
        e8_pack_free(a, p);
        return st;
    }
    *out = p;
    return LQ_OK;
}

const lq_kern_format lq_kern_e8 = {
    .format = LQ_FORMAT_E8,
    .prepare = e8_prepare,
    .pack_free = e8_pack_free,
    .max_batch = e8_max_batch,
    .act_bytes = e8_act_bytes,
    .act_build = e8_act_build,
    .rows = {
        /* EXACT scalar on the pack: no allocation after the layout, and
         * NO_MEMORY leaves Y untouched (the format's reference allocates) */
        {lq_kern_e8_exact_scalar,
#if LQ_ARCH_X86
         lq_kern_e8_exact_avx2, lq_kern_e8_exact_avx512, NULL
#else
         NULL, NULL, NULL
#endif
        },
        {lq_kern_e8_fast_scalar,
#if LQ_ARCH_X86
         lq_kern_e8_fast_avx2, lq_kern_e8_fast_avx512, NULL
#elif LQ_ARCH_ARM
         NULL, NULL, lq_kern_e8_fast_neon
#else
         NULL, NULL, NULL
#endif
        },
    },
};
