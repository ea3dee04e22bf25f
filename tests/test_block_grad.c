/* tools/lq/block_grad.c and block-wise fine-tuning (calib.c) on the real
 * model in tests/data/realmodel: the block forward equals the runner's
 * lq_llama_block, its backward equals finite differences of a linear
 * functional of the block output (weights and input), and fine-tuning a
 * quantized block lowers its output error, keeps the codes, and does not
 * depend on the thread count. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "block_grad.h"
#include "calib.h"
#include "eval.h"
#include "model.h"
#include "test_common.h"
#include "tokenizer.h"

#define DATA LQ_TEST_DATA "/realmodel/"
#define MODEL DATA "tinystories_d64_l5.bin"
#define TOK DATA "tok512.bin"
#define TRAIN DATA "tinystories_train_head.txt"

static lq_llama *load_model(void)
{
    lq_llama *m = NULL;
    ck_assert_int_eq(lq_llama_load(NULL, MODEL, &m), LQ_OK);
    return m;
}

static lq_chunks chunks(size_t nchunks, size_t len)
{
    lq_tokenizer *t = NULL;
    ck_assert_int_eq(lq_tok_load(TOK, 512, &t), LQ_OK);
    size_t n;
    char *txt = lq_text_load(TRAIN, &n);
    ck_assert_ptr_nonnull(txt);
    lq_chunks c;
    ck_assert_int_eq(lq_chunks_make(t, txt, n, LQ_PROTO_STREAM, len, nchunks, &c), LQ_OK);
    free(txt);
    lq_tok_free(t);
    return c;
}

static lq_block_weights float_weights(const lq_llama *m, size_t l)
{
    lq_block_weights w;
    for (int k = 0; k < LQ_LIN_COUNT; k++) w.w[k] = lq_llama_lin(m, l, (lq_lin)k)->w;
    w.norm_att = m->norm_att + l * m->cfg.dim;
    w.norm_ffn = m->norm_ffn + l * m->cfg.dim;
    return w;
}

/* The forward of block_grad.c is the runner's block (fp32 weights), up to
 * float summation order (SGEMM against the runner's products). */
START_TEST(forward_matches_runner_block)
{
    lq_llama *m = load_model();
    lq_chunks c = chunks(1, 64);
    size_t n = c.len[0], d = m->cfg.dim;
    float *X = malloc(n * d * sizeof *X), *Y = malloc(n * d * sizeof *Y);
    float *R = malloc(n * d * sizeof *R);
    lq_llama_embed(m, c.tok, n, X);
    lq_llama_state *s;
    ck_assert_int_eq(lq_llama_state_create(m, n, &s), LQ_OK);
    lq_block_tape *tp;
    ck_assert_int_eq(lq_block_tape_create(&m->cfg, n, &tp), LQ_OK);
    lq_run_opts o = {LQ_KERNEL_EXACT, 1};
    for (size_t l = 0; l < m->cfg.n_layers; l++) {
        lq_block_weights w = float_weights(m, l);
        ck_assert_int_eq(lq_block_forward(NULL, &w, tp, X, n, Y), LQ_OK);
        memcpy(R, X, n * d * sizeof *R);
        ck_assert_int_eq(lq_llama_block(NULL, m, s, &o, l, R, n, 0, NULL, NULL, -1), LQ_OK);
        double e = 0, mag = 0;
        for (size_t i = 0; i < n * d; i++) {
            e = fmax(e, fabs((double)Y[i] - R[i]));
            mag = fmax(mag, fabs((double)R[i]));
        }
        ck_assert_msg(e <= 1e-5 * mag, "block %zu: max diff %g (max %g)", l, e, mag);
        memcpy(X, R, n * d * sizeof *X);
    }
    ck_assert_int_eq(lq_block_forward(NULL, &(lq_block_weights){0}, tp, X, 0, Y),
                     LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_block_forward(NULL, &(lq_block_weights){0}, tp, X, n + 1, Y),
                     LQ_ERR_INVALID_ARG);
    lq_block_tape_free(tp);
    lq_llama_state_free(s);
    lq_chunks_free(&c);
    lq_llama_free(m);
    free(X), free(Y), free(R);
}
END_TEST

/* L = sum_i c_i Y_i (c fixed, random): the backward with dY = c gives dL/dW
 * for the seven layers and dL/dX. Central differences with step h on a
 * sample of entries (L in double from the float forward): |fd - g| <=
 * 2e-2 |g| + 2e-3 max|g| of that tensor. */
static double lin_loss(const lq_block_weights *w, lq_block_tape *tp, const float *X, size_t n,
                       size_t d, const float *cvec, float *Y)
{
    ck_assert_int_eq(lq_block_forward(NULL, w, tp, X, n, Y), LQ_OK);
    double L = 0;
    for (size_t i = 0; i < n * d; i++) L += (double)cvec[i] * Y[i];
    return L;
}

START_TEST(backward_matches_finite_differences)
{
    lq_llama *m = load_model();
    lq_chunks c = chunks(1, 12);
    const size_t l = 1;
    size_t n = c.len[0], d = m->cfg.dim;
    float *X = malloc(n * d * sizeof *X), *Y = malloc(n * d * sizeof *Y);
    float *cv = malloc(n * d * sizeof *cv), *dX = malloc(n * d * sizeof *dX);
    /* the block's real input: block 0's output on the embeddings */
    lq_llama_embed(m, c.tok, n, Y);
    lq_block_tape *tp;
    ck_assert_int_eq(lq_block_tape_create(&m->cfg, n, &tp), LQ_OK);
    lq_block_weights w0 = float_weights(m, 0), w = float_weights(m, l);
    ck_assert_int_eq(lq_block_forward(NULL, &w0, tp, Y, n, X), LQ_OK);
    lq_test_fill_gaussian(cv, n * d, 1.0f, 21);
    float *dW[LQ_LIN_COUNT];
    for (int k = 0; k < LQ_LIN_COUNT; k++) {
        const lq_linear *li = lq_llama_lin(m, l, (lq_lin)k);
        dW[k] = calloc(li->rows * li->cols, sizeof(float));
    }
    lin_loss(&w, tp, X, n, d, cv, Y);
    ck_assert_int_eq(lq_block_backward(NULL, &w, tp, cv, dW, dX), LQ_OK);
    const double h = 1e-2;
    size_t checked = 0;
    for (int k = 0; k <= LQ_LIN_COUNT; k++) {
        float *P = k < LQ_LIN_COUNT ? lq_llama_lin(m, l, (lq_lin)k)->w : X;
        float *g = k < LQ_LIN_COUNT ? dW[k] : dX;
        size_t np = k < LQ_LIN_COUNT
                        ? lq_llama_lin(m, l, (lq_lin)k)->rows * lq_llama_lin(m, l, (lq_lin)k)->cols
                        : n * d;
        double gmax = 0;
        for (size_t i = 0; i < np; i++) gmax = fmax(gmax, fabs(g[i]));
        ck_assert_msg(gmax > 0, "tensor %d: zero gradient", k);
        for (size_t s = 0; s < 12; s++) {
            size_t i = (s * 2654435761u + 17u * (size_t)k) % np;
            float keep = P[i];
            P[i] = (float)(keep + h);
            double Lp = lin_loss(&w, tp, X, n, d, cv, Y);
            P[i] = (float)(keep - h);
            double Lm = lin_loss(&w, tp, X, n, d, cv, Y);
            double hh = ((double)(float)(keep + h) - (double)(float)(keep - h));
            P[i] = keep;
            double fd = (Lp - Lm) / hh;
            ck_assert_msg(fabs(fd - g[i]) <= 2e-2 * fabs(g[i]) + 2e-3 * gmax,
                          "tensor %d entry %zu: backward %g, finite difference %g (max %g)", k, i,
                          g[i], fd, gmax);
            checked++;
        }
    }
    ck_assert_uint_eq(checked, 12 * (LQ_LIN_COUNT + 1));
    for (int k = 0; k < LQ_LIN_COUNT; k++) free(dW[k]);
    lq_block_tape_free(tp);
    lq_chunks_free(&c);
    lq_llama_free(m);
    free(X), free(Y), free(cv), free(dX);
}
END_TEST

/* Block 0 quantized (method m, no Hessian), inputs = the embeddings of the
 * calibration chunks. */
static lq_llama *quantized_block0(lq_ctx *ctx, const lq_method *me, const lq_chunks *c, float **X)
{
    lq_llama *m = load_model();
    for (int k = 0; k < LQ_LIN_COUNT; k++) {
        lq_linear *li = lq_llama_lin(m, 0, (lq_lin)k);
        ck_assert_int_eq(lq_quantize(ctx, li->w, li->rows, li->cols, NULL, me, &li->q, NULL),
                         LQ_OK);
    }
    size_t ntok = 0;
    for (size_t i = 0; i < c->n; i++) ntok += c->len[i];
    *X = malloc(ntok * m->cfg.dim * sizeof **X);
    lq_llama_embed(m, c->tok, ntok, *X);
    return m;
}

/* Dequantized weights of block 0's seven layers, concatenated. */
static float *what_of(const lq_llama *m, size_t *len)
{
    size_t n = 0;
    for (int k = 0; k < LQ_LIN_COUNT; k++)
        n += lq_llama_lin(m, 0, (lq_lin)k)->rows * lq_llama_lin(m, 0, (lq_lin)k)->cols;
    float *b = malloc(n * sizeof *b), *o = b;
    for (int k = 0; k < LQ_LIN_COUNT; k++) {
        const lq_linear *li = lq_llama_lin(m, 0, (lq_lin)k);
        ck_assert_int_eq(lq_dequantize(NULL, li->q, o), LQ_OK);
        o += li->rows * li->cols;
    }
    *len = n;
    return b;
}

static void set_params(lq_llama *m, const float *p)
{
    size_t np;
    for (int k = 0; k < LQ_LIN_COUNT; k++) {
        lq_qtensor *q = lq_llama_lin(m, 0, (lq_lin)k)->q;
        lq_finetune_param_count(q, &np);
        ck_assert_int_eq(lq_finetune_set_params(q, p, np), LQ_OK);
        p += np;
    }
}

static float *params_of(const lq_llama *m, size_t *len)
{
    size_t n = 0, np;
    for (int k = 0; k < LQ_LIN_COUNT; k++) {
        ck_assert_int_eq(lq_finetune_param_count(lq_llama_lin(m, 0, (lq_lin)k)->q, &np), LQ_OK);
        n += np;
    }
    float *p = malloc(n * sizeof *p), *o = p;
    for (int k = 0; k < LQ_LIN_COUNT; k++) {
        const lq_qtensor *q = lq_llama_lin(m, 0, (lq_lin)k)->q;
        lq_finetune_param_count(q, &np);
        ck_assert_int_eq(lq_finetune_get_params(q, o, np), LQ_OK);
        o += np;
    }
    *len = n;
    return p;
}

/* One Adam step at a small learning rate lowers the block loss on its own
 * batch (the first Adam step moves every parameter by about lr against its
 * gradient's sign: a descent direction); 40 steps lower the relative output
 * error of 2-bit INT by at least 30%; the codes stay bit-identical (with
 * the original parameters written back, W_hat is bit-identical to the
 * original); 1 and 2 threads give identical parameters. */
START_TEST(finetune_block_lowers_loss)
{
    lq_chunks c = chunks(2, 128);
    lq_method me;
    lq_method_init(&me, LQ_METHOD_INT);
    me.u.int_.bits = 2;
    me.u.int_.group = 32;
    lq_ctx *ctx1 = lq_test_ctx(1, LQ_SIMD_AUTO), *ctx2 = lq_test_ctx(2, LQ_SIMD_AUTO);
    float *X1, *X2;
    lq_llama *m1 = quantized_block0(ctx1, &me, &c, &X1);
    size_t wlen0, wlen1, np0, np1, np2;
    float *W0 = what_of(m1, &wlen0), *p0 = params_of(m1, &np0);
    lq_calib_block r;
    ck_assert_int_eq(lq_calib_finetune_block(ctx1, m1, 0, X1, &c, 1, 1e-5, &r), LQ_OK);
    ck_assert_uint_eq(r.steps, 1);
    ck_assert_msg(r.best == 1 && r.loss_after < r.loss_before, "one step: %g -> %g (best %u)",
                  r.loss_before, r.loss_after, r.best);
    ck_assert_int_eq(lq_calib_finetune_block(ctx1, m1, 0, X1, &c, 40, 1e-3, &r), LQ_OK);
    printf("block 0 int2: relative output error %.5g -> %.5g (best step %u)\n", r.loss_before,
           r.loss_after, r.best);
    ck_assert_msg(r.loss_after < 0.7 * r.loss_before, "40 steps: %g -> %g", r.loss_before,
                  r.loss_after);
    float *p1 = params_of(m1, &np1);
    ck_assert_uint_eq(np0, np1);
    ck_assert_int_ne(memcmp(p0, p1, np0 * sizeof *p0), 0);
    set_params(m1, p0);
    float *W1 = what_of(m1, &wlen1);
    ck_assert_uint_eq(wlen0, wlen1);
    ck_assert_int_eq(memcmp(W0, W1, wlen0 * sizeof *W0), 0);
    set_params(m1, p1);
    /* the same on two threads */
    lq_llama *m2 = quantized_block0(ctx2, &me, &c, &X2);
    lq_calib_block r2;
    ck_assert_int_eq(lq_calib_finetune_block(ctx2, m2, 0, X2, &c, 1, 1e-5, &r2), LQ_OK);
    ck_assert_int_eq(lq_calib_finetune_block(ctx2, m2, 0, X2, &c, 40, 1e-3, &r2), LQ_OK);
    float *p2 = params_of(m2, &np2);
    ck_assert_uint_eq(np1, np2);
    ck_assert_int_eq(memcmp(p1, p2, np1 * sizeof *p1), 0);
    ck_assert(r.loss_after == r2.loss_after);
    /* bad arguments */
    ck_assert_int_eq(lq_calib_finetune_block(ctx1, m1, 5, X1, &c, 1, 1e-5, &r), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_calib_finetune_block(ctx1, m1, 0, NULL, &c, 1, 1e-5, &r),
                     LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_calib_finetune_block(ctx1, m1, 0, X1, &c, 1, 0.0, &r), LQ_ERR_INVALID_ARG);
    free(p0), free(p1), free(p2), free(W0), free(W1), free(X1), free(X2);
    lq_llama_free(m1);
    lq_llama_free(m2);
    lq_ctx_destroy(ctx1);
    lq_ctx_destroy(ctx2);
    lq_chunks_free(&c);
}
END_TEST

/* Every format: one Adam step at a small learning rate (1e-5, well below
 * every format's parameter scale) does not increase the block loss on its
 * own batch, and lowers it (the first Adam step moves each parameter by
 * about lr against its gradient's sign). */
START_TEST(one_small_step_lowers_loss_every_format)
{
    lq_chunks c = chunks(1, 96);
    lq_ctx *ctx = lq_test_ctx(2, LQ_SIMD_AUTO);
    lq_method ms[5];
    lq_method_init(&ms[0], LQ_METHOD_NESTQUANT);
    ms[0].u.nestquant.q = 4;
    ms[0].u.nestquant.n_betas = 2;
    lq_method_init(&ms[1], LQ_METHOD_NESTQUANT);
    ms[1].u.nestquant.codebook = LQ_NQ_CODEBOOK_E8P;
    lq_method_init(&ms[2], LQ_METHOD_AQLM);
    ms[2].u.aqlm.n_codebooks = 2;
    ms[2].u.aqlm.code_bits = 4;
    ms[2].u.aqlm.group = 4;
    ms[2].u.aqlm.beam = 2;
    ms[2].u.aqlm.rounds = 1;
    lq_method_init(&ms[3], LQ_METHOD_BCQ);
    ms[3].u.bcq.k = 2;
    ms[3].u.bcq.group = 64;
    lq_method_init(&ms[4], LQ_METHOD_GPTVQ);
    ms[4].u.gptvq.dim = 2;
    ms[4].u.gptvq.index_bits = 4;
    ms[4].u.gptvq.group_cols = 64;
    ms[4].u.gptvq.group_rows = 16;
    for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++) {
        float *X;
        lq_llama *m = quantized_block0(ctx, &ms[i], &c, &X);
        lq_calib_block r;
        ck_assert_int_eq(lq_calib_finetune_block(ctx, m, 0, X, &c, 1, 1e-5, &r), LQ_OK);
        ck_assert_msg(r.best == 1 && r.loss_after < r.loss_before, "method %zu: %g -> %g", i,
                      r.loss_before, r.loss_after);
        free(X);
        lq_llama_free(m);
    }
    lq_ctx_destroy(ctx);
    lq_chunks_free(&c);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("block_grad");
    TCase *tc = tcase_create("block_grad");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, forward_matches_runner_block);
    tcase_add_test(tc, backward_matches_finite_differences);
    tcase_add_test(tc, finetune_block_lowers_loss);
    tcase_add_test(tc, one_small_step_lowers_loss_every_format);
    suite_add_tcase(s, tc);
    return lq_test_run(s);
}
