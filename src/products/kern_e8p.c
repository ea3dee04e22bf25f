/* E8P kernels: load-time tiling of the codes into the layout of
 * simd/kern_e8p.h (implied sign resolved), activation preparation (the
 * rotation once per call, double or int8 per 8-vector) and the format's
 * record. */
#include <string.h>

#include "lattice/lattice_internal.h"
#include "products/products.h"
#include "qtensor/format_e8p.h"
#include "simd/kern_e8p.h"

static size_t e8p_act_bytes(const void *pack, size_t batch, lq_kernel_mode mode)
{
    /* + one rotated vector of scratch at the end */
    const lq_e8p_pack *p = pack;
    return batch * lq_e8p_act_stride(p, mode) + lq_kern_roundup(p->n8 * sizeof(float), 64);
}

static size_t e8p_max_batch(const void *pack, lq_kernel_mode mode)
{
    (void)pack;
    (void)mode;
    return 64;
}

static void e8p_act_build(const void *pack, const float *X, size_t batch, lq_kernel_mode mode,
                          lq_simd_level level, void *act)
{
    const lq_e8p_pack *p = pack;
    size_t stride = lq_e8p_act_stride(p, mode);
    float *xr = (float *)(void *)((unsigned char *)act + batch * stride);
    const lq_lattice_kernels *k = lq_lattice_kernels_at(level);
    for (size_t b = 0; b < batch; b++) {
        lq_rht_pad_forward(k, X + b * p->cols, p->cols, p->n8, (int)p->hadamard, p->seed, xr);
        lq_e8p_act_view v = lq_e8p_act_get(p, act, mode, b);
        if (mode == LQ_KERNEL_EXACT) {
            double *x = (double *)(uintptr_t)v.x;
            for (size_t i = 0; i < p->n8; i++) x[i] = (double)xr[i];
            continue;
        }
        int8_t *q = (int8_t *)(uintptr_t)v.q;
        float *dx = (float *)(uintptr_t)v.dx;
        int32_t *s16 = (int32_t *)(uintptr_t)v.s16;
        for (size_t j = 0; j < p->nvec; j++) {
            int8_t qb[LQ_KERN_QBLK];
            int32_t s;
            dx[j] = lq_kern_q8_block(xr + 8 * j, 8, qb, &s);
            memcpy(q + 8 * j, qb, 8);
            s16[j] = 16 * s;
        }
    }
}

static void e8p_pack_free(const lq_allocator *a, void *pack)
{
    lq_e8p_pack *p = pack;
    if (!p) return;
    lq_free_with(a, p->blocks);
    lq_free_with(a, p->scale);
    lq_free_with(a, p);
}

static size_t e8p_pack_bytes_rec(const void *pack) { return lq_e8p_pack_bytes(pack); }

/* Row `lane` of a block from the stored code. */
static void block_put(uint8_t *blk, unsigned lane, uint16_t code)
{
    const uint8_t *a2 = lq_e8p_abs2[code & 255u];
    unsigned sum = 0, sg = (code >> 8) & 127u;
    for (unsigned i = 0; i < 8; i++) sum += a2[i];
    /* sign 7: minus iff popcount(signs 0-6) + sum(a) is odd (sum(a) = sum / 2) */
    unsigned s7 = ((unsigned)__builtin_popcount(sg) + sum / 2) & 1u;
    blk[lane] = (uint8_t)(code & 255u);
    blk[16 + lane] = (uint8_t)(sg | s7 << 7);
    if (code >> 15) blk[32 + lane / 8] |= (uint8_t)(1u << (lane % 8));
}

static lq_status e8p_prepare(const lq_qtensor *t, const lq_allocator *a, void **out)
{
    lq_e8p_layout L;
    if (lq_e8p_layout_of(t, &L) != LQ_OK) return LQ_ERR_CORRUPT;
    lq_e8p_pack *p = lq_alloc_with(a, sizeof *p);
    if (!p) return LQ_ERR_NO_MEMORY;
    memset(p, 0, sizeof *p);
    p->rows = L.rows;
    p->cols = L.cols;
    p->n8 = L.n8;
    p->nvec = L.nblk;
    p->ngroups = L.ngroups;
    p->group = L.group;
    p->hadamard = L.hadamard;
    p->seed = L.seed;
    p->ntiles = (p->rows + LQ_KERN_TILE - 1) / LQ_KERN_TILE;
    for (unsigned c = 0; c < 256; c++) {
        uint64_t v = 0;
        for (unsigned i = 0; i < 8; i++) v |= (uint64_t)((lq_e8p_abs2[c][i] - 1u) / 2u) << (8 * i);
        p->ptab[c] = v;
        v = 0;
        for (unsigned i = 0; i < 8; i++) v |= (uint64_t)((c >> i) & 1u) << (8 * i + 2);
        p->stab[c] = v;
    }
    size_t nb, ns;
    if (!lq_mul_ok(p->ntiles, p->nvec, &nb) || !lq_mul_ok(nb, LQ_E8P_BLOCK, &nb) ||
        !lq_mul_ok(p->ntiles * p->ngroups, 16 * sizeof(float), &ns)) {
        lq_free_with(a, p);
        return LQ_ERR_NO_MEMORY;
    }
    p->blocks = lq_alloc_with(a, nb ? nb : 1);
    p->scale = lq_alloc_with(a, ns ? ns : 1);
    if (!p->blocks || !p->scale) {
        e8p_pack_free(a, p);
        return LQ_ERR_NO_MEMORY;
    }
    memset(p->blocks, 0, nb);
    memset(p->scale, 0, ns);
    for (size_t r = 0; r < p->rows; r++) {
        size_t tile = r / LQ_KERN_TILE;
        unsigned lane = (unsigned)(r % LQ_KERN_TILE);
        for (size_t j = 0; j < p->nvec; j++)
            block_put(p->blocks + (tile * p->nvec + j) * LQ_E8P_BLOCK, lane,
                      L.codes[r * L.nblk + j]);
        for (size_t g = 0; g < p->ngroups; g++)
            p->scale[(tile * p->ngroups + g) * 16 + lane] = L.scales[r * L.ngroups + g];
    }
    *out = p;
    return LQ_OK;
}

const lq_kern_format lq_kern_e8p = {
    .format = LQ_FORMAT_E8P,
    .prepare = e8p_prepare,
    .pack_free = e8p_pack_free,
    .max_batch = e8p_max_batch,
    .act_bytes = e8p_act_bytes,
    .act_build = e8p_act_build,
    .rows =
        {
            {lq_kern_e8p_exact_scalar,
#if LQ_ARCH_X86
             lq_kern_e8p_exact_avx2, lq_kern_e8p_exact_avx512, NULL
#elif LQ_ARCH_ARM
             NULL, NULL, lq_kern_e8p_exact_neon
#else
             NULL, NULL, NULL
#endif
            },
            {lq_kern_e8p_fast_scalar,
#if LQ_ARCH_X86
             lq_kern_e8p_fast_avx2, lq_kern_e8p_fast_avx512, NULL
#elif LQ_ARCH_ARM
             NULL, NULL, lq_kern_e8p_fast_neon
#else
             NULL, NULL, NULL
#endif
            },
        },
    .pack_bytes = e8p_pack_bytes_rec,
};
