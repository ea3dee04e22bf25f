/* E8 kernels: load-time repack of the Voronoi codes into the packed
 * coordinate layout of simd/kern_e8.h, activation preparation (rotation,
 * int8 per 8-vector) and the format's record. */
#include <string.h>

#include "lattice/lattice_internal.h"
#include "products/products.h"
#include "qtensor/format_e8.h"
#include "simd/kern_e8.h"

static size_t e8_act_bytes(const void *pack, size_t batch, lq_kernel_mode mode)
{
    /* + one rotated vector of scratch, + the interleaved FAST records */
    const lq_e8_pack *p = pack;
    return batch * lq_e8_act_stride(p, mode) + lq_kern_roundup(p->n8 * sizeof(float), 64) +
           (mode == LQ_KERNEL_FAST ? p->nvec * batch * LQ_E8_IREC : 0);
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
        lq_rht_pad_forward(k, X + b * p->cols, p->cols, p->n8, (int)p->hadamard, p->seed, xr);
        unsigned char *base = (unsigned char *)act + b * stride;
        if (mode == LQ_KERNEL_EXACT) {
            memcpy(base, xr, p->n8 * sizeof(float));
            continue;
        }
        lq_e8_act_view v = lq_e8_act_get(p, act, mode, b);
        float *d = (float *)(uintptr_t)v.d;
        int32_t *qs = (int32_t *)(uintptr_t)v.sq;
        int32_t *a2q = (int32_t *)(uintptr_t)v.a2q;
        for (size_t j = 0; j < p->nvec; j++) {
            int8_t q[LQ_KERN_QBLK];
            int32_t s;
            d[j] = lq_kern_q8_block(xr + 8 * j, 8, q, &s);
            memcpy((int8_t *)base + 8 * j, q, 8);
            qs[j] = s;
            a2q[j] = 2 * (int32_t)p->q * s;
            unsigned char *rec = (unsigned char *)(uintptr_t)lq_e8_act_irec(p, act, batch) +
                                 (j * batch + b) * LQ_E8_IREC;
            for (int i = 0; i < 8; i++) rec[i] = (unsigned char)(int8_t)-q[i];
            memcpy(rec + 8, &a2q[j], 4);
            memcpy(rec + 12, &d[j], 4);
        }
    }
}

static void e8_pack_free(const lq_allocator *a, void *pack)
{
    lq_e8_pack *p = pack;
    if (!p) return;
    lq_free_with(a, p->blocks);
    lq_free_with(a, p->scale);
    lq_free_with(a, p);
}

/* Write row `lane` of a block: fields f (8), coset s, beta index bi. */
static void block_put(uint8_t *blk, const lq_e8_pack *p, unsigned lane, const unsigned f[8],
                      unsigned s, unsigned bi)
{
    for (unsigned k = 0; k < 8; k++) {
        blk[4 * lane + k % 4] |= (uint8_t)((f[k] & 15u) << (4 * (k / 4)));
        if (p->hi) blk[64 + lane] |= (uint8_t)(((f[k] >> 4) & 1u) << k);
        if (p->hi2) blk[80 + lane] |= (uint8_t)(((f[k] >> 5) & 1u) << k);
    }
    uint8_t *meta = blk + p->block - 8;
    meta[lane % 8] |= (uint8_t)((s | bi << 1) << (4 * (lane / 8)));
}

/* Fill the blocks and scales of p from L with fields of sigma * y (sigma =
 * +-1). UNSUPPORTED when a field is out of range for this sign. */
static lq_status fill_pack(lq_e8_pack *p, const lq_e8_layout *Lp, int sigma, float *row)
{
    const lq_e8_layout L = *Lp;
    const lq_lattice_kernels *k = lq_lattice_kernels_at(LQ_SIMD_SCALAR);
    const int twoq = 2 * (int)L.q, fmax = p->hi2 ? 64 : p->hi ? 32 : 16;
    lq_status st = LQ_OK;
    uint8_t c[8 * LQ_VORONOI_CHUNK];
    for (size_t r = 0; r < p->rows && st == LQ_OK; r++) {
        size_t tile = r / LQ_KERN_TILE;
        unsigned lane = (unsigned)(r % LQ_KERN_TILE);
        for (size_t j0 = 0; j0 < p->nvec && st == LQ_OK; j0 += LQ_VORONOI_CHUNK) {
            size_t m = p->nvec - j0 < LQ_VORONOI_CHUNK ? p->nvec - j0 : LQ_VORONOI_CHUNK;
            for (size_t j = 0; j < m; j++)
                if (!lq_voronoi_from_index(L.q, lq_e8_layout_code(&L, r, j0 + j), c + 8 * j))
                    st = LQ_ERR_CORRUPT;
            if (st == LQ_OK) lq_voronoi_decode_batch(k, L.q, c, m, row + 8 * j0);
        }
        for (size_t j = 0; j < p->nvec && st == LQ_OK; j++) {
            unsigned bi = lq_e8_layout_beta(&L, r, j);
            if (bi >= L.K) {
                st = LQ_ERR_CORRUPT;
                break;
            }
            /* u = 2y: integers of one parity (E8); f = (2q - s - u) / 2 */
            int u[8];
            for (unsigned i = 0; i < 8; i++) {
                float v = 2.0f * row[8 * j + i];
                if (!(v >= -64.0f && v <= 64.0f) || v != (float)(int)v) st = LQ_ERR_UNSUPPORTED;
                u[i] = st == LQ_OK ? sigma * (int)v : 0;
            }
            unsigned s = (unsigned)u[0] & 1u, f[8];
            for (unsigned i = 0; i < 8 && st == LQ_OK; i++) {
                int fi = twoq - (int)s - u[i];
                if (((unsigned)u[i] & 1u) != s || fi < 0 || fi % 2 || fi / 2 >= fmax)
                    st = LQ_ERR_UNSUPPORTED;
                f[i] = (unsigned)(fi / 2);
            }
            if (st == LQ_OK)
                block_put(p->blocks + (tile * p->nvec + j) * p->block, p, lane, f, s, bi);
        }
        for (size_t g = 0; g < p->ngroups; g++)
            p->scale[(tile * p->ngroups + g) * 16 + lane] = lq_e8_layout_scale(&L, r, g);
    }
    return st;
}

static lq_status e8_prepare(const lq_qtensor *t, const lq_allocator *a, void **out)
{
    lq_e8_layout L;
    if (lq_e8_layout_of(t, &L) != LQ_OK) return LQ_ERR_CORRUPT;
    if (L.q > LQ_E8_KERN_QMAX || L.K > LQ_E8_KERN_KMAX) return LQ_ERR_UNSUPPORTED;
    lq_e8_pack *p = lq_alloc_with(a, sizeof *p);
    if (!p) return LQ_ERR_NO_MEMORY;
    memset(p, 0, sizeof *p);
    p->rows = t->rows;
    p->cols = t->cols;
    p->q = L.q;
    p->group = L.group;
    p->hadamard = L.hadamard;
    p->n8 = L.n8;
    p->seed = L.seed;
    p->nvec = L.nblk;
    p->ngroups = L.ngroups;
    p->ntiles = (p->rows + LQ_KERN_TILE - 1) / LQ_KERN_TILE;
    p->hi = L.q > 8;
    p->hi2 = L.q > 16;
    p->block = lq_e8_block_bytes(L.q);
    for (unsigned i = 0; i < L.K; i++) p->hb[i] = 0.5f * L.betas[i];
    size_t nb, ns;
    if (!lq_mul_ok(p->ntiles, p->nvec, &nb) || !lq_mul_ok(nb, p->block, &nb) ||
        !lq_mul_ok(p->ntiles * p->ngroups, 16 * sizeof(float), &ns)) {
        lq_free_with(a, p);
        return LQ_ERR_NO_MEMORY;
    }
    p->blocks = lq_alloc_with(a, nb);
    p->scale = lq_alloc_with(a, ns);
    float *row = lq_alloc_with(a, p->n8 * sizeof(float));
    if (!p->blocks || !p->scale || !row) {
        lq_free_with(a, row);
        e8_pack_free(a, p);
        return LQ_ERR_NO_MEMORY;
    }
    memset(p->blocks, 0, nb);
    memset(p->scale, 0, ns);
    lq_status st = fill_pack(p, &L, 1, row);
    if (st == LQ_ERR_UNSUPPORTED) {
        /* the code holds -q e_k instead of +q e_0: store the fields of -y and
         * negate beta / 2 (every product term flips sign exactly) */
        memset(p->blocks, 0, nb);
        st = fill_pack(p, &L, -1, row);
        for (unsigned i = 0; i < L.K; i++) p->hb[i] = -p->hb[i];
    }
    lq_free_with(a, row);
    if (st != LQ_OK) {
        e8_pack_free(a, p);
        return st;
    }
    *out = p;
    return LQ_OK;
}

static size_t e8_pack_bytes(const void *pack) { return lq_e8_pack_bytes(pack); }

const lq_kern_format lq_kern_e8 = {
    .format = LQ_FORMAT_E8,
    .prepare = e8_prepare,
    .pack_free = e8_pack_free,
    .max_batch = e8_max_batch,
    .act_bytes = e8_act_bytes,
    .act_build = e8_act_build,
    .pack_bytes = e8_pack_bytes,
    .rows =
        {
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
