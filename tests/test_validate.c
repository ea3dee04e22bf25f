/* Validation of packed tensors (issue 14 findings 3 and 8): a header word
 * or float a format does not define must be zero, and every stored code
 * must be in range (E8: beta index < K and Voronoi index < q^8). A tensor
 * that fails is CORRUPT for lq_qtensor_validate, the products and
 * lq_dequantize, and lq_dequantize leaves W_hat untouched. Every mutation
 * is applied to a tensor a method really emitted and undone afterwards;
 * the undone tensor validates again (so each check can fail). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lattice/lattice_internal.h"
#include "qtensor/format_e8.h"
#include "qtensor/qtensor_internal.h"
#include "test_common.h"

#define ROWS 16
#define COLS 64

static lq_qtensor *make(lq_ctx *ctx, const lq_method *m)
{
    float *W = malloc(ROWS * COLS * sizeof *W), *H = malloc(COLS * COLS * sizeof *H);
    lq_test_correlated_layer(ROWS, COLS, 4 * COLS, 3, W, H);
    lq_qtensor *t = NULL;
    ck_assert_int_eq(lq_quantize(ctx, W, ROWS, COLS, H, m, &t, NULL), LQ_OK);
    free(W);
    free(H);
    return t;
}

/* t must be refused everywhere, with W_hat and Y untouched. */
static void assert_refused(lq_ctx *ctx, const lq_qtensor *t, const char *what)
{
    ck_assert_msg(lq_qtensor_validate(t) == LQ_ERR_CORRUPT, "%s: validate accepted", what);
    float *Wh = malloc(ROWS * COLS * sizeof *Wh), x[COLS], y[ROWS];
    for (size_t i = 0; i < ROWS * COLS; i++) Wh[i] = 5.0f;
    for (size_t i = 0; i < COLS; i++) x[i] = 1.0f;
    for (size_t i = 0; i < ROWS; i++) y[i] = 5.0f;
    ck_assert_msg(lq_dequantize(ctx, t, Wh) == LQ_ERR_CORRUPT, "%s: dequantize", what);
    ck_assert_msg(lq_matvec(ctx, t, x, y) == LQ_ERR_CORRUPT, "%s: matvec", what);
    for (size_t i = 0; i < ROWS * COLS; i++) ck_assert(Wh[i] == 5.0f);
    for (size_t i = 0; i < ROWS; i++) ck_assert(y[i] == 5.0f);
    free(Wh);
}

static void stray_words(lq_ctx *ctx, lq_qtensor *t, unsigned first_free_ip, unsigned first_free_fp,
                        const char *name)
{
    ck_assert_int_eq(lq_qtensor_validate(t), LQ_OK);
    for (unsigned k = first_free_ip; k < LQ_QT_NPARAMS; k++) {
        uint32_t old = t->ip[k];
        t->ip[k] = 1;
        assert_refused(ctx, t, name);
        t->ip[k] = old;
    }
    for (unsigned k = first_free_fp; k < LQ_QT_NPARAMS; k++) {
        float old = t->fp[k];
        t->fp[k] = 0.5f;
        assert_refused(ctx, t, name);
        t->fp[k] = old;
    }
    ck_assert_int_eq(lq_qtensor_validate(t), LQ_OK);
}

START_TEST(t_stray_header_words)
{
    lq_ctx *ctx = lq_test_ctx(1, LQ_SIMD_AUTO);
    for (size_t i = 0; i < lq_method_count(); i++) {
        lq_method_info info;
        ck_assert_int_eq(lq_method_get_info(i, &info), LQ_OK);
        lq_method m;
        ck_assert_int_eq(lq_method_init(&m, info.kind), LQ_OK);
        if (info.kind == LQ_METHOD_AQLM) {
            m.u.aqlm.n_codebooks = 2;
            m.u.aqlm.code_bits = 4;
            m.u.aqlm.group = 8;
            m.u.aqlm.rounds = 1;
        }
        if (info.kind == LQ_METHOD_GPTVQ) {
            m.u.gptvq.group_cols = 32;
            m.u.gptvq.group_rows = 8;
        }
        lq_qtensor *t = make(ctx, &m);
        unsigned nip = 0, nfp = 0;
        switch (t->format) {
        case LQ_FORMAT_INT: nip = 5; break;
        case LQ_FORMAT_VQ: nip = 6; break;
        case LQ_FORMAT_AQ: nip = 4; break;
        case LQ_FORMAT_BCQ: nip = 4; break;
        case LQ_FORMAT_E8:
            nip = LQ_E8_NIP;
            nfp = t->ip[LQ_E8_IP_K];
            break;
        case LQ_FORMAT_E8P: nip = 5; break;
        default: ck_abort_msg("%s: unexpected format %d", info.name, (int)t->format);
        }
        stray_words(ctx, t, nip, nfp, info.name);
        lq_qtensor_free(t);
    }
    lq_ctx_destroy(ctx);
}
END_TEST

/* E8 codes out of range: K = 3 betas (2 index bits: index 3 is storable)
 * and q = 6 (21 code bits: q^8 = 1679616 < 2^21). */
START_TEST(t_e8_codes_out_of_range)
{
    lq_ctx *ctx = lq_test_ctx(1, LQ_SIMD_AUTO);
    lq_method m;
    lq_method_init(&m, LQ_METHOD_NESTQUANT);
    m.u.nestquant.q = 6;
    m.u.nestquant.n_betas = 3;
    lq_qtensor *t = make(ctx, &m);
    lq_e8_layout v;
    ck_assert_int_eq(lq_e8_layout_of(t, &v), LQ_OK);
    ck_assert_uint_eq(v.K, 3);
    ck_assert_uint_eq(v.ibits, 2);
    ck_assert_uint_eq(v.cbits, 21);
    uint8_t *codes = (uint8_t *)(uintptr_t)v.codes, *bidx = (uint8_t *)(uintptr_t)v.bidx;
    size_t nvec = ROWS * v.nblk, probe[3] = {0, nvec / 2, nvec - 1};
    for (int p = 0; p < 3; p++) {
        size_t vec = probe[p];
        uint64_t ob = lq_bits_get(bidx, vec * 2, 2);
        lq_bits_put(bidx, vec * 2, 2, 3); /* beta index 3 >= K */
        assert_refused(ctx, t, "beta index >= K");
        lq_bits_put(bidx, vec * 2, 2, ob);
        uint64_t oc = lq_bits_get(codes, vec * 21, 21);
        lq_bits_put(codes, vec * 21, 21, 1679616); /* q^8 */
        assert_refused(ctx, t, "Voronoi index q^8");
        lq_bits_put(codes, vec * 21, 21, (1u << 21) - 1);
        assert_refused(ctx, t, "Voronoi index 2^21 - 1");
        lq_bits_put(codes, vec * 21, 21, oc);
        ck_assert_int_eq(lq_qtensor_validate(t), LQ_OK);
    }
    lq_qtensor_free(t);
    lq_ctx_destroy(ctx);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("validate");
    TCase *tc = tcase_create("validate");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, t_stray_header_words);
    tcase_add_test(tc, t_e8_codes_out_of_range);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return lq_test_run(suite()); }
