/* The lq program's model pipeline (tools/lq): tokenizer, loaders, the
 * reference forward pass, sequential calibration and complete-model files,
 * on the real llama2.c TinyStories model in tests/data/realmodel. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "calib.h"
#include "eval.h"
#include "json.h"
#include "model.h"
#include "test_common.h"
#include "tokenizer.h"

#define DATA LQ_TEST_DATA "/realmodel/"
#define MODEL DATA "tinystories_d64_l5.bin"
#define TOK DATA "tok512.bin"
#define VAL DATA "tinystories_val.txt"
#define TRAIN DATA "tinystories_train_head.txt"

static lq_llama *load_model(void)
{
    lq_llama *m = NULL;
    ck_assert_int_eq(lq_llama_load(NULL, MODEL, &m), LQ_OK);
    return m;
}

static lq_tokenizer *load_tok(void)
{
    lq_tokenizer *t = NULL;
    ck_assert_int_eq(lq_tok_load(TOK, 512, &t), LQ_OK);
    return t;
}

static char *load_text(const char *path, size_t *n)
{
    char *s = lq_read_file(path, n);
    ck_assert_ptr_nonnull(s);
    return s;
}

/* ---- tokenizer: the heap BPE equals llama2.c's quadratic loop ----------------------- */

/* The reference: repeatedly merge the best-scoring adjacent pair, leftmost
 * on ties, scanning the whole sequence each time (llama2.c run.c). Needs
 * the vocabulary: read it again here from the file. */
typedef struct vocab {
    char **s;
    float *sc;
    int n;
} vocab;

static vocab read_vocab(void)
{
    FILE *f = fopen(TOK, "rb");
    ck_assert_ptr_nonnull(f);
    vocab v = {calloc(512, sizeof(char *)), calloc(512, sizeof(float)), 512};
    int maxlen;
    ck_assert_int_eq(fread(&maxlen, 4, 1, f), 1);
    for (int i = 0; i < 512; i++) {
        int len;
        ck_assert_int_eq(fread(&v.sc[i], 4, 1, f), 1);
        ck_assert_int_eq(fread(&len, 4, 1, f), 1);
        v.s[i] = calloc((size_t)len + 1, 1);
        ck_assert_int_eq(fread(v.s[i], 1, (size_t)len, f), (size_t)len);
    }
    fclose(f);
    return v;
}

static int vfind(const vocab *v, const char *s)
{
    for (int i = 0; i < v->n; i++)
        if (!strcmp(v->s[i], s)) return i;
    return -1;
}

static size_t naive_encode(const vocab *v, const char *text, int *out)
{
    size_t n = 0, len = strlen(text);
    if (len) out[n++] = vfind(v, " ");
    for (size_t i = 0; i < len;) {
        size_t k = 1;
        while (i + k < len && k < 4 && ((unsigned char)text[i + k] & 0xC0) == 0x80) k++;
        char cp[8] = {0};
        memcpy(cp, text + i, k);
        int id = vfind(v, cp);
        if (id >= 0)
            out[n++] = id;
        else
            for (size_t j = 0; j < k; j++) out[n++] = (unsigned char)text[i + j] + 3;
        i += k;
    }
    char buf[256];
    for (;;) {
        float best = -1e30f;
        int bid = -1;
        size_t bi = 0;
        for (size_t i = 0; i + 1 < n; i++) {
            snprintf(buf, sizeof buf, "%s%s", v->s[out[i]], v->s[out[i + 1]]);
            int id = vfind(v, buf);
            if (id >= 0 && v->sc[id] > best) {
                best = v->sc[id];
                bid = id;
                bi = i;
            }
        }
        if (bid < 0) break;
        out[bi] = bid;
        memmove(out + bi + 1, out + bi + 2, (n - bi - 2) * sizeof *out);
        n--;
    }
    return n;
}

START_TEST(tokenizer_matches_reference_bpe)
{
    lq_tokenizer *t = load_tok();
    vocab v = read_vocab();
    size_t n;
    char *txt = load_text(VAL, &n);
    int *ref = malloc(4096 * sizeof *ref);
    /* 40 slices of the real text, plus text with bytes outside the vocabulary */
    const char *extra[] = {"", "a", "  two  spaces", "caf\xc3\xa9 \xe2\x82\xac 1\xf0\x9f\x98\x80!",
                           "\n\n\nOnce upon a time\n"};
    for (int k = 0; k < 45; k++) {
        char piece[801];
        if (k < 40) {
            size_t off = (size_t)k * 9973 % (n - 800), len = 200 + (size_t)k * 13;
            while (off < n && ((unsigned char)txt[off] & 0xC0) == 0x80) off++;
            while (len > 0 && ((unsigned char)txt[off + len] & 0xC0) == 0x80) len--;
            memcpy(piece, txt + off, len);
            piece[len] = 0;
        } else {
            snprintf(piece, sizeof piece, "%s", extra[k - 40]);
        }
        int *ids;
        size_t nid;
        ck_assert_int_eq(lq_tok_encode(t, piece, strlen(piece), 0, &ids, &nid), LQ_OK);
        size_t nr = naive_encode(&v, piece, ref);
        ck_assert_uint_eq(nid, nr);
        for (size_t i = 0; i < nr; i++) ck_assert_int_eq(ids[i], ref[i]);
        /* decoding gives the text back (after the dummy space) */
        char out[2048] = {0}, pc[64];
        size_t ol = 0;
        for (size_t i = 0; i < nid; i++) {
            size_t pl = lq_tok_piece(t, i ? ids[i - 1] : LQ_TOK_BOS, ids[i], pc, sizeof pc);
            memcpy(out + ol, pc, pl);
            ol += pl;
        }
        ck_assert_str_eq(out, piece);
        free(ids);
    }
    int *ids;
    size_t nid;
    ck_assert_int_eq(lq_tok_encode(t, "\xff\xfe", 2, 0, &ids, &nid), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_tok_encode(t, "\xc0\xaf", 2, 0, &ids, &nid), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_tok_encode(t, "\xed\xa0\x80", 3, 0, &ids, &nid), LQ_ERR_INVALID_ARG);
    for (int i = 0; i < 512; i++) free(v.s[i]);
    free(v.s);
    free(v.sc);
    free(ref);
    free(txt);
    lq_tok_free(t);
}
END_TEST

START_TEST(tokenizer_rejects_wrong_vocab)
{
    lq_tokenizer *t = NULL;
    ck_assert_int_eq(lq_tok_load(TOK, 511, &t), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_tok_load(TOK, 513, &t), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_tok_load(DATA "no-such-file", 512, &t), LQ_ERR_IO);
    ck_assert_ptr_null(t);
}
END_TEST

/* ---- the forward pass against a straightforward independent one --------------------- */

/* llama2.c's forward, written plainly in double from the checkpoint's own
 * layout (interleaved RoPE, rows as stored): NLL of tokens[1..n-1]. */
static double reference_nll(const int *tok, size_t n)
{
    FILE *f = fopen(MODEL, "rb");
    ck_assert_ptr_nonnull(f);
    int h[7];
    ck_assert_int_eq(fread(h, 4, 7, f), 7);
    size_t d = (size_t)h[0], hid = (size_t)h[1], L = (size_t)h[2], H = (size_t)h[3],
           KV = (size_t)h[4], V = (size_t)h[5], hs = d / H, kvd = KV * hs;
    fseek(f, 0, SEEK_END);
    size_t nf = (size_t)(ftell(f) - 28) / 4;
    fseek(f, 28, SEEK_SET);
    float *all = malloc(nf * sizeof *all);
    ck_assert_int_eq(fread(all, 4, nf, f), nf);
    fclose(f);
    const float *emb = all, *rms_att = emb + V * d, *wq = rms_att + L * d, *wk = wq + L * d * d,
                *wv = wk + L * kvd * d, *wo = wv + L * kvd * d, *rms_ffn = wo + L * d * d,
                *w1 = rms_ffn + L * d, *w2 = w1 + L * hid * d, *w3 = w2 + L * d * hid,
                *rms_f = w3 + L * hid * d;
    double *x = calloc(n * d, sizeof *x), *xb = calloc(d, sizeof *xb),
           *q = calloc(n * d, sizeof *q), *k = calloc(n * kvd, sizeof *k),
           *v = calloc(n * kvd, sizeof *v), *att = calloc(n * d, sizeof *att),
           *h1 = calloc(hid, sizeof *h1), *h3 = calloc(hid, sizeof *h3),
           *lg = calloc(V, sizeof *lg), *xn = calloc(n * d, sizeof *xn);
    for (size_t t = 0; t < n; t++)
        for (size_t i = 0; i < d; i++) x[t * d + i] = emb[(size_t)tok[t] * d + i];
#define NORM(out, in, w)                                                                           \
    do {                                                                                           \
        double ss = 0;                                                                             \
        for (size_t i = 0; i < d; i++) ss += (in)[i] * (in)[i];                                    \
        double r = 1 / sqrt(ss / (double)d + 1e-5);                                                \
        for (size_t i = 0; i < d; i++) (out)[i] = (w)[i] * (in)[i] * r;                            \
    } while (0)
    for (size_t l = 0; l < L; l++) {
        for (size_t t = 0; t < n; t++) {
            NORM(xb, x + t * d, rms_att + l * d);
            for (size_t r = 0; r < d; r++) {
                double s = 0;
                for (size_t c = 0; c < d; c++) s += wq[l * d * d + r * d + c] * xb[c];
                q[t * d + r] = s;
            }
            for (size_t r = 0; r < kvd; r++) {
                double s1 = 0, s2 = 0;
                for (size_t c = 0; c < d; c++) {
                    s1 += wk[l * kvd * d + r * d + c] * xb[c];
                    s2 += wv[l * kvd * d + r * d + c] * xb[c];
                }
                k[t * kvd + r] = s1;
                v[t * kvd + r] = s2;
            }
            for (size_t i = 0; i < d; i += 2) { /* interleaved pairs */
                double fr = 1.0 / pow(10000.0, (double)(i % hs) / (double)hs), a = (double)t * fr;
                for (int which = 0; which < 2; which++) {
                    double *vec = which ? k + t * kvd : q + t * d;
                    if (which && i >= kvd) continue;
                    double v0 = vec[i], v1 = vec[i + 1];
                    vec[i] = v0 * cos(a) - v1 * sin(a);
                    vec[i + 1] = v0 * sin(a) + v1 * cos(a);
                }
            }
        }
        for (size_t t = 0; t < n; t++)
            for (size_t hh = 0; hh < H; hh++) {
                size_t g = hh / (H / KV);
                double sc[512], mx = -1e300, sum = 0;
                for (size_t j = 0; j <= t; j++) {
                    double s = 0;
                    for (size_t i = 0; i < hs; i++)
                        s += q[t * d + hh * hs + i] * k[j * kvd + g * hs + i];
                    sc[j] = s / sqrt((double)hs);
                    if (sc[j] > mx) mx = sc[j];
                }
                for (size_t j = 0; j <= t; j++) sum += (sc[j] = exp(sc[j] - mx));
                for (size_t i = 0; i < hs; i++) {
                    double s = 0;
                    for (size_t j = 0; j <= t; j++) s += sc[j] / sum * v[j * kvd + g * hs + i];
                    att[t * d + hh * hs + i] = s;
                }
            }
        for (size_t t = 0; t < n; t++) {
            for (size_t r = 0; r < d; r++) {
                double s = 0;
                for (size_t c = 0; c < d; c++) s += wo[l * d * d + r * d + c] * att[t * d + c];
                x[t * d + r] += s;
            }
            NORM(xb, x + t * d, rms_ffn + l * d);
            for (size_t r = 0; r < hid; r++) {
                double s1 = 0, s3 = 0;
                for (size_t c = 0; c < d; c++) {
                    s1 += w1[l * hid * d + r * d + c] * xb[c];
                    s3 += w3[l * hid * d + r * d + c] * xb[c];
                }
                h1[r] = s1 / (1 + exp(-s1)) * s3;
            }
            for (size_t r = 0; r < d; r++) {
                double s = 0;
                for (size_t c = 0; c < hid; c++) s += w2[l * d * hid + r * hid + c] * h1[c];
                x[t * d + r] += s;
            }
        }
    }
    double nll = 0;
    for (size_t t = 0; t + 1 < n; t++) {
        NORM(xn, x + t * d, rms_f);
        double mx = -1e300, s = 0;
        for (size_t r = 0; r < V; r++) {
            double z = 0;
            for (size_t c = 0; c < d; c++) z += emb[r * d + c] * xn[c];
            lg[r] = z;
            if (z > mx) mx = z;
        }
        for (size_t r = 0; r < V; r++) s += exp(lg[r] - mx);
        nll -= lg[tok[t + 1]] - mx - log(s);
    }
#undef NORM
    free(all);
    free(x);
    free(xb);
    free(q);
    free(k);
    free(v);
    free(att);
    free(h1);
    free(h3);
    free(lg);
    free(xn);
    return nll / (double)(n - 1);
}

START_TEST(forward_matches_independent_reference)
{
    lq_llama *m = load_model();
    lq_tokenizer *t = load_tok();
    size_t n;
    char *txt = load_text(VAL, &n);
    lq_chunks c;
    ck_assert_int_eq(lq_chunks_make(t, txt, n, LQ_PROTO_STREAM, m->cfg.seq_len, 2, &c), LQ_OK);
    ck_assert_uint_eq(c.n, 2);
    lq_run_opts o = {LQ_KERNEL_EXACT, 0};
    lq_eval_result r;
    ck_assert_int_eq(lq_eval_run(NULL, m, NULL, &o, &c, &r), LQ_OK);
    double nll = 0;
    size_t cnt = 0;
    for (size_t i = 0; i < c.n; i++) {
        nll += reference_nll(c.tok + c.off[i], c.len[i]) * (double)(c.len[i] - 1);
        cnt += c.len[i] - 1;
    }
    double ref_ppl = exp(nll / (double)cnt);
    ck_assert_uint_eq(r.tokens, cnt);
    ck_assert_msg(fabs(r.ppl - ref_ppl) <= 1e-4 * ref_ppl, "ppl %.8f, reference %.8f", r.ppl,
                  ref_ppl);
    /* greedy text from BOS: the model's known continuation */
    lq_llama_state *s;
    ck_assert_int_eq(lq_llama_state_create(m, 1, &s), LQ_OK);
    float lg[512];
    int tok = LQ_TOK_BOS;
    char out[1024] = {0}, pc[64];
    for (size_t p = 0; p < 40; p++) {
        ck_assert_int_eq(lq_llama_forward(NULL, m, s, &o, &tok, 1, p, lg), LQ_OK);
        int b = 0;
        for (int i = 1; i < 512; i++)
            if (lg[i] > lg[b]) b = i;
        lq_tok_piece(t, tok, b, pc, sizeof pc);
        strcat(out, pc);
        tok = b;
    }
    ck_assert_msg(!strncmp(out,
                           "Once upon a time, there was a little girl named Lily. She loved to "
                           "play outside and came to play with her friends. One day, she",
                           124),
                  "greedy text: %s", out);
    lq_llama_state_free(s);
    lq_chunks_free(&c);
    free(txt);
    lq_tok_free(t);
    lq_llama_free(m);
}
END_TEST

START_TEST(docs_protocol_reproduces_published_perplexity)
{
    lq_llama *m = load_model();
    lq_tokenizer *t = load_tok();
    size_t n;
    char *txt = load_text(VAL, &n);
    lq_chunks c;
    ck_assert_int_eq(lq_chunks_make(t, txt, n, LQ_PROTO_DOCS, m->cfg.seq_len, 64, &c), LQ_OK);
    lq_run_opts o = {LQ_KERNEL_EXACT, 0};
    lq_eval_result r;
    ck_assert_int_eq(lq_eval_run(NULL, m, NULL, &o, &c, &r), LQ_OK);
    ck_assert_uint_eq(r.tokens, 15885);
    ck_assert_msg(fabs(r.ppl - 6.185753730335321) < 1e-5, "ppl %.9f", r.ppl);
    lq_chunks_free(&c);
    free(txt);
    lq_tok_free(t);
    lq_llama_free(m);
}
END_TEST

/* ---- sequential calibration -------------------------------------------------------- */

typedef struct hrec {
    size_t layer;
    lq_lin_group g;
    float *H;
    size_t cols;
} hrec;

static void keep_hessian(void *user, size_t layer, lq_lin_group g, const float *H, size_t cols)
{
    hrec *r = user;
    if (layer != r->layer || g != r->g) return;
    free(r->H);
    r->H = malloc(cols * cols * sizeof *r->H);
    memcpy(r->H, H, cols * cols * sizeof *r->H);
    r->cols = cols;
}

static lq_chunks calib_chunks(size_t nchunks)
{
    lq_tokenizer *t = load_tok();
    size_t n;
    char *txt = load_text(TRAIN, &n);
    lq_chunks c;
    ck_assert_int_eq(lq_chunks_make(t, txt, n, LQ_PROTO_STREAM, 256, nchunks, &c), LQ_OK);
    free(txt);
    lq_tok_free(t);
    return c;
}

static void calibrate(size_t threads, int fp_inputs, const lq_chunks *c, hrec *rec, lq_llama **out)
{
    lq_llama *m = load_model();
    lq_ctx *ctx = lq_test_ctx(threads, LQ_SIMD_AUTO);
    lq_calib_opts o = {0};
    ck_assert_int_eq(lq_method_init(&o.method, LQ_METHOD_INT), LQ_OK);
    o.method.u.int_.bits = 3;
    o.method.u.int_.group = 32;
    o.fp_inputs = fp_inputs;
    o.on_hessian = rec ? keep_hessian : NULL;
    o.user = rec;
    ck_assert_int_eq(lq_calibrate(ctx, m, c, &o, NULL), LQ_OK);
    lq_ctx_destroy(ctx);
    *out = m;
}

static void hook_add(void *user, size_t layer, lq_lin_group g, const float *X, size_t n,
                     size_t cols)
{
    (void)layer;
    if (g == LQ_GROUP_ATTN_IN) ck_assert_int_eq(lq_hessian_add(NULL, user, X, n, cols), LQ_OK);
}

START_TEST(calibration_uses_quantized_prefix)
{
    lq_chunks c = calib_chunks(3);
    const size_t layer = 2;
    hrec seq = {layer, LQ_GROUP_ATTN_IN, NULL, 0}, fp = seq;
    lq_llama *ms, *mf;
    calibrate(1, 0, &c, &seq, &ms);
    calibrate(1, 1, &c, &fp, &mf);
    ck_assert_ptr_nonnull(seq.H);
    ck_assert_ptr_nonnull(fp.H);
    /* the float model's own Hessian of that input */
    lq_llama *m = load_model();
    size_t d = m->cfg.dim;
    lq_hessian *h;
    ck_assert_int_eq(lq_hessian_create(NULL, d, &h), LQ_OK);
    lq_llama_state *s;
    ck_assert_int_eq(lq_llama_state_create(m, m->cfg.seq_len, &s), LQ_OK);
    lq_run_opts o = {LQ_KERNEL_EXACT, 1};
    float *X = malloc(m->cfg.seq_len * d * sizeof *X);
    for (size_t i = 0; i < c.n; i++) {
        lq_llama_embed(m, c.tok + c.off[i], c.len[i], X);
        for (size_t l = 0; l < layer; l++)
            ck_assert_int_eq(lq_llama_block(NULL, m, s, &o, l, X, c.len[i], 0, NULL, NULL, -1),
                             LQ_OK);
        ck_assert_int_eq(
            lq_llama_block(NULL, m, s, &o, layer, X, c.len[i], 0, hook_add, h, LQ_GROUP_ATTN_IN),
            LQ_OK);
    }
    float *Href = malloc(d * d * sizeof *Href);
    ck_assert_int_eq(lq_hessian_get(h, Href), LQ_OK);
    /* fp inputs: exactly the float model's Hessian; sequential: a different one */
    ck_assert_int_eq(memcmp(fp.H, Href, d * d * sizeof *Href), 0);
    double diff = 0, norm = 0;
    for (size_t i = 0; i < d * d; i++) {
        diff += fabs((double)seq.H[i] - Href[i]);
        norm += fabs((double)Href[i]);
    }
    ck_assert_msg(diff > 1e-4 * norm, "sequential Hessian equals the float one (%g / %g)", diff,
                  norm);
    free(X);
    free(Href);
    lq_hessian_free(h);
    lq_llama_state_free(s);
    lq_llama_free(m);
    lq_llama_free(ms);
    lq_llama_free(mf);
    free(seq.H);
    free(fp.H);
    lq_chunks_free(&c);
}
END_TEST

START_TEST(calibration_is_thread_count_independent)
{
    lq_chunks c = calib_chunks(2);
    lq_llama *m1, *m2;
    calibrate(1, 0, &c, NULL, &m1);
    calibrate(2, 0, &c, NULL, &m2);
    for (size_t i = 0; i < m1->cfg.n_layers * LQ_LIN_COUNT; i++) {
        const lq_linear *a = &m1->lin[i], *b = &m2->lin[i];
        ck_assert_ptr_nonnull(a->q);
        ck_assert_ptr_null(a->w);
        float *wa = malloc(a->rows * a->cols * sizeof *wa),
              *wb = malloc(a->rows * a->cols * sizeof *wb);
        ck_assert_int_eq(lq_dequantize(NULL, a->q, wa), LQ_OK);
        ck_assert_int_eq(lq_dequantize(NULL, b->q, wb), LQ_OK);
        ck_assert_int_eq(memcmp(wa, wb, a->rows * a->cols * sizeof *wa), 0);
        free(wa);
        free(wb);
    }
    lq_llama_free(m1);
    lq_llama_free(m2);
    lq_chunks_free(&c);
}
END_TEST

/* ---- complete-model files --------------------------------------------------------- */

START_TEST(model_file_round_trip_and_missing_layer)
{
    lq_chunks c = calib_chunks(1);
    lq_llama *m;
    calibrate(1, 0, &c, NULL, &m);
    char dir[] = "/tmp/lq_test_model.XXXXXX", path[128], bad[128];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/m.lqt", dir);
    snprintf(bad, sizeof bad, "%s/bad.lqt", dir);
    ck_assert_int_eq(lq_llama_save(NULL, m, path, NULL, 0), LQ_OK);
    lq_llama *r = NULL;
    ck_assert_int_eq(lq_llama_load(NULL, path, &r), LQ_OK);
    ck_assert_str_eq(r->source, "lqt");
    /* the loaded model computes exactly what the calibrated one does */
    int toks[8] = {1, 403, 407, 261, 378, 432, 383, 286};
    lq_llama_state *s1, *s2;
    ck_assert_int_eq(lq_llama_state_create(m, 8, &s1), LQ_OK);
    ck_assert_int_eq(lq_llama_state_create(r, 8, &s2), LQ_OK);
    float l1[8 * 512], l2[8 * 512];
    lq_run_opts o = {LQ_KERNEL_EXACT, 0};
    ck_assert_int_eq(lq_llama_forward(NULL, m, s1, &o, toks, 8, 0, l1), LQ_OK);
    ck_assert_int_eq(lq_llama_forward(NULL, r, s2, &o, toks, 8, 0, l2), LQ_OK);
    ck_assert_int_eq(memcmp(l1, l2, sizeof l1), 0);
    /* a file without one layer is refused with a clear status */
    lq_qtensor *keep = lq_llama_lin(m, 3, LQ_LIN_UP)->q;
    lq_llama_lin(m, 3, LQ_LIN_UP)->q = NULL; /* neither q nor w: the writer must fail */
    ck_assert_int_ne(lq_llama_save(NULL, m, bad, NULL, 0), LQ_OK);
    ck_assert_int_ne(access(bad, F_OK), 0);
    lq_llama_lin(m, 3, LQ_LIN_UP)->q = keep;
    /* write the complete file by hand without that tensor */
    lq_lqt *f;
    ck_assert_int_eq(lq_lqt_open(NULL, path, 0, &f), LQ_OK);
    lq_lqt_writer *w;
    ck_assert_int_eq(lq_lqt_writer_open(NULL, bad, &w), LQ_OK);
    for (size_t i = 0; i < lq_lqt_meta_count(f); i++) {
        const char *k, *v;
        ck_assert_int_eq(lq_lqt_meta_get(f, i, &k, &v), LQ_OK);
        ck_assert_int_eq(lq_lqt_writer_add_meta(w, k, v), LQ_OK);
    }
    for (size_t i = 0; i < lq_lqt_count(f); i++) {
        lq_lqt_info in;
        ck_assert_int_eq(lq_lqt_info_get(f, i, &in), LQ_OK);
        if (!strcmp(in.name, "model.layers.3.mlp.up_proj.weight")) continue;
        if (in.format == LQ_LQT_FORMAT_F32) {
            float *buf = malloc(in.rows * in.cols * sizeof *buf);
            ck_assert_int_eq(lq_lqt_read_f32(f, i, buf, in.rows * in.cols), LQ_OK);
            ck_assert_int_eq(lq_lqt_writer_add_f32(w, in.name, in.rows, in.cols, buf), LQ_OK);
            free(buf);
        } else {
            lq_qtensor *q;
            ck_assert_int_eq(lq_lqt_load(NULL, f, i, 0, &q), LQ_OK);
            ck_assert_int_eq(lq_lqt_writer_add(w, in.name, q), LQ_OK);
            lq_qtensor_free(q);
        }
    }
    ck_assert_int_eq(lq_lqt_writer_finish(w), LQ_OK);
    lq_lqt_close(f);
    lq_llama *b = NULL;
    ck_assert_int_eq(lq_llama_load(NULL, bad, &b), LQ_ERR_CORRUPT);
    ck_assert_ptr_null(b);
    unlink(path);
    unlink(bad);
    rmdir(dir);
    lq_llama_state_free(s1);
    lq_llama_state_free(s2);
    lq_llama_free(r);
    lq_llama_free(m);
    lq_chunks_free(&c);
}
END_TEST

START_TEST(bad_checkpoints_are_refused)
{
    size_t n;
    char *raw = load_text(MODEL, &n);
    char dir[] = "/tmp/lq_test_ckpt.XXXXXX", path[128];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/m.bin", dir);
    struct {
        size_t len;
        int field, value;
        lq_status want;
    } cases[] = {
        {10, -1, 0, LQ_ERR_CORRUPT},             /* truncated header */
        {n - 4, -1, 0, LQ_ERR_CORRUPT},          /* one float short */
        {n, 2, 6, LQ_ERR_CORRUPT},               /* header claims 6 layers */
        {n, 0, 63, LQ_ERR_CORRUPT},              /* dim not a multiple of heads */
        {n, 4, 3, LQ_ERR_CORRUPT},               /* 8 heads over 3 kv heads */
        {n, 1, 0, LQ_ERR_CORRUPT},               /* zero hidden */
        {n, 5, -512, LQ_ERR_CORRUPT},            /* unshared classifier: file too short */
        {n, 6, 1 << 30, LQ_ERR_CORRUPT},         /* absurd seq_len */
        {n, 100, 0x7fc00000, LQ_ERR_NOT_FINITE}, /* a NaN weight */
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        FILE *f = fopen(path, "wb");
        char *copy = malloc(n);
        memcpy(copy, raw, n);
        if (cases[k].field >= 0) memcpy(copy + 4 * cases[k].field, &cases[k].value, 4);
        ck_assert_uint_eq(fwrite(copy, 1, cases[k].len, f), cases[k].len);
        fclose(f);
        free(copy);
        lq_llama *m = NULL;
        lq_status st = lq_llama_load(NULL, path, &m);
        ck_assert_msg(st == cases[k].want, "case %zu: %s", k, lq_status_str(st));
        ck_assert_ptr_null(m);
    }
    unlink(path);
    rmdir(dir);
    free(raw);
}
END_TEST

START_TEST(text_errors)
{
    lq_tokenizer *t = load_tok();
    lq_chunks c;
    ck_assert_int_eq(lq_chunks_make(t, "", 0, LQ_PROTO_STREAM, 256, 0, &c), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_chunks_make(t, "ab\xff", 3, LQ_PROTO_STREAM, 256, 0, &c),
                     LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_chunks_make(t, "\n\n", 2, LQ_PROTO_DOCS, 256, 0, &c), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_chunks_make(t, "x", 1, LQ_PROTO_STREAM, 256, 0, &c), LQ_OK);
    ck_assert_uint_eq(c.n, 1);
    lq_chunks_free(&c);
    lq_tok_free(t);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("model");
    TCase *tc = tcase_create("model");
    tcase_set_timeout(tc, 900);
    tcase_add_test(tc, tokenizer_matches_reference_bpe);
    tcase_add_test(tc, tokenizer_rejects_wrong_vocab);
    tcase_add_test(tc, forward_matches_independent_reference);
    tcase_add_test(tc, docs_protocol_reproduces_published_perplexity);
    tcase_add_test(tc, calibration_uses_quantized_prefix);
    tcase_add_test(tc, calibration_is_thread_count_independent);
    tcase_add_test(tc, model_file_round_trip_and_missing_layer);
    tcase_add_test(tc, bad_checkpoints_are_refused);
    tcase_add_test(tc, text_errors);
    suite_add_tcase(s, tc);
    return lq_test_run(s);
}
