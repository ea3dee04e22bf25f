/*
 * LQ_METHOD_AQLM: additive multi-codebook quantization (src/mcq, AQLM),
 * packed as LQ_FORMAT_AQ.
 *
 * The fit (lq_aq_fit) works in fp32; the stored codebooks are fp16 (as in
 * AQLM) unless a value would overflow a half, then fp32; row scales fp32.
 * W_hat and the reported proxy loss are those of the stored tensor. The
 * engine options do not apply (AQLM does not use GPTQ's column updates),
 * except engine.rtn = 1, which keeps the residual k-means initialisation
 * without H-aware rounds. The Hessian is damped as the engine damps it
 * (engine.percdamp, same x10 schedule, same NOT_POSITIVE_DEFINITE refusal):
 * the fit minimises tr((W - W_hat)(H + lambda I)(W - W_hat)^T); the
 * reported proxy loss uses H itself.
 *
 * Paper configurations (g = 8): 1x16 (one 65536-entry codebook, 2 bits per
 * weight for the codes), 2x8 (two 256-entry codebooks, 2 bits), 3x8
 * (3 bits), 4x8 (4 bits); the codebooks and the row scales add
 * 8 * bytes / (rows * cols) bits per weight, counted by
 * lq_qtensor_bits_per_weight.
 */
#include <math.h>
#include <string.h>

#include "core/half.h"
#include "hessian/damping.h"
#include "mcq/aq_internal.h"
#include "qtensor/qtensor_internal.h"

lq_status lq_quantize_aqlm(lq_ctx *ctx, const float *W, size_t rows, size_t cols, const float *H,
                           const lq_method *m, lq_qtensor **out, float *W_hat, lq_quant_report *rep)
{
    const lq_aqlm_opts *o = &m->u.aqlm;
    lq_aq_params p = {o->n_codebooks, o->code_bits, o->group};
    size_t K, ng;
    lq_status st = aq_check_params(&p, rows, cols, &K, &ng);
    if (st != LQ_OK) return st;
    if (o->beam < 1 || o->beam > 256 || o->rounds > 1000 || o->kmeans_iters > 10000 ||
        o->cg_iters > 10000)
        return LQ_ERR_INVALID_ARG;
    size_t M = p.n_codebooks, g = p.group, ncb = M * K * g, nc = rows * ng * M;
    size_t codeb = p.code_bits <= 8 ? 1 : 2;

    double lambda = 0.0;
    float *Hd = NULL;
    if (H && !m->engine.rtn) {
        if (!(m->engine.percdamp >= 0.0) || !isfinite(m->engine.percdamp))
            return LQ_ERR_INVALID_ARG;
        st = lq_hessian_damping(ctx, H, cols, m->engine.percdamp, &lambda);
        if (st != LQ_OK) return st;
        Hd = lq_alloc_array(ctx, cols * cols, sizeof *Hd);
        if (!Hd) return LQ_ERR_NO_MEMORY;
        memcpy(Hd, H, cols * cols * sizeof *Hd);
        for (size_t c = 0; c < cols; c++) Hd[c * cols + c] += (float)lambda;
    }
    float *C = lq_alloc_array(ctx, ncb, sizeof(float));
    float *s = lq_alloc_array(ctx, rows, sizeof(float));
    uint16_t *codes = lq_alloc_array(ctx, nc, sizeof(uint16_t));
    lq_qtensor *t = NULL;
    if (!C || !s || !codes) {
        st = LQ_ERR_NO_MEMORY;
        goto done;
    }
    lq_aq_fit_opts fo = {o->beam, m->engine.rtn ? 0 : o->rounds, o->kmeans_iters, o->cg_iters, 0};
    st = lq_aq_fit(ctx, W, rows, cols, Hd ? Hd : H, &p, &fo, C, codes, s, NULL);
    if (st != LQ_OK) goto done;

    /* round the codebooks to what is stored */
    int half = 1;
    for (size_t i = 0; i < ncb && half; i++)
        if (!isfinite(lq_f16_to_f32(lq_f32_to_f16(C[i])))) half = 0;
    if (half)
        for (size_t i = 0; i < ncb; i++) C[i] = lq_f16_to_f32(lq_f32_to_f16(C[i]));
    size_t cbb = half ? 2 : 4;

    st = lq_qtensor_new(ctx, LQ_FORMAT_AQ, rows, cols, &t);
    if (st != LQ_OK) goto done;
    t->ip[LQ_AQ_IP_M] = (uint32_t)M;
    t->ip[LQ_AQ_IP_B] = p.code_bits;
    t->ip[LQ_AQ_IP_G] = (uint32_t)g;
    t->ip[LQ_AQ_IP_CB] = (uint32_t)cbb;
    uint8_t *sc = lq_qtensor_add_section(t, LQ_SEC_CODES, (uint32_t)codeb, nc * codeb);
    uint8_t *sb = lq_qtensor_add_section(t, LQ_SEC_CODEBOOKS, (uint32_t)cbb, ncb * cbb);
    uint8_t *ss = lq_qtensor_add_section(t, LQ_SEC_SCALES, 4, rows * 4);
    if (!sc || !sb || !ss) {
        st = LQ_ERR_NO_MEMORY;
        goto done;
    }
    for (size_t i = 0; i < nc; i++) {
        sc[i * codeb] = (uint8_t)(codes[i] & 0xFF);
        if (codeb == 2) sc[2 * i + 1] = (uint8_t)(codes[i] >> 8);
    }
    for (size_t i = 0; i < ncb; i++) {
        uint32_t u;
        if (half) {
            u = lq_f32_to_f16(C[i]);
        } else {
            memcpy(&u, &C[i], 4);
        }
        for (size_t q = 0; q < cbb; q++) sb[i * cbb + q] = (uint8_t)(u >> (8 * q));
    }
    for (size_t i = 0; i < rows; i++) {
        uint32_t u;
        memcpy(&u, &s[i], 4);
        for (size_t q = 0; q < 4; q++) ss[i * 4 + q] = (uint8_t)(u >> (8 * q));
    }
    if (rep) {
        st = lq_aq_objective(ctx, W, rows, cols, H, &p, C, codes, s, NULL, &rep->proxy_loss);
        if (st != LQ_OK) goto done;
        rep->damping = lambda;
        rep->dead_columns = 0;
        if (H)
            for (size_t c = 0; c < cols; c++) rep->dead_columns += H[c * cols + c] == 0.0f;
    }
    if (W_hat) {
        st = lq_dequantize(ctx, t, W_hat);
        if (st != LQ_OK) goto done;
    }
    *out = t;
    t = NULL;
done:
    lq_qtensor_free(t);
    lq_free(ctx, C);
    lq_free(ctx, s);
    lq_free(ctx, codes);
    lq_free(ctx, Hd);
    return st;
}
